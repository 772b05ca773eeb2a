"""`BioClassifierModel`: a frozen SSL backbone, every hidden state pooled over time, a small MLP head.

Read top to bottom: input checks and preprocessing (peak normalisation, repeat padding), the backbone run in
windows with a masked first group norm (so padding never changes a clip's features), pooling by running
statistics, standardisation with the training split's statistics, layer selection, the head.

This file, `configuration_bio.py` and `handcrafted.py` travel to the Hub as remote code: they import each
other relatively and nothing else from hf_bio.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_bio import BioClassifierConfig
from .handcrafted import HandcraftedExtractor

# `MaskedGroupNorm.valid_frames` is set around one backbone call; threads sharing a model (a Space serving
# requests) take turns. Module-level, so models stay picklable and deep-copyable.
_MASKED_NORM_LOCK = threading.Lock()


class MaskedGroupNorm(nn.GroupNorm):
    """`nn.GroupNorm` over each clip's valid frames only; same parameters and state-dict keys.

    The paper's backbones normalise their first conv layer's output over the whole time axis, so zero padding
    in a batch shifts every frame of a shorter clip (~54% relative error). Set `valid_frames` (one count per
    clip) before the forward pass to normalise over exactly the frames the clip would have alone.
    """

    valid_frames: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.valid_frames is None:
            return super().forward(x)
        # torch's own group norm on each clip's valid frames: the arithmetic of that clip run alone, and two
        # passes over this layer's output (the largest activation of the network) instead of a masked
        # formula's eight. Padded frames are set to 0; no valid output frame of a later layer reads them.
        out = torch.empty_like(x)
        for i, frames in enumerate(self.valid_frames.tolist()):
            out[i, :, :frames] = F.group_norm(x[i : i + 1, :, :frames], self.num_groups, self.weight, self.bias, self.eps)[0]
            out[i, :, frames:] = 0
        return out


def _masked_mean_and_m2(hidden_states: tuple[torch.Tensor, ...], frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip and hidden state, the mean and sum of squared deviations over the first `frames` frames.

    Returns two [batch, num_hidden_states, hidden] float32 tensors; padded frames never enter either.
    """
    valid = (torch.arange(hidden_states[0].shape[1], device=frames.device)[None] < frames[:, None])[:, :, None]
    means, m2s = [], []
    for hidden in hidden_states:  # one layer at a time: never a second copy of all layers
        hidden = hidden.float()
        mean = torch.where(valid, hidden, 0.0).sum(dim=1) / frames.clamp_min(1)[:, None]
        means.append(mean)
        m2s.append(torch.where(valid, hidden - mean[:, None], 0.0).pow(2).sum(dim=1))
    return torch.stack(means, dim=1), torch.stack(m2s, dim=1)


class BioHead(nn.Module):
    """The paper's probe: [Linear, LayerNorm, ReLU] per hidden size, then a Linear to the classes.

    Args:
        in_dim: width of the (standardised, layer-selected) pooled features.
        hidden_sizes: widths of the blocks, e.g. `[128, 64, 32]`.
        num_labels: number of classes.
    """

    def __init__(self, in_dim: int, hidden_sizes: list[int], num_labels: int) -> None:
        super().__init__()
        sizes = [in_dim, *hidden_sizes]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.LayerNorm(b), nn.ReLU()) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.classifier = nn.Linear(sizes[-1], num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            features = block(features)
        return self.classifier(features)


class BioClassifierPreTrainedModel(PreTrainedModel):
    config_class = BioClassifierConfig
    config: BioClassifierConfig
    base_model_prefix = "bio"
    main_input_name = "input_values"
    input_modalities = "audio"

    def _init_weights(self, module: nn.Module) -> None:
        # The backbone initialises its own modules (a PreTrainedModel inside); this covers the head.
        if isinstance(module, nn.Linear):
            module.reset_parameters()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, BioClassifierModel):
            nn.init.zeros_(module.feature_mean)
            nn.init.ones_(module.feature_std)
            if module.layer_weights is not None:
                nn.init.zeros_(module.layer_weights)


