"""Backbones with RANDOM weights, built from configs: for tests, the offline demo and benchmarks.

They know nothing about sound. `tiny_backbone_dir` writes a `from_pretrained` folder named
`tiny-random-<family>` (hidden size 32, 2 layers: a forward pass takes milliseconds), so everything that
takes a backbone name or folder runs offline. `base_random_backbone` builds, in memory, a randomly
initialised model of the real base size (768-d, 12 layers, ~95 M parameters) to time the pipeline at the
paper's scale. Numbers obtained with either say nothing about the pretrained backbones.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

FAMILIES = ("hubert", "wav2vec2", "wavlm")
SEED = 0
MARKER = "hf_bio_random.json"  # written last; its recipe tells a complete, current folder from a stale one

# Shared by the three families. Layerdrop and masking are off so that a forward pass is a pure function of
# the input even in training mode; dropouts only act in training mode, and the backbone is used in eval.
TINY_CONFIG: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (32, 32, 32),
    "conv_kernel": (10, 3, 3),
    "conv_stride": (5, 2, 2),
    "conv_bias": False,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "feat_extract_norm": "group",
    "do_stable_layer_norm": False,
    "layerdrop": 0.0,
    "mask_time_prob": 0.0,
    "mask_feature_prob": 0.0,
}

# The architecture of hubert-base-ls960 / wav2vec2-base / wavlm-base / AVES-bio (all the paper's backbones).
BASE_CONFIG: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "conv_dim": (512,) * 7,
    "conv_kernel": (10, 3, 3, 3, 3, 2, 2),
    "conv_stride": (5, 2, 2, 2, 2, 2, 2),
    "conv_bias": False,
    "num_conv_pos_embeddings": 128,
    "num_conv_pos_embedding_groups": 16,
    "feat_extract_norm": "group",
    "do_stable_layer_norm": False,
    "layerdrop": 0.0,
    "mask_time_prob": 0.0,
    "mask_feature_prob": 0.0,
}


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"family {family!r} has no random backbone; use one of {', '.join(FAMILIES)}")


def default_root() -> Path:
    """`$HF_BIO_CACHE/tiny`, or `~/.cache/hf_bio/tiny` when HF_BIO_CACHE is unset."""
    cache = os.environ.get("HF_BIO_CACHE")
    return (Path(cache) if cache else Path.home() / ".cache" / "hf_bio") / "tiny"


def _build(family: str, settings: dict[str, Any], seed: int):
    import torch
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2Model, WavLMConfig, WavLMModel

    config_class, model_class = {
        "hubert": (HubertConfig, HubertModel),
        "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
        "wavlm": (WavLMConfig, WavLMModel),
    }[family]
    config = config_class(architectures=[model_class.__name__], **settings)
    # fork_rng: seeding must not disturb the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config)
    return model.eval()


def _feature_extractor():
    from transformers import Wav2Vec2FeatureExtractor

    return Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=False, return_attention_mask=True
    )


def _recipe(family: str) -> dict[str, Any]:
    return {
        "name": f"tiny-random-{family}",
        "family": family,
        "seed": SEED,
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in TINY_CONFIG.items()},
        "weights": "RANDOM (seeded initialisation, never trained)",
    }


def tiny_backbone_dir(family: str, root: str | Path | None = None) -> Path:
    """Create (once) and return the folder `root/tiny-random-<family>` holding a tiny RANDOM backbone.

    The folder loads with `AutoModel.from_pretrained` and `AutoFeatureExtractor.from_pretrained`
    (16 kHz, no normalisation, attention masks). Weights are seeded, so every machine with the same
    torch/transformers builds the same model. A second call returns the existing folder untouched; a folder
    left by an older recipe is rebuilt. The folder appears atomically (built beside it, then renamed), so
    concurrent callers never see a half-written one.

    Args:
        family: `hubert`, `wav2vec2` or `wavlm`.
        root: where to create it; default `$HF_BIO_CACHE/tiny` or `~/.cache/hf_bio/tiny`.

    Raises:
        ValueError: unknown family.
    """
    _check_family(family)
    root = Path(root) if root is not None else default_root()
    target = root / f"tiny-random-{family}"
    recipe = _recipe(family)
    if _is_current(target, recipe):
        return target

    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=root))
    try:
        _build(family, TINY_CONFIG, SEED).save_pretrained(tmp)
        _feature_extractor().save_pretrained(tmp)
        (tmp / "README.md").write_text(
            f"# {target.name}\n\nRANDOM weights (seed {SEED}), never trained: a {family} backbone of hidden size "
            f"{TINY_CONFIG['hidden_size']} and {TINY_CONFIG['num_hidden_layers']} layers, built by "
            "`hf_bio.tiny.tiny_backbone_dir` for tests and offline demos. Its features carry no knowledge "
            "of sound.\n"
        )
        (tmp / MARKER).write_text(json.dumps(recipe, indent=2) + "\n")
        if target.exists():
            if _is_current(target, recipe):  # another process finished first
                return target
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=root))
            os.replace(target, stale / "x")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            # Lost a race: the winner's folder is just as good, as long as it is complete.
            if not _is_current(target, recipe):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _is_current(folder: Path, recipe: dict[str, Any]) -> bool:
    try:
        return json.loads((folder / MARKER).read_text()) == recipe
    except (OSError, json.JSONDecodeError):
        return False


def base_random_backbone(family: str, seed: int = SEED):
    """A base-sized (768-d, 12 layers, ~95 M parameters) RANDOM backbone, in memory and in eval mode.

    Same architecture as the paper's backbones, for timing and memory benchmarks only: its weights are a
    seeded random initialisation, not pretrained ones.

    Raises:
        ValueError: unknown family.
    """
    _check_family(family)
    return _build(family, BASE_CONFIG, seed)
