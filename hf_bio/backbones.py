"""The registry of known backbones: name -> Hub id, family, pre-training data, PT or PT+FT.

The seven backbones of Sarkar & Magimai-Doss (ICASSP 2025) are listed under short names. Any Hub id
or local folder whose `config.json` belongs to a supported family is accepted too (see `resolve_backbone`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from hf_bio.tiny import FAMILIES as _RANDOM_FAMILIES
from hf_bio.tiny import MARKER as _RANDOM_MARKER
from hf_bio.tiny import tiny_backbone_dir

# transformers `model_type` values whose hidden states we know how to pool.
SUPPORTED_FAMILIES = ("hubert", "wav2vec2", "wavlm")


@dataclass(frozen=True)
class BackboneSpec:
    """One known backbone.

    Args:
        name: short name used on the command line (`hubert`, `aves-bio`, ...).
        hub_id: where the weights live (a Hub id, or None when not on the Hub).
        family: transformers `model_type` (`hubert`, `wav2vec2`, `wavlm`) or `handcrafted`.
        pretraining: the data the backbone was pre-trained (and fine-tuned) on.
        training: `PT` (self-supervised only), `PT+FT` (then fine-tuned for ASR), `random` (RANDOM weights,
            built locally by `hf_bio.tiny`, for tests and offline demos) or `baseline` (no neural backbone).
        paper_label: the name used in the paper's table, for reports.
        how_to_get: what a user does to obtain the weights when they are not a plain Hub id.
    """

    name: str
    hub_id: str | None
    family: str
    pretraining: str
    training: str
    paper_label: str
    how_to_get: str = ""


PAPER_BACKBONES: tuple[BackboneSpec, ...] = (
    BackboneSpec(
        "aves-bio",
        None,
        "hubert",
        "FSD50K + AudioSet + bioacoustic sounds (animal)",
        "PT",
        "AVES-bio",
        "download aves-base-bio.torchaudio.pt and its model_config.json from the earthspecies AVES "
        "release, then run `hf-bio convert-aves CHECKPOINT CONFIG_JSON OUT_DIR` and pass OUT_DIR",
    ),
    BackboneSpec("hubert", "facebook/hubert-base-ls960", "hubert", "LibriSpeech 960 h (speech)", "PT", "HuBERT"),
    BackboneSpec("wavlm", "microsoft/wavlm-base", "wavlm", "LibriSpeech 960 h (speech)", "PT", "WavLM"),
    BackboneSpec("wav2vec2", "facebook/wav2vec2-base", "wav2vec2", "LibriSpeech 960 h (speech)", "PT", "W2V2"),
    BackboneSpec(
        "wavlm-100h",
        "patrickvonplaten/wavlm-libri-clean-100h-base",
        "wavlm",
        "LibriSpeech 960 h, ASR fine-tuned on 100 h",
        "PT+FT",
        "WavLM-100h",
    ),
    BackboneSpec(
        "wav2vec2-100h",
        "facebook/wav2vec2-base-100h",
        "wav2vec2",
        "LibriSpeech 960 h, ASR fine-tuned on 100 h",
        "PT+FT",
        "W2V2-100h",
    ),
    BackboneSpec(
        "wav2vec2-960h",
        "facebook/wav2vec2-base-960h",
        "wav2vec2",
        "LibriSpeech 960 h, ASR fine-tuned on 960 h",
        "PT+FT",
        "W2V2-960h",
    ),
)

# Backbones that need no download: tiny RANDOM models (their folder is built on first resolve, so
# `hub_id` is None here and a local path once resolved) and the handcrafted features baseline.
OFFLINE_BACKBONES: tuple[BackboneSpec, ...] = tuple(
    BackboneSpec(
        f"tiny-random-{family}",
        None,
        family,
        "none: RANDOM weights, never trained (tests and offline demos only)",
        "random",
        f"tiny random {family}",
        "built on first use by hf_bio.tiny.tiny_backbone_dir under $HF_BIO_CACHE/tiny (~/.cache/hf_bio/tiny)",
    )
    for family in _RANDOM_FAMILIES
) + (
    BackboneSpec(
        "handcrafted",
        None,
        "handcrafted",
        "none: log-mel/MFCC functionals computed with torchaudio",
        "baseline",
        "Handcrafted",
        "computed inside the model, no weights to download",
    ),
)

BACKBONES: dict[str, BackboneSpec] = {spec.name: spec for spec in PAPER_BACKBONES + OFFLINE_BACKBONES}


def paper_backbone_names() -> list[str]:
    """The seven backbones compared in the paper, in the paper's table order."""
    return [spec.name for spec in PAPER_BACKBONES]


def offline_backbone_names() -> list[str]:
    """The backbones that work without a download: tiny random ones and the handcrafted baseline."""
    return [spec.name for spec in OFFLINE_BACKBONES]


