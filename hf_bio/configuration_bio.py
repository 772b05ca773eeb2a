"""Configuration of `BioClassifierModel`: a frozen SSL backbone, pooled hidden states, a small MLP head.

This file and `modeling_bio.py` travel together to the Hub as remote code, so they import nothing else
from hf_bio.
"""

from __future__ import annotations

from typing import Any

try:  # transformers >= 5 renamed the base class
    from transformers import PreTrainedConfig
except ImportError:  # pragma: no cover - transformers 4.x
    from transformers import PretrainedConfig as PreTrainedConfig

BACKBONE_FAMILIES = ("hubert", "wav2vec2", "wavlm", "handcrafted")
_BACKBONE_BOOKKEEPING = ("architectures", "transformers_version", "_name_or_path", "auto_map")
POOLINGS = ("mean_std", "mean")
# The receptive field of the base architecture's conv encoder (kernel 10, stride 5, then six kernel-3/2
# layers): the shortest input that yields one frame. The paper's code uses 5,000.
DEFAULT_MIN_INPUT_SAMPLES = 400
PAPER_MIN_INPUT_SAMPLES = 5000

# The handcrafted baseline's extractor settings (25 ms windows, 10 ms hop at 16 kHz).
HANDCRAFTED_DEFAULTS: dict[str, Any] = {"model_type": "handcrafted", "n_fft": 400, "hop_length": 160, "n_mels": 64, "n_mfcc": 20}


