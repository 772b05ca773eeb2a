"""Tables, layer-wise figures, confusion matrices and the written report, from results rows.

- `best_layer_table(rows)`: the paper's comparative table. Per (dataset, backbone) the layer with the best
  mean *validation* UAR over seeds is chosen; its *test* UAR is reported (mean ± std over seeds, and the
  bootstrap interval when the rows carry one).
- `to_markdown(table)` / `to_latex(table)`: best per column in bold, second best underlined.
- `plot_layerwise(...)`, `plot_confusion_matrix(...)`: matplotlib figures, written as PNG and PDF.
- `write_report(rows, out_dir, ...)`: all of the above plus `report.md`, which embeds them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hf_bio.atomic import atomic_write_text
from hf_bio.backbones import paper_backbone_names
from hf_bio.results import TRAINING_TYPES, ResultRow, check_unique
from hf_bio.stats import mean_std, paired_bootstrap_test, permutation_test, uar

# The paper's column order; other datasets follow, sorted by name.
PAPER_DATASETS = ("imv", "watkins", "abzaliev")
DATASET_LABELS = {"imv": "IMV", "watkins": "Watkins", "abzaliev": "Abzaliev"}
GROUP_LABELS = {"PT": "PT", "PT+FT": "PT+FT", "fusion": "Fusion", "baseline": "Baseline", "random": "Random"}

# The paper's two analyses, as (figure name, backbones compared). Drawn when all of a set's backbones ran.
PAPER_FIGURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pretraining_domain", ("aves-bio", "hubert")),
    ("finetuning_wav2vec2", ("wav2vec2", "wav2vec2-100h", "wav2vec2-960h")),
    ("finetuning_wavlm", ("wavlm", "wavlm-100h")),
)

# Scores are compared as the reader sees them: percent rounded to this many decimals.
DECIMALS = 2


@dataclass
class Cell:
    """One table entry: the test score of a backbone's best layer on a dataset (fractions, not percent)."""

    mean: float
    std: float
    n_seeds: int
    layer: int | str
    ci_low: float | None = None
    ci_high: float | None = None
    rank: int | None = None  # 1 = best in its column (bold), 2 = second (underlined), else None


@dataclass
class ModelRow:
    backbone: str
    label: str
    training: str


@dataclass
class Table:
    """The comparative table: `groups` in display order, each a list of model rows; `cells[(backbone, dataset)]`."""

    datasets: list[str]
    groups: list[tuple[str, list[ModelRow]]]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    @property
    def models(self) -> list[ModelRow]:
        return [m for _, members in self.groups for m in members]


# ---------------------------------------------------------------------------------------------------------
# The table


def order_datasets(datasets: Iterable[str]) -> list[str]:
    """The paper's order (IMV, Watkins, Abzaliev) first, then the others sorted."""
    present = set(datasets)
    known = [d for d in PAPER_DATASETS if d in present]
    return known + sorted(present - set(known))


def best_layers(rows: Sequence[ResultRow], metric: str = "val_uar") -> dict[tuple[str, str], int | str]:
    """Per (dataset, backbone), the layer with the best mean `metric` over seeds.

    Ties go to the layer that appears first in `rows` (for a layer-by-layer run, the shallower one).
    """
    if metric not in ("val_uar", "val_accuracy", "test_uar", "test_accuracy"):
        raise ValueError(f"best_layers: metric={metric!r} is not a score column")
    scores: dict[tuple[str, str], dict[int | str, list[float]]] = {}
    for row in rows:
        scores.setdefault((row.dataset, row.backbone), {}).setdefault(row.layer, []).append(getattr(row, metric))
    best: dict[tuple[str, str], int | str] = {}
    for key, per_layer in scores.items():
        means = {layer: float(np.mean(values)) for layer, values in per_layer.items()}
        best[key] = max(means, key=lambda layer: means[layer])  # max keeps the first of equal keys
    return best


