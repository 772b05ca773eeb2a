"""Train/validation/test splits of a prepared corpus: the paper's random split, stratified, grouped.

Every method is a pure function of the labels (and groups) and a seed, so a prepare run is
reproducible and the dataset card can state exactly how its splits were made.

>>> paper_split(10, seed=42)["train"].tolist()
[0, 1, 2, 4, 5, 6, 8]
>>> s = stratified_split(["a"] * 10 + ["b"] * 10, seed=0)
>>> [len(s[k]) for k in SPLIT_NAMES]
[14, 4, 2]
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

SPLIT_NAMES = ("train", "validation", "test")
SPLIT_METHODS = ("paper", "stratified", "grouped")
DEFAULT_FRACTIONS = (0.7, 0.2, 0.1)
DEFAULT_SEED = 42  # the paper's split seed for IMV and Abzaliev

SPLIT_DESCRIPTIONS = {
    "paper": "random 70/20/10 split of all items, not stratified, as in the paper's code "
    "(torch.randperm with a seeded generator, sizes as torch.utils.data.random_split)",
    "stratified": "seeded random split of each class separately, so every split keeps the class proportions",
    "grouped": "whole callers/individuals are assigned to one split each (no caller leakage between splits)",
}


def _check_fractions(fractions: Sequence[float]) -> None:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")


def _as_dict(parts: list[list[int]]) -> dict[str, np.ndarray]:
    return {name: np.sort(np.asarray(p, dtype=np.int64)) for name, p in zip(SPLIT_NAMES, parts, strict=True)}


def paper_split(
    num_items: int, seed: int = DEFAULT_SEED, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> dict[str, np.ndarray]:
    """Random split like `torch.utils.data.random_split(range(n), fractions, torch.Generator().manual_seed(seed))`.

    The sizes are floor(n * fraction), the remainder going one by one to the first splits, which is
    what `random_split` does with fractional lengths; the permutation is `torch.randperm`.
    """
    import torch

    _check_fractions(fractions)
    sizes = [int(np.floor(num_items * f)) for f in fractions]
    for i in range(num_items - sum(sizes)):
        sizes[i % len(sizes)] += 1
    perm = torch.randperm(num_items, generator=torch.Generator().manual_seed(seed)).tolist()
    offsets = np.cumsum([0, *sizes])
    return _as_dict([perm[offsets[i] : offsets[i + 1]] for i in range(3)])


def _counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Split n into three parts by cumulative rounding, so the parts always add up to n."""
    edges = [0, *[int(round(n * c)) for c in np.cumsum(fractions)]]
    edges[-1] = n
    return [edges[i + 1] - edges[i] for i in range(3)]


def stratified_split(
    labels: Sequence[int | str], seed: int = DEFAULT_SEED, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> dict[str, np.ndarray]:
    """Split each class separately by `fractions` (cumulative rounding), so every split keeps the class mix.

    A class with fewer than three items cannot appear in all three splits; its items go to train first.
    """
    _check_fractions(fractions)
    rng = np.random.default_rng(seed)
    by_class: dict[int | str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_class[label].append(i)
    parts: list[list[int]] = [[], [], []]
    for label in sorted(by_class, key=str):
        idx = rng.permutation(by_class[label]).tolist()
        start = 0
        for part, count in zip(parts, _counts(len(idx), fractions), strict=True):
            part.extend(idx[start : start + count])
            start += count
    return _as_dict(parts)


def grouped_split(
    groups: Sequence[int | str], seed: int = DEFAULT_SEED, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> dict[str, np.ndarray]:
    """Put every group (caller, individual) in exactly one split, with split sizes near `fractions`.

    Groups are shuffled with `seed`; the first three seed one split each, then each further group
    goes to the split furthest below its target number of items.

    Raises:
        ValueError: fewer than three groups (a grouped train/validation/test split needs three).
    """
    _check_fractions(fractions)
    by_group: dict[int | str, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        by_group[group].append(i)
    if len(by_group) < 3:
        raise ValueError(
            f"split='grouped' needs at least 3 callers/individuals, found {len(by_group)} "
            f"({sorted(map(str, by_group))}); use split='paper' or split='stratified'"
        )
    names = sorted(by_group, key=str)
    order = np.random.default_rng(seed).permutation(len(names)).tolist()
    targets = np.asarray(fractions, dtype=float) * len(groups)
    parts: list[list[int]] = [[], [], []]
    for rank, g in enumerate(order):
        members = by_group[names[g]]
        if rank < 3:
            # Largest fraction first, so a tiny corpus still gets a train split of its biggest share.
            k = int(np.argsort(-np.asarray(fractions), kind="stable")[rank])
        else:
            deficit = targets - np.asarray([len(p) for p in parts])
            k = int(np.argmax(deficit / np.maximum(targets, 1e-9)))
        parts[k].extend(members)
    return _as_dict(parts)


def make_splits(
    method: str,
    labels: Sequence[int | str],
    groups: Sequence[int | str] | None = None,
    seed: int = DEFAULT_SEED,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
) -> dict[str, np.ndarray]:
    """Dispatch to one of `SPLIT_METHODS`; returns sorted item indices per split name.

    Raises:
        ValueError: an unknown method, or `grouped` without groups.
    """
    if method == "paper":
        return paper_split(len(labels), seed, fractions)
    if method == "stratified":
        return stratified_split(labels, seed, fractions)
    if method == "grouped":
        if groups is None:
            raise ValueError(
                "split='grouped' needs caller/individual metadata, which this corpus does not have; "
                "use split='paper' or split='stratified'"
            )
        return grouped_split(groups, seed, fractions)
    raise ValueError(f"split must be one of {SPLIT_METHODS}, got {method!r}")
