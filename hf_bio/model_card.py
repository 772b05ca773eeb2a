"""The model card of a trained run, and the folder `hf-bio push-model` uploads.

`build_model_card(run_dir)` fills `hf_bio/model_card_template.md` from `RUN_DIR/results.json` (the training
run's record, contract 5) and `RUN_DIR/model/config.json`; `stage_model_folder` writes the model files,
that card as README.md, and a copy of results.json into one folder. Every number in the card is copied
from results.json or averaged from its per-layer rows; nothing is estimated here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

# Inside the package (package data), so a wheel install has it too.
DEFAULT_TEMPLATE = Path(__file__).resolve().parent / "model_card_template.md"
DEFAULT_LICENSE = "apache-2.0"
TAGS = ["bioacoustics", "audio-classification", "hf-bio"]
_REQUIRED = {
    "dataset": "the dataset's name and label_names",
    "backbone": "the backbone's name (and hub_id)",
    "recipe": "the training hyper-parameters",
    "layers": "the per-layer, per-seed scores",
    "best_layer": "the layer chosen on validation UAR",
    "test_uar": "the best layer's test UAR",
}


def load_results(run_dir: str | Path) -> dict[str, Any]:
    """Read and check `RUN_DIR/results.json` for what a model card needs.

    Raises:
        ValueError: missing file or field, naming it and what writes it.
    """
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise ValueError(f"{path}: no results.json; train first (`hf-bio train ... --output {run_dir}`)")
    try:
        results = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    for key, meaning in _REQUIRED.items():
        if key not in results:
            raise ValueError(f"{path}: field '{key}' ({meaning}) is missing")
    for key in ("name", "label_names"):
        if not results["dataset"].get(key):
            raise ValueError(f"{path}: field 'dataset.{key}' is missing or empty")
    if not results["backbone"].get("name"):
        raise ValueError(f"{path}: field 'backbone.name' is missing or empty")
    ci = results.get("test_uar_ci95")
    if ci is not None and (not isinstance(ci, list | tuple) or len(ci) != 2 or not ci[0] <= ci[1]):
        raise ValueError(f"{path}: field 'test_uar_ci95' must be [low, high] with low <= high, got {ci!r}")
    return results


def hub_base_model(backbone: dict[str, Any]) -> str | None:
    """The backbone's Hub id when it is one (not a local folder, not a converted checkpoint)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    hub_id = backbone.get("hub_id")
    if not hub_id or Path(hub_id).expanduser().exists() or hub_id.count("/") != 1:
        return None
    try:
        validate_repo_id(hub_id)
    except HFValidationError:
        return None
    return hub_id


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _layer_means(rows: list[dict[str, Any]], key: str) -> dict[int, float]:
    by_layer: dict[int, list[float]] = {}
    for row in rows:
        if row.get(key) is not None:
            by_layer.setdefault(int(row["layer"]), []).append(float(row[key]))
    return {layer: _mean(values) for layer, values in sorted(by_layer.items())}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _check_model_labels(model_dir: Path, label_names: list[str]) -> None:
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        return
    id2label = json.loads(config_path.read_text()).get("id2label") or {}
    model_labels = [id2label[k] for k in sorted(id2label, key=int)]
    if model_labels != list(label_names):
        raise ValueError(
            f"{config_path}: id2label {model_labels} differs from results.json dataset.label_names "
            f"{list(label_names)}; re-export the model from this run"
        )


