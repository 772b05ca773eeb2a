"""The handcrafted baseline "backbone": per-frame log-mel and MFCC features computed with torchaudio.

It has no weights. Its frames are treated as one hidden state and pooled like an SSL backbone's, so it
flows through the same model, cache and training code. Travels with `modeling_bio.py` as remote code.
"""

from __future__ import annotations

from typing import Any

import torch
import torchaudio.functional as AF
from torch import nn


class HandcraftedExtractor(nn.Module):
    """Log-mel (dB) and MFCC frames of each clip, one hidden state of width `n_mels + n_mfcc`.

    Frames are computed without centre padding, so a frame only ever sees the clip's own samples: the
    result for a clip does not depend on how much zero padding follows it in a batch.

    Args:
        config: `{"model_type": "handcrafted", "n_fft", "hop_length", "n_mels", "n_mfcc"}`.
        sampling_rate: audio rate in Hz.
    """

    def __init__(self, config: dict[str, Any], sampling_rate: int) -> None:
        super().__init__()
        self.n_fft = int(config["n_fft"])
        self.hop_length = int(config["hop_length"])
        self.n_mels = int(config["n_mels"])
        self.n_mfcc = int(config["n_mfcc"])
        self.sampling_rate = sampling_rate
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"backbone_config.n_mfcc ({self.n_mfcc}) must not exceed n_mels ({self.n_mels})")

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Number of frames for clips of `lengths` samples (0 when shorter than one FFT window)."""
        return torch.div(lengths - self.n_fft, self.hop_length, rounding_mode="floor").add(1).clamp_min(0)

    def forward(self, input_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Return a 1-tuple holding frames [batch, frames, n_mels + n_mfcc] (like `hidden_states`)."""
        # Filterbank and DCT are rebuilt each call (microseconds): no buffers to keep in step on load.
        window = torch.hann_window(self.n_fft, device=input_values.device)
        spec = torch.stft(
            input_values, self.n_fft, self.hop_length, window=window, center=False, return_complex=True
        ).abs().pow(2)
        fbank = AF.melscale_fbanks(self.n_fft // 2 + 1, 0.0, self.sampling_rate / 2, self.n_mels, self.sampling_rate)
        mel = torch.matmul(spec.transpose(1, 2), fbank.to(spec.device))
        log_mel = 10.0 * torch.log10(mel.clamp_min(1e-10))
        dct = AF.create_dct(self.n_mfcc, self.n_mels, norm="ortho").to(spec.device)
        mfcc = torch.matmul(log_mel, dct)
        return (torch.cat([log_mel, mfcc], dim=-1),)
