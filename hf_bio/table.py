"""The paper's comparative table from results rows: best layer on validation, test UAR, bold and underline.

- `best_layers(rows)`: per (dataset, backbone) the layer with the best mean *validation* UAR over seeds.
- `best_layer_table(rows)`: that layer's *test* UAR per (backbone, dataset): mean ± std over seeds, and the
  bootstrap interval when the rows carry one; rows grouped PT / PT+FT / Fusion, then baselines and random.
- `to_markdown(table)` / `to_latex(table)`: best per column in bold, second best underlined.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from hf_bio.backbones import paper_backbone_names
from hf_bio.results import TRAINING_TYPES, ResultRow, check_unique
from hf_bio.stats import mean_std

# The paper's column order; other datasets follow, sorted by name.
PAPER_DATASETS = ("imv", "watkins", "abzaliev")
DATASET_LABELS = {"imv": "IMV", "watkins": "Watkins", "abzaliev": "Abzaliev"}
GROUP_LABELS = {"PT": "PT", "PT+FT": "PT+FT", "fusion": "Fusion", "baseline": "Baseline", "random": "Random"}

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
        shown = sorted({float(percent(cell.mean)) for cell in column}, reverse=True)
        for cell in column:
            value = float(percent(cell.mean))
            cell.rank = 1 if value == shown[0] else 2 if len(shown) > 1 and value == shown[1] else None


def percent(value: float) -> str:
    return f"{100 * value:.{DECIMALS}f}"


def _cell_parts(cell: Cell, show_std: bool, show_ci: bool, show_layer: bool) -> tuple[str, list[tuple[str, str]]]:
    """The main number, and the extras printed after it (± std, [CI], layer)."""
    extras = []
    if show_std and cell.n_seeds > 1:
        extras.append(("±", percent(cell.std)))
    if show_ci and cell.ci_low is not None and cell.ci_high is not None:
        extras.append(("ci", f"{percent(cell.ci_low)}, {percent(cell.ci_high)}"))
    if show_layer:
        extras.append(("layer", f"L{cell.layer}" if isinstance(cell.layer, int) else str(cell.layer)))
    return percent(cell.mean), extras


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
            lines.append("| " + " | ".join([group, md_escape(model.label), *cells]) + " |")
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


def md_escape(text: str) -> str:
    return text.replace("|", "\\|")


_TEX_SPECIAL = {"\\": "\\textbackslash{}", "&": "\\&", "%": "\\%", "$": "\\$", "#": "\\#", "_": "\\_",
                "{": "\\{", "}": "\\}", "~": "\\textasciitilde{}", "^": "\\textasciicircum{}"}


def _tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)
