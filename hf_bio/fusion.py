"""Fusion: feature sets built from several layers or several backbones, trained like any other.

The paper reports a "Fusion" row without releasing its code; the closest in its code is the mean of the
13 layer vectors. hf_bio offers two documented choices, both computed from the cached pooled features:
- the mean over all hidden states of a backbone (the paper code's layer average), concatenated across the
  backbones when there are several: `concat_features(parts, ["mean"] * len(parts))`;
- the concatenation of each backbone's chosen layer (best on validation): `concat_features(parts, layers)`.
Each result is a one-"layer" `FeatureSet`, so `hf_bio.train.train_layerwise` trains it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hf_bio.feature_set import FeatureSet


def _fused_meta(base: FeatureSet, name: str, members: list[dict]) -> dict:
    meta = dict(base.meta)
    meta["backbone"] = {"name": name, "hub_id": None, "revision": None, "members": members}
    return meta


def concat_features(parts: Sequence[FeatureSet], layers: Sequence[int | str], name: str) -> FeatureSet:
    """Concatenate, clip by clip, layer `layers[i]` of `parts[i]` (or the layer mean, for `"mean"`).

    All parts must come from the same split of the same dataset, clip for clip.

    Raises:
        ValueError: no parts, not one layer per part, or parts whose data, clips or labels differ.
    """
    if not parts or len(parts) != len(layers):
        raise ValueError(f"fusion needs feature sets and one layer each, got {len(parts)} and {len(layers)}")
    first = parts[0]
    for part in parts[1:]:
        if part.meta.get("dataset") != first.meta.get("dataset") or part.split != first.split:
            raise ValueError(
                f"cannot fuse features of different data: {first.meta.get('dataset')} split {first.split} vs "
                f"{part.meta.get('dataset')} split {part.split}"
            )
        if not torch.equal(part.labels, first.labels) or part.label_names != first.label_names:
            raise ValueError("cannot fuse feature sets whose clips or labels differ; extract them from one dataset")
    columns, members = [], []
    for part, layer in zip(parts, layers, strict=True):
        columns.append(part.features.mean(dim=1) if layer == "mean" else part.features[:, int(layer)])
        members.append({"backbone": part.meta.get("backbone", {}).get("name"), "layer": layer})
    return FeatureSet(
        features=torch.cat(columns, dim=-1)[:, None, :],
        labels=first.labels,
        label_names=first.label_names,
        meta=_fused_meta(first, name, members),
    )
