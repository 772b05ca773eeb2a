"""Layer-wise training from cached features: correctness, determinism, resume, bad input, accelerate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_bio.feature_set import FeatureSet
from hf_bio.recipe import TrainRecipe
from hf_bio.run_outputs import load_head
from hf_bio.train import train_layerwise

ROOT = Path(__file__).resolve().parents[1]
INFORMATIVE = 1


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _split(n: int, seed: int, split: str, num_labels: int = 3, backbone: str = "tiny-random-hubert") -> FeatureSet:
    """Layer 1 separates the classes; layers 0 and 2 are pure noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % num_labels
    x = torch.randn(n, 3, 8, generator=g) * 2.0 + 5.0  # offset and scale: standardisation must undo them
    x[:, INFORMATIVE, :num_labels] += 10.0 * torch.nn.functional.one_hot(y, num_labels)
    meta = {
        "backbone": {"name": backbone, "hub_id": None, "revision": None},
        "dataset": {"name": "synthetic", "fingerprint": "f00d", "split_method": "random"},
        "split": split,
        "pooling": "mean+std",
        "extraction": {},
    }
    return FeatureSet(x, y, [f"call{i}" for i in range(num_labels)], meta)


@pytest.fixture(scope="module")
def splits():
    return _split(96, 0, "train"), _split(48, 1, "validation"), _split(48, 2, "test")


# Short patiences so that per-layer early stopping and learning-rate reductions happen within the run.
RECIPE = TrainRecipe(max_epochs=8, seeds=(7,), early_stopping_patience=3, plateau_patience=1)


