"""The written report of a benchmark: tables, layer-wise figures, confusion matrices, significance tests.

`write_report(rows, out_dir, ...)` writes `table.md`, `table.tex`, `figures/*.png|pdf` and `report.md`,
which embeds them and documents the fusion methods and the statistics. The table lives in
`hf_bio.table`, the figures in `hf_bio.figures`. `python -m hf_bio.report RESULTS` rebuilds it from rows.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hf_bio.atomic import atomic_write_text
from hf_bio.figures import METRIC_LABELS, plot_confusion_matrix, plot_layerwise
from hf_bio.results import ResultRow
from hf_bio.stats import paired_bootstrap_test, permutation_test, uar
from hf_bio.table import (
    DATASET_LABELS,
    DECIMALS,
    best_layer_table,
    best_layers,
    md_escape,
    order_datasets,
    percent,
    to_latex,
    to_markdown,
)

# The paper's two analyses, as (figure name, backbones compared). Drawn when all of a set's backbones ran.
PAPER_FIGURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pretraining_domain", ("aves-bio", "hubert")),
    ("finetuning_wav2vec2", ("wav2vec2", "wav2vec2-100h", "wav2vec2-960h")),
    ("finetuning_wavlm", ("wavlm", "wavlm-100h")),
)
_FIGURE_TITLES = {"pretraining_domain": "pre-training domain (animal vs speech)",
                  "finetuning_wav2vec2": "ASR fine-tuning (wav2vec2)", "finetuning_wavlm": "ASR fine-tuning (WavLM)",
                  "layerwise_all": "all backbones"}


@dataclass
class ConfusionInput:
    """Test predictions of one model on one dataset, for a confusion matrix in the report."""

    dataset: str
    model: str  # shown in the title, e.g. "HuBERT, layer 7"
    labels: Sequence[int] | np.ndarray
    predictions: Sequence[int] | np.ndarray
    class_names: Sequence[str]


@dataclass
class Comparison:
    """Two models' test predictions on the same clips of one dataset, for a paired significance test."""

    dataset: str
    model_a: str
    model_b: str
    labels: Sequence[int] | np.ndarray
    predictions_a: Sequence[int] | np.ndarray
    predictions_b: Sequence[int] | np.ndarray


def confusion_input_from_run(run_dir: str | os.PathLike, layer: int | str, seed: int | None = None,
                             model: str | None = None) -> ConfusionInput:
    """A `ConfusionInput` from a training run folder (contract 5): the test predictions of one layer.

    `seed` picks the seed when the run has several (default: the first); class names come from
    `results.json`'s `dataset.label_names`.
    """
    import json

    from hf_bio.results import load_run_predictions

    run_dir = Path(run_dir)
    run = json.loads((run_dir / "results.json").read_text())
    arrays = load_run_predictions(run_dir)
    predictions = arrays["test_predictions"]
    predictions = predictions[None] if predictions.ndim == 2 else predictions
    layers = list(dict.fromkeys(entry["layer"] for entry in run["layers"]))
    seeds = run.get("seeds") or list(dict.fromkeys(entry["seed"] for entry in run["layers"]))
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if layer not in layers:
        raise ValueError(f"{run_dir}: layer {layer!r} was not trained; trained layers: {layers}")
    if seed is not None and seed not in seeds:
        raise ValueError(f"{run_dir}: seed {seed} was not run; seeds: {seeds}")
    seed_index = 0 if seed is None else seeds.index(seed)
    name = run["backbone"].get("name") or run["backbone"].get("hub_id")
    layer_text = f"layer {layer}" if isinstance(layer, int) else str(layer)
    return ConfusionInput(
        dataset=run["dataset"]["name"],
        model=model or f"{name}, {layer_text}",
        labels=arrays["test_labels"],
        predictions=predictions[seed_index, layers.index(layer)],
        class_names=run["dataset"]["label_names"],
    )


