"""Pooled per-layer features of one dataset split: the cache that the layer-wise heads train from.

A `FeatureSet` is what feature extraction writes and `hf_bio.train` reads: for N clips, every hidden
state (L of them) pooled to D numbers. On disk it is a folder with `features.safetensors` (tensors
`features` [N, L, D] float32 and `labels` [N] int64) and `meta.json` (label names and `meta`).

`meta` records where the features come from, so a cache is never mixed with another one:
    backbone: {name, hub_id, revision}   dataset: {name, fingerprint}   split: "train" | ...
    pooling: "mean+std"   extraction: {sampling_rate, min_samples, window_s, ...}
`check_compatible(train, val, test)` compares exactly these fields (see COMPATIBILITY_KEYS).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hf_bio.atomic import atomic_write

FEATURES_FILE = "features.safetensors"
META_FILE = "meta.json"
FORMAT_VERSION = 1
# meta fields that must agree between the splits of one training run (the split name may differ).
COMPATIBILITY_KEYS = ("backbone", "dataset", "pooling", "extraction")


@dataclass
class FeatureSet:
    """Pooled features of one split.

    Args:
        features: float32 tensor [N, L, D]: N clips, L hidden states (layers), D pooled dims.
        labels: int64 tensor [N] of class ids into `label_names`.
        label_names: class names; id i is `label_names[i]`.
        meta: provenance (backbone, dataset fingerprint, split, pooling, extraction settings), JSON-able.
    """

    features: torch.Tensor
    labels: torch.Tensor
    label_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.features = torch.as_tensor(self.features, dtype=torch.float32)
        self.labels = torch.as_tensor(self.labels, dtype=torch.int64)
        self.label_names = [str(n) for n in self.label_names]
        self.validate()

    @property
    def split(self) -> str:
        return str(self.meta.get("split", "?"))

    @property
    def num_layers(self) -> int:
        return int(self.features.shape[1])

    @property
    def dim(self) -> int:
        return int(self.features.shape[2])

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def validate(self) -> None:
        """Raises ValueError naming the split and the bad field: shape, empty split, NaN, label range."""
        where = f"FeatureSet (split {self.split!r})"
        if self.features.ndim != 3:
            raise ValueError(f"{where}: features must be [N, L, D], got shape {tuple(self.features.shape)}")
        if self.labels.ndim != 1 or self.labels.shape[0] != self.features.shape[0]:
            raise ValueError(
                f"{where}: labels must be [N] with N = features.shape[0] = {self.features.shape[0]}, "
                f"got shape {tuple(self.labels.shape)}"
            )
        if self.features.shape[0] == 0:
            raise ValueError(f"{where}: the split is empty (0 clips); check the dataset split or the extraction filter")
        if min(self.features.shape[1:]) == 0:
            raise ValueError(f"{where}: features have an empty layer or feature axis, shape {tuple(self.features.shape)}")
        if not self.label_names or len(set(self.label_names)) != len(self.label_names):
            raise ValueError(f"{where}: label_names must be non-empty and unique, got {self.label_names}")
        bad = ~torch.isfinite(self.features)
        if bad.any():
            clip, layer, _ = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"{where}: {int(bad.sum())} non-finite feature values (NaN/inf), first in clip {clip}, layer {layer}; "
                "a silent or too-short clip gives NaN when peak-normalised: drop or fix it and re-extract"
            )
        out = (self.labels < 0) | (self.labels >= len(self.label_names))
        if out.any():
            i = int(out.nonzero()[0])
            raise ValueError(
                f"{where}: label {int(self.labels[i])} of clip {i} is outside label_names (0..{len(self.label_names) - 1})"
            )

    def save(self, directory: str | Path) -> Path:
        """Writes `features.safetensors` and `meta.json` into `directory`, each atomically (temp file + rename)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"features": self.features.contiguous(), "labels": self.labels.contiguous()}
        atomic_write(directory / FEATURES_FILE, lambda p: save_file(tensors, p))
        meta = {"format_version": FORMAT_VERSION, "label_names": self.label_names, "meta": self.meta}
        text = json.dumps(meta, indent=2, sort_keys=True)
        # meta.json goes last: a folder with meta.json is complete.
        atomic_write(directory / META_FILE, lambda p: Path(p).write_text(text, encoding="utf-8"))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> FeatureSet:
        """Reads a folder written by `save`. Raises ValueError when it is missing or incomplete."""
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / META_FILE).is_file() or not (directory / FEATURES_FILE).is_file():
            raise ValueError(
                f"{directory}: not a feature set (needs {FEATURES_FILE} and {META_FILE}); run `hf-bio extract` first"
            )
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{directory / META_FILE}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
        tensors = load_file(str(directory / FEATURES_FILE))
        return cls(tensors["features"], tensors["labels"], meta["label_names"], meta.get("meta", {}))


def check_compatible(train: FeatureSet, *others: FeatureSet) -> None:
    """Raises ValueError unless every split comes from the same backbone, dataset, pooling and label set.

    The message names the field that differs and both values, e.g. a validation cache extracted with
    another backbone, or a test split whose label set differs from the training split's.
    """
    for other in others:
        pair = f"splits {train.split!r} and {other.split!r}"
        if other.label_names != train.label_names:
            raise ValueError(
                f"{pair} have different label sets: {train.label_names} vs {other.label_names}; "
                "extract every split from the same prepared dataset"
            )
        if other.features.shape[1:] != train.features.shape[1:]:
            raise ValueError(
                f"{pair} have different feature shapes [L, D]: {tuple(train.features.shape[1:])} vs "
                f"{tuple(other.features.shape[1:])}; they come from different backbones or pooling"
            )
        for key in COMPATIBILITY_KEYS:
            a, b = train.meta.get(key), other.meta.get(key)
            if a != b:
                raise ValueError(
                    f"{pair} differ in meta[{key!r}]: {a!r} vs {b!r}; a cache from another "
                    f"{key} cannot be mixed in: re-extract the split with the same settings"
                )


def feature_stats(train: FeatureSet) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-layer z-score statistics of the training split: mean and std, each [L, D].

    The std is the population std (as numpy and sklearn's StandardScaler compute it); constant
    dimensions get std 1 so standardising them yields 0 instead of NaN.
    """
    # float64 one layer at a time: exact enough for 50k+ clips without a float64 copy of the whole cache.
    means, stds = [], []
    for layer in range(train.num_layers):
        x = train.features[:, layer].double()
        means.append(x.mean(dim=0))
        stds.append(x.std(dim=0, unbiased=False))
    mean, std = torch.stack(means), torch.stack(stds)
    # relative threshold: in float64 a constant column leaves only rounding noise (~1e-16 relative).
    std = torch.where(std > 1e-10 * mean.abs() + 1e-30, std, torch.ones_like(std))
    return mean.float(), std.float()
