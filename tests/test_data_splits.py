"""Splits: sizes, determinism, stratification and disjoint groups (no audio involved)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from hf_bio.splits import SPLIT_NAMES, grouped_split, make_splits, paper_split, stratified_split


def _check_partition(splits: dict[str, np.ndarray], n: int) -> None:
    assert list(splits) == list(SPLIT_NAMES)
    everything = np.concatenate([splits[s] for s in SPLIT_NAMES])
    assert sorted(everything.tolist()) == list(range(n)), "every item in exactly one split"


def test_paper_split_sizes_match_torch_random_split() -> None:
    import torch
    from torch.utils.data import random_split

    for n in (10, 97, 1000):
        splits = paper_split(n, seed=42)
        _check_partition(splits, n)
        reference = random_split(range(n), [0.7, 0.2, 0.1], generator=torch.Generator().manual_seed(42))
        for name, subset in zip(SPLIT_NAMES, reference, strict=True):
            assert splits[name].tolist() == sorted(subset.indices)


def test_splits_are_deterministic_and_depend_on_the_seed() -> None:
    labels = [i % 4 for i in range(200)]
    for method in ("paper", "stratified", "grouped"):
        a = make_splits(method, labels, groups=[i % 9 for i in range(200)], seed=1)
        b = make_splits(method, labels, groups=[i % 9 for i in range(200)], seed=1)
        c = make_splits(method, labels, groups=[i % 9 for i in range(200)], seed=2)
        assert all(np.array_equal(a[s], b[s]) for s in SPLIT_NAMES)
        assert any(not np.array_equal(a[s], c[s]) for s in SPLIT_NAMES)


def test_stratified_keeps_class_proportions() -> None:
    labels = ["a"] * 100 + ["b"] * 50 + ["c"] * 10 + ["d"] * 2
    splits = stratified_split(labels, seed=0)
    _check_partition(splits, len(labels))
    counts = {s: Counter(labels[i] for i in splits[s]) for s in SPLIT_NAMES}
    assert (counts["train"]["a"], counts["train"]["b"], counts["train"]["c"]) == (70, 35, 7)
    assert sum(counts[s]["d"] for s in SPLIT_NAMES) == 2 and counts["train"]["d"] >= 1
    assert (counts["validation"]["a"], counts["test"]["a"]) == (20, 10)
    assert (counts["validation"]["b"], counts["test"]["b"]) == (10, 5)
    assert (counts["validation"]["c"], counts["test"]["c"]) == (2, 1)


def test_grouped_keeps_each_group_in_one_split() -> None:
    groups = [f"caller{i % 10}" for i in range(1000)]
    splits = grouped_split(groups, seed=42)
    _check_partition(splits, 1000)
    owners = {s: {groups[i] for i in splits[s]} for s in SPLIT_NAMES}
    assert all(owners[s] for s in SPLIT_NAMES), "each split gets at least one group"
    assert not (owners["train"] & owners["validation"] or owners["train"] & owners["test"]
                or owners["validation"] & owners["test"])
    assert len(splits["train"]) > len(splits["validation"]) >= len(splits["test"])


def test_bad_split_requests_name_the_problem() -> None:
    with pytest.raises(ValueError, match="at least 3 callers"):
        grouped_split(["a", "b", "a"])
    with pytest.raises(ValueError, match="caller/individual metadata"):
        make_splits("grouped", [0, 1, 2])
    with pytest.raises(ValueError, match="split must be one of"):
        make_splits("random", [0, 1, 2])
    with pytest.raises(ValueError, match="fractions"):
        paper_split(10, fractions=(0.5, 0.5, 0.5))


def test_docstring_examples() -> None:
    import doctest

    import hf_bio.splits

    assert doctest.testmod(hf_bio.splits).failed == 0
