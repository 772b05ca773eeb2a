"""The one-command benchmark end to end on a small generated corpus: outputs, resume, preflight, config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_bio.benchmark import BenchmarkConfig, preflight, run_benchmark

BACKBONES = ["tiny-random-hubert", "handcrafted"]
RECIPE = {"seeds": [1, 2], "max_epochs": 3}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from dataset_scripts.demo import prepare_demo

    root = tmp_path_factory.mktemp("bench_data")
    prepare_demo(root / "raw", root / "demo", num_twins=2, recordings_per_caller=1, recording_s=12.0,
                 calls_per_recording=14, verbose=False)
    return root / "demo"


@pytest.fixture(scope="module")
def finished(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_out")
    log: list[str] = []
    config = BenchmarkConfig(datasets=[str(dataset)], backbones=BACKBONES, output_dir=str(out / "results"),
                             recipe=RECIPE, n_resamples=200, figures={"mine": BACKBONES}, max_window_seconds=3.0)
    paths = run_benchmark(config, log=log.append)
    return config, paths, log


@pytest.mark.slow
def test_benchmark_writes_every_output(finished):
    config, paths, log = finished
    out = Path(config.output_dir)
    rows = json.loads((out / "results.json").read_text())
    # tiny random HuBERT: CNN output + 2 layers = 3 hidden states; handcrafted: 1; fusion: mean and concat.
    expected = {("tiny-random-hubert", layer) for layer in (0, 1, 2)} | {("handcrafted", 0)}
    expected |= {("fusion-mean", "mean"), ("fusion-concat", "concat")}
    assert {(r["backbone"], r["layer"]) for r in rows} == expected
    assert len(rows) == len(expected) * 2  # two seeds each
    for row in rows:
        assert 0.0 <= row["test_uar_ci_low"] <= row["test_uar"] <= row["test_uar_ci_high"] <= 1.0
        assert row["versions"] and row["split"] and row["dataset"] == "demo"
    assert {r["training"] for r in rows} == {"random", "baseline", "fusion"}
    csv_lines = (out / "results.csv").read_text().strip().splitlines()
    assert len(csv_lines) == len(rows) + 1
    table = (out / "table.md").read_text()
    assert "**" in table and "Handcrafted" in table and "Fusion" in table
    assert "\\textbf{" in (out / "table.tex").read_text()
    report = (out / "report.md").read_text()
    # paired tests: the best of the 4 models (2 backbones, 2 fusion runs) against each of the other 3
    significance = [line for line in report.splitlines() if line.startswith("| demo |")]
    assert len(significance) == 3
    assert "concat" in report.lower() and "mean" in report.lower()
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert any(n.startswith("confusion_demo") and n.endswith(".png") for n in figures)
    assert any(n.startswith("confusion_demo") and n.endswith(".pdf") for n in figures)
    assert any(n.startswith("layerwise") and n.endswith(".png") for n in figures)
    assert any(n.startswith("mine") and n.endswith(".png") for n in figures)  # a figure of chosen backbones
    model_dir = paths["models/demo"]
    assert (Path(model_dir) / "config.json").is_file() and (Path(model_dir) / "model.safetensors").is_file()
    # the exported model windows clips as the extraction did
    assert json.loads((Path(model_dir) / "config.json").read_text())["max_window_seconds"] == 3.0
    assert any("training every layer" in line for line in log)


@pytest.mark.slow
def test_rerun_reuses_everything_and_new_settings_never_mix(finished, dataset):
    config, _, _ = finished
    out = Path(config.output_dir)
    runs_before = {p: p.stat().st_mtime for p in (out / "runs" / "demo").glob("*/results.json")}
    log: list[str] = []
    run_benchmark(config, log=log.append)
    assert sum("reuse" in line for line in log) == len(runs_before) == 4  # 2 backbones + 2 fusion runs
    assert {p: p.stat().st_mtime for p in (out / "runs" / "demo").glob("*/results.json")} == runs_before

    changed = BenchmarkConfig(datasets=[str(dataset)], backbones=["handcrafted"], output_dir=str(out),
                              recipe={"seeds": [1], "max_epochs": 2}, n_resamples=50, fusion=False)
    log.clear()
    run_benchmark(changed, log=log.append)
    assert not any("reuse" in line for line in log)  # other settings: a new run folder, not the old one
    rows = json.loads((out / "results.json").read_text())
    assert {(r["backbone"], r["seed"]) for r in rows} == {("handcrafted", 1)}


@pytest.mark.slow
def test_interrupted_benchmark_resumes_without_redoing_finished_runs(dataset, tmp_path, monkeypatch):
    import hf_bio.train

    config = BenchmarkConfig(datasets=[str(dataset)], backbones=BACKBONES, output_dir=str(tmp_path / "out"),
                             recipe={"seeds": [1], "max_epochs": 2}, n_resamples=50, fusion=False,
                             export_best=False)
    real = hf_bio.train.train_layerwise
    calls = []

    def dies_on_the_second_run(*args, **kwargs):
        calls.append(kwargs["output_dir"])
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(hf_bio.train, "train_layerwise", dies_on_the_second_run)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(config, log=lambda _: None)
    assert not (tmp_path / "out" / "results.json").exists()  # nothing half-written in the results

    monkeypatch.setattr(hf_bio.train, "train_layerwise", real)
    log: list[str] = []
    run_benchmark(config, log=log.append)
    assert sum("reuse" in line for line in log) == 1  # the first backbone's run was kept
    rows = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {r["backbone"] for r in rows} == set(BACKBONES)


def test_preflight_names_backbones_that_cannot_load_before_any_work():
    loadable, problems = preflight(["handcrafted", "facebook/hubert-base-ls960", "aves-bio", "no-such-thing"])
    assert loadable == ["handcrafted"]
    assert set(problems) == {"facebook/hubert-base-ls960", "aves-bio", "no-such-thing"}
    assert "convert-aves" in problems["aves-bio"]


def test_benchmark_refuses_when_no_backbone_can_load(dataset, tmp_path):
    config = BenchmarkConfig(datasets=[str(dataset)], backbones=["facebook/hubert-base-ls960"],
                             output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="none of the backbones"):
        run_benchmark(config, log=lambda _: None)


def test_paper_group_expands_to_the_seven(tmp_path):
    config = BenchmarkConfig(datasets=["x"], backbones=["paper", "hubert", "offline"])
    names = config.backbone_names()
    assert names[:7] == ["aves-bio", "hubert", "wavlm", "wav2vec2", "wavlm-100h", "wav2vec2-100h", "wav2vec2-960h"]
    assert names.count("hubert") == 1 and "handcrafted" in names


def test_config_file_is_checked_field_by_field(tmp_path):
    good = tmp_path / "bench.yaml"
    good.write_text("datasets: [a, b]\nbackbones: [offline]\nrecipe: {max_epochs: 4, seeds: [1, 2]}\nmin_input_samples: 5000\n")
    config = BenchmarkConfig.from_file(good, output_dir="elsewhere")
    assert config.datasets == ["a", "b"] and config.recipe["max_epochs"] == 4 and config.output_dir == "elsewhere"
    assert config.min_input_samples == 5000
    with pytest.raises(ValueError, match="min_input_samples must be a whole number"):
        BenchmarkConfig(datasets=["a"], min_input_samples=0.3)
    with pytest.raises(ValueError, match="max_window_seconds must be > 0"):
        BenchmarkConfig(datasets=["a"], max_window_seconds=0)
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [a]\nbackbone: [hubert]\n")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['backbone'\]"):
        BenchmarkConfig.from_file(bad)
    with pytest.raises(ValueError, match="max_epochs"):
        BenchmarkConfig(datasets=["a"], recipe={"max_epochs": 0})
    with pytest.raises(ValueError, match="unknown recipe field.*learning_rate"):
        BenchmarkConfig(datasets=["a"], recipe={"learning_rate": 0.1})


def test_preflight_stops_asking_the_network_once_the_hub_is_unreachable(monkeypatch):
    import transformers

    calls = []

    def unreachable(hub_id, revision=None, local_files_only=False):
        calls.append((hub_id, local_files_only))
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", unreachable)
    loadable, problems = preflight(["hubert", "wavlm", "wav2vec2", "handcrafted"])
    assert loadable == ["handcrafted"]
    assert calls == [("facebook/hubert-base-ls960", False), ("microsoft/wavlm-base", True),
                     ("facebook/wav2vec2-base", True)]
    assert all("hf download" in problems[name] for name in ("hubert", "wavlm", "wav2vec2"))


@pytest.mark.slow
def test_compare_two_runs_from_the_command_line(finished, capsys):
    from hf_bio.cli import main
    from hf_bio.report import compare_runs

    config, _, _ = finished
    runs = sorted((Path(config.output_dir) / "runs" / "demo").glob("*-*"))
    hubert = next(r for r in runs if r.name.startswith("tiny-random-hubert"))
    handcrafted = next(r for r in runs if r.name.startswith("handcrafted"))
    same = compare_runs(hubert, hubert, n_resamples=100)
    assert same["uar_a"] == same["uar_b"] and same["p_paired_bootstrap"] == 1.0
    result = compare_runs(hubert, handcrafted, layer_a=0, n_resamples=100)
    assert "layer 0" in result["model_a"] and 0.0 <= result["p_permutation"] <= 1.0
    assert result["ci_a"][0] <= result["uar_a"] <= result["ci_a"][1]
    assert main(["compare", str(hubert), str(handcrafted), "--n-resamples", "50"]) == 0
    assert "paired bootstrap p" in capsys.readouterr().out
    other_dataset = Path(config.output_dir).parent / "elsewhere"
    other_dataset.mkdir()
    (other_dataset / "results.json").write_text((hubert / "results.json").read_text().replace('"demo"', '"other"'))
    (other_dataset / "predictions.safetensors").write_bytes((hubert / "predictions.safetensors").read_bytes())
    with pytest.raises(ValueError, match="not tested on the same clips"):
        compare_runs(hubert, other_dataset)