def compare_runs(
    run_a: str | os.PathLike,
    run_b: str | os.PathLike,
    layer_a: int | None = None,
    layer_b: int | None = None,
    n_resamples: int = 1000,
) -> dict:
    """Paired significance tests of two trained models (run folders) on the same test clips.

    Each run contributes one layer (default: its `best_layer`, chosen on validation) of its first seed.
    Returns the two UARs with their 95% bootstrap intervals, the difference B - A and the two-sided p-values
    of the paired bootstrap and the permutation tests.

    Raises:
        ValueError: the runs were not evaluated on the same test clips (labels differ), or a layer is missing.
    """
    import json

    from hf_bio.stats import bootstrap_ci

    picked = []
    for run_dir, layer in ((Path(run_a), layer_a), (Path(run_b), layer_b)):
        if layer is None:
            layer = json.loads((run_dir / "results.json").read_text())["best_layer"]
        picked.append(confusion_input_from_run(run_dir, layer))
    a, b = picked
    labels = np.asarray(a.labels)
    if a.dataset != b.dataset or not np.array_equal(labels, np.asarray(b.labels)):
        raise ValueError(
            f"{run_a} and {run_b} were not tested on the same clips (datasets {a.dataset!r} and {b.dataset!r}); "
            "a paired test needs both models' predictions on one test split"
        )
    return {
        "dataset": a.dataset,
        "model_a": a.model,
        "model_b": b.model,
        "uar_a": uar(labels, a.predictions),
        "uar_b": uar(labels, b.predictions),
        "ci_a": bootstrap_ci(labels, a.predictions, n_resamples=n_resamples),
        "ci_b": bootstrap_ci(labels, b.predictions, n_resamples=n_resamples),
        "p_paired_bootstrap": paired_bootstrap_test(labels, a.predictions, b.predictions, n_resamples=n_resamples),
        "p_permutation": permutation_test(labels, a.predictions, b.predictions, n_resamples=n_resamples),
        "n_resamples": n_resamples,
    }


def best_models(rows: Sequence[ResultRow]) -> dict[str, tuple[str, int | str]]:
    """Per dataset, the (backbone, layer) with the best mean validation UAR: whose confusion matrix to draw."""
    chosen = best_layers(rows)
    best: dict[str, tuple[str, int | str, float]] = {}
    for (dataset, backbone), layer in chosen.items():
        score = float(np.mean([r.val_uar for r in rows
                               if r.dataset == dataset and r.backbone == backbone and r.layer == layer]))
        if dataset not in best or score > best[dataset][2]:
            best[dataset] = (backbone, layer, score)
    return {dataset: (backbone, layer) for dataset, (backbone, layer, _) in best.items()}


def _p_text(p: float, n_resamples: int) -> str:
    # With R resamples the smallest reachable p is 1/(R+1): print it as a bound, not as a measured value.
    floor = 1.0 / (n_resamples + 1)
    return f"< {1.0 / n_resamples:.2g}" if p <= floor + 1e-12 else f"{p:.3f}"