class BioClassifierModel(BioClassifierPreTrainedModel):
    """Frozen backbone -> per-layer mean(+std) pooling -> standardisation -> layer selection -> `BioHead`.

    Built from the config alone (random backbone); `from_backbone` loads pretrained backbone weights and
    `from_pretrained` a trained classifier. The backbone never trains and stays in eval mode.
    """

    def __init__(self, config: BioClassifierConfig) -> None:
        super().__init__(config)
        backbone_config = dict(config.backbone_config)
        if backbone_config["model_type"] == "handcrafted":
            self.backbone = HandcraftedExtractor(backbone_config, config.sampling_rate)
        else:
            model_type = backbone_config.pop("model_type")
            self.backbone = AutoModel.from_config(AutoConfig.for_model(model_type, **backbone_config))
            first_conv = self.backbone.feature_extractor.conv_layers[0]
            if isinstance(getattr(first_conv, "layer_norm", None), nn.GroupNorm):
                norm = first_conv.layer_norm
                masked = MaskedGroupNorm(norm.num_groups, norm.num_channels, norm.eps, norm.affine)
                masked.load_state_dict(norm.state_dict())
                first_conv.layer_norm = masked
        self.backbone.requires_grad_(False)
        self.backbone.eval()

        self.num_hidden_states = config.num_hidden_states
        self.pooled_dim = config.backbone_hidden_size * (2 if config.pooling == "mean_std" else 1)
        self.register_buffer("feature_mean", torch.zeros(self.num_hidden_states, self.pooled_dim))
        self.register_buffer("feature_std", torch.ones(self.num_hidden_states, self.pooled_dim))
        selection = config.layer_selection
        self.layer_weights = nn.Parameter(torch.zeros(self.num_hidden_states)) if selection == "weighted" else None
        width = len(selection) if isinstance(selection, list) else 1
        self.head = BioHead(self.pooled_dim * width, config.head_hidden_sizes, config.num_labels)
        self.post_init()

    def train(self, mode: bool = True) -> BioClassifierModel:
        super().train(mode)
        self.backbone.eval()  # dropout and LayerDrop would make the frozen features random
        return self

    # ----- preprocessing -------------------------------------------------------------------------
    def _valid_clips(
        self, input_values: torch.Tensor, attention_mask: torch.Tensor | None, sampling_rate: int | None
    ) -> tuple[list[torch.Tensor], list[float]]:
        """Check the batch; return each clip's valid samples (repeat-padded) and the divisor that peak-normalises it.

        The division happens window by window in `pooled_hidden_states`, so a 10-minute clip is never copied whole.
        """
        expected = self.config.sampling_rate
        if sampling_rate is not None and sampling_rate != expected:
            raise ValueError(
                f"sampling_rate is {sampling_rate} Hz but this model expects {expected} Hz: resample the audio first "
                f"(e.g. datasets' cast_column('audio', Audio(sampling_rate={expected})))"
            )
        if input_values.dim() == 1:
            input_values = input_values[None]
        if input_values.dim() != 2:
            raise ValueError(f"input_values must have shape [batch, samples], got {tuple(input_values.shape)}")
        if not torch.isfinite(input_values).all():
            bad = (~torch.isfinite(input_values)).any(dim=-1).nonzero().flatten().tolist()
            raise ValueError(f"input_values contain NaN or infinite samples (batch items {bad}); clean the audio first")
        if attention_mask is None:
            lengths = [input_values.shape[1]] * input_values.shape[0]
        else:
            attention_mask = attention_mask.reshape(input_values.shape).to(torch.long)
            lengths = attention_mask.sum(dim=-1).tolist()
            positions = torch.arange(input_values.shape[1], device=attention_mask.device)
            if not torch.equal(attention_mask.bool(), positions[None] < attention_mask.sum(-1, keepdim=True)):
                raise ValueError("attention_mask must mark each clip's samples as 1 followed by padding 0 (right padding)")
        empty = [i for i, n in enumerate(lengths) if n == 0]
        if empty:
            raise ValueError(f"empty audio: batch items {empty} have zero valid samples")
        clips, divisors = [], []
        for clip, length in zip(input_values.to(torch.float32), lengths, strict=True):
            clip = clip[:length]
            peak = float(clip.abs().max()) if self.config.peak_normalize else 0.0
            divisors.append(peak if peak > 0 else 1.0)  # a silent clip stays silent, never NaN
            if length < self.config.min_input_samples:
                clip = clip.repeat(math.ceil(self.config.min_input_samples / length))[: self.config.min_input_samples]
            clips.append(clip)
        return clips, divisors

    def _windows(self, clip: torch.Tensor) -> list[torch.Tensor]:
        """Cut a clip into equal windows of at most `max_window_seconds` (no short leftover window)."""
        limit = max(1, int(self.config.max_window_seconds * self.config.sampling_rate))
        count = math.ceil(clip.shape[0] / limit)
        size = math.ceil(clip.shape[0] / count)
        return list(clip.split(size))

    # ----- backbone --------------------------------------------------------------------------------
    def _frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        if isinstance(self.backbone, HandcraftedExtractor):
            return self.backbone.frame_lengths(lengths)
        return self.backbone._get_feat_extract_output_lengths(lengths).clamp_min(0)

    @contextlib.contextmanager
    def _masked_first_norm(self, lengths: torch.Tensor) -> Iterator[None]:
        """Make the first conv layer's group norm (if any) see each clip's valid frames only."""
        first_conv = self.backbone.feature_extractor.conv_layers[0]
        norm = getattr(first_conv, "layer_norm", None)
        if not isinstance(norm, MaskedGroupNorm):
            yield
            return
        kernel, stride = first_conv.conv.kernel_size[0], first_conv.conv.stride[0]
        with _MASKED_NORM_LOCK:
            norm.valid_frames = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
            try:
                yield
            finally:
                norm.valid_frames = None

    def _hidden_states(self, values: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """All hidden states [batch, frames, hidden] of right-padded clips of `lengths` samples."""
        if isinstance(self.backbone, HandcraftedExtractor):
            return self.backbone(values)
        attention_mask = (torch.arange(values.shape[1], device=values.device)[None] < lengths[:, None]).long()
        values = values.to(self.backbone.dtype)  # a half-precision backbone takes half-precision audio
        with self._masked_first_norm(lengths):
            outputs = self.backbone(values, attention_mask=attention_mask, output_hidden_states=True, return_dict=True)
        return outputs.hidden_states

    # ----- pooling ---------------------------------------------------------------------------------
    @torch.no_grad()
    def pooled_hidden_states(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        sampling_rate: int | None = None,
    ) -> torch.Tensor:
        """Every hidden state pooled over each clip's valid frames: [batch, num_hidden_states, pooled_dim].

        Not standardised. The same for a clip alone or padded in a batch; long clips run in windows of at most
        `config.max_window_seconds` and are pooled over the frames of all windows (running sums, so memory is
        bounded by batch size x window length). `pooled_dim` = 2 x hidden (mean then std) or hidden (mean).
        """
        self.backbone.eval()
        device = self.feature_mean.device
        valid, divisors = self._valid_clips(input_values, attention_mask, sampling_rate)
        clips = [self._windows(c.to(device)) for c in valid]
        too_short = [i for i, windows in enumerate(clips) if self._frame_lengths(torch.tensor([len(windows[-1])])) < 1]
        if too_short:
            raise ValueError(
                f"batch items {too_short} are too short for the backbone to produce a single frame; "
                "raise config.min_input_samples"
            )
        shape = (len(clips), self.num_hidden_states, self.config.backbone_hidden_size)
        count = torch.zeros(len(clips), 1, 1, device=device)
        mean, m2 = torch.zeros(shape, device=device), torch.zeros(shape, device=device)
        # Round r runs the r-th window of every clip that has one, as one padded batch.
        for r in range(max(len(windows) for windows in clips)):
            rows = [i for i, windows in enumerate(clips) if len(windows) > r]
            segments = [clips[i][r] for i in rows]
            lengths = torch.tensor([len(s) for s in segments], device=device)
            frames = self._frame_lengths(lengths)
            # Peak normalisation, out of place: a segment may be a view of the caller's tensor.
            peaks = torch.tensor([divisors[i] for i in rows], device=device)[:, None]
            values = nn.utils.rnn.pad_sequence(segments, batch_first=True) / peaks
            hidden_states = self._hidden_states(values, lengths)
            seg_mean, seg_m2 = _masked_mean_and_m2(hidden_states, frames)
            # Chan et al.'s parallel update: exact mean and variance over all frames seen so far.
            n = frames.float()[:, None, None]
            total = count[rows] + n
            weight = n / total.clamp_min(1)
            delta = seg_mean - mean[rows]
            mean[rows] += delta * weight
            m2[rows] += seg_m2 + delta.pow(2) * count[rows] * weight
            count[rows] = total
        if self.config.pooling == "mean":
            return mean
        std = (m2 / count).sqrt()  # population std: a one-frame clip gives 0, not NaN
        return torch.cat([mean, std], dim=-1)

    # ----- head ------------------------------------------------------------------------------------
    def select_layers(self, standardized: torch.Tensor) -> torch.Tensor:
        """Pick the configured hidden state(s) from standardised pooled states [batch, L, D]."""
        selection = self.config.layer_selection
        if selection == "weighted":
            weights = torch.softmax(self.layer_weights, dim=0)
            return (standardized * weights[None, :, None]).sum(dim=1)
        if isinstance(selection, list):
            return standardized[:, selection].flatten(1)
        return standardized[:, selection]

    def classify_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """Logits from (unstandardised) pooled hidden states, e.g. read back from a feature cache."""
        pooled = pooled.to(self.feature_mean.dtype)
        standardized = (pooled - self.feature_mean) / self.feature_std
        return self.head(self.select_layers(standardized))

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        sampling_rate: int | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput:
        """Classify a batch of 16 kHz mono clips [batch, samples]; cross-entropy loss when `labels` are given."""
        logits = self.classify_pooled(self.pooled_hidden_states(input_values, attention_mask, sampling_rate))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits, labels.to(logits.device).long())
        return SequenceClassifierOutput(loss=loss, logits=logits)

    # ----- loading and saving ----------------------------------------------------------------------
    @classmethod
    def from_backbone(
        cls,
        name_or_path: str,
        id2label: dict[int, str] | list[str] | None = None,
        layer_selection: int | list[int] | str = 0,
        revision: str | None = None,
        *,
        layer: int | list[int] | str | None = None,
        **config_overrides: Any,
    ) -> BioClassifierModel:
        """Build a classifier around a pretrained backbone (registry name, Hub id or local folder).

        The only place pretrained weights load. `"handcrafted"` needs no weights. The head is random until
        trained. `layer` is an alias of `layer_selection`. Remaining keyword arguments go to
        `BioClassifierConfig` (pooling, head_hidden_sizes, max_window_seconds, num_labels, ...).
        """
        if layer is not None:
            if layer_selection not in (0, layer):
                raise ValueError(f"pass layer ({layer!r}) or layer_selection ({layer_selection!r}), not both")
            layer_selection = layer
        if isinstance(id2label, list):
            id2label = dict(enumerate(id2label))
        # Imported by name so the remote-code copy of this file does not require hf_bio (from_backbone is
        # a hf_bio tool; a model loaded with trust_remote_code needs only from_pretrained).
        backbones = importlib.import_module("hf_bio.backbones")
        registered = backbones.BACKBONES.get(name_or_path)
        if name_or_path == "handcrafted" or (registered is not None and registered.family == "handcrafted"):
            config = BioClassifierConfig(
                backbone_config=config_overrides.pop("backbone_config", None), backbone_name=name_or_path,
                id2label=id2label, layer_selection=layer_selection, **config_overrides,
            )
            return cls(config)
        load_backbone = backbones.load_backbone
        backbone, spec = load_backbone(name_or_path, revision=revision)
        config = BioClassifierConfig(
            backbone_config=backbone.config.to_dict(), backbone_name=spec.name,
            id2label=id2label, layer_selection=layer_selection, **config_overrides,
        )
        model = cls(config)
        model.backbone.load_state_dict(backbone.state_dict())
        model.backbone.eval()
        return model


def save_pretrained_with_extractor(model: BioClassifierModel, output_dir: str | os.PathLike) -> Path:
    """Save `model` and a matching `Wav2Vec2FeatureExtractor` into `output_dir`, atomically.

    The folder then loads with `AutoModelForAudioClassification.from_pretrained`, `pipeline(...)` and,
    without hf_bio, `trust_remote_code=True`. Written to a temporary sibling first, then swapped in.
    """
    from transformers import Wav2Vec2FeatureExtractor

    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        model.save_pretrained(staging)
        extractor = Wav2Vec2FeatureExtractor(
            sampling_rate=model.config.sampling_rate, do_normalize=False, return_attention_mask=True
        )
        extractor.save_pretrained(staging)
        old = None
        if output_dir.exists():
            old = output_dir.with_name(f".{output_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(output_dir, old)
        os.replace(staging, output_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


AutoConfig.register(BioClassifierConfig.model_type, BioClassifierConfig, exist_ok=True)
AutoModelForAudioClassification.register(BioClassifierConfig, BioClassifierModel, exist_ok=True)
BioClassifierConfig.register_for_auto_class()
BioClassifierModel.register_for_auto_class("AutoModelForAudioClassification")
