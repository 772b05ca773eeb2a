"""Known-answer tests of UAR, the bootstrap interval and the paired tests (hf_bio.stats)."""

from __future__ import annotations

import doctest
import time

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

import hf_bio.stats
from hf_bio.stats import (
    accuracy,
    bootstrap_ci,
    mean_std,
    paired_bootstrap_test,
    permutation_test,
    uar,
    uar_macro,
)


def _noisy(labels: np.ndarray, correct: float, n_classes: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(rng.random(labels.size) < correct, labels, rng.integers(0, n_classes, labels.size))


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_uar_hand_computed():
    # class 0: 2/3 right, class 1: 1/1, class 2: 0/2 -> (2/3 + 1 + 0) / 3; class 3 only predicted: not counted
    labels = [0, 0, 0, 1, 2, 2]
    predictions = [0, 0, 1, 1, 3, 0]
    assert uar(labels, predictions) == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert uar(labels, predictions) == pytest.approx(balanced_accuracy_score(labels, predictions))
    assert accuracy(labels, predictions) == pytest.approx(3 / 6)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_uar_strings_and_sklearn_agreement():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 7, 500)
    predictions = _noisy(labels, 0.5, 9, seed=2)
    assert uar(labels, predictions) == pytest.approx(balanced_accuracy_score(labels, predictions))
    names = np.array([f"class_{i}" for i in range(9)])
    assert uar(names[labels], names[predictions]) == pytest.approx(uar(labels, predictions))


def test_constant_predictor_on_balanced_classes_scores_one_over_k():
    k = 5
    labels = np.repeat(np.arange(k), 20)
    assert uar(labels, np.zeros_like(labels)) == pytest.approx(1 / k)
    assert accuracy(labels, np.zeros_like(labels)) == pytest.approx(1 / k)


def test_perfect_classifier_has_interval_one_one():
    labels = np.arange(200) % 4
    assert bootstrap_ci(labels, labels) == (1.0, 1.0)


def test_interval_contains_estimate_and_narrows_with_more_clips():
    widths = []
    for n in (200, 5000):
        labels = np.arange(n) % 6
        predictions = _noisy(labels, 0.6, 6, seed=n)
        low, high = bootstrap_ci(labels, predictions, n_resamples=500)
        assert low < uar(labels, predictions) < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2  # ~ 1/sqrt(n): 25x the clips, about 1/5 the width


def test_interval_is_seeded_and_confidence_widens_it():
    labels = np.arange(300) % 3
    predictions = _noisy(labels, 0.5, 3, seed=0)
    assert bootstrap_ci(labels, predictions, seed=7) == bootstrap_ci(labels, predictions, seed=7)
    assert bootstrap_ci(labels, predictions, seed=7) != bootstrap_ci(labels, predictions, seed=8)
    low90, high90 = bootstrap_ci(labels, predictions, confidence=0.90)
    low99, high99 = bootstrap_ci(labels, predictions, confidence=0.99)
    assert low99 < low90 and high90 < high99


def test_custom_metric_matches_vectorised_path():
    labels = np.arange(120) % 4
    predictions = _noisy(labels, 0.5, 4, seed=3)
    fast = bootstrap_ci(labels, predictions, metric=uar, n_resamples=200, seed=1)
    slow = bootstrap_ci(labels, predictions, metric=balanced_accuracy_score, n_resamples=200, seed=1)
    assert fast == pytest.approx(slow)


def test_bootstrap_of_10k_clips_is_fast():
    labels = np.arange(10_000) % 11
    predictions = _noisy(labels, 0.6, 11, seed=4)
    start = time.perf_counter()
    bootstrap_ci(labels, predictions, n_resamples=1000)
    assert time.perf_counter() - start < 3.0  # ~0.3 s alone; slack for a shared 2-core machine


@pytest.mark.parametrize("test", [paired_bootstrap_test, permutation_test])
def test_identical_models_give_p_one(test):
    labels = np.arange(400) % 5
    predictions = _noisy(labels, 0.5, 5, seed=5)
    assert test(labels, predictions, predictions) == 1.0


@pytest.mark.parametrize("test", [paired_bootstrap_test, permutation_test])
def test_models_differing_on_many_clips_give_tiny_p(test):
    labels = np.arange(2000) % 5
    weak = _noisy(labels, 0.4, 5, seed=6)
    strong = _noisy(labels, 0.7, 5, seed=7)
    p = test(labels, weak, strong, n_resamples=500)
    assert p == pytest.approx(1 / 501)  # the smallest p that 500 resamples can give


@pytest.mark.parametrize("test", [paired_bootstrap_test, permutation_test])
def test_small_difference_on_few_clips_is_not_significant(test):
    labels = np.arange(60) % 3
    a = _noisy(labels, 0.6, 3, seed=8)
    b = a.copy()
    b[np.flatnonzero(a != labels)[0]] = labels[np.flatnonzero(a != labels)[0]]  # B fixes one clip
    p = test(labels, a, b, n_resamples=500, seed=0)
    assert p > 0.2
    assert p == test(labels, a, b, n_resamples=500, seed=0)  # seeded


def test_mean_std():
    assert mean_std([0.5]) == (0.5, 0.0)
    mean, std = mean_std([0.2, 0.4, 0.6])
    assert mean == pytest.approx(0.4) and std == pytest.approx(0.2)  # sample std (ddof=1)
    with pytest.raises(ValueError, match="non-empty"):
        mean_std([])
    with pytest.raises(ValueError, match="NaN"):
        mean_std([0.1, float("nan")])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="predictions has shape"):
        uar([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="preds_b has shape"):
        paired_bootstrap_test([0, 1], [0, 1], [0])
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([], [])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([0, 1], [0, 1], confidence=95)
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci([0, 1], [0, 1], metric="f1")


def test_uar_macro_counts_predicted_only_classes():
    # classes 0, 1 true; class 2 only predicted: balanced = (1/2 + 1) / 2, macro = (1/2 + 1 + 0) / 3
    labels, predictions = [0, 0, 1, 1], [0, 2, 1, 1]
    assert uar(labels, predictions) == pytest.approx(0.75)
    assert uar_macro(labels, predictions) == pytest.approx(0.5)
    rng = np.random.default_rng(9)
    y, p = rng.integers(0, 5, 300), rng.integers(0, 7, 300)
    assert bootstrap_ci(y, p, metric="uar_macro", n_resamples=100) == pytest.approx(
        bootstrap_ci(y, p, metric=uar_macro, n_resamples=100)
    )


def test_docstring_examples():
    assert doctest.testmod(hf_bio.stats).failed == 0
