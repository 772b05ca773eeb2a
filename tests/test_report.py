"""Tests of the results rows (hf_bio.results) and the table, figures and report (hf_bio.report)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hf_bio.figures import plot_confusion_matrix, plot_layerwise
from hf_bio.report import (
    Comparison,
    ConfusionInput,
    best_models,
    confusion_input_from_run,
    main,
    write_report,
)
from hf_bio.results import ResultRow, package_versions, read_results, rows_from_run, write_results
from hf_bio.stats import bootstrap_ci
from hf_bio.table import best_layer_table, best_layers, to_latex, to_markdown


def _row(dataset, backbone, layer, seed=0, val=0.5, test=0.5, label=None, training="PT", **extra) -> ResultRow:
    return ResultRow(
        dataset=dataset,
        backbone=backbone,
        backbone_label=label or backbone.upper(),
        training=training,
        layer=layer,
        seed=seed,
        val_uar=val,
        test_uar=test,
        val_accuracy=val,
        test_accuracy=test,
        **extra,
    )


def _layer_rows(dataset, backbone, scores, training="PT", label=None, seeds=(0,)):
    """Per-layer rows: `scores` is a list of (val, test) per layer; seeds add +-0.01 around them."""
    rows = []
    for layer, (val, test) in enumerate(scores):
        for i, seed in enumerate(seeds):
            shift = 0.01 * (i - (len(seeds) - 1) / 2)
            rows.append(_row(dataset, backbone, layer, seed, val + shift, test + shift, label, training))
    return rows


# ---------------------------------------------------------------------------------------------------------
# results rows


def test_results_round_trip_json_and_csv(tmp_path):
    rows = [
        _row("imv", "hubert", 3, seed=1, val=0.61, test=0.625, label="HuBERT", test_uar_ci_low=0.6,
             test_uar_ci_high=0.65, split="random-70-20-10-seed42", backbone_id="facebook/hubert-base-ls960",
             revision="abc123", versions=package_versions()),
        _row("imv", "fusion-mean13", "mean13", training="fusion", label="Fusion, mean"),
    ]
    paths = write_results(rows, tmp_path)
    assert read_results(paths["json"]) == rows
    assert read_results(paths["csv"]) == rows
    assert read_results(tmp_path) == rows  # the folder
    assert json.loads(paths["json"].read_text())[0]["versions"]["python"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_package_versions_names_every_package():
    versions = package_versions()
    assert set(versions) == {"python", "torch", "torchaudio", "transformers", "datasets", "accelerate", "numpy", "hf_bio"}
    assert versions["torch"] != "not installed"


def test_bad_rows_are_named(tmp_path):
    with pytest.raises(ValueError, match="training='FT'"):
        _row("imv", "hubert", 0, training="FT")
    with pytest.raises(ValueError, match="test_uar=62.5.*not percent"):
        _row("imv", "hubert", 0, test=62.5)
    (tmp_path / "results.json").write_text(json.dumps([{"dataset": "imv", "colour": 1}]))
    with pytest.raises(ValueError, match=r"row 0: unknown column\(s\) \['colour'\]"):
        read_results(tmp_path)
    (tmp_path / "results.csv").write_text("dataset,backbone,backbone_label,training,layer,seed,val_uar,test_uar,"
                                          "val_accuracy,test_accuracy\nimv,h,H,PT,1,0,x,0.5,0.5,0.5\n")
    with pytest.raises(ValueError, match="line 2: column val_uar='x' is not a number"):
        read_results(tmp_path / "results.csv")
    with pytest.raises(ValueError, match="no results file"):
        read_results(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------------------
# the table


def test_best_layer_is_chosen_on_validation_not_test():
    # layer 1 has the best validation UAR; layer 2 the best test UAR (which must not be picked)
    rows = _layer_rows("imv", "hubert", [(0.50, 0.50), (0.70, 0.60), (0.60, 0.90)])
    assert best_layers(rows) == {("imv", "hubert"): 1}
    cell = best_layer_table(rows).cells[("hubert", "imv")]
    assert cell.layer == 1 and cell.mean == pytest.approx(0.60)


def test_best_layer_uses_mean_over_seeds_and_reports_std():
    rows = [
        _row("imv", "hubert", 0, seed=0, val=0.90, test=0.5),  # one lucky seed
        _row("imv", "hubert", 0, seed=1, val=0.30, test=0.5),
        _row("imv", "hubert", 1, seed=0, val=0.70, test=0.6),
        _row("imv", "hubert", 1, seed=1, val=0.70, test=0.8),
    ]
    cell = best_layer_table(rows).cells[("hubert", "imv")]
    assert cell.layer == 1 and cell.n_seeds == 2
    assert cell.mean == pytest.approx(0.7) and cell.std == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert "**70.00** ± 14.14 (L1)" in to_markdown(best_layer_table(rows))


def test_bold_and_underline_with_ties_and_missing_cells():
    rows = [
        _row("imv", "a", 0, test=0.90, label="A"),
        _row("imv", "b", 0, test=0.90004, label="B"),  # prints as 90.00 too: tied best, both bold
        _row("imv", "c", 0, test=0.80, label="C"),  # next value: underlined
        _row("imv", "d", 0, test=0.80, label="D"),  # tied second: underlined too
        _row("imv", "e", 0, test=0.70, label="E"),
        _row("watkins", "a", 0, test=0.50, label="A"),  # watkins: only A ran -> bold, no underline
    ]
    table = best_layer_table(rows)
    ranks = {(b, d): c.rank for (b, d), c in table.cells.items()}
    assert ranks == {("a", "imv"): 1, ("b", "imv"): 1, ("c", "imv"): 2, ("d", "imv"): 2, ("e", "imv"): None,
                     ("a", "watkins"): 1}
    md = to_markdown(table, show_layer=False)
    assert "| PT | A | **90.00** | **50.00** |" in md
    assert "|  | B | **90.00** | – |" in md
    assert "|  | C | <u>80.00</u> | – |" in md
    assert "|  | E | 70.00 | – |" in md
    tex = to_latex(table)
    assert "PT & A & \\textbf{90.00} & \\textbf{50.00} \\\\" in tex
    assert " & D & \\underline{80.00} & -- \\\\" in tex
    assert tex.count("\\textbf{") == 3 and tex.count("\\underline{") == 2


def test_one_model_only_is_bold():
    table = best_layer_table(_layer_rows("watkins", "hubert", [(0.5, 0.4), (0.6, 0.55)], label="HuBERT"))
    assert to_markdown(table, show_layer=False).splitlines()[-1] == "| PT | HuBERT | **55.00** |"


def test_groups_and_columns_follow_the_paper():
    rows = (
        _layer_rows("mydata", "wav2vec2-960h", [(0.5, 0.5)], training="PT+FT", label="W2V2-960h")
        + _layer_rows("watkins", "tiny-random-hubert", [(0.3, 0.3)], training="random", label="random HuBERT")
        + [_row("imv", "fusion-concat", "concat", training="fusion", label="Fusion (concat)")]
        + _layer_rows("imv", "handcrafted", [(0.4, 0.4)], training="baseline", label="MFCC")
        + _layer_rows("abzaliev", "hubert", [(0.5, 0.5)], label="HuBERT")
        + _layer_rows("imv", "aves-bio", [(0.5, 0.5)], label="AVES-bio")
    )
    table = best_layer_table(rows)
    assert table.datasets == ["imv", "watkins", "abzaliev", "mydata"]
    assert [g for g, _ in table.groups] == ["PT", "PT+FT", "fusion", "baseline", "random"]
    assert [m.backbone for m in table.groups[0][1]] == ["aves-bio", "hubert"]  # paper order, not row order
    md = to_markdown(table)
    assert md.splitlines()[0] == "| Type | Model | IMV | Watkins | Abzaliev | mydata |"
    assert "| Fusion | Fusion (concat) | **50.00** (concat) |" in md
    assert "| Random | random HuBERT |" in md


def test_interval_shown_when_present():
    rows = [_row("imv", "hubert", 0, test=0.6254, label="HuBERT", test_uar_ci_low=0.601, test_uar_ci_high=0.649)]
    table = best_layer_table(rows)
    assert "**62.54** [60.10, 64.90] (L0)" in to_markdown(table)
    assert "\\textbf{62.54} {\\scriptsize [60.10, 64.90]}" in to_latex(table)


def test_latex_escapes_labels():
    table = best_layer_table([_row("my_data", "x", 0, label="W2V2_100h & co")])
    tex = to_latex(table)
    assert "W2V2\\_100h \\& co" in tex and "my\\_data" in tex
    assert tex.startswith("\\begin{table}") and "\\toprule" in tex and tex.rstrip().endswith("\\end{table}")


def test_inconsistent_or_duplicate_rows_are_errors(tmp_path):
    with pytest.raises(ValueError, match="one backbone needs one backbone_label"):
        best_layer_table([_row("imv", "hubert", 0, label="HuBERT"), _row("imv", "hubert", 1, label="Hubert")])
    with pytest.raises(ValueError, match="no result rows"):
        best_layer_table([])
    twice = [_row("imv", "hubert", 3, seed=1, test=0.5), _row("imv", "hubert", 3, seed=1, test=0.6)]
    with pytest.raises(ValueError, match="rows 0 and 1 are both dataset='imv' backbone='hubert' layer=3 seed=1"):
        best_layer_table(twice)
    with pytest.raises(ValueError, match="different runs or settings are mixed"):
        write_results(twice, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------------------
# figures and the report


def _assert_figure(paths):
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    assert all(p.stat().st_size > 1000 for p in paths)


def test_plot_layerwise_writes_png_and_pdf(tmp_path):
    rows = (_layer_rows("imv", "aves-bio", [(0.5, 0.5), (0.7, 0.6), (0.6, 0.5)], label="AVES-bio", seeds=(0, 1))
            + _layer_rows("imv", "hubert", [(0.4, 0.4), (0.5, 0.5), (0.6, 0.55)], label="HuBERT", seeds=(0, 1)))
    _assert_figure(plot_layerwise(rows, "imv", ["aves-bio", "hubert"], tmp_path / "fig" / "domain"))
    with pytest.raises(ValueError, match="no per-layer rows for backbone 'wavlm'.*available: aves-bio, hubert"):
        plot_layerwise(rows, "imv", ["wavlm"], tmp_path / "x")


def test_plot_confusion_matrix_many_classes(tmp_path):
    k = 32
    labels = np.arange(320) % k
    predictions = np.where(np.arange(320) % 3 == 0, (labels + 1) % k, labels)
    names = [f"Species_number_{i}" for i in range(k)]
    _assert_figure(plot_confusion_matrix(labels, predictions, names, tmp_path / "cm", title="Watkins"))
    with pytest.raises(ValueError, match=r"labels must be integer class ids in \[0, 3\)"):
        plot_confusion_matrix([0, 5], [0, 1], ["a", "b", "c"], tmp_path / "bad")


def test_best_models_chosen_on_validation():
    rows = [_row("imv", "a", 0, val=0.9, test=0.1), _row("imv", "b", 3, val=0.5, test=0.9),
            _row("watkins", "b", 2, val=0.5, test=0.5)]
    assert best_models(rows) == {"imv": ("a", 0), "watkins": ("b", 2)}


def test_write_report_writes_every_file(tmp_path):
    three = [(0.5, 0.5), (0.7, 0.62), (0.6, 0.58)]
    rows = (
        _layer_rows("imv", "aves-bio", three, label="AVES-bio", seeds=(0, 1))
        + _layer_rows("imv", "hubert", [(0.5, 0.45), (0.6, 0.6), (0.65, 0.61)], label="HuBERT", seeds=(0, 1))
        + [_row("imv", "fusion-mean13", "mean13", seed=s, val=0.6, test=0.6, training="fusion",
                label="Fusion (mean13)") for s in (0, 1)]
    )
    labels = np.arange(90) % 3
    preds_a = np.where(np.arange(90) % 4 == 0, (labels + 1) % 3, labels)
    paths = write_report(
        rows,
        tmp_path,
        confusion_inputs=[ConfusionInput("imv", "AVES-bio, layer 1", labels, preds_a, ["Phee", "Trill", "Twitter"])],
        comparisons=[Comparison("imv", "HuBERT", "AVES-bio", labels, labels, preds_a)],
        n_resamples=200,
    )
    expected = {"table.md", "table.tex", "report.md",
                "figures/pretraining_domain_imv.png", "figures/pretraining_domain_imv.pdf",
                "figures/layerwise_all_imv.png", "figures/layerwise_all_imv.pdf",
                "figures/confusion_imv_AVES-bio__layer_1.png", "figures/confusion_imv_AVES-bio__layer_1.pdf"}
    assert set(paths) == expected
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths.values())
    report = (tmp_path / "report.md").read_text()
    assert (tmp_path / "table.md").read_text() in report
    for figure in ("figures/pretraining_domain_imv.png", "figures/confusion_imv_AVES-bio__layer_1.png"):
        assert f"]({figure})" in report
    assert "mean over all its pooled hidden states" in report and "concatenated" in report
    assert "| IMV | HuBERT | AVES-bio | 100.00 | 74.44 | -25.56 | < 0.005 | < 0.005 |" in report
    assert "| Fusion | Fusion (mean13) | 60.00 ± 0.00 (mean13) |" in report


def _run_dir(tmp_path: Path, seeds=(0,)) -> Path:
    """A training run folder as contract 5 describes it: results.json + predictions.safetensors."""
    from safetensors.numpy import save_file

    run = tmp_path / "run"
    run.mkdir()
    labels = np.arange(60) % 3
    n_layers = 3
    # layer l gets clips wrong every (l + 2)-th clip; seed s shifts which ones
    preds = np.stack([np.stack([np.where((np.arange(60) + s) % (layer + 2) == 0, (labels + 1) % 3, labels)
                                for layer in range(n_layers)]) for s in seeds])
    layers = [{"layer": layer, "seed": s, "val_uar": 0.5, "test_uar": 0.6, "val_accuracy": 0.5,
               "test_accuracy": 0.6, "best_epoch": 3} for s in seeds for layer in range(n_layers)]
    (run / "results.json").write_text(json.dumps({
        "dataset": {"name": "imv", "fingerprint": "f", "split_method": "random-70-20-10-seed42",
                    "label_names": ["Phee", "Trill", "Twitter"]},
        "backbone": {"name": "hubert", "hub_id": "facebook/hubert-base-ls960", "revision": "r1"},
        "recipe": {}, "seeds": list(seeds), "layers": layers, "best_layer": 1, "test_uar": 0.6,
        "versions": {"torch": "2.9.1"},
    }))
    save_file({"test_labels": labels, "test_predictions": preds[0] if len(seeds) == 1 else preds,
               "val_labels": labels, "val_predictions": preds[0] if len(seeds) == 1 else preds},
              str(run / "predictions.safetensors"))
    return run


@pytest.mark.parametrize("seeds", [(0,), (0, 1)])
def test_rows_from_run_folder(tmp_path, seeds):
    run = _run_dir(tmp_path, seeds)
    rows = rows_from_run(run, n_resamples=200)
    assert len(rows) == 3 * len(seeds)
    row = rows[-1]
    assert (row.dataset, row.backbone, row.backbone_label, row.training) == ("imv", "hubert", "HuBERT", "PT")
    assert (row.backbone_id, row.revision, row.split) == ("facebook/hubert-base-ls960", "r1", "random-70-20-10-seed42")
    labels = np.arange(60) % 3
    expected = np.where((np.arange(60) + seeds[-1]) % 4 == 0, (labels + 1) % 3, labels)
    assert (row.test_uar_ci_low, row.test_uar_ci_high) == bootstrap_ci(labels, expected, n_resamples=200,
                                                                       seed=seeds[-1])
    cm_input = confusion_input_from_run(run, layer=2, seed=seeds[-1])
    assert list(cm_input.predictions) == list(expected) and cm_input.class_names == ["Phee", "Trill", "Twitter"]
    with pytest.raises(ValueError, match="layer 7 was not trained"):
        confusion_input_from_run(run, layer=7)


def test_rows_from_run_needs_training_for_unknown_backbones(tmp_path):
    run = _run_dir(tmp_path)
    data = json.loads((run / "results.json").read_text())
    data["backbone"]["name"] = "my-model"
    (run / "results.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="'my-model' is not in the registry; pass training="):
        rows_from_run(run)
    rows = rows_from_run(run, training="random", backbone_label="my model (random)", n_resamples=50)
    assert {r.training for r in rows} == {"random"}


def test_command_line_rebuilds_the_report(tmp_path, capsys):
    rows = _layer_rows("imv", "tiny-random-hubert", [(0.4, 0.4), (0.5, 0.45), (0.45, 0.5)], training="random",
                       label="HuBERT (random)") + _layer_rows("imv", "handcrafted", [(0.6, 0.55)],
                                                              training="baseline", label="MFCC")
    write_results(rows, tmp_path)
    assert main([str(tmp_path / "results.csv"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| Baseline | MFCC | **55.00** (L0) |" in printed and "| Random | HuBERT (random) | <u>45.00</u> (L1) |" in printed
    assert (tmp_path / "out" / "figures" / "layerwise_all_imv.pdf").stat().st_size > 0
    assert (tmp_path / "out" / "report.md").is_file()