@pytest.fixture(scope="module")
def run(splits, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return out, train_layerwise(*splits, recipe=RECIPE, output_dir=out)


def test_learns_the_informative_layer_only(run):
    _, results = run
    by_layer = {r["layer"]: r for r in results["layers"]}
    assert by_layer[INFORMATIVE]["test_uar"] >= 0.95
    for noise in (0, 2):
        assert by_layer[noise]["test_uar"] < 0.7  # chance is 1/3; 48 test clips leave some spread
    assert results["best_layer"] == INFORMATIVE
    assert results["test_uar"] == by_layer[INFORMATIVE]["test_uar"]


def test_run_dir_contract(run, splits):
    out, results = run
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    for key in ("dataset", "backbone", "recipe", "seeds", "layers", "best_layer", "test_uar", "versions"):
        assert key in on_disk
    assert on_disk["dataset"]["fingerprint"] == "f00d" and on_disk["dataset"]["label_names"] == ["call0", "call1", "call2"]
    assert on_disk["recipe"]["lr"] == 1e-3 and on_disk["recipe"]["batch_size"] == 16
    low, high = on_disk["test_uar_ci95"]  # bootstrap interval of the chosen layer's test UAR
    assert 0.0 <= low <= on_disk["test_uar"] <= high <= 1.0 and low < high
    row = on_disk["layers"][0]
    assert set(row) >= {"layer", "seed", "val_uar", "test_uar", "val_accuracy", "test_accuracy", "best_epoch"}
    preds = load_file(out / "predictions.safetensors")
    assert preds["test_predictions"].shape == (3, 48) and torch.equal(preds["test_labels"], splits[2].labels)
    assert preds["val_predictions"].shape == (3, 48)
    acc = (preds["test_predictions"][INFORMATIVE] == preds["test_labels"]).double().mean()
    assert float(acc) == pytest.approx(on_disk["layers"][INFORMATIVE]["test_accuracy"])
    stats = load_file(out / "feature_stats.safetensors")
    assert stats["feature_mean"].shape == stats["feature_std"].shape == (3, 8)
    torch.testing.assert_close(stats["feature_mean"], splits[0].features.mean(0), rtol=1e-4, atol=1e-4)
    curves = json.loads((out / "curves.json").read_text())["layers"]
    assert (out / "curves.png").stat().st_size > 0 and (out / "curves.pdf").stat().st_size > 0
    assert len(curves) == 3 and all(len(c["val_uar"]) == len(c["train_loss"]) >= 1 for c in curves)
    head = load_head(out, INFORMATIVE)
    assert set(head) >= {"blocks.0.0.weight", "blocks.0.1.bias", "blocks.2.1.weight", "classifier.weight"}
    assert head["blocks.0.0.weight"].shape == (128, 8) and head["classifier.weight"].shape == (3, 32)


def test_best_head_reproduces_the_reported_test_predictions(run, splits):
    """heads.safetensors + feature_stats.safetensors rebuild exactly the predictions of the run."""
    out, _ = run
    from tests.test_train_heads import ReferenceHead

    stats = load_file(out / "feature_stats.safetensors")
    head = ReferenceHead(8, (128, 64, 32), 3)
    head.load_state_dict(load_head(out, INFORMATIVE))
    x = (splits[2].features - stats["feature_mean"]) / stats["feature_std"]
    with torch.no_grad():
        preds = head(x[:, INFORMATIVE]).argmax(-1)
    assert torch.equal(preds, load_file(out / "predictions.safetensors")["test_predictions"][INFORMATIVE])


def test_stacked_equals_one_layer_alone(run, splits, tmp_path):
    """Training layer 2 alone gives the same head as training it stacked with the others."""
    _, results = run
    alone = train_layerwise(*splits, recipe=TrainRecipe(**{**RECIPE.to_dict(), "layers": (2,)}), output_dir=tmp_path)
    stacked = next(r for r in results["layers"] if r["layer"] == 2)
    assert alone["layers"][0]["best_epoch"] == stacked["best_epoch"]
    assert alone["layers"][0]["val_uar"] == pytest.approx(stacked["val_uar"])
    assert alone["layers"][0]["test_uar"] == pytest.approx(stacked["test_uar"])
    assert alone["layers"][0]["epochs_trained"] == stacked["epochs_trained"]


def test_each_layer_keeps_its_own_schedule_and_early_stopping(run):
    out, results = run
    trained = [r["epochs_trained"] for r in results["layers"]]
    assert min(trained) < RECIPE.max_epochs  # layers stopped early (test_stacked_equals_one_layer_alone: independently)
    curves = json.loads((out / "curves.json").read_text())["layers"]
    assert (out / "curves.png").stat().st_size > 0 and (out / "curves.pdf").stat().st_size > 0
    assert any(min(c["lr"]) < RECIPE.lr for c in curves)  # a plateau reduced some layer's learning rate
    for c, r in zip(curves, results["layers"], strict=True):
        assert max(c["val_uar"]) == pytest.approx(r["val_uar"])  # the reported head is the best epoch's
        assert c["val_uar"].index(max(c["val_uar"])) == r["best_epoch"]


def test_deterministic_with_a_seed_and_seeds_differ(run, splits, tmp_path):
    out, results = run
    again = train_layerwise(*splits, recipe=RECIPE, output_dir=tmp_path / "again")
    assert again["layers"] == results["layers"]
    assert torch.equal(
        load_file(out / "heads.safetensors")["seed7.layer1.classifier.weight"],
        load_file(tmp_path / "again" / "heads.safetensors")["seed7.layer1.classifier.weight"],
    )
    two = train_layerwise(*splits, recipe=TrainRecipe(max_epochs=2, seeds=(7, 8), layers=(0,)), output_dir=tmp_path / "two")
    assert [r["seed"] for r in two["layers"]] == [7, 8]
    heads = load_file(tmp_path / "two" / "heads.safetensors")
    assert not torch.equal(heads["seed7.layer0.classifier.weight"], heads["seed8.layer0.classifier.weight"])


def test_resume_after_interruption_equals_uninterrupted(run, splits, tmp_path):
    out, results = run

    def interrupt(epoch: int) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_layerwise(*splits, recipe=RECIPE, output_dir=tmp_path, on_epoch_end=interrupt)
    assert (tmp_path / "checkpoint").is_dir() and not (tmp_path / "results.json").exists()
    resumed = train_layerwise(*splits, recipe=RECIPE, output_dir=tmp_path, resume=True)
    assert resumed["layers"] == results["layers"]
    assert json.loads((tmp_path / "curves.json").read_text()) == json.loads((out / "curves.json").read_text())
    with pytest.raises(ValueError, match="--resume: .*different recipe"):
        train_layerwise(*splits, recipe=TrainRecipe(max_epochs=7, seeds=(7,)), output_dir=tmp_path, resume=True)


def test_bad_inputs(splits, tmp_path):
    train, val, test = splits
    with pytest.raises(ValueError, match="different label sets"):
        train_layerwise(train, _split(30, 1, "validation", num_labels=4), test, RECIPE, tmp_path)
    with pytest.raises(ValueError, match="backbone"):
        train_layerwise(train, val, _split(30, 2, "test", backbone="wavlm"), RECIPE, tmp_path)
    with pytest.raises(ValueError, match="layers"):
        train_layerwise(train, val, test, TrainRecipe(layers=(5,)), tmp_path)
    with pytest.raises(ValueError, match="max_epochs"):
        TrainRecipe(max_epochs=0)
    with pytest.raises(ValueError, match="uar_average"):
        TrainRecipe(uar_average="micro")


def _save_splits(splits, folder: Path) -> list[str]:
    args = []
    for flag, fs in zip(("--train-features", "--val-features", "--test-features"), splits, strict=True):
        fs.save(folder / fs.split)
        args += [flag, str(folder / fs.split)]
    return args


def test_cli_train(splits, tmp_path, capsys):
    from hf_bio.cli import main

    args = _save_splits(splits, tmp_path / "features")
    assert main(["train", *args, "--output-dir", str(tmp_path / "run"), "--max-epochs", "2", "--layers", "1", "--seeds", "3"]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["recipe"]["max_epochs"] == 2 and results["seeds"] == [3] and results["best_layer"] == 1
    assert "best layer" in capsys.readouterr().out


@pytest.mark.slow
def test_accelerate_launch_one_and_two_cpu_processes(splits, tmp_path):
    """The same command line under 1 and 2 CPU processes; the global batch is the same, so are the results."""
    args = _save_splits(splits, tmp_path / "features")
    config = (ROOT / "accelerate_config.yaml").read_text()
    two = config.replace("distributed_type: 'NO'", "distributed_type: MULTI_GPU").replace("num_processes: 1", "num_processes: 2")
    (tmp_path / "two.yaml").write_text(two)
    launch = [sys.executable, "-m", "accelerate.commands.launch"]
    recipe = ["--max-epochs", "3", "--layers", "0", "1"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    results = {}
    for name, cfg in (("one", ROOT / "accelerate_config.yaml"), ("two", tmp_path / "two.yaml")):
        cmd = [*launch, "--config_file", str(cfg), "-m", "hf_bio.train", *args, "--output-dir", str(tmp_path / name), *recipe]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[name] = json.loads((tmp_path / name / "results.json").read_text())
    for a, b in zip(results["one"]["layers"], results["two"]["layers"], strict=True):
        assert a["best_epoch"] == b["best_epoch"]
        assert a["val_uar"] == pytest.approx(b["val_uar"]) and a["test_uar"] == pytest.approx(b["test_uar"])
