"""Figures from results rows: UAR per layer (with ± std bands over seeds) and confusion matrices.

Both write STEM.png and STEM.pdf atomically. matplotlib's object API with the Agg canvas: no pyplot, no
global backend switch, no display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hf_bio.results import ResultRow
from hf_bio.stats import mean_std, uar
from hf_bio.table import DATASET_LABELS, DECIMALS, best_layers

METRIC_LABELS = {"test_uar": "test UAR (%)", "val_uar": "validation UAR (%)",
                  "test_accuracy": "test accuracy (%)", "val_accuracy": "validation accuracy (%)"}

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

    if metric not in METRIC_LABELS:
        raise ValueError(f"plot_layerwise: metric={metric!r}; use one of {', '.join(METRIC_LABELS)}")
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
    ax.set_ylabel(METRIC_LABELS[metric])
    ax.set_title(title or f"{DATASET_LABELS.get(dataset, dataset)}: {METRIC_LABELS[metric]} per layer", fontsize=10)
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


def plot_training_curves(curves: dict, out_path_stem: str | os.PathLike, seed: int | None = None) -> list[Path]:
    """Training and validation loss, and validation UAR, per epoch for every layer of one seed.

    `curves` is a run folder's `curves.json` (`{"layers": [{seed, layer, train_loss, val_loss, val_uar, ...}],
    "best_layer"}`); `seed` defaults to the first seed. The chosen layer is drawn thick. STEM.png and STEM.pdf.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    entries = curves.get("layers") or []
    if not entries:
        raise ValueError("plot_training_curves: curves.json lists no layers; train the run first")
    seed = entries[0]["seed"] if seed is None else seed
    own = [e for e in entries if e["seed"] == seed]  # in the run's layer order
    if not own:
        raise ValueError(f"plot_training_curves: no curves for seed {seed}; seeds: {sorted({e['seed'] for e in entries})}")
    best = curves.get("best_layer")
    fig = Figure(figsize=(11.0, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    palette = colormaps["viridis"]
    for i, entry in enumerate(own):
        color = palette(i / max(1, len(own) - 1))
        chosen = entry["layer"] == best
        style = {"color": color, "linewidth": 2.4 if chosen else 1.0, "alpha": 1.0 if chosen else 0.75}
        label = f"layer {entry['layer']}" + (" (chosen)" if chosen else "")
        for ax, key in zip(axes, ("train_loss", "val_loss", "val_uar"), strict=True):
            values = np.asarray(entry[key], dtype=float) * (100 if key == "val_uar" else 1)
            ax.plot(np.arange(1, len(values) + 1), values, label=label, **style)
    for ax, title in zip(axes, ("training loss", "validation loss", "validation UAR (%)"), strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    axes[2].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"training curves, seed {seed} (early-stopped layers end early)", fontsize=10)
    return _save_figure(fig, out_path_stem)
