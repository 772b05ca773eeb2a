"""Reading audio files of any common format into float32 mono at a chosen rate.

One place decides how audio is decoded, down-mixed and resampled, so that the dataset builders, the
Space and the tests all hear the same signal.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TARGET_SAMPLING_RATE = 16_000


class AudioDecodeError(ValueError):
    """A file could not be read as audio; the message names the file and the reason."""


@dataclass
class DecodedAudio:
    """Audio as read from a file, before any conversion.

    Args:
        samples: float32 array of shape (channels, frames), values nominally in [-1, 1].
        sampling_rate: the file's own rate in Hz.
    """

    samples: np.ndarray
    sampling_rate: int

    @property
    def num_channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / self.sampling_rate


def _existing_file(path: str | Path) -> Path:
    """`path` as a Path, or AudioDecodeError when it is missing or empty (before any decoder sees it)."""
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioDecodeError(f"{path}: file is empty (0 bytes)")
    return path


def read_audio(path: str | Path, start_s: float | None = None, end_s: float | None = None) -> DecodedAudio:
    """Decode `path` (WAV/FLAC/OGG via libsndfile, MP3 and others via FFmpeg through torchcodec).

    `start_s`/`end_s` read only that segment (in seconds), so a ten-minute recording is never loaded
    whole to cut one call out of it.

    Raises:
        AudioDecodeError: missing, empty, corrupt or undecodable file, or a segment outside the file.
    """
    path = _existing_file(path)
    try:
        decoded = _read_with_soundfile(path, start_s, end_s)
    except AudioDecodeError:
        raise
    except Exception as sf_error:  # libsndfile cannot read MP3 on older builds, nor many containers
        try:
            decoded = _read_with_torchcodec(path, start_s, end_s)
        except AudioDecodeError:
            raise
        except Exception as codec_error:
            raise AudioDecodeError(
                f"{path}: cannot decode audio (libsndfile: {sf_error}; FFmpeg: {codec_error})"
            ) from codec_error
    if decoded.samples.shape[1] == 0:
        raise AudioDecodeError(f"{path}: contains no audio samples")
    return decoded


@dataclass
class AudioInfo:
    """What a file's header says, read without decoding the samples."""

    sampling_rate: int
    num_frames: int
    num_channels: int

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.sampling_rate


def audio_info(path: str | Path) -> AudioInfo:
    """Read `path`'s header only (rate, length, channels): cheap enough to check a whole corpus first.

    Raises:
        AudioDecodeError: missing, empty, corrupt or undecodable file, or one with no samples.
    """
    path = _existing_file(path)
    try:
        import soundfile as sf

        header = sf.info(str(path))
        info = AudioInfo(int(header.samplerate), int(header.frames), int(header.channels))
    except Exception as sf_error:  # MP3 on older libsndfile, other containers: ask FFmpeg
        try:
            from torchcodec.decoders import AudioDecoder

            meta = AudioDecoder(str(path)).metadata
            duration = meta.duration_seconds_from_header
            if duration is None:  # no duration in the header: decode once to count the samples
                duration = read_audio(path).duration_s
            rate = int(meta.sample_rate)
            info = AudioInfo(rate, int(round(float(duration) * rate)), int(meta.num_channels))
        except AudioDecodeError:
            raise
        except Exception as codec_error:
            raise AudioDecodeError(
                f"{path}: cannot decode audio (libsndfile: {sf_error}; FFmpeg: {codec_error})"
            ) from codec_error
    if info.num_frames <= 0:
        raise AudioDecodeError(f"{path}: contains no audio samples")
    return info


def _check_segment(path: Path, start_s: float | None, end_s: float | None, total_s: float) -> None:
    start = 0.0 if start_s is None else start_s
    end = total_s if end_s is None else end_s
    # Half a millisecond of slack: label files round times to the millisecond.
    if start < 0 or end <= start or end > total_s + 5e-4:
        raise AudioDecodeError(
            f"{path}: segment {start:.3f}-{end:.3f} s lies outside the recording (0-{total_s:.3f} s)"
        )


def _read_with_soundfile(path: Path, start_s: float | None, end_s: float | None) -> DecodedAudio:
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        rate = int(f.samplerate)
        total = f.frames
        if start_s is not None or end_s is not None:
            _check_segment(path, start_s, end_s, total / rate)
        first = 0 if start_s is None else int(round(start_s * rate))
        last = total if end_s is None else min(total, int(round(end_s * rate)))
        f.seek(first)
        data = f.read(last - first, dtype="float32", always_2d=True)
    return DecodedAudio(np.ascontiguousarray(data.T), rate)


def _read_with_torchcodec(path: Path, start_s: float | None, end_s: float | None) -> DecodedAudio:
    from torchcodec.decoders import AudioDecoder

    decoder = AudioDecoder(str(path))
    rate = int(decoder.metadata.sample_rate)
    if start_s is not None or end_s is not None:
        total_s = decoder.metadata.duration_seconds_from_header
        if total_s is not None:
            _check_segment(path, start_s, end_s, float(total_s))
    samples = decoder.get_samples_played_in_range(
        start_seconds=start_s or 0.0, stop_seconds=end_s
    ).data
    return DecodedAudio(samples.numpy().astype(np.float32, copy=False), rate)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a (channels, frames) array into one float32 (frames,) array."""
    if samples.ndim == 1:
        return samples.astype(np.float32, copy=False)
    return samples.mean(axis=0).astype(np.float32, copy=False)


def resample(samples: np.ndarray, orig_rate: int, target_rate: int = TARGET_SAMPLING_RATE) -> np.ndarray:
    """Resample a mono float32 array with torchaudio's band-limited sinc interpolation."""
    if orig_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    import torch

    with torch.no_grad():
        out = _resampler(int(orig_rate), int(target_rate))(
            torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
        )
    return out.numpy()


@functools.lru_cache(maxsize=16)
def _resampler(orig_rate: int, target_rate: int) -> Any:  # a torchaudio Resample; torch is imported lazily
    """A cached `torchaudio.transforms.Resample`: building the sinc kernel costs ~100x resampling one call."""
    import torchaudio

    return torchaudio.transforms.Resample(orig_rate, target_rate)


def check_finite_and_audible(samples: np.ndarray, source: str) -> None:
    """Reject a clip that cannot be classified: NaN/inf values, or all-zero (silent) audio.

    Raises:
        AudioDecodeError: naming `source` and the reason.
    """
    if not np.all(np.isfinite(samples)):
        raise AudioDecodeError(f"{source}: contains NaN or infinite sample values")
    if not np.any(samples):
        raise AudioDecodeError(f"{source}: is silent (every sample is zero)")


def load_mono(
    path: str | Path,
    target_rate: int = TARGET_SAMPLING_RATE,
    start_s: float | None = None,
    end_s: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read `path` (or a segment of it) as float32 mono at `target_rate`; returns (samples, original rate).

    Raises:
        AudioDecodeError: unreadable, empty, silent or non-finite audio, or a segment outside the file.
    """
    decoded = read_audio(path, start_s, end_s)
    mono = to_mono(decoded.samples)
    check_finite_and_audible(mono, str(path))
    return resample(mono, decoded.sampling_rate, target_rate), decoded.sampling_rate
