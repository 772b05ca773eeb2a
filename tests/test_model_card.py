"""The model card is built from a run folder and parses back with huggingface_hub's card tools."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, metadata_load

from hf_bio.model_card import build_model_card, hub_base_model, load_results
from tests.helpers_models import make_tiny_audio_classifier

LABELS = ["Phee", "Twitter", "Trill"]


def make_results(**overrides: object) -> dict:
    layers = [
        {"layer": layer, "seed": seed, "val_uar": 0.40 + 0.01 * layer + 0.001 * seed,
         "test_uar": 0.38 + 0.01 * layer, "val_accuracy": 0.5, "test_accuracy": 0.45 + 0.01 * seed,
         "best_epoch": 3}
        for layer in range(3)
        for seed in (0, 1)
    ]
    results = {
        "dataset": {"name": "imv", "fingerprint": "f00d", "split_method": "random 70/20/10, seed 42",
                    "label_names": LABELS},
        "backbone": {"name": "hubert", "hub_id": "facebook/hubert-base-ls960", "revision": "abc123"},
        "recipe": {"lr": 0.001, "batch_size": 16, "max_epochs": 30, "hidden_sizes": [128, 64, 32]},
        "seeds": [0, 1],
        "layers": layers,
        "best_layer": 2,
        "test_uar": 0.42,
        "test_uar_ci95": [0.37, 0.47],
        "versions": {"hf_bio": "0.1.0", "torch": "2.9.1"},
    }
    results.update(overrides)
    return results


_MODELS: dict[tuple[str, ...], Path] = {}


def write_run(run_dir: Path, results: dict, labels: list[str] = LABELS) -> Path:
    """A run folder: results.json + model/ (one tiny model per label list, copied: saving is slow)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(results))
    key = tuple(labels)
    if key not in _MODELS:
        _MODELS[key] = make_tiny_audio_classifier(Path(tempfile.mkdtemp(prefix="tiny-model-")), labels)
    shutil.copytree(_MODELS[key], run_dir / "model")
    return run_dir


def saved(card: ModelCard, tmp_path: Path) -> Path:
    path = tmp_path / "README.md"
    card.save(path)
    return path


def test_metadata_parses_back_with_model_index_equal_to_results(tmp_path: Path) -> None:
    results = make_results()
    run = write_run(tmp_path / "run", results)
    path = saved(build_model_card(run, "someone/hubert-imv"), tmp_path)

    meta = metadata_load(path)
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "audio-classification"
    assert meta["base_model"] == "facebook/hubert-base-ls960"
    assert meta["datasets"] == ["imv"]
    assert meta["metrics"] == ["uar", "accuracy"]
    assert set(meta["tags"]) >= {"bioacoustics", "audio-classification", "hf-bio"}
    assert meta["license"] == "apache-2.0"

    [entry] = meta["model-index"]
    assert entry["name"] == "hubert-imv"
    [result] = entry["results"]
    assert result["task"]["type"] == "audio-classification"
    assert result["dataset"] == {"type": "imv", "name": "imv", "split": "test"}
    metrics = {m["type"]: m["value"] for m in result["metrics"]}
    assert metrics["uar"] == results["test_uar"]
    assert [metrics["uar_ci95_low"], metrics["uar_ci95_high"]] == results["test_uar_ci95"]
    best_rows = [r for r in results["layers"] if r["layer"] == results["best_layer"]]
    assert metrics["accuracy"] == pytest.approx(sum(r["test_accuracy"] for r in best_rows) / len(best_rows))

    # huggingface_hub's own parser turns the model-index back into EvalResults.
    card = ModelCard.load(path, ignore_metadata_errors=False)
    by_type = {r.metric_type: r for r in card.data.eval_results}
    assert by_type["uar"].metric_value == results["test_uar"]
    assert by_type["uar"].dataset_split == "test"


def test_prose_names_layer_recipe_labels_loading_and_citation(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", make_results())
    text = ModelCard.load(saved(build_model_card(run, "someone/hubert-imv"), tmp_path)).text
    assert "hidden state **2**" in text and "| 2 (chosen) |" in text
    assert "chosen on **validation** UAR" in text
    for key, value in (("lr", "0.001"), ("batch_size", "16"), ("hidden_sizes", "[128, 64, 32]")):
        assert f"| `{key}` | `{value}` |" in text
    for index, name in enumerate(LABELS):
        assert f"- `{index}`: {name}" in text
    assert 'BioClassifierModel.from_pretrained("someone/hubert-imv")' in text
    assert 'pipeline("audio-classification", model="someone/hubert-imv", trust_remote_code=True)' in text
    assert "Sarkar, Eklavya and Magimai.-Doss, Mathew" in text and "ICASSP" in text
    assert "95% confidence interval of the test UAR: [0.3700, 0.4700]" in text
    assert "any other species" in text and "Retrain" in text
    assert "Testing only" not in text  # a real backbone gets no random-weights warning


def test_without_ci_no_interval_is_invented(tmp_path: Path) -> None:
    results = make_results()
    del results["test_uar_ci95"]
    run = write_run(tmp_path / "run", results)
    path = saved(build_model_card(run), tmp_path)
    metric_types = {m["type"] for m in metadata_load(path)["model-index"][0]["results"][0]["metrics"]}
    assert metric_types == {"uar", "accuracy"}
    text = path.read_text()
    assert "No confidence interval is reported" in text
    assert "REPO_ID" in text  # no repo given: a placeholder, not a guess


def test_random_or_local_backbone_has_no_base_model_and_a_warning(tmp_path: Path) -> None:
    backbone = {"name": "tiny-random-hubert", "hub_id": str(tmp_path / "tiny-random-hubert"), "revision": None}
    (tmp_path / "tiny-random-hubert").mkdir()
    run = write_run(tmp_path / "run", make_results(backbone=backbone))
    path = saved(build_model_card(run), tmp_path)
    assert "base_model" not in metadata_load(path)
    assert "Testing only" in path.read_text()
    assert hub_base_model({"hub_id": None}) is None
    assert hub_base_model({"hub_id": "microsoft/wavlm-base"}) == "microsoft/wavlm-base"


def test_missing_field_is_named(tmp_path: Path) -> None:
    results = make_results()
    del results["best_layer"]
    run = write_run(tmp_path / "run", results)
    with pytest.raises(ValueError, match="'best_layer'"):
        load_results(run)
    with pytest.raises(ValueError, match="no results.json"):
        build_model_card(tmp_path / "nowhere")
    bad_ci = write_run(tmp_path / "run2", make_results(test_uar_ci95=[0.5, 0.4]))
    with pytest.raises(ValueError, match="test_uar_ci95"):
        build_model_card(bad_ci)


def test_model_labels_must_match_results(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", make_results(), labels=["Phee", "Trill", "Twitter"])
    with pytest.raises(ValueError, match="id2label"):
        build_model_card(run)


def test_the_default_template_ships_inside_the_package() -> None:
    """A wheel install has no checkout around it: the template must be package data of hf_bio."""
    import tomllib

    from hf_bio.model_card import DEFAULT_TEMPLATE

    root = Path(__file__).resolve().parent.parent
    package_data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["hf_bio"]
    assert DEFAULT_TEMPLATE.parent == root / "hf_bio" and DEFAULT_TEMPLATE.is_file()
    assert DEFAULT_TEMPLATE.name in package_data
