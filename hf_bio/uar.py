"""Unweighted Average Recall (UAR): the one implementation of its arithmetic, in plain numpy.

This file is used twice without being copied: `hf_bio.train` imports it to score every epoch (no
`evaluate` import in the hot path), and `metrics/uar/uar_math.py` is a symbolic link to it, so the
`evaluate` module in `metrics/uar/` (and the Hub Space made from that folder, whose upload follows the
link) runs exactly this code. It must therefore stay standalone: numpy only, no hf_bio imports.

Two averages are offered:
- `"balanced"` (default): the mean recall over the classes that occur in the references. This is
  scikit-learn's `balanced_accuracy_score`. A class that is predicted but never true does not count.
- `"macro"`: the mean recall over the classes that occur in the references OR the predictions, a
  predicted-only class counting as recall 0. This is torchmetrics' `MulticlassRecall(average="macro")`
  (classes with tp + fp + fn == 0 get weight 0) and scikit-learn's `recall_score(average="macro")`
  without `labels=`; it is what the paper reported. It can only be lower than or equal to "balanced".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

AVERAGES = ("balanced", "macro")


def confusion_matrix(references: Sequence[int] | np.ndarray, predictions: Sequence[int] | np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Counts `cm[true, predicted]` as an int64 [C, C] array.

    Args:
        references: true class ids (non-negative ints).
        predictions: predicted class ids, same length.
        num_classes: the matrix size C; default `max(id) + 1` over both inputs.

    Raises:
        ValueError: different lengths, empty input, negative ids, or an id >= `num_classes`.
    """
    refs = np.asarray(references, dtype=np.int64).reshape(-1)
    preds = np.asarray(predictions, dtype=np.int64).reshape(-1)
    if refs.shape != preds.shape:
        raise ValueError(f"references ({refs.size}) and predictions ({preds.size}) must have the same length")
    if refs.size == 0:
        raise ValueError("UAR of an empty set is undefined: pass at least one reference/prediction pair")
    low = min(int(refs.min()), int(preds.min()))
    if low < 0:
        raise ValueError(f"class ids must be >= 0, got {low}")
    high = max(int(refs.max()), int(preds.max()))
    if num_classes is None:
        num_classes = high + 1
    elif high >= num_classes:
        raise ValueError(f"class id {high} is outside num_classes={num_classes}: pass a larger num_classes")
    return np.bincount(refs * num_classes + preds, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_recall(cm: np.ndarray) -> np.ndarray:
    """Recall of each class (row) of a confusion matrix; NaN for a class with no true sample."""
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def uar_from_confusion(cm: np.ndarray, average: str = "balanced") -> float:
    """UAR of a confusion matrix `cm[true, predicted]` (see the module docstring for `average`)."""
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    cm = np.asarray(cm)
    support = cm.sum(axis=1)
    if support.sum() == 0:
        raise ValueError("UAR of an empty confusion matrix is undefined")
    tp = np.diag(cm).astype(np.float64)
    recall = tp / np.maximum(support, 1)  # 0 where a class has no true sample
    if average == "balanced":
        counted = support > 0
    else:  # torchmetrics: drop only the classes with tp + fp + fn == 0, i.e. neither true nor predicted
        counted = (support > 0) | (cm.sum(axis=0) > 0)
    return float(recall[counted].mean())


def uar_score(references: Sequence[int] | np.ndarray, predictions: Sequence[int] | np.ndarray, average: str = "balanced") -> float:
    """UAR of label ids.

    >>> uar_score([0, 0, 1, 1], [0, 1, 1, 1])  # recalls 0.5 and 1.0
    0.75
    >>> uar_score([0, 0, 1, 1], [0, 2, 1, 1])  # class 2 is never true: ignored by "balanced"
    0.75
    >>> round(uar_score([0, 0, 1, 1], [0, 2, 1, 1], average="macro"), 4)  # counted as 0 by "macro"
    0.5
    """
    return uar_from_confusion(confusion_matrix(references, predictions), average)
