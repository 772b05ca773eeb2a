"""The benchmark's results rows: one row per (dataset, backbone, layer, seed), as JSON and CSV.

`results.json` is the exact record (a list of row objects); `results.csv` is the same rows for
spreadsheets and pandas (`versions` as a JSON string, missing values as empty cells). Both are written
atomically, so an interrupted run never leaves a half-written table behind.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
from dataclasses import MISSING, asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

from hf_bio.atomic import atomic_write_text

TRAINING_TYPES = ("PT", "PT+FT", "fusion", "baseline", "random")

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"

_SCORE_FIELDS = (
    "val_uar",
    "test_uar",
    "val_accuracy",
    "test_accuracy",
    "test_uar_ci_low",
    "test_uar_ci_high",
)


@dataclass
class ResultRow:
    """One probe: a head trained on one layer (or fusion) of one backbone, on one dataset, with one seed.

    Args:
        dataset: dataset name (`imv`, `watkins`, `abzaliev`, or a user's own).
        backbone: backbone registry name or path (`hubert`, `aves-bio`, `tiny-random-hubert`, ...).
        backbone_label: the name shown in tables and figures (`HuBERT`, `AVES-bio`, ...).
        training: `PT`, `PT+FT`, `fusion`, `baseline` (handcrafted features) or `random` (random weights).
        layer: hidden-state index (0 = encoder input), or a fusion name such as `"mean13"` / `"concat"`.
        seed: seed of the head's training.
        val_uar, test_uar, val_accuracy, test_accuracy: fractions in [0, 1].
        test_uar_ci_low, test_uar_ci_high: bootstrap confidence interval of test UAR (None when not computed).
        split: how the splits were made (e.g. `random-70-20-10-seed42`).
        backbone_id: Hub id or local path the weights came from.
        revision: Hub revision (commit) of the weights, or None.
        versions: package versions of the run (see `package_versions`).
    """

    dataset: str
    backbone: str
    backbone_label: str
    training: str
    layer: int | str
    seed: int
    val_uar: float
    test_uar: float
    val_accuracy: float
    test_accuracy: float
    test_uar_ci_low: float | None = None
    test_uar_ci_high: float | None = None
    split: str = ""
    backbone_id: str = ""
    revision: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.training not in TRAINING_TYPES:
            raise ValueError(f"ResultRow.training={self.training!r}: use one of {', '.join(TRAINING_TYPES)}")
        for name in ("dataset", "backbone", "backbone_label"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"ResultRow.{name} must be a non-empty string, got {getattr(self, name)!r}")
        if isinstance(self.layer, bool) or not isinstance(self.layer, int | str):
            raise ValueError(f"ResultRow.layer must be an int or a fusion name like 'mean13', got {self.layer!r}")
        for name in _SCORE_FIELDS:
            value = getattr(self, name)
            if value is None and name.startswith("test_uar_ci"):
                continue
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"ResultRow.{name}={value!r} for {self.dataset}/{self.backbone}/layer {self.layer}: "
                    "scores are fractions in [0, 1] (not percent)"
                )
        if not isinstance(self.versions, dict):
            raise ValueError(f"ResultRow.versions must be a dict of package -> version, got {type(self.versions).__name__}")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "row") -> ResultRow:
        """Build a row from a JSON/CSV mapping; `where` names the source in error messages."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{where}: unknown column(s) {sorted(unknown)}; expected a subset of {sorted(names)}")
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = required - set(data)
        if missing:
            raise ValueError(f"{where}: missing column(s) {sorted(missing)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that decide the numbers; `"not installed"` for absent ones."""
    from hf_bio import __version__

    versions = {"python": platform.python_version()}
    for package in ("torch", "torchaudio", "transformers", "datasets", "accelerate", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    versions["hf_bio"] = __version__
    return versions


def check_unique(rows: list[ResultRow]) -> None:
    """Raise if two rows share (dataset, backbone, layer, seed): means over seeds would silently mix runs."""
    seen: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        key = (row.dataset, row.backbone, row.layer, row.seed)
        if key in seen:
            raise ValueError(
                f"rows {seen[key]} and {i} are both dataset={row.dataset!r} backbone={row.backbone!r} "
                f"layer={row.layer!r} seed={row.seed}: results from different runs or settings are mixed; "
                "keep one row per (dataset, backbone, layer, seed)"
            )
        seen[key] = i


def write_results(rows: list[ResultRow], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write `results.json` and `results.csv` into `out_dir` atomically; returns {"json": path, "csv": path}."""
    for i, row in enumerate(rows):
        if not isinstance(row, ResultRow):
            raise ValueError(f"write_results: rows[{i}] is a {type(row).__name__}; build ResultRow objects")
    check_unique(rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = [row.to_dict() for row in rows]
    json_text = json.dumps(records, indent=2, allow_nan=False) + "\n"

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[f.name for f in fields(ResultRow)], lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow(
            {k: json.dumps(v, sort_keys=True) if k == "versions" else ("" if v is None else v) for k, v in record.items()}
        )
    paths = {"json": out / RESULTS_JSON, "csv": out / RESULTS_CSV}
    atomic_write_text(paths["json"], json_text)
    atomic_write_text(paths["csv"], buffer.getvalue())
    return paths


def read_results(path: str | os.PathLike) -> list[ResultRow]:
    """Read rows from a `results.json`, a `results.csv`, or a folder holding `results.json`."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_JSON
    if not path.is_file():
        raise ValueError(f"no results file at {path}; pass a results.json/results.csv or the benchmark's output folder")
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            return [ResultRow.from_dict(_parse_csv_record(rec, path, i), f"{path} line {i + 2}")
                    for i, rec in enumerate(csv.DictReader(handle))]
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); re-run the benchmark to rewrite it") from err
    if isinstance(data, dict) and "rows" in data:
        data = data["rows"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of result rows, got {type(data).__name__}")
    return [ResultRow.from_dict(rec, f"{path} row {i}") for i, rec in enumerate(data)]


def _parse_csv_record(record: dict[str, str], path: Path, index: int) -> dict[str, Any]:
    where = f"{path} line {index + 2}"
    out: dict[str, Any] = {}
    for key, text in record.items():
        if key is None:
            raise ValueError(f"{where}: more cells than header columns")
        if key in _SCORE_FIELDS:
            try:
                out[key] = None if text == "" else float(text)
            except ValueError as err:
                raise ValueError(f"{where}: column {key}={text!r} is not a number") from err
            if out[key] is not None and math.isnan(out[key]):
                raise ValueError(f"{where}: column {key} is NaN")
        elif key == "seed":
            try:
                out[key] = int(text)
            except ValueError as err:
                raise ValueError(f"{where}: column seed={text!r} is not an integer") from err
        elif key == "layer":
            out[key] = int(text) if text.lstrip("-").isdigit() else text
        elif key == "versions":
            try:
                out[key] = json.loads(text) if text else {}
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: column versions is not a JSON object ({err})") from err
        elif key == "revision":
            out[key] = text or None
        else:
            out[key] = text
    return out


# ---------------------------------------------------------------------------------------------------------
# From a training run folder (BRIEF contract 5) to rows


def load_run_predictions(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read `RUN_DIR/predictions.safetensors` as numpy arrays.

    Keys (contract 5): `test_labels` [N], `test_predictions` [L, N] (argmax per trained layer, in the order
    of the layers in `results.json`), `val_labels`, `val_predictions`. A leading seed axis [S, L, N] is
    accepted too, seeds in the order of `results.json`'s `seeds`; when the file also holds
    `<split>_predictions_per_seed` [S, L, N] (hf_bio.train writes the first seed alone under the plain
    name), that is what `<split>_predictions` returns, so every seed is scored.
    """
    from safetensors.numpy import load_file

    path = Path(run_dir) / "predictions.safetensors"
    if not path.is_file():
        raise ValueError(f"{path} does not exist; train the run first (it writes the per-clip predictions)")
    arrays = load_file(str(path))
    for key in ("test_labels", "test_predictions"):
        if key not in arrays:
            raise ValueError(f"{path} has no tensor {key!r} (found {sorted(arrays)}); re-run training to rewrite it")
    for split in ("test", "val"):
        if f"{split}_predictions_per_seed" in arrays:
            arrays[f"{split}_predictions"] = arrays[f"{split}_predictions_per_seed"]
    return arrays


def rows_from_run(
    run_dir: str | os.PathLike,
    training: str | None = None,
    backbone_label: str | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> list[ResultRow]:
    """Turn a training run folder (`results.json` + `predictions.safetensors`) into result rows.

    `training` and `backbone_label` default to the backbone registry's (`PT`/`PT+FT`, paper label); give
    them for other backbones (e.g. `training="random"` for tiny random ones). When the per-clip
    predictions are there, each row gets a bootstrap interval of its test UAR (seeded by the row's seed).
    """
    from hf_bio.stats import bootstrap_ci

    run_dir = Path(run_dir)
    path = run_dir / RESULTS_JSON
    if not path.is_file():
        raise ValueError(f"no {RESULTS_JSON} in run folder {run_dir}; train it first")
    run = json.loads(path.read_text())
    for key in ("dataset", "backbone", "layers"):
        if key not in run:
            raise ValueError(f"{path}: missing key {key!r} (contract: dataset, backbone, layers, seeds, versions)")
    backbone = run["backbone"]
    name = backbone.get("name") or backbone.get("hub_id")
    if training is None or backbone_label is None:
        from hf_bio.backbones import BACKBONES

        spec = BACKBONES.get(name)
        if spec is None:
            raise ValueError(
                f"{path}: backbone {name!r} is not in the registry; pass training= and backbone_label= for it"
            )
        if training is None:
            # The registry says PT / PT+FT for pretrained models; its other entries are baselines or random.
            training = spec.training if spec.training in TRAINING_TYPES else (
                "baseline" if spec.family == "handcrafted" else "random" if "random" in spec.name else None)
            if training is None:
                raise ValueError(f"{path}: cannot tell the training type of {name!r} ({spec.training}); pass training=")
        backbone_label = backbone_label or spec.paper_label

    predictions = None
    if (run_dir / "predictions.safetensors").is_file():
        arrays = load_run_predictions(run_dir)
        labels = arrays["test_labels"]
        predictions = arrays["test_predictions"]
        if predictions.ndim == 2:
            predictions = predictions[None]
    layer_order = list(dict.fromkeys(entry["layer"] for entry in run["layers"]))
    seeds = run.get("seeds") or list(dict.fromkeys(entry["seed"] for entry in run["layers"]))
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if predictions is not None and (predictions.ndim != 3 or predictions.shape[:2] != (len(seeds), len(layer_order))):
        raise ValueError(
            f"{run_dir}/predictions.safetensors: test_predictions has shape {tuple(predictions.shape)} but "
            f"results.json lists {len(seeds)} seed(s) and {len(layer_order)} layer(s): expected "
            f"[{len(layer_order)}, N] for one seed or [{len(seeds)}, {len(layer_order)}, N]"
        )

    rows = []
    for i, entry in enumerate(run["layers"]):
        where = f"{path} layers[{i}]"
        missing = {"layer", "seed", "val_uar", "test_uar", "val_accuracy", "test_accuracy"} - set(entry)
        if missing:
            raise ValueError(f"{where}: missing {sorted(missing)}")
        ci_low = ci_high = None
        if predictions is not None:
            layer_preds = predictions[seeds.index(entry["seed"]), layer_order.index(entry["layer"])]
            ci_low, ci_high = bootstrap_ci(labels, layer_preds, n_resamples=n_resamples, confidence=confidence,
                                           seed=int(entry["seed"]))
        row = {
            "dataset": run["dataset"]["name"],
            "backbone": name,
            "backbone_label": backbone_label,
            "training": training,
            "layer": entry["layer"],
            "seed": int(entry["seed"]),
            "val_uar": entry["val_uar"],
            "test_uar": entry["test_uar"],
            "val_accuracy": entry["val_accuracy"],
            "test_accuracy": entry["test_accuracy"],
            "test_uar_ci_low": ci_low,
            "test_uar_ci_high": ci_high,
            "split": str(run["dataset"].get("split_method", "")),
            "backbone_id": backbone.get("hub_id") or "",
            "revision": backbone.get("revision"),
            "versions": run.get("versions", {}),
        }
        rows.append(ResultRow.from_dict(row, where))
    return rows