def resolve_backbone(name_or_path: str) -> BackboneSpec:
    """Find the spec for a registry name, a local backbone folder or a Hub id.

    A local folder is read (its `config.json` names the family); a Hub id that is not in the registry is
    accepted as is and its family checked once the config is loaded. A `tiny-random-*` name builds its
    folder on first use (`hf_bio.tiny.tiny_backbone_dir`) and returns a spec whose `hub_id` is that folder.

    Raises:
        ValueError: the folder has no `config.json`, or its `model_type` is not a supported family.
    """
    if name_or_path in BACKBONES:
        spec = BACKBONES[name_or_path]
        if spec.training == "random":
            return replace(spec, hub_id=str(tiny_backbone_dir(spec.family)))
        return spec
    for spec in BACKBONES.values():
        if spec.hub_id == name_or_path:
            return spec
    path = Path(name_or_path)
    if path.exists():
        config_file = path / "config.json"
        if not config_file.is_file():
            raise ValueError(f"backbone folder {path} has no config.json; point at a transformers model folder")
        model_type = json.loads(config_file.read_text()).get("model_type")
        if model_type not in SUPPORTED_FAMILIES:
            raise ValueError(
                f"{config_file}: model_type {model_type!r} is not a supported backbone family "
                f"(supported: {', '.join(SUPPORTED_FAMILIES)})"
            )
        known = BACKBONES.get(path.name)
        if known is not None and known.training == "random" and (path / _RANDOM_MARKER).is_file():
            return replace(known, hub_id=str(path))  # a tiny random folder keeps its "random" label
        return BackboneSpec(path.name, str(path), model_type, "see the folder's config", "unknown", path.name)
    if "/" in name_or_path:
        return BackboneSpec(name_or_path, name_or_path, "unknown", "see the Hub model card", "unknown", name_or_path)
    raise ValueError(
        f"unknown backbone {name_or_path!r}: use one of {', '.join(BACKBONES)}, a Hub id (owner/name) "
        "or a local model folder"
    )


class BackboneLoadError(OSError):
    """A backbone's weights could not be loaded; the message says how to get a local copy."""


def _load_error(hub_id: str, error: Exception) -> BackboneLoadError:
    import os

    offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") else ""
    return BackboneLoadError(
        f"could not load backbone {hub_id!r}{offline}: it is neither a local folder nor in the Hub cache, "
        "and the Hub could not be reached. On a connected machine run "
        f"`hf download {hub_id}` (or `hf download {hub_id} --local-dir DIR` and copy DIR here), "
        "then pass the folder path instead of the name, or keep the Hub cache and set HF_HUB_OFFLINE=1. "
        f"Original error: {str(error).strip().splitlines()[0]}"
    )


def check_backbone_config(name_or_path: str, revision: str | None = None, local_only: bool = False) -> BackboneSpec:
    """Check that a backbone can be loaded here by fetching only its `config.json` (no weights).

    With `local_only`, look only at local folders and the Hub cache (instant, never retries the network).

    Raises:
        ValueError: unknown name, or a registry entry with no Hub id (e.g. `aves-bio`: convert it first).
        BackboneLoadError: the config is neither local nor cached and the Hub could not be reached.
    """
    from transformers import AutoConfig

    spec = resolve_backbone(name_or_path)
    if spec.family == "handcrafted":
        return spec
    if spec.hub_id is None:
        raise ValueError(f"backbone {spec.name!r} is not on the Hub: {spec.how_to_get or 'pass a local folder'}")
    try:
        AutoConfig.from_pretrained(spec.hub_id, revision=revision, local_files_only=local_only)
    except OSError as error:
        raise _load_error(spec.hub_id, error) from error
    return spec


def load_backbone(name_or_path: str, revision: str | None = None):
    """Load a backbone's pretrained weights: `(transformers.PreTrainedModel, BackboneSpec)`.

    `name_or_path` is a registry name, a Hub id or a local model folder (see `resolve_backbone`); the model
    is returned in eval mode. Offline (HF_HUB_OFFLINE=1) or with the Hub unreachable, a Hub id that is not
    in the local cache raises `BackboneLoadError` saying how to point at a local copy.

    Raises:
        ValueError: unknown name, a registry entry with no Hub id (e.g. `aves-bio`: convert it first), or a
            model whose family is not supported.
        BackboneLoadError: the weights could not be found or downloaded.
    """
    from transformers import AutoModel

    spec = resolve_backbone(name_or_path)
    if spec.family == "handcrafted":
        raise ValueError(f"backbone {spec.name!r} is the handcrafted baseline: it has no weights to load")
    if spec.hub_id is None:
        raise ValueError(f"backbone {spec.name!r} is not on the Hub: {spec.how_to_get or 'pass a local folder'}")
    try:
        model = AutoModel.from_pretrained(spec.hub_id, revision=revision)
    except OSError as error:
        raise _load_error(spec.hub_id, error) from error
    model_type = getattr(model.config, "model_type", None)
    if model_type not in SUPPORTED_FAMILIES:
        raise ValueError(
            f"{spec.hub_id}: model_type {model_type!r} is not a supported backbone family "
            f"(supported: {', '.join(SUPPORTED_FAMILIES)})"
        )
    if spec.family == "unknown":
        spec = BackboneSpec(spec.name, spec.hub_id, model_type, spec.pretraining, spec.training, spec.paper_label)
    return model.eval(), spec
