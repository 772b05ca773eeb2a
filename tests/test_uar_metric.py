"""The UAR arithmetic (hf_bio.uar) and the evaluate module in metrics/uar/ against scikit-learn."""

from __future__ import annotations

import doctest
import inspect
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, recall_score

import hf_bio.uar
from hf_bio.uar import confusion_matrix, per_class_recall, uar_from_confusion, uar_score

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def uar_metric():
    evaluate = pytest.importorskip("evaluate")
    return evaluate.load(str(ROOT / "metrics" / "uar"))


def _sk_macro(refs, preds) -> float:
    with warnings.catch_warnings():  # sklearn warns about the 0/0 recall of predicted-only classes
        warnings.simplefilter("ignore")
        return recall_score(refs, preds, average="macro", zero_division=0)


def _cases(n_cases: int = 60):
    rng = np.random.default_rng(0)
    for i in range(n_cases):
        c = int(rng.integers(2, 12))
        n = int(rng.integers(1, 60))
        refs = rng.integers(0, c, n)
        # some cases predict classes absent from the references, some miss reference classes
        preds = refs.copy() if i % 5 == 0 else rng.integers(0, c + (i % 3), n)
        yield refs, preds


def test_balanced_equals_sklearn_balanced_accuracy():
    for refs, preds in _cases():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true"
            expected = balanced_accuracy_score(refs, preds)
        assert uar_score(refs, preds) == pytest.approx(expected, abs=1e-12)
        # and equals recall_score restricted to the reference classes
        assert uar_score(refs, preds) == pytest.approx(
            recall_score(refs, preds, labels=np.unique(refs), average="macro", zero_division=0), abs=1e-12
        )


def test_macro_equals_sklearn_macro_recall_over_union():
    for refs, preds in _cases():
        assert uar_score(refs, preds, average="macro") == pytest.approx(_sk_macro(refs, preds), abs=1e-12)
        assert uar_score(refs, preds, average="macro") <= uar_score(refs, preds) + 1e-12


def test_missing_and_extra_classes():
    # class 1 is never predicted: recall 0 in both averages
    assert uar_score([0, 1, 2], [0, 0, 2]) == pytest.approx(2 / 3)
    # class 3 is predicted but never true: ignored by "balanced", counted as 0 by "macro"
    assert uar_score([0, 1], [0, 3]) == pytest.approx(0.5)
    assert uar_score([0, 1], [0, 3], average="macro") == pytest.approx(1 / 3)
    # a class absent from both (id 1 here) never counts
    assert uar_score([0, 2], [0, 2], average="macro") == 1.0


def test_one_class_inputs():
    assert uar_score([3, 3, 3], [3, 3, 3]) == 1.0
    assert uar_score([3, 3, 3], [3, 1, 3]) == pytest.approx(2 / 3)
    assert uar_score([3, 3, 3], [3, 1, 3], average="macro") == pytest.approx(_sk_macro([3, 3, 3], [3, 1, 3]))
    assert uar_score([0], [1]) == 0.0


def test_confusion_and_per_class():
    cm = confusion_matrix([0, 0, 1, 2], [0, 1, 1, 1], num_classes=4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    recall = per_class_recall(cm)
    assert recall[:3].tolist() == [0.5, 1.0, 0.0] and np.isnan(recall[3])
    assert uar_from_confusion(cm) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("refs", "preds", "kwargs", "match"),
    [
        ([0, 1], [0], {}, "same length"),
        ([], [], {}, "empty"),
        ([0, -1], [0, 1], {}, ">= 0"),
        ([0, 5], [0, 1], {"num_classes": 3}, "num_classes=3"),
    ],
)
def test_bad_input(refs, preds, kwargs, match):
    with pytest.raises(ValueError, match=match):
        confusion_matrix(refs, preds, **kwargs)
    with pytest.raises(ValueError, match="average must be"):
        uar_score([0], [0], average="weighted")


def test_arithmetic_doctests():
    result = doctest.testmod(hf_bio.uar)
    assert result.attempted >= 3 and result.failed == 0


def test_metric_dir_uses_the_same_file():
    """metrics/uar/uar_math.py is a link to hf_bio/uar.py: one implementation, no twin to drift."""
    link = ROOT / "metrics" / "uar" / "uar_math.py"
    assert link.resolve() == (ROOT / "hf_bio" / "uar.py").resolve()


def test_evaluate_module_matches_sklearn(uar_metric):
    for refs, preds in list(_cases(15)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = balanced_accuracy_score(refs, preds)
        assert uar_metric.compute(references=refs, predictions=preds)["uar"] == pytest.approx(expected, abs=1e-12)
        got = uar_metric.compute(references=refs, predictions=preds, average="macro")["uar"]
        assert got == pytest.approx(_sk_macro(refs, preds), abs=1e-12)


def test_evaluate_module_options(uar_metric):
    out = uar_metric.compute(references=[0, 1, 1], predictions=[0, 1, 0], num_classes=3, return_per_class=True, return_confusion_matrix=True)
    assert out == {"uar": 0.75, "per_class_recall": [1.0, 0.5, None], "confusion_matrix": [[1, 0, 0], [1, 1, 0], [0, 0, 0]]}
    uar_metric.add_batch(references=[0, 1], predictions=[0, 0])
    uar_metric.add_batch(references=[1], predictions=[1])
    assert uar_metric.compute() == {"uar": 0.75}
    with pytest.raises(ValueError, match="num_classes=2"):
        uar_metric.compute(references=[0, 2], predictions=[0, 0], num_classes=2)


def test_evaluate_module_doctests(uar_metric, monkeypatch):
    """The card's examples (`_KWARGS_DESCRIPTION`) run as written, from the repository root."""
    monkeypatch.chdir(ROOT)
    source = inspect.getmodule(type(uar_metric))
    test = doctest.DocTestParser().get_doctest(source._KWARGS_DESCRIPTION, {}, "uar._KWARGS_DESCRIPTION", None, 0)
    runner = doctest.DocTestRunner()
    runner.run(test)
    assert runner.summarize(verbose=False).attempted >= 5
    assert runner.summarize(verbose=False).failed == 0
    assert os.path.isfile(ROOT / "metrics" / "uar" / "README.md")


@pytest.mark.slow
def test_space_app_builds_and_computes():
    """metrics/uar/app.py builds its gradio 6 interface (not launched) and its callback scores a table."""
    pytest.importorskip("gradio")
    import runpy

    import pandas as pd

    ns = runpy.run_path(str(ROOT / "metrics" / "uar" / "app.py"))  # demo.launch() only runs under __main__
    table = pd.DataFrame([[0, 0], [1, 0], [1, 1]], columns=["predictions", "references"])
    assert ns["compute"](table, "balanced", True, False) == {"uar": 0.75, "per_class_recall": [0.5, 1.0]}
    assert type(ns["demo"]).__name__ == "Interface"
