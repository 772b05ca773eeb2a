"""FeatureSet save/load and the clear errors for bad caches."""

from __future__ import annotations

import json

import pytest
import torch

from hf_bio.feature_set import FeatureSet, check_compatible, feature_stats


def _meta(split: str = "train", backbone: str = "tiny-random-hubert", fingerprint: str = "abc") -> dict:
    return {
        "backbone": {"name": backbone, "hub_id": None, "revision": None},
        "dataset": {"name": "demo", "fingerprint": fingerprint},
        "split": split,
        "pooling": "mean+std",
        "extraction": {"sampling_rate": 16000},
    }


def _fs(n: int = 6, split: str = "train", **meta) -> FeatureSet:
    return FeatureSet(torch.randn(n, 3, 4), torch.arange(n) % 2, ["a", "b"], _meta(split, **meta))


def test_save_load_roundtrip(tmp_path):
    fs = _fs()
    fs.save(tmp_path / "train")
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["features.safetensors", "meta.json"]
    back = FeatureSet.load(tmp_path / "train")
    assert torch.equal(back.features, fs.features) and torch.equal(back.labels, fs.labels)
    assert back.features.dtype == torch.float32 and back.labels.dtype == torch.int64
    assert back.label_names == ["a", "b"] and back.meta == fs.meta
    assert json.loads((tmp_path / "train" / "meta.json").read_text())["format_version"] == 1


def test_load_missing_folder_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match="hf-bio extract"):
        FeatureSet.load(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("features", "labels", "names", "match"),
    [
        (torch.full((2, 3, 4), float("nan")), torch.tensor([0, 1]), ["a", "b"], "NaN.*clip 0, layer 0"),
        (torch.zeros(0, 3, 4), torch.zeros(0, dtype=torch.long), ["a", "b"], "empty"),
        (torch.zeros(2, 3, 4), torch.tensor([0, 2]), ["a", "b"], "label 2 of clip 1 is outside"),
        (torch.zeros(2, 3, 4), torch.tensor([0, -1]), ["a", "b"], "label -1"),
        (torch.zeros(2, 3, 4), torch.tensor([0, 1, 1]), ["a", "b"], "labels must be \\[N\\]"),
        (torch.zeros(2, 12), torch.tensor([0, 1]), ["a", "b"], "features must be \\[N, L, D\\]"),
        (torch.zeros(2, 3, 4), torch.tensor([0, 0]), ["a", "a"], "unique"),
    ],
)
def test_validation_errors(features, labels, names, match):
    with pytest.raises(ValueError, match=match):
        FeatureSet(features, labels, names, {"split": "train"})


def test_check_compatible_names_what_differs():
    train = _fs()
    check_compatible(train, _fs(split="validation"), _fs(split="test"))  # split names may differ
    with pytest.raises(ValueError, match="backbone.*tiny-random-hubert.*wavlm"):
        check_compatible(train, _fs(split="validation", backbone="wavlm"))
    with pytest.raises(ValueError, match="dataset"):
        check_compatible(train, _fs(split="test", fingerprint="other"))
    other_labels = FeatureSet(torch.randn(4, 3, 4), torch.tensor([0, 1, 2, 0]), ["a", "b", "c"], _meta("test"))
    with pytest.raises(ValueError, match="different label sets"):
        check_compatible(train, other_labels)
    other_shape = FeatureSet(torch.randn(4, 5, 4), torch.tensor([0, 1, 1, 0]), ["a", "b"], _meta("test"))
    with pytest.raises(ValueError, match="feature shapes"):
        check_compatible(train, other_shape)


def test_feature_stats_population_std_and_constant_columns():
    x = torch.randn(50, 2, 3, dtype=torch.float64).float()
    x[:, 1, 2] = 7.0  # a constant dimension must not give NaN after z-scoring
    mean, std = feature_stats(FeatureSet(x, torch.zeros(50, dtype=torch.long), ["a"], {}))
    assert mean.shape == std.shape == (2, 3)
    torch.testing.assert_close(std[0], x[:, 0].double().std(0, unbiased=False).float())
    assert std[1, 2] == 1.0 and mean[1, 2] == 7.0
