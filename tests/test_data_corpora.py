"""Each corpus prepared from its exact raw layout: labels, 16 kHz audio, metadata, splits, card,
self-containment (raw folder deleted), load_dataset + load_from_disk, re-run safety, push dry run, CLI."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
from test_data_layouts import IMV_RECORDINGS, make_abzaliev, make_imv, make_watkins

from dataset_scripts import prepare_abzaliev, prepare_imv, prepare_watkins
from hf_bio.data import MARKER_NAME, hub_files, load_prepared, prepared_summary, push_prepared

datasets.disable_progress_bars()
SPLITS = ["train", "validation", "test"]


@pytest.fixture(scope="module")
def imv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("imv")
    make_imv(root / "raw")
    prepare_imv(root / "raw", root / "out", verbose=False)
    return root / "raw", root / "out"


@pytest.fixture(scope="module")
def watkins(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("watkins")
    make_watkins(root / "raw")
    prepare_watkins(root / "raw", root / "out", split="stratified", seed=3, verbose=False)
    return root / "raw", root / "out"


@pytest.fixture(scope="module")
def abzaliev(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("abzaliev")
    make_abzaliev(root / "raw")
    prepare_abzaliev(root / "raw", root / "out", split="grouped", verbose=False)
    return root / "raw", root / "out"


def _check_audio(ds: datasets.Dataset) -> None:
    assert ds.features["audio"] == datasets.Audio(sampling_rate=16_000)
    for row in ds:
        audio = row["audio"]
        assert audio["sampling_rate"] == 16_000
        array = audio["array"]
        assert array.ndim == 1, "mono"
        assert abs(len(array) / 16_000 - row["duration_s"]) < 1e-3


def test_imv_labels_metadata_and_audio(imv: tuple[Path, Path]) -> None:
    _, out = imv
    dd = load_prepared(out)
    assert list(dd) == SPLITS
    assert dd["train"].features["label"].names == ["Phee", "Twitter", "Trill"]  # Silence/Noise dropped
    assert dd["train"].features["caller"].names == [
        "twin1_marmoset1", "twin1_marmoset2", "twin2_marmoset1", "twin2_marmoset2"
    ]
    assert sum(len(dd[s]) for s in SPLITS) == 36
    assert [len(dd[s]) for s in SPLITS] == [26, 7, 3]  # the paper's floor + round-robin sizes for 36
    rows = [r for s in SPLITS for r in dd[s].remove_columns("audio")]
    rates = {name: rate for name, (_, rate) in IMV_RECORDINGS.items()}
    for r in rows:
        assert r["original_sampling_rate"] == rates[r["recording"]]
        assert abs(r["duration_s"] - (r["end"] - r["start"])) < 2e-3
    first = min((r for r in rows if r["recording"] == "20160907_Twin1_marmoset1"), key=lambda r: r["start"])
    assert (first["start"], first["end"], first["label"], first["caller"]) == (0.3, 0.4, 0, 0)
    _check_audio(dd["test"])
    # The segment really is the labelled one: a Phee segment carries its 1 kHz tone.
    row = next(r for r in dd["train"] if r["label"] == 0)
    spectrum = np.abs(np.fft.rfft(row["audio"]["array"]))
    assert abs(np.argmax(spectrum) * 16_000 / len(row["audio"]["array"]) - 1000) < 60


def test_watkins_stratified_with_8k_stereo_and_file_ids(watkins: tuple[Path, Path]) -> None:
    raw, out = watkins
    dd = load_prepared(out)
    names = dd["train"].features["label"].names
    assert names == ["Atlantic_Spotted_Dolphin", "Bowhead_Whale", "Weddell_Seal"]
    for s, expected in zip(SPLITS, (4, 1, 1), strict=True):  # 6 per species -> 4/1/1 in every split
        assert Counter(dd[s]["label"]) == {0: expected, 1: expected, 2: expected}
    stereo = next(r for s in SPLITS for r in dd[s] if r["file_id"] == "Atlantic_Spotted_Dolphin/00008300")
    assert stereo["original_sampling_rate"] == 8_000
    source, _ = sf.read(raw / "Atlantic_Spotted_Dolphin/00008300.wav", dtype="float32")
    assert source.shape[1] == 2
    # Down-mix: channel 0 holds the tone and channel 1 silence, so the mono clip has half its level.
    rms = float(np.sqrt(np.mean(stereo["audio"]["array"] ** 2)))
    assert abs(rms - np.sqrt(np.mean(source[:, 0] ** 2)) / 2) < 0.01
    assert len(stereo["audio"]["array"]) == 3_200  # 0.2 s at 16 kHz
    _check_audio(dd["validation"])


def test_abzaliev_grouped_split_keeps_dogs_apart(abzaliev: tuple[Path, Path]) -> None:
    _, out = abzaliev
    dd = load_prepared(out)
    assert dd["train"].features["label"].names == ["L-S2", "CH-N", "GR-P"]  # the corpus order of codes, S dropped
    dogs = {s: set(dd[s]["individual"]) for s in SPLITS}
    assert all(dogs.values())
    assert dogs["train"] | dogs["validation"] | dogs["test"] == {"mescalina", "rex", "luna", "toby"}
    assert sum(len(d) for d in dogs.values()) == 4, "each dog in exactly one split"
    assert {r for s in SPLITS for r in dd[s]["original_sampling_rate"]} == {44_100, 48_000}


def test_card_yaml_and_prose(imv: tuple[Path, Path], watkins: tuple[Path, Path]) -> None:
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(imv[1] / "README.md")
    data = card.data.to_dict()
    assert data["task_categories"] == ["audio-classification"]
    assert data["license"] == "cc-by-4.0"
    assert data["configs"][0]["data_files"] == [
        {"split": s, "path": f"data/{s}-*.parquet"} for s in SPLITS
    ]
    features = {f["name"]: f["dtype"] for f in data["dataset_info"]["features"]}
    assert features["audio"] == {"audio": {"sampling_rate": 16000}}
    assert features["label"]["class_label"]["names"] == {"0": "Phee", "1": "Twitter", "2": "Trill"}
    assert {s["name"]: s["num_examples"] for s in data["dataset_info"]["splits"]} == {
        "train": 26, "validation": 7, "test": 3
    }
    text = card.text
    for expected in ("Method: `paper`", "Seed: 42", "train: 26, validation: 7, test: 3", "zenodo.org/records/10130104",
                     "| 0 | Phee |", "@inproceedings", "Silence (4 rows) and Noise (4 rows) dropped"):
        assert expected in text, expected
    assert "Synthetic" not in text
    watkins_card = DatasetCard.load(watkins[1] / "README.md")
    assert watkins_card.data.license == "other" and "Method: `stratified`" in watkins_card.text
    assert "Seed: 3" in watkins_card.text


def test_self_contained_after_deleting_raw_and_moving(tmp_path: Path) -> None:
    make_watkins(tmp_path / "raw", per_species=4)
    prepare_watkins(tmp_path / "raw", tmp_path / "out", verbose=False)
    before = load_prepared(tmp_path / "out")["train"][0]["audio"]["array"]
    shutil.rmtree(tmp_path / "raw")
    os.rename(tmp_path / "out", tmp_path / "moved")
    moved = str(tmp_path / "moved")
    for dd in (datasets.load_dataset(moved, cache_dir=str(tmp_path / "hf_cache")), datasets.load_from_disk(moved)):
        assert list(dd) == SPLITS
        assert sum(len(dd[s]) for s in SPLITS) == 12
        assert dd["train"].features["label"].names == ["Atlantic_Spotted_Dolphin", "Bowhead_Whale", "Weddell_Seal"]
        assert dd["train"].features["audio"].sampling_rate == 16_000
        np.testing.assert_allclose(dd["train"][0]["audio"]["array"], before, atol=1e-4)


def test_rerun_is_safe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hf_bio.data as data

    make_abzaliev(tmp_path / "raw", per_code=1)
    (tmp_path / ".out.building-999999999").mkdir()  # left by a killed run: its process is gone
    prepare_abzaliev(tmp_path / "raw", tmp_path / "out", verbose=False)
    assert not (tmp_path / ".out.building-999999999").exists()
    marker = tmp_path / "out" / MARKER_NAME
    stamp = marker.stat().st_mtime_ns
    prepare_abzaliev(tmp_path / "raw", tmp_path / "out", verbose=False)  # same settings: nothing rebuilt
    assert marker.stat().st_mtime_ns == stamp

    # A failing rebuild (here: interrupted while writing Parquet) leaves the earlier output intact.
    def broken(*args: object) -> None:
        raise KeyboardInterrupt("simulated interruption")

    monkeypatch.setattr(data, "_write_parquet", broken)
    with pytest.raises(KeyboardInterrupt):
        prepare_abzaliev(tmp_path / "raw", tmp_path / "out", keep_s=True, verbose=False)
    monkeypatch.undo()
    assert marker.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "raw"], "no temporary folder left behind"
    assert len(load_prepared(tmp_path / "out")["train"].features["label"].names) == 3

    # Different settings rebuild and replace it.
    dd = prepare_abzaliev(tmp_path / "raw", tmp_path / "out", keep_s=True, verbose=False)
    assert "S" in dd["train"].features["label"].names
    assert prepared_summary(tmp_path / "out")["params"]["keep_s"] is True

    # A folder that is not ours is never replaced.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="not a dataset prepared by hf_bio"):
        prepare_abzaliev(tmp_path / "raw", tmp_path / "mine", verbose=False)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_load_prepared_rejects_other_folders(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist.*hf-bio prepare"):
        load_prepared(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a complete dataset prepared by hf_bio"):
        load_prepared(tmp_path / "empty")


def test_push_dry_run_writes_exactly_what_load_dataset_needs(imv: tuple[Path, Path], tmp_path: Path) -> None:
    from hf_bio.cli import main

    _, out = imv
    assert main(["push-dataset", str(out), "someone/imv-16k", "--dry-run", str(tmp_path / "dry")]) == 0
    pushed = sorted(str(p.relative_to(tmp_path / "dry")) for p in (tmp_path / "dry").rglob("*") if p.is_file())
    assert pushed == ["README.md"] + [f"data/{s}-00000-of-00001.parquet" for s in ("test", "train", "validation")]
    assert [p.relative_to(out) for p in hub_files(out)] == [Path(p) for p in
                                                             ["README.md", *[f"data/{s}-00000-of-00001.parquet"
                                                                             for s in ("test", "train", "validation")]]]
    dd = datasets.load_dataset(str(tmp_path / "dry"), cache_dir=str(tmp_path / "hf_cache"))
    assert [len(dd[s]) for s in SPLITS] == [26, 7, 3]
    with pytest.raises(ValueError, match="owner/name"):
        push_prepared(out, "no-owner", dry_run_dir=tmp_path / "x")


def test_cli_prepare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hf_bio.cli import main

    root, _ = make_imv(tmp_path / "raw", calls_per_recording=3)
    code = main(["prepare", "imv", str(root), str(tmp_path / "out"), "--split", "grouped", "--seed", "7",
                 "--keep-silence-noise"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "5 classes: Phee, Twitter, Trill, Silence, Noise" in printed
    summary = prepared_summary(tmp_path / "out")
    assert summary["params"]["split"] == "grouped" and summary["params"]["seed"] == 7
    assert main(["prepare", "watkins", str(root), str(tmp_path / "w")]) == 1
    assert "annotations.csv not found" in capsys.readouterr().err
    assert main(["prepare", "imv", str(root), str(tmp_path / "x"), "--keep-s"]) == 2
    assert "--keep-s do(es) not apply to corpus 'imv'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_prepare_is_deterministic(watkins: tuple[Path, Path], tmp_path: Path) -> None:
    raw, out = watkins
    first = load_prepared(out)
    again = prepare_watkins(raw, tmp_path / "again", split="stratified", seed=3, verbose=False)
    other = prepare_watkins(raw, tmp_path / "other", split="stratified", seed=4, verbose=False)
    for s in SPLITS:
        assert again[s]["file_id"] == first[s]["file_id"]
        assert again[s].data.column("audio").equals(first[s].data.column("audio")), "same bytes"
    assert any(other[s]["file_id"] != first[s]["file_id"] for s in SPLITS)


def test_prepare_leaves_the_global_cache_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "global_cache")
    make_abzaliev(tmp_path / "raw", per_code=1)
    prepare_abzaliev(tmp_path / "raw", tmp_path / "out", num_proc=2, verbose=False)
    assert not (tmp_path / "global_cache").exists() or not any((tmp_path / "global_cache").iterdir())
    assert not (tmp_path / "out" / ".cache").exists(), "the build cache is deleted"