def safe_name(text: str) -> str:
    """`text` with every character but letters, digits, `-`, `_` and `.` replaced by `_`: a file name."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def write_report(
    rows: Sequence[ResultRow],
    out_dir: str | os.PathLike,
    confusion_inputs: Sequence[ConfusionInput] | None = None,
    comparisons: Sequence[Comparison] | None = None,
    figure_sets: dict[str, Sequence[str]] | None = None,
    metric: str = "test_uar",
    n_resamples: int = 1000,
) -> dict[str, Path]:
    """Write table.md, table.tex, the figures (figures/*.png and .pdf) and report.md into `out_dir`.

    Figures per dataset: the paper's pre-training-domain (AVES-bio vs HuBERT) and fine-tuning (W2V2 vs its
    100 h / 960 h versions, WavLM vs WavLM-100h) comparisons when those backbones ran; every entry of
    `figure_sets` (name -> backbones); and all per-layer backbones together. Then one confusion matrix per
    `confusion_inputs` entry, and a significance table for `comparisons`.

    Returns:
        {file name relative to out_dir: path} for every file written.
    """
    rows = list(rows)
    out = Path(out_dir)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    table = best_layer_table(rows)
    markdown_table = to_markdown(table)
    atomic_write_text(out / "table.md", markdown_table)
    atomic_write_text(out / "table.tex", to_latex(table))
    written["table.md"], written["table.tex"] = out / "table.md", out / "table.tex"

    figure_lines: list[str] = []
    for dataset in table.datasets:
        per_layer = [r for r in rows if r.dataset == dataset and isinstance(r.layer, int)]
        ran = list(dict.fromkeys(m.backbone for m in table.models if any(r.backbone == m.backbone for r in per_layer)))
        sets = [(name, list(members)) for name, members in PAPER_FIGURES if set(members) <= set(ran)]
        sets += [(name, list(members)) for name, members in (figure_sets or {}).items()]
        if ran:
            sets.append(("layerwise_all", ran))
        for name, members in sets:
            stem = out / "figures" / safe_name(f"{name}_{dataset}")
            what = _FIGURE_TITLES.get(name, name.replace("_", " "))
            title = f"{DATASET_LABELS.get(dataset, dataset)}, {what}: {METRIC_LABELS[metric]} per layer"
            for path in plot_layerwise(rows, dataset, members, stem, metric=metric, title=title):
                written[str(path.relative_to(out))] = path
            labels = ", ".join(next(m.label for m in table.models if m.backbone == b) for b in members)
            figure_lines.append(
                f"**{DATASET_LABELS.get(dataset, dataset)}, {what}** ({labels}):\n\n"
                f"![{name} {dataset}](figures/{stem.name}.png)\n"
            )

    confusion_lines: list[str] = []
    for item in confusion_inputs or []:
        stem = out / "figures" / safe_name(f"confusion_{item.dataset}_{item.model}")
        title = f"{DATASET_LABELS.get(item.dataset, item.dataset)}, {item.model}"
        for path in plot_confusion_matrix(item.labels, item.predictions, item.class_names, stem, title=title):
            written[str(path.relative_to(out))] = path
        confusion_lines.append(f"**{title}**:\n\n![confusion {title}](figures/{stem.name}.png)\n")

    significance_lines: list[str] = []
    if comparisons:
        significance_lines = [
            "| Dataset | Model A | Model B | UAR A | UAR B | B − A | paired bootstrap p | permutation p |",
            "|---|---|---|---:|---:|---:|---:|---:|",
        ]
        for c in comparisons:
            score_a, score_b = uar(c.labels, c.predictions_a), uar(c.labels, c.predictions_b)
            p_boot = paired_bootstrap_test(c.labels, c.predictions_a, c.predictions_b, n_resamples=n_resamples)
            p_perm = permutation_test(c.labels, c.predictions_a, c.predictions_b, n_resamples=n_resamples)
            significance_lines.append(
                f"| {DATASET_LABELS.get(c.dataset, c.dataset)} | {md_escape(c.model_a)} | {md_escape(c.model_b)} "
                f"| {percent(score_a)} | {percent(score_b)} | {100 * (score_b - score_a):+.{DECIMALS}f} "
                f"| {_p_text(p_boot, n_resamples)} | {_p_text(p_perm, n_resamples)} |"
            )

    report = _report_markdown(rows, markdown_table, figure_lines, confusion_lines, significance_lines,
                              metric, n_resamples)
    atomic_write_text(out / "report.md", report)
    written["report.md"] = out / "report.md"
    return written


def _report_markdown(
    rows: list[ResultRow],
    markdown_table: str,
    figure_lines: list[str],
    confusion_lines: list[str],
    significance_lines: list[str],
    metric: str,
    n_resamples: int,
) -> str:
    seeds = sorted({r.seed for r in rows})
    has_ci = any(r.test_uar_ci_low is not None for r in rows)
    parts = [
        "# hf_bio benchmark report\n",
        "## Comparative table\n",
        "Test UAR (%) of each backbone's best layer. The layer is chosen on **validation** UAR (mean over "
        "seeds), never on test. "
        + (f"Seeds: {', '.join(map(str, seeds))}; a cell shows mean ± sample std over seeds. " if len(seeds) > 1
           else f"One seed ({seeds[0]}). ")
        + ("Brackets hold the 95% bootstrap confidence interval of test UAR. " if has_ci else "")
        + "(Lk) is the chosen layer. The best score per dataset is **bold** and the second best "
        "<u>underlined</u>; scores are compared as printed (2 decimals), so equal printed values are all "
        "bold (or all underlined). – marks a backbone that did not run on that dataset.\n",
        markdown_table,
        "The same table in LaTeX (booktabs): [table.tex](table.tex).\n",
    ]
    if figure_lines:
        parts += ["## Layer-wise figures\n",
                  f"{METRIC_LABELS[metric][0].upper()}{METRIC_LABELS[metric][1:]} for every layer; bands are ± std over seeds (when "
                  "there are several); the ringed point is the layer chosen on validation. Each figure is also "
                  "written as a PDF beside the PNG.\n", *figure_lines]
    if confusion_lines:
        parts += ["## Confusion matrices\n",
                  "Rows are true classes, normalised to 1: the diagonal is each class's recall, whose mean is "
                  "the UAR.\n", *confusion_lines]
    if significance_lines:
        parts += ["## Significance tests\n",
                  f"Two-sided tests of \"A and B have the same test UAR\" on the same test clips, {n_resamples} "
                  "resamples each (see Statistics below). A p-value below 0.05 means the test set resolves the "
                  "difference.\n", "\n".join(significance_lines) + "\n"]
    parts += [
        "## Fusion\n",
        "The paper reports a *Fusion* row but its released code has no fusion; hf_bio offers two documented "
        "choices, each a row of the Fusion group:\n\n"
        "- **concat**: the pooled vectors (mean and std over time) of chosen layers of several backbones "
        "(by default each backbone's best layer on validation) are concatenated, standardised with the "
        "training split's statistics, and probed by the same MLP head.\n"
        "- **mean** (`fusion-mean`): each backbone's mean over all its pooled hidden states (for a base model "
        "the 13: the transformer's input and its 12 layers, as the paper's code averages them); with several "
        "backbones these means are concatenated. Standardised and probed by the same head.\n",
        "## Statistics\n",
        "- **UAR** (unweighted average recall) is the mean over classes present in the test references of "
        "each class's recall (scikit-learn's `balanced_accuracy_score`).\n"
        "- **Confidence intervals**: percentile bootstrap over test clips (clips resampled with replacement, "
        "UAR recomputed, 2.5th and 97.5th percentiles). They show the test set's sampling uncertainty for "
        "one trained head; seed-to-seed variation is the ± std. Intervals of two models that overlap do "
        "not prove the models equal: use the paired tests.\n"
        "- **Paired bootstrap test**: both models scored on the same resampled clips; p is the share of "
        "resamples whose UAR difference, centred on the observed one, is at least as large as the observed "
        "difference (two-sided).\n"
        "- **Permutation test** (approximate randomisation): each clip's two predictions are swapped at "
        "random; p is the share of rounds whose |UAR difference| reaches the observed one. It assumes "
        "nothing about the distribution and is the more conservative; trust it when the two disagree.\n",
        "## Runs\n",
        _runs_summary(rows),
    ]
    return "\n".join(parts)


def _runs_summary(rows: list[ResultRow]) -> str:
    lines = ["| Backbone | Training | Weights | Revision | Datasets | Seeds | Layers |", "|---|---|---|---|---|---|---|"]
    for backbone in dict.fromkeys(r.backbone for r in rows):
        own = [r for r in rows if r.backbone == backbone]
        layers = sorted({r.layer for r in own}, key=lambda x: (isinstance(x, str), x))
        layer_text = f"{layers[0]}–{layers[-1]}" if all(isinstance(x, int) for x in layers) and len(layers) > 2 else ", ".join(map(str, layers))
        lines.append(
            f"| {md_escape(own[0].backbone_label)} | {own[0].training} | {md_escape(own[0].backbone_id or backbone)} "
            f"| {own[0].revision or '–'} | {', '.join(order_datasets(r.dataset for r in own))} "
            f"| {', '.join(map(str, sorted({r.seed for r in own})))} | {layer_text} |"
        )
    splits = sorted({r.split for r in rows if r.split})
    versions = [dict(sorted(r.versions.items())) for r in rows if r.versions]
    unique_versions = {tuple(v.items()) for v in versions}
    text = "\n".join(lines) + "\n"
    if splits:
        text += f"\nSplits: {', '.join(splits)}.\n"
    if len(unique_versions) == 1:
        text += "\nPackage versions: " + ", ".join(f"{k} {v}" for k, v in versions[0].items()) + ".\n"
    elif len(unique_versions) > 1:
        text += f"\n**Warning**: the rows come from {len(unique_versions)} different package-version sets; see results.json.\n"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m hf_bio.report RESULTS [--out DIR]`: rebuild the tables, figures and report.md from rows."""
    import argparse

    from hf_bio.results import read_results

    parser = argparse.ArgumentParser(prog="python -m hf_bio.report", description=main.__doc__)
    parser.add_argument("results", help="results.json, results.csv, or the benchmark folder holding them")
    parser.add_argument("--out", help="output folder (default: beside the results file)")
    parser.add_argument("--metric", default="test_uar", choices=sorted(METRIC_LABELS), help="y axis of the layer-wise figures")
    args = parser.parse_args(argv)
    rows = read_results(args.results)
    results_path = Path(args.results)
    out = Path(args.out) if args.out else (results_path if results_path.is_dir() else results_path.parent)
    paths = write_report(rows, out, metric=args.metric)
    print(to_markdown(best_layer_table(rows)))
    for name in sorted(paths):
        print(paths[name])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