class BioClassifierConfig(PreTrainedConfig):
    r"""Configuration of a bioacoustic call classifier: frozen backbone -> pooled hidden states -> MLP head.

    Args:
        backbone_config (`dict`, *optional*):
            The backbone's own config as a dict (`HubertConfig(...).to_dict()` and the like, for the
            `hubert`, `wav2vec2` and `wavlm` families), or `{"model_type": "handcrafted", ...}` for the
            log-mel/MFCC baseline (keys `n_fft`, `hop_length`, `n_mels`, `n_mfcc`). Defaults to the
            handcrafted baseline, which has no weights.
        backbone_name (`str`, *optional*):
            Registry name or Hub id the backbone came from; informational (model cards, reports).
        layer_selection (`int`, `list[int]` or `"weighted"`, *optional*, defaults to 0):
            Which pooled hidden state(s) feed the head: one index in `0 .. num_hidden_states - 1`, a list of
            indices (fusion by concatenation), or `"weighted"` for a learnable softmax-weighted sum of all.
        pooling (`str`, *optional*, defaults to `"mean_std"`):
            `"mean_std"`: mean and standard deviation over valid frames, concatenated (the paper);
            `"mean"`: mean only.
        head_hidden_sizes (`list[int]`, *optional*, defaults to `[128, 64, 32]`):
            Widths of the head's [Linear, LayerNorm, ReLU] blocks, before the final Linear.
        max_window_seconds (`float`, *optional*, defaults to 10.0):
            Audio longer than this is run through the backbone in windows of at most this length, and pooled
            over the frames of all windows, so memory does not grow with clip length: any clip costs about
            what a 10 s clip costs (`bench/bench_memory.py`). Most calls are far shorter (Watkins' median
            clip is 1.7 s), so the default changes nothing for them.
        min_input_samples (`int`, *optional*, defaults to 400):
            Shorter clips are repeated end to end up to this many samples before the backbone sees them. 400
            samples (25 ms) is the shortest input the base architecture's convolutional encoder turns into one
            frame, so by default every longer clip is encoded at its true length. The paper's code repeats
            short clips up to 5,000 samples (0.31 s); set 5000 to reproduce that. On InfantMarmosetsVox
            (median call 127 ms) it more than doubles the backbone's work (`bench/bench_extract.py`).
        peak_normalize (`bool`, *optional*, defaults to `True`):
            Divide each clip by its largest absolute sample (a silent clip stays silent).
        sampling_rate (`int`, *optional*, defaults to 16000):
            The rate, in Hz, the backbone expects.
        id2label / label2id (`dict`, *optional*):
            Class names; keys of `id2label` are ints.
    """

    model_type = "hf_bio"

    def __init__(
        self,
        backbone_config: dict[str, Any] | None = None,
        backbone_name: str | None = None,
        layer_selection: int | list[int] | str = 0,
        pooling: str = "mean_std",
        head_hidden_sizes: list[int] | tuple[int, ...] = (128, 64, 32),
        max_window_seconds: float = 10.0,
        min_input_samples: int = DEFAULT_MIN_INPUT_SAMPLES,
        peak_normalize: bool = True,
        sampling_rate: int = 16000,
        **kwargs: Any,
    ) -> None:
        if backbone_config is None:
            backbone_config = dict(HANDCRAFTED_DEFAULTS)
        elif hasattr(backbone_config, "to_dict"):
            backbone_config = backbone_config.to_dict()
        if not isinstance(backbone_config, dict) or backbone_config.get("model_type") not in BACKBONE_FAMILIES:
            found = backbone_config.get("model_type") if isinstance(backbone_config, dict) else backbone_config
            raise ValueError(
                f"backbone_config must be a dict whose model_type is one of {BACKBONE_FAMILIES}, got {found!r}"
            )
        if backbone_config["model_type"] == "handcrafted":
            backbone_config = {**HANDCRAFTED_DEFAULTS, **backbone_config}
        # Bookkeeping of the checkpoint the backbone came from, not architecture: keep config.json stable.
        backbone_config = {k: v for k, v in backbone_config.items() if k not in _BACKBONE_BOOKKEEPING}
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        head_hidden_sizes = list(head_hidden_sizes)
        if not all(isinstance(size, int) and size > 0 for size in head_hidden_sizes):
            raise ValueError(f"head_hidden_sizes must be positive ints, got {head_hidden_sizes!r}")
        if not max_window_seconds > 0:
            raise ValueError(f"max_window_seconds must be > 0, got {max_window_seconds!r}")
        if min_input_samples < 0:
            raise ValueError(f"min_input_samples must be >= 0, got {min_input_samples!r}")
        if sampling_rate <= 0:
            raise ValueError(f"sampling_rate must be a positive number of Hz, got {sampling_rate!r}")

        self.backbone_config = backbone_config
        self.backbone_name = backbone_name
        self.layer_selection = list(layer_selection) if isinstance(layer_selection, tuple) else layer_selection
        self.pooling = pooling
        self.head_hidden_sizes = head_hidden_sizes
        self.max_window_seconds = float(max_window_seconds)
        self.min_input_samples = int(min_input_samples)
        self.peak_normalize = bool(peak_normalize)
        self.sampling_rate = int(sampling_rate)
        super().__init__(**kwargs)
        if self.id2label is not None:
            # JSON turns int keys into strings; the ecosystem expects ints.
            self.id2label = {int(i): name for i, name in self.id2label.items()}
            self.label2id = {name: i for i, name in self.id2label.items()}
        self._check_layer_selection()

    @property
    def num_hidden_states(self) -> int:
        """How many hidden states the backbone yields: 1 + transformer layers (1 for the handcrafted)."""
        if self.backbone_config["model_type"] == "handcrafted":
            return 1
        return int(self.backbone_config.get("num_hidden_layers", 12)) + 1

    @property
    def backbone_hidden_size(self) -> int:
        """Width of one frame of every hidden state."""
        backbone = self.backbone_config
        if backbone["model_type"] == "handcrafted":
            return int(backbone["n_mels"]) + int(backbone["n_mfcc"])
        return int(backbone.get("hidden_size", 768))

    def _check_layer_selection(self) -> None:
        selection, count = self.layer_selection, self.num_hidden_states
        if selection == "weighted":
            return
        indices = selection if isinstance(selection, list) else [selection]
        if (
            not indices
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in indices)
            or not all(0 <= i < count for i in indices)
        ):
            raise ValueError(
                f"layer_selection must be an int in 0..{count - 1}, a non-empty list of such ints, or 'weighted'; "
                f"got {selection!r} (this backbone has {count} hidden states)"
            )
