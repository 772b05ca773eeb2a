"""Unweighted Average Recall (UAR) as an `evaluate` metric: `evaluate.load("metrics/uar")`."""

import datasets
import evaluate
import numpy as np

from .uar_math import confusion_matrix, per_class_recall, uar_from_confusion

_DESCRIPTION = """
Unweighted Average Recall (UAR) is the mean of the per-class recalls, so every class weighs the same
whatever its size. It is the standard score of computational paralinguistics and bioacoustics call-type
classification, where classes are very unbalanced.

By default (`average="balanced"`) the mean runs over the classes that occur in the references; this is
scikit-learn's `balanced_accuracy_score`. A class that is predicted but never true does not count.
With `average="macro"` the mean runs over the classes that occur in the references or the predictions,
a predicted-only class counting as recall 0: torchmetrics' `MulticlassRecall(average="macro")` (which
drops only classes with tp + fp + fn == 0) and scikit-learn's `recall_score(average="macro")` without
`labels=`. Sarkar & Magimai-Doss (ICASSP 2025) report this variant. The two agree whenever every
predicted class also occurs in the references; otherwise "macro" is lower.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): true class ids.
    average (`str`): "balanced" (default) or "macro", see the description.
    num_classes (`int`, optional): size of the confusion matrix and of the per-class list
        (default: the largest id + 1). An id >= num_classes is an error.
    return_per_class (`bool`): also return "per_class_recall", a list of num_classes recalls
        (None for a class with no reference sample).
    return_confusion_matrix (`bool`): also return "confusion_matrix", a num_classes x num_classes list
        of counts, rows = references, columns = predictions.

Returns:
    uar (`float`): in [0, 1].
    per_class_recall (`list`), confusion_matrix (`list` of `list`): only when requested.

Examples:
    >>> import evaluate
    >>> uar = evaluate.load("metrics/uar")
    >>> uar.compute(references=[0, 0, 1, 1, 2], predictions=[0, 1, 1, 1, 2])
    {'uar': 0.8333333333333334}
    >>> uar.compute(references=[0, 0, 1, 1], predictions=[0, 2, 1, 1])  # class 2 never true: not counted
    {'uar': 0.75}
    >>> uar.compute(references=[0, 0, 1, 1], predictions=[0, 2, 1, 1], average="macro")  # torchmetrics / paper
    {'uar': 0.5}
    >>> out = uar.compute(references=[0, 0, 1], predictions=[0, 1, 1], num_classes=3,
    ...                   return_per_class=True, return_confusion_matrix=True)
    >>> out["per_class_recall"], out["confusion_matrix"]
    ([0.5, 1.0, None], [[1, 1, 0], [0, 1, 0], [0, 0, 0]])
"""

_CITATION = """
@inproceedings{schuller2009interspeech,
  title     = {The {INTERSPEECH} 2009 Emotion Challenge},
  author    = {Schuller, Bj{\\"o}rn and Steidl, Stefan and Batliner, Anton},
  booktitle = {Proc. Interspeech},
  pages     = {312--315},
  year      = {2009}
}
@inproceedings{sarkar2025comparing,
  title     = {Comparing Self-Supervised Learning Models Pre-Trained on Human Speech and Animal
               Vocalizations for Bioacoustics Processing},
  author    = {Sarkar, Eklavya and Magimai-Doss, Mathew},
  booktitle = {Proc. ICASSP},
  year      = {2025}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class UAR(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            reference_urls=[
                "https://scikit-learn.org/stable/modules/generated/sklearn.metrics.balanced_accuracy_score.html",
                "https://lightning.ai/docs/torchmetrics/stable/classification/recall.html",
            ],
        )

    def _compute(
        self,
        predictions,
        references,
        average: str = "balanced",
        num_classes: int | None = None,
        return_per_class: bool = False,
        return_confusion_matrix: bool = False,
    ):
        cm = confusion_matrix(np.asarray(references), np.asarray(predictions), num_classes)
        out = {"uar": uar_from_confusion(cm, average)}
        if return_per_class:
            out["per_class_recall"] = [None if np.isnan(r) else float(r) for r in per_class_recall(cm)]
        if return_confusion_matrix:
            out["confusion_matrix"] = cm.tolist()
        return out