def best_layer_table(rows: Sequence[ResultRow]) -> Table:
    """The paper's table: per (dataset, backbone) the layer chosen on validation UAR, scored on test UAR.

    Rows are grouped PT, PT+FT, Fusion, then Baseline and Random; within a group the paper's backbones come
    in the paper's order, others in order of first appearance. With several seeds a cell holds the mean ±
    sample std of test UAR over seeds; its interval is the mean of the seeds' bootstrap bounds (the typical
    test-set uncertainty of one run), shown only when every seed has one.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("best_layer_table: no result rows; run the benchmark first")
    check_unique(rows)
    models: dict[str, ModelRow] = {}
    for row in rows:
        model = models.setdefault(row.backbone, ModelRow(row.backbone, row.backbone_label, row.training))
        if (model.label, model.training) != (row.backbone_label, row.training):
            raise ValueError(
                f"backbone {row.backbone!r} has rows labelled {model.label!r}/{model.training} and "
                f"{row.backbone_label!r}/{row.training}; one backbone needs one backbone_label and training"
            )
    paper_order = {name: i for i, name in enumerate(paper_backbone_names())}
    first_seen = {name: i for i, name in enumerate(models)}
    groups = []
    for training in TRAINING_TYPES:
        members = [m for m in models.values() if m.training == training]
        members.sort(key=lambda m: (paper_order.get(m.backbone, len(paper_order)), first_seen[m.backbone]))
        if members:
            groups.append((training, members))

    table = Table(datasets=order_datasets(r.dataset for r in rows), groups=groups)
    for (dataset, backbone), layer in best_layers(rows).items():
        chosen = [r for r in rows if r.dataset == dataset and r.backbone == backbone and r.layer == layer]
        mean, std = mean_std([r.test_uar for r in chosen])
        cell = Cell(mean=mean, std=std, n_seeds=len(chosen), layer=layer)
        if all(r.test_uar_ci_low is not None and r.test_uar_ci_high is not None for r in chosen):
            cell.ci_low = float(np.mean([r.test_uar_ci_low for r in chosen]))
            cell.ci_high = float(np.mean([r.test_uar_ci_high for r in chosen]))
        table.cells[(backbone, dataset)] = cell
    _rank_columns(table)
    return table


def _rank_columns(table: Table) -> None:
    """Mark the best (rank 1) and second best (rank 2) cell of each column.

    Scores are compared as displayed (percent, `DECIMALS` decimals), so a tie is what a reader sees as a
    tie: all cells sharing the best value are bold, and all sharing the next lower value are underlined.
    A column with a single model has a bold cell and no underline; missing cells take no part.
    """
    for dataset in table.datasets:
        column = [cell for (_, d), cell in table.cells.items() if d == dataset]
        shown = sorted({float(_pct(cell.mean)) for cell in column}, reverse=True)
        for cell in column:
            value = float(_pct(cell.mean))
            cell.rank = 1 if value == shown[0] else 2 if len(shown) > 1 and value == shown[1] else None


def _pct(value: float) -> str:
    return f"{100 * value:.{DECIMALS}f}"


def _cell_parts(cell: Cell, show_std: bool, show_ci: bool, show_layer: bool) -> tuple[str, list[tuple[str, str]]]:
    """The main number, and the extras printed after it (± std, [CI], layer)."""
    extras = []
    if show_std and cell.n_seeds > 1:
        extras.append(("±", _pct(cell.std)))
    if show_ci and cell.ci_low is not None and cell.ci_high is not None:
        extras.append(("ci", f"{_pct(cell.ci_low)}, {_pct(cell.ci_high)}"))
    if show_layer:
        extras.append(("layer", f"L{cell.layer}" if isinstance(cell.layer, int) else str(cell.layer)))
    return _pct(cell.mean), extras


def to_markdown(table: Table, show_std: bool = True, show_ci: bool = True, show_layer: bool = True) -> str:
    """The table as GitHub Markdown: best per column **bold**, second best <u>underlined</u>.

    A cell reads `62.54 ± 0.31 [60.10, 64.90] (L7)`: test UAR % of the layer chosen on validation, std over
    seeds (only with several seeds), 95% bootstrap interval (when computed) and the chosen layer. `–` marks
    a backbone that did not run on that dataset.
    """
    header = ["Type", "Model", *[DATASET_LABELS.get(d, d) for d in table.datasets]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + [":---:"] * len(table.datasets)) + "|"]
    for training, members in table.groups:
        for i, model in enumerate(members):
            cells = []
            for dataset in table.datasets:
                cell = table.cells.get((model.backbone, dataset))
                if cell is None:
                    cells.append("–")
                    continue
                number, extras = _cell_parts(cell, show_std, show_ci, show_layer)
                number = f"**{number}**" if cell.rank == 1 else f"<u>{number}</u>" if cell.rank == 2 else number
                text = [number]
                for kind, value in extras:
                    text.append(f"± {value}" if kind == "±" else f"[{value}]" if kind == "ci" else f"({value})")
                cells.append(" ".join(text))
            group = GROUP_LABELS[training] if i == 0 else ""
            lines.append("| " + " | ".join([group, _md_escape(model.label), *cells]) + " |")
    return "\n".join(lines) + "\n"


def to_latex(table: Table, show_std: bool = True, show_ci: bool = True, show_layer: bool = False,
             caption: str | None = None, label: str = "tab:uar") -> str:
    """The table as a LaTeX `table` (booktabs): best per column `\\textbf{}`, second best `\\underline{}`.

    Needs `\\usepackage{booktabs}`. The chosen layer is left out by default, as in the paper.
    """
    caption = caption or (
        "Test UAR (\\%) of each model's best layer, chosen on validation UAR. Best per dataset in bold, "
        "second best underlined."
    )
    columns = "ll" + "c" * len(table.datasets)
    header = ["Type", "Model", *[_tex_escape(DATASET_LABELS.get(d, d)) for d in table.datasets]]
    lines = [
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{caption}}}",
        f"\\label{{{label}}}",
        f"\\begin{{tabular}}{{{columns}}}",
        "\\toprule",
        " & ".join(header) + " \\\\",
    ]
    for training, members in table.groups:
        lines.append("\\midrule")
        for i, model in enumerate(members):
            cells = []
            for dataset in table.datasets:
                cell = table.cells.get((model.backbone, dataset))
                if cell is None:
                    cells.append("--")
                    continue
                number, extras = _cell_parts(cell, show_std, show_ci, show_layer)
                number = f"\\textbf{{{number}}}" if cell.rank == 1 else f"\\underline{{{number}}}" if cell.rank == 2 else number
                text = [number]
                for kind, value in extras:
                    if kind == "±":
                        text.append(f"$\\pm$ {value}")
                    elif kind == "ci":
                        text.append(f"{{\\scriptsize [{value}]}}")
                    else:
                        text.append(f"{{\\scriptsize ({_tex_escape(value)})}}")
                cells.append(" ".join(text))
            group = _tex_escape(GROUP_LABELS[training]) if i == 0 else ""
            lines.append(" & ".join([group, _tex_escape(model.label), *cells]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


_TEX_SPECIAL = {"\\": "\\textbackslash{}", "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#", "_": "\\_",
                "{": "\\{", "}": "\\}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}"}


def _tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)


# ---------------------------------------------------------------------------------------------------------
# Figures (matplotlib's object API with the Agg canvas: no pyplot, no global backend switch, no display)

_METRIC_LABELS = {"test_uar": "test UAR (%)", "val_uar": "validation UAR (%)",
                  "test_accuracy": "test accuracy (%)", "val_accuracy": "validation accuracy (%)"}
_FIGURE_TITLES = {"pretraining_domain": "pre-training domain (animal vs speech)",
                  "finetuning_wav2vec2": "ASR fine-tuning (wav2vec2)", "finetuning_wavlm": "ASR fine-tuning (WavLM)",
                  "layerwise_all": "all backbones"}


def _save_figure(fig: object, out_path_stem: str | os.PathLike) -> list[Path]:
    """Save `fig` as STEM.png and STEM.pdf, each written to a temporary name and renamed (atomic)."""
    stem = Path(out_path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in ("png", "pdf"):
        path = stem.with_name(f"{stem.name}.{fmt}")
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        paths.append(path)
    return paths


def plot_layerwise(
    rows: Sequence[ResultRow],
    dataset: str,
    backbones: Sequence[str],
    out_path_stem: str | os.PathLike,
    metric: str = "test_uar",
    title: str | None = None,
) -> list[Path]:
    """UAR against layer, one line per backbone, with a ±std band over seeds; writes STEM.png and STEM.pdf.

    The layer each backbone would be reported with (best mean validation UAR) is ringed. Only rows with an
    integer layer are drawn (fusion rows have no layer axis); a backbone with a single layer (a handcrafted
    baseline) is drawn as a dotted horizontal line.

    Args:
        rows: result rows (any datasets and backbones; the ones asked for are picked out).
        dataset: the dataset to draw.
        backbones: backbone names (the rows' `backbone` field), in legend order.
        out_path_stem: output path without extension.
        metric: `test_uar` (default), `val_uar`, `test_accuracy` or `val_accuracy`.
        title: figure title; default "<dataset>: <metric> per layer".

    Returns:
        [png_path, pdf_path]
    """
    from matplotlib.figure import Figure

    if metric not in _METRIC_LABELS:
        raise ValueError(f"plot_layerwise: metric={metric!r}; use one of {', '.join(_METRIC_LABELS)}")
    if not backbones:
        raise ValueError("plot_layerwise: backbones is empty; name at least one backbone to draw")
    chosen = best_layers([r for r in rows if r.dataset == dataset and isinstance(r.layer, int)])
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    colors = [f"C{i}" for i in range(10)]
    for i, backbone in enumerate(backbones):
        own = [r for r in rows if r.dataset == dataset and r.backbone == backbone and isinstance(r.layer, int)]
        if not own:
            available = sorted({r.backbone for r in rows if r.dataset == dataset and isinstance(r.layer, int)})
            raise ValueError(
                f"plot_layerwise: no per-layer rows for backbone {backbone!r} on dataset {dataset!r}; "
                f"available: {', '.join(available) or 'none'}"
            )
        layers = sorted({r.layer for r in own})
        stats = [mean_std([getattr(r, metric) for r in own if r.layer == layer]) for layer in layers]
        means = 100 * np.array([m for m, _ in stats])
        stds = 100 * np.array([s for _, s in stats])
        color = colors[i % len(colors)]
        if len(layers) == 1:  # a single-vector baseline (e.g. handcrafted features): a reference line
            ax.axhline(means[0], linestyle=":", linewidth=1.5, color=color, label=own[0].backbone_label)
            if any(r.seed != own[0].seed for r in own):
                ax.axhspan(means[0] - stds[0], means[0] + stds[0], color=color, alpha=0.12, linewidth=0)
            continue
        style = "-" if i < len(colors) else "--"
        ax.plot(layers, means, style, marker="o", markersize=3.5, color=color, label=own[0].backbone_label)
        if any(r.seed != own[0].seed for r in own):
            ax.fill_between(layers, means - stds, means + stds, color=color, alpha=0.18, linewidth=0)
        best = chosen[(dataset, backbone)]
        ax.plot([best], [means[layers.index(best)]], "o", markersize=9, markerfacecolor="none",
                markeredgecolor=color, markeredgewidth=1.5)
    all_layers = sorted({r.layer for r in rows if r.dataset == dataset and r.backbone in backbones
                         and isinstance(r.layer, int)})
    ax.set_xticks(all_layers if len(all_layers) <= 25 else all_layers[:: max(1, len(all_layers) // 13)])
    ax.set_xlabel("layer (0 = input of the transformer)")
    ax.set_ylabel(_METRIC_LABELS[metric])
    ax.set_title(title or f"{DATASET_LABELS.get(dataset, dataset)}: {_METRIC_LABELS[metric]} per layer", fontsize=10)
    ax.grid(True, alpha=0.3)
    legend = {"fontsize": 8, "frameon": False, "title": "ringed: layer chosen\non validation", "title_fontsize": 7}
    if len(backbones) > 3:  # many lines: keep the legend off the curves
        fig.set_size_inches(7.6, 4.0)
        legend.update(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.legend(**legend)
    return _save_figure(fig, out_path_stem)


def plot_confusion_matrix(
    labels: Sequence[int] | np.ndarray,
    predictions: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    out_path_stem: str | os.PathLike,
    title: str | None = None,
) -> list[Path]:
    """Row-normalised confusion matrix (each row: how one true class was predicted); STEM.png and STEM.pdf.

    Cells hold the share of the true class's clips, so the diagonal is each class's recall and its mean is
    the UAR. Percentages are printed in the cells up to 20 classes; beyond that the colour carries them and
    the figure grows with the number of classes so that names stay readable. Rows of classes absent from
    `labels` are left blank.
    """
    from matplotlib.figure import Figure

    y = np.asarray(labels)
    p = np.asarray(predictions)
    k = len(class_names)
    if y.shape != p.shape or y.ndim != 1 or y.size == 0:
        raise ValueError(f"plot_confusion_matrix: labels {y.shape} and predictions {p.shape} must be equal, non-empty 1-D")
    for name, arr in (("labels", y), ("predictions", p)):
        if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= k:
            raise ValueError(
                f"plot_confusion_matrix: {name} must be integer class ids in [0, {k}) to index class_names "
                f"(got dtype {arr.dtype}, range {arr.min()}..{arr.max()})"
            )
    counts = np.bincount(y * k + p, minlength=k * k).reshape(k, k).astype(np.float64)
    support = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(support > 0, counts / support, np.nan)

    side = max(4.5, 0.3 * k + 2.5)
    tick_size = 9 if k <= 15 else 7 if k <= 40 else 5
    fig = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(100 * share, cmap="Blues", vmin=0.0, vmax=100.0, interpolation="nearest")
    ax.set_xticks(range(k), labels=list(class_names), rotation=90, fontsize=tick_size)
    ax.set_yticks(range(k), labels=list(class_names), fontsize=tick_size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                if not np.isnan(share[i, j]) and share[i, j] > 0:
                    ax.text(j, i, f"{100 * share[i, j]:.0f}", ha="center", va="center", fontsize=tick_size - 1,
                            color="white" if share[i, j] > 0.6 else "black")
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    colorbar.set_label("% of the true class's clips")
    score = 100 * uar(y, p)
    ax.set_title(f"{title + ' — ' if title else ''}UAR {score:.{DECIMALS}f}%", fontsize=10)
    return _save_figure(fig, out_path_stem)


# ---------------------------------------------------------------------------------------------------------
# The report


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


def _safe_name(text: str) -> str:
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
            stem = out / "figures" / _safe_name(f"{name}_{dataset}")
            what = _FIGURE_TITLES.get(name, name.replace("_", " "))
            title = f"{DATASET_LABELS.get(dataset, dataset)}, {what}: {_METRIC_LABELS[metric]} per layer"
            for path in plot_layerwise(rows, dataset, members, stem, metric=metric, title=title):
                written[str(path.relative_to(out))] = path
            labels = ", ".join(next(m.label for m in table.models if m.backbone == b) for b in members)
            figure_lines.append(
                f"**{DATASET_LABELS.get(dataset, dataset)}, {what}** ({labels}):\n\n"
                f"![{name} {dataset}](figures/{stem.name}.png)\n"
            )

    confusion_lines: list[str] = []
    for item in confusion_inputs or []:
        stem = out / "figures" / _safe_name(f"confusion_{item.dataset}_{item.model}")
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
                f"| {DATASET_LABELS.get(c.dataset, c.dataset)} | {_md_escape(c.model_a)} | {_md_escape(c.model_b)} "
                f"| {_pct(score_a)} | {_pct(score_b)} | {100 * (score_b - score_a):+.{DECIMALS}f} "
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
                  f"{_METRIC_LABELS[metric][0].upper()}{_METRIC_LABELS[metric][1:]} for every layer; bands are ± std over seeds (when "
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
            f"| {_md_escape(own[0].backbone_label)} | {own[0].training} | {_md_escape(own[0].backbone_id or backbone)} "
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
    parser.add_argument("--metric", default="test_uar", choices=sorted(_METRIC_LABELS), help="y axis of the layer-wise figures")
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