def build_model_card(
    run_dir: str | Path,
    repo_id: str | None = None,
    *,
    license: str = DEFAULT_LICENSE,
    template_path: str | Path | None = None,
) -> ModelCard:
    """Fill the model card template from a training run folder.

    Args:
        run_dir: the run folder, with `results.json` and (once exported) `model/`.
        repo_id: the Hub repo the card is for; used in the loading examples (`REPO_ID` when None).
        license: the licence of the model's files (a Hub licence id).
        template_path: a Jinja template; defaults to the package's `model_card_template.md`.

    Raises:
        ValueError: a missing or malformed field of results.json, or labels of `model/` that differ.
    """
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    template_path = Path(template_path) if template_path else DEFAULT_TEMPLATE
    if not template_path.is_file():
        raise ValueError(f"{template_path}: model card template not found; pass template_path=")
    dataset, backbone = results["dataset"], results["backbone"]
    label_names = list(dataset["label_names"])
    _check_model_labels(run_dir / "model", label_names)

    best_layer = int(results["best_layer"])
    rows = results["layers"]
    val_uar, test_uar_by_layer = _layer_means(rows, "val_uar"), _layer_means(rows, "test_uar")
    test_accuracy = _layer_means(rows, "test_accuracy").get(best_layer)
    ci = results.get("test_uar_ci95")
    base_model = hub_base_model(backbone)
    dataset_id = dataset.get("hub_id") or dataset["name"]
    model_name = repo_id.split("/")[-1] if repo_id else f"hf-bio-{backbone['name']}-{dataset['name']}"

    def result(metric_type: str, metric_name: str, value: float) -> EvalResult:
        return EvalResult(
            task_type="audio-classification",
            task_name="Audio classification",
            dataset_type=dataset_id,
            dataset_name=dataset["name"],
            dataset_split="test",
            metric_type=metric_type,
            metric_name=metric_name,
            metric_value=value,
        )

    eval_results = [result("uar", f"Test UAR (layer {best_layer})", float(results["test_uar"]))]
    if test_accuracy is not None:
        eval_results.append(result("accuracy", f"Test accuracy (layer {best_layer})", test_accuracy))
    if ci is not None:
        # model-index has no field for an interval: its two bounds are two named metrics.
        eval_results.append(result("uar_ci95_low", "Test UAR 95% CI, lower bound", float(ci[0])))
        eval_results.append(result("uar_ci95_high", "Test UAR 95% CI, upper bound", float(ci[1])))

    card_data = ModelCardData(
        model_name=model_name,
        library_name="transformers",
        pipeline_tag="audio-classification",
        base_model=base_model,
        datasets=[dataset_id],
        metrics=["uar", "accuracy"],
        tags=list(TAGS),
        license=license,
        eval_results=eval_results,
    )
    seeds = results.get("seeds") or sorted({row.get("seed") for row in rows if row.get("seed") is not None})
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        repo_id=repo_id or "REPO_ID",
        base_model=base_model,
        random_backbone=str(backbone["name"]).startswith("tiny-random") or bool(backbone.get("random")),
        backbone_name=backbone["name"],
        backbone_hub_id=backbone.get("hub_id"),
        backbone_revision=backbone.get("revision"),
        dataset_name=dataset["name"],
        dataset_fingerprint=dataset.get("fingerprint"),
        split_method=dataset.get("split_method"),
        labels=list(enumerate(label_names)),
        best_layer=best_layer,
        test_uar=_fmt(float(results["test_uar"])),
        test_accuracy=_fmt(test_accuracy),
        test_uar_ci95=[_fmt(float(ci[0])), _fmt(float(ci[1]))] if ci is not None else None,
        num_seeds=len(seeds) or 1,
        seeds=", ".join(str(s) for s in seeds) or "not recorded",
        layer_rows=[
            {"layer": layer, "val_uar": _fmt(val_uar.get(layer)), "test_uar": _fmt(test_uar_by_layer.get(layer))}
            for layer in sorted(set(val_uar) | set(test_uar_by_layer))
        ],
        recipe=sorted(results["recipe"].items()),
        versions=sorted((results.get("versions") or {}).items()),
        license=license,
    )


def _check_remote_code_files(model_dir: Path) -> None:
    """Every module named in config.json's auto_map must travel with the model, or remote code breaks."""
    config = json.loads((model_dir / "config.json").read_text())
    for key, reference in (config.get("auto_map") or {}).items():
        references = reference if isinstance(reference, list) else [reference]
        for ref in references:
            if not ref or "--" in ref:  # `repo--module.Class` points at another repo
                continue
            module_file = model_dir / (ref.rsplit(".", 1)[0] + ".py")
            if not module_file.is_file():
                raise ValueError(
                    f"{model_dir / 'config.json'}: auto_map.{key} names {ref!r} but {module_file.name} is "
                    f"not in {model_dir}; re-export the model with its code files"
                )


def stage_model_folder(
    run_dir: str | Path,
    out_dir: str | Path,
    repo_id: str | None = None,
    *,
    license: str = DEFAULT_LICENSE,
) -> Path:
    """Write into `out_dir` exactly what `hf-bio push-model` uploads.

    That is the files of `RUN_DIR/model/` (weights, config, feature extractor, any remote-code modules),
    the model card as `README.md`, and a copy of `results.json`.

    Raises:
        ValueError: no `RUN_DIR/model/config.json`, a module named in `auto_map` is missing, a non-empty
            `out_dir`, or any error of `build_model_card`.
    """
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    model_dir = run_dir / "model"
    if not (model_dir / "config.json").is_file():
        raise ValueError(f"{model_dir}: no exported model (config.json missing); export the run's model first")
    _check_remote_code_files(model_dir)
    card = build_model_card(run_dir, repo_id, license=license)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()):
        raise ValueError(f"{out_dir}: staging folder must be empty")
    shutil.copytree(
        model_dir,
        out_dir,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*", "README.md", "results.json"),
    )
    shutil.copy2(run_dir / "results.json", out_dir / "results.json")
    card.save(out_dir / "README.md")
    return out_dir
