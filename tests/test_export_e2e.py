"""End to end: demo corpus -> prepare -> extract (tiny random HuBERT) -> train every layer -> export -> reload.

The exported model, run from audio on the test split, must make exactly the predictions the run reported for
that layer, so its test UAR is the run's test UAR.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]




@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from dataset_scripts.demo import prepare_demo

    root = tmp_path_factory.mktemp("e2e")
    prepare_demo(root / "raw", root / "data", num_twins=1, recordings_per_caller=2, recording_s=12.0,
                 calls_per_recording=20, verbose=False)
    return root


@pytest.fixture(scope="module")
def run(prepared):
    from hf_bio.train import main

    main([
        "--dataset", str(prepared / "data"), "--backbone", "tiny-random-hubert", "--cache-dir", str(prepared / "cache"),
        "--output-dir", str(prepared / "run"), "--max-epochs", "4",
    ])
    return prepared / "run"


def assert_reproduces_run(model, test_rows, run_dir: Path, layer: int) -> None:
    """The model, run from audio on every test clip, predicts what the run recorded for `layer`."""
    with torch.inference_mode():
        predictions = [
            int(model(input_values=torch.tensor(np.asarray(row["audio"]["array"], dtype=np.float32))[None]).logits.argmax())
            for row in test_rows
        ]
    saved = load_file(str(run_dir / "predictions.safetensors"))
    assert predictions == saved["test_predictions"][saved["layers"].tolist().index(layer)].tolist()


def test_exported_model_reproduces_the_runs_test_predictions(prepared, run):
    from datasets import load_from_disk
    from transformers import AutoModelForAudioClassification, pipeline

    import hf_bio.modeling_bio  # noqa: F401  (registers the model type with the Auto classes)
    from hf_bio.uar import uar_score

    results = json.loads((run / "results.json").read_text())
    best = results["best_layer"]
    assert {r["layer"] for r in results["layers"]} == {0, 1, 2}  # every hidden state of the 2-layer model
    assert results["dataset"]["name"] == "demo" and results["dataset"]["split_method"] == "paper (seed 42)"
    assert results["backbone"]["name"] == "tiny-random-hubert"
    model = AutoModelForAudioClassification.from_pretrained(run / "model").eval()
    assert model.config.layer_selection == best
    assert list(model.config.id2label.values()) == results["dataset"]["label_names"]
    assert float(model.feature_std.min()) > 0 and not torch.equal(model.feature_std, torch.ones_like(model.feature_std))

    test = load_from_disk(str(prepared / "data"))["test"]
    assert len(test) >= 6
    predictions, labels = [], []
    with torch.inference_mode():
        for row in test:
            audio = torch.tensor(np.asarray(row["audio"]["array"], dtype=np.float32))[None]
            predictions.append(int(model(input_values=audio).logits.argmax(-1)))
            labels.append(int(row["label"]))
    saved = load_file(str(run / "predictions.safetensors"))
    layer_index = saved["layers"].tolist().index(best)
    assert labels == saved["test_labels"].tolist()
    assert predictions == saved["test_predictions"][layer_index].tolist()
    row = next(r for r in results["layers"] if r["layer"] == best)
    assert uar_score(labels, predictions, average=results["uar_average"]) == pytest.approx(row["test_uar"], abs=1e-12)

    classifier = pipeline("audio-classification", model=str(run / "model"), device="cpu")
    for i in range(2):
        clip = np.asarray(test[i]["audio"]["array"], dtype=np.float32)
        top = classifier({"raw": clip, "sampling_rate": 16000}, top_k=1)[0]["label"]
        assert top == results["dataset"]["label_names"][predictions[i]]


def test_any_layer_exports_and_reproduces_its_own_predictions(prepared, run, tmp_path):
    """The worst layer too (it makes mistakes on the demo), exported from a backbone name, not the model."""
    import shutil

    from transformers import AutoModelForAudioClassification

    from hf_bio.export import export_model

    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("model", "checkpoint"))
    results = json.loads((copy / "results.json").read_text())
    worst = min(results["layers"], key=lambda r: (r["test_uar"], -r["layer"]))
    folder = export_model(copy, "tiny-random-hubert", layer=worst["layer"])
    model = AutoModelForAudioClassification.from_pretrained(folder).eval()
    assert model.config.layer_selection == worst["layer"]

    from datasets import load_from_disk

    test = load_from_disk(str(prepared / "data"))["test"]
    assert_reproduces_run(model, test, copy, worst["layer"])

    with pytest.raises(ValueError, match="layer 7 was not trained"):
        export_model(copy, "tiny-random-hubert", layer=7)
    with pytest.raises(ValueError, match="seed 1 was not trained"):
        export_model(copy, "tiny-random-hubert", layer=0, seed=1)
    with pytest.raises(ValueError, match="not a training run folder"):
        export_model(tmp_path / "nothing", "tiny-random-hubert")


def test_the_papers_repeat_padding_travels_from_extraction_to_the_exported_model(prepared, run, tmp_path):
    """--min-input-samples 5000 (the paper's rule) is recorded with the run and the export follows it."""
    from datasets import load_from_disk

    from hf_bio.cli import main
    from hf_bio.configuration_bio import DEFAULT_MIN_INPUT_SAMPLES, PAPER_MIN_INPUT_SAMPLES
    from hf_bio.export import export_model
    from hf_bio.modeling_bio import BioClassifierModel

    default_run = json.loads((run / "results.json").read_text())
    assert default_run["extraction"]["min_input_samples"] == DEFAULT_MIN_INPUT_SAMPLES
    test = load_from_disk(str(prepared / "data"))["test"]
    short = [i for i, row in enumerate(test) if len(row["audio"]["array"]) < PAPER_MIN_INPUT_SAMPLES]
    assert short, "the demo's test split needs clips shorter than the paper's 5,000 samples"

    out = tmp_path / "paper"
    assert main([
        "train", "--dataset", str(prepared / "data"), "--backbone", "tiny-random-hubert", "--cache-dir",
        str(tmp_path / "cache"), "--output-dir", str(out), "--max-epochs", "2", "--min-input-samples", "5000",
    ]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["extraction"]["min_input_samples"] == PAPER_MIN_INPUT_SAMPLES
    model = BioClassifierModel.from_pretrained(out / "model").eval()
    assert model.config.min_input_samples == PAPER_MIN_INPUT_SAMPLES
    assert_reproduces_run(model, test, out, results["best_layer"])

    with pytest.raises(ValueError, match=r"min_input_samples 5000 \(model: 400\)"):
        export_model(out, "tiny-random-hubert", min_input_samples=DEFAULT_MIN_INPUT_SAMPLES)


def test_a_second_run_reuses_the_feature_cache(prepared, run, monkeypatch):
    """Through the other entry point, `hf-bio train --dataset ...`: same cache, same results."""
    from hf_bio.cli import main
    from hf_bio.modeling_bio import BioClassifierModel

    def no_backbone(*args, **kwargs):
        raise AssertionError("the backbone ran although every split is cached")

    monkeypatch.setattr(BioClassifierModel, "pooled_hidden_states", no_backbone)
    assert main([
        "train", "--dataset", str(prepared / "data"), "--backbone", "tiny-random-hubert",
        "--cache-dir", str(prepared / "cache"), "--output-dir", str(prepared / "run2"), "--max-epochs", "4", "--no-export",
    ]) == 0
    first = json.loads((run / "results.json").read_text())
    second = json.loads((prepared / "run2" / "results.json").read_text())
    assert [r["test_uar"] for r in second["layers"]] == [r["test_uar"] for r in first["layers"]]
    assert not (prepared / "run2" / "model").exists()


def test_cli_extract_prints_the_cache_folders(prepared, run, capsys, monkeypatch):
    from hf_bio.cli import main
    from hf_bio.modeling_bio import BioClassifierModel

    def no_weights(*args, **kwargs):
        raise AssertionError("the backbone was loaded although every split is cached")

    # A finished cache is found from the backbone's config alone: no weights load.
    monkeypatch.setattr(BioClassifierModel, "from_backbone", no_weights)

    assert main(["extract", str(prepared / "data"), "--backbone", "tiny-random-hubert",
                 "--cache-dir", str(prepared / "cache"), "--split", "all"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["train", "validation", "test"]
    for line in lines:
        folder = line.rsplit("-> ", 1)[1]
        assert (prepared / "cache").as_posix() in folder and (Path(folder) / "meta.json").is_file()
    assert main(["extract", str(prepared / "nowhere"), "--backbone", "tiny-random-hubert"]) == 1
    assert "error:" in capsys.readouterr().err


def test_two_accelerate_processes_share_the_extraction(prepared, run, tmp_path):
    """`accelerate launch` with 2 CPU processes: each extracts its own shards, the cache equals one process's."""
    from hf_bio.feature_set import FeatureSet

    root = Path(__file__).resolve().parent.parent
    config = (root / "accelerate_config.yaml").read_text()
    two = config.replace("distributed_type: 'NO'", "distributed_type: MULTI_GPU").replace("num_processes: 1", "num_processes: 2")
    (tmp_path / "two.yaml").write_text(two)
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(tmp_path / "two.yaml"), "-m", "hf_bio.train",
        "--dataset", str(prepared / "data"), "--backbone", "tiny-random-hubert", "--cache-dir", str(tmp_path / "cache"),
        "--shard-size", "8", "--output-dir", str(tmp_path / "run"), "--max-epochs", "2", "--no-export",
    ]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    # The main process computes only the even shards and refuses to assemble with any shard missing, so
    # a finished cache means the second process did its share.
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "results.json").is_file()
    for entry in (tmp_path / "cache").iterdir():
        two_procs = FeatureSet.load(entry / "features")
        assert not (entry / "shards").exists()
        one_proc = next(
            FeatureSet.load(e / "features") for e in (prepared / "cache").iterdir()
            if json.loads((e / "key.json").read_text())["inputs"]["split"] == two_procs.split
        )
        assert torch.equal(two_procs.labels, one_proc.labels)
        # Other shard sizes give other batches: equal up to float rounding, not bit for bit.
        assert torch.allclose(two_procs.features, one_proc.features, atol=1e-5)


def test_choose_head_takes_the_best_layer_and_that_layers_best_seed():
    from hf_bio.export import choose_head

    results = {"best_layer": 1, "layers": [
        {"layer": 0, "seed": 1, "val_uar": 0.9}, {"layer": 1, "seed": 1, "val_uar": 0.5},
        {"layer": 1, "seed": 2, "val_uar": 0.7}, {"layer": 1, "seed": 3, "val_uar": 0.7},
    ]}
    assert choose_head(results) == (1, 2)  # best seed of the best layer; ties go to the first listed
    assert choose_head(results, layer=0) == (0, 1)
    assert choose_head(results, seed=3) == (1, 3)
    with pytest.raises(ValueError, match="seed 3 was not trained"):
        choose_head(results, layer=0, seed=3)
