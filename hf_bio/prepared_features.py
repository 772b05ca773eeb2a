"""Features of a prepared dataset folder: its splits through one backbone, via the extraction cache.

`extract_prepared(dataset_dir, backbone)` is what `hf-bio extract`, `hf-bio train --dataset` and the
benchmark call: it loads the folder written by `hf-bio prepare`, checks that the splits share one label
set, and returns a `FeatureSet` per split from `hf_bio.features.extract_features`. When every split is
already cached it finds them from the backbone's config alone, so no weights are loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_bio.features import (
    DEFAULT_BATCH_MAX_SECONDS,
    DEFAULT_SHARD_SIZE,
    FEATURES_DIR,
    SPLITS,
    cache_key,
    check_dataset,
    check_same_labels,
    extract_features,
    label_names_of,
    load_finished,
)

if TYPE_CHECKING:
    import argparse

    import datasets

    from hf_bio.feature_set import FeatureSet
    from hf_bio.modeling_bio import BioClassifierModel


def dataset_fingerprint(dataset_dict: datasets.DatasetDict) -> str:
    """One fingerprint for a prepared dataset: a hash of its splits' fingerprints."""
    text = json.dumps({name: ds._fingerprint for name, ds in sorted(dataset_dict.items())}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def extract_splits(
    dataset_dict: datasets.DatasetDict,
    model: BioClassifierModel,
    cache_dir: str | os.PathLike,
    *,
    backbone_id: str,
    revision: str | None,
    splits: Sequence[str] = SPLITS,
    dataset_name: str | None = None,
    **kwargs: Any,
) -> dict[str, FeatureSet]:
    """`extract_features` for several splits of one prepared dataset, after checking they share a label set.

    Keyword arguments go to `extract_features` (batch_max_seconds, shard_size, accelerator, ...).
    """
    missing = [s for s in splits if s not in dataset_dict]
    if missing:
        raise ValueError(f"the dataset has no split(s) {missing} (it has {list(dataset_dict)}); prepare all three")
    check_same_labels({s: check_dataset(dataset_dict[s], model, s) for s in splits})
    fingerprint = dataset_fingerprint(dataset_dict)
    return {
        s: extract_features(dataset_dict[s], model, cache_dir, split=s, backbone_id=backbone_id, revision=revision,
                            dataset_name=dataset_name, dataset_fingerprint=fingerprint, **kwargs)
        for s in splits
    }


def extraction_model(
    backbone: str, label_names: Sequence[str], revision: str | None = None, **config_overrides: Any
) -> tuple[BioClassifierModel, str, str]:
    """Load `backbone` (registry name, Hub id or folder) into a `BioClassifierModel` for extraction.

    Returns (model, backbone_id, backbone_name): the id/path the weights came from and the registry name.
    """
    from hf_bio.backbones import resolve_backbone
    from hf_bio.modeling_bio import BioClassifierModel

    spec = resolve_backbone(backbone)
    model = BioClassifierModel.from_backbone(
        backbone, id2label=dict(enumerate(label_names)), revision=revision, **config_overrides
    )
    return model.eval(), str(spec.hub_id or spec.name), spec.name


def extraction_config(
    backbone: str, label_names: Sequence[str], revision: str | None = None, **config_overrides: Any
) -> tuple[Any, str, str]:
    """The config `extraction_model` would build, read from the backbone's config.json alone (no weights).

    Enough to compute cache keys, so a fully cached dataset never loads the backbone. Returns
    (BioClassifierConfig, backbone_id, backbone_name).
    """
    from transformers import AutoConfig

    from hf_bio.backbones import resolve_backbone
    from hf_bio.configuration_bio import BioClassifierConfig

    spec = resolve_backbone(backbone)
    id2label = dict(enumerate(label_names))
    if spec.family == "handcrafted":
        config = BioClassifierConfig(backbone_name=backbone, id2label=id2label, **config_overrides)
    else:
        if spec.hub_id is None:
            raise ValueError(f"backbone {spec.name!r} has no weights to read a config from")
        backbone_config = AutoConfig.from_pretrained(spec.hub_id, revision=revision).to_dict()
        config = BioClassifierConfig(backbone_config=backbone_config, backbone_name=spec.name, id2label=id2label,
                                     **config_overrides)
    return config, str(spec.hub_id or spec.name), spec.name


class _ConfigOnly:
    """Stands in for a model where only its config is read (cache keys, input checks)."""

    def __init__(self, config: Any) -> None:
        self.config = config


def prepared_dataset_meta(dataset_dir: str | os.PathLike, dataset_dict: datasets.DatasetDict) -> dict[str, Any]:
    """`meta["dataset"]` of a prepared folder: corpus name, one fingerprint of all splits, split method."""
    from hf_bio.data import prepared_summary

    try:
        params = prepared_summary(dataset_dir).get("params", {})
    except (ValueError, OSError):
        params = {}
    split_method = params.get("split")
    if split_method is not None and params.get("seed") is not None:
        split_method = f"{split_method} (seed {params['seed']})"
    return {
        "name": params.get("corpus") or Path(dataset_dir).name,
        "fingerprint": dataset_fingerprint(dataset_dict),
        "split_method": split_method,
    }


def _cached_splits(dataset_dict, backbone, label_names, cache_dir, splits, revision, overrides):
    """Every requested split from a finished cache, or None (then the backbone must run)."""
    try:
        config, backbone_id, _ = extraction_config(backbone, label_names, revision=revision, **overrides)
    except Exception:  # offline Hub id, odd folder...: the full path gives the clear error
        return None
    stand_in = _ConfigOnly(config)
    names = {s: check_dataset(dataset_dict[s], stand_in, s) for s in splits}
    check_same_labels(names)
    out = {}
    for split in splits:
        key = cache_key(dataset_dict[split], stand_in, split=split, backbone_id=backbone_id, revision=revision)
        finished = load_finished(Path(cache_dir) / key, key)
        if finished is None:
            return None
        out[split] = finished
    return out


def default_cache_dir() -> Path:
    """`$HF_BIO_CACHE/features`, or `~/.cache/hf_bio/features` when HF_BIO_CACHE is unset."""
    root = os.environ.get("HF_BIO_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "hf_bio") / "features"


def extract_prepared(
    dataset_dir: str | os.PathLike,
    backbone: str,
    *,
    splits: Sequence[str] = SPLITS,
    cache_dir: str | os.PathLike | None = None,
    revision: str | None = None,
    max_window_seconds: float | None = None,
    min_input_samples: int | None = None,
    **kwargs: Any,
) -> dict[str, FeatureSet]:
    """Extract (or load from the cache) the pooled features of a prepared dataset folder's splits.

    Args:
        dataset_dir: a folder written by `hf-bio prepare` (`hf_bio.data.load_prepared`).
        backbone: registry name, Hub id or local folder (`hf-bio backbones`).
        splits: which splits; all must share one label set.
        cache_dir: cache root; default `default_cache_dir()`. Each split's folder is
            `cache_dir/<meta["cache_key"]>/features`.
        revision: the backbone's Hub revision.
        max_window_seconds: window length for long clips (the model's default when None).
        min_input_samples: repeat shorter clips up to this many samples (the model's default, 400, when None;
            the paper's code used 5000).
        **kwargs: passed to `extract_features` (batch_max_seconds, shard_size, accelerator, progress, ...).

    A dataset whose splits are all cached is served from the backbone's config alone: no weights load.
    `meta["dataset"]` is `prepared_dataset_meta(...)`: {name (the corpus), fingerprint, split_method}.
    """
    from hf_bio.data import load_prepared

    dataset_dict = load_prepared(dataset_dir)
    train_names = label_names_of(dataset_dict[splits[0]], splits[0]) if splits and splits[0] in dataset_dict else []
    given = {"max_window_seconds": max_window_seconds, "min_input_samples": min_input_samples}
    overrides = {name: value for name, value in given.items() if value is not None}  # None: the model's default
    cache_dir = cache_dir or default_cache_dir()
    missing = [s for s in splits if s not in dataset_dict]
    if missing:
        raise ValueError(f"{dataset_dir} has no split(s) {missing} (it has {list(dataset_dict)})")
    out = _cached_splits(dataset_dict, backbone, train_names, cache_dir, splits, revision, overrides)
    if out is None:
        model, backbone_id, backbone_name = extraction_model(backbone, train_names, revision=revision, **overrides)
        if kwargs.get("accelerator") is not None:
            model.to(kwargs["accelerator"].device)
        out = extract_splits(
            dataset_dict, model, cache_dir, backbone_id=backbone_id, revision=revision,
            splits=splits, backbone_name=backbone_name, **kwargs,
        )
    meta = prepared_dataset_meta(dataset_dir, dataset_dict)  # in memory only: not part of the cache key
    for features in out.values():
        features.meta["dataset"] = dict(meta)
    return out


def add_extraction_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--max-window-seconds` and `--min-input-samples`: the extraction settings a user may change."""
    parser.add_argument("--max-window-seconds", type=float, default=None,
                        help="run longer clips in windows of this length (default: the model's, 10 s)")
    parser.add_argument("--min-input-samples", type=int, default=None,
                        help="repeat shorter clips up to this many samples (default: the model's, 400, the shortest "
                        "input the encoder turns into a frame; the paper's code used 5000)")


def feature_set_dir(cache_dir: str | os.PathLike | None, features: FeatureSet) -> Path:
    """Where a cached `FeatureSet` lives: `cache_dir/<cache_key>/features`."""
    return Path(cache_dir or default_cache_dir()) / features.meta["cache_key"] / FEATURES_DIR


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """`--dataset DIR --backbone NAME`: extract (or reuse the cached features of) the three splits, train, export.

    With `--dataset`, the `--*-features` folders are not needed (the extraction cache supplies them).
    """
    group = parser.add_argument_group("from a prepared dataset (instead of --train/--val/--test-features)")
    group.add_argument("--dataset", default=None, help="a prepared dataset folder (hf-bio prepare)")
    group.add_argument("--backbone", default=None, help="registry name (hf-bio backbones), Hub id or local folder")
    group.add_argument("--revision", default=None, help="the backbone's Hub revision")
    group.add_argument("--cache-dir", default=None, help="feature cache root (default: $HF_BIO_CACHE/features)")
    add_extraction_arguments(group)
    group.add_argument("--batch-seconds", type=float, default=DEFAULT_BATCH_MAX_SECONDS,
                       help="padded audio per extraction batch")
    group.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
                       help="clips per cache shard: the unit of resumption and of work per process")
    group.add_argument("--no-export", action="store_true", help="do not write RUN_DIR/model")
    for action in parser._actions:
        if action.dest in ("train_features", "val_features", "test_features"):
            action.required = False
