"""Bad raw input: every case is reported with its file and reason (one error by default), or skipped
into skipped.csv with --skip-invalid; multi-channel, 8 kHz and real MP3 files are converted."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from test_data_layouts import make_abzaliev, make_imv, make_watkins, tone, write, write_labels

from dataset_scripts import prepare_abzaliev, prepare_imv, prepare_watkins
from hf_bio.audio import audio_info
from hf_bio.data import SKIPPED_NAME, InvalidCorpusError, load_prepared

datasets.disable_progress_bars()

# (recording or row marker, the words its reason must contain)
EXPECTED_IMV_PROBLEMS = {
    "20160910_Twin1_marmoset1": "cannot decode audio",  # corrupt
    "20160911_Twin1_marmoset2": "file is empty",
    "20160912_Twin2_marmoset1": "is listed but no data/*/20160912_Twin2_marmoset1.wav exists",  # missing
    "outside": "lies outside the recording",
    "unknown": "unknown calltype '99'",
    "20160913_Twin2_marmoset2": "is silent",
    "20160914_Twin1_marmoset1": "NaN",
}


def _broken_imv(root: Path) -> Path:
    root, rows = make_imv(root)
    rate = 44_100

    def row(filename: str, start: float, end: float, calltype: str = "1") -> dict:
        return {"filename": filename, "start": f"{start:.3f}", "end": f"{end:.3f}", "duration": f"{end - start:.3f}",
                "calltype": calltype, "caller": "1"}

    data = root / "data"
    (data / "twin_1" / "20160910_Twin1_marmoset1.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage" * 10)
    (data / "twin_1" / "20160911_Twin1_marmoset2.wav").write_bytes(b"")
    silent = np.zeros(2 * rate, dtype=np.float32)
    silent[rate:] = tone(500, 1.0, rate)
    write(data / "twin_2" / "20160913_Twin2_marmoset2.wav", silent, rate)
    with_nan = tone(500, 2.0, rate)
    with_nan[int(0.55 * rate)] = np.nan
    write(data / "twin_1" / "20160914_Twin1_marmoset1.wav", with_nan, rate, subtype="FLOAT")
    rows += [
        row("20160910_Twin1_marmoset1", 0.1, 0.2),
        row("20160911_Twin1_marmoset2", 0.1, 0.2),
        row("20160912_Twin2_marmoset1", 0.1, 0.2),
        row("20160907_Twin1_marmoset1", 5.9, 7.5),  # the recording is 6 s long
        row("20160907_Twin1_marmoset1", 1.0, 1.1, calltype="99"),
        row("20160913_Twin2_marmoset2", 0.2, 0.4),
        row("20160913_Twin2_marmoset2", 1.2, 1.4),  # the audible part of the same file is fine
        row("20160914_Twin1_marmoset1", 0.5, 0.7),
    ]
    write_labels(root, rows)
    return root


def test_imv_default_fails_fast_with_one_error_listing_every_problem(tmp_path: Path) -> None:
    raw = _broken_imv(tmp_path / "raw")
    with pytest.raises(InvalidCorpusError) as caught:
        prepare_imv(raw, tmp_path / "out", verbose=False)
    message = str(caught.value)
    assert "imv: 7 invalid item(s)" in message and "--skip-invalid" in message
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(lines) == 7
    for key, reason in EXPECTED_IMV_PROBLEMS.items():
        if key == "outside":
            assert any("5.900-7.500" in line and reason in line for line in lines), message
        elif key == "unknown":
            assert any("labels.csv row" in line and reason in line for line in lines), message
        else:
            assert any(key in line and reason in line for line in lines), (key, message)
    assert len(caught.value.problems) == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"], "nothing written, no temporary folder left"


def test_imv_skip_invalid_builds_the_rest_and_lists_the_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _broken_imv(tmp_path / "raw")
    dd = prepare_imv(raw, tmp_path / "out", skip_invalid=True)
    assert sum(len(dd[s]) for s in dd) == 37  # 36 good calls + the audible segment of the half-silent file
    printed = capsys.readouterr().out
    assert "37 valid, 7 skipped" in printed and SKIPPED_NAME in printed
    with open(tmp_path / "out" / SKIPPED_NAME, newline="") as f:
        skipped = list(csv.DictReader(f))
    assert len(skipped) == 7 and all(row["item"] and row["reason"] for row in skipped)
    assert "7 raw items were invalid" in (tmp_path / "out" / "README.md").read_text()
    assert all(np.isfinite(r["audio"]["array"]).all() and np.any(r["audio"]["array"]) for r in dd["train"])


def test_watkins_and_abzaliev_bad_rows(tmp_path: Path) -> None:
    raw = make_watkins(tmp_path / "w", per_species=4)
    with open(raw / "annotations.csv", "a", newline="") as f:
        csv.writer(f).writerows([("Bowhead_Whale/99999999.wav", "Bowhead_Whale"),
                                 ("Bowhead_Whale/00008400.wav", "Killer_Whale"),
                                 ("Bowhead_Whale/00008401.wav", "")])
    with pytest.raises(InvalidCorpusError) as caught:
        prepare_watkins(raw, tmp_path / "w_out", verbose=False)
    message = str(caught.value)
    assert "3 invalid" in message
    assert "99999999.wav is listed in annotations.csv but missing" in message
    assert "unknown label: species 'Killer_Whale' differs from its folder 'Bowhead_Whale'" in message
    assert "empty species" in message

    raw = make_abzaliev(tmp_path / "a", per_code=1)
    write(raw / "data" / "Rex_02" / "XX" / "x.wav", tone(300, 0.2, 48_000), 48_000)
    write(raw / "data" / "loose.wav", tone(300, 0.2, 48_000), 48_000)
    with pytest.raises(InvalidCorpusError) as caught:
        prepare_abzaliev(raw, tmp_path / "a_out", verbose=False)
    message = str(caught.value)
    assert "Rex_02/XX/x.wav: unknown label (call-type folder) 'XX'" in message
    assert "loose.wav: not at data/<Dogname_xxx>/<CALLTYPE>/<file>" in message
    dd = prepare_abzaliev(raw, tmp_path / "a_out", skip_invalid=True, verbose=False)
    assert sum(len(dd[s]) for s in dd) == 12


def test_many_problems_are_listed_in_a_file(tmp_path: Path) -> None:
    root, rows = make_imv(tmp_path / "raw", calls_per_recording=3)
    rows += [dict(rows[0], calltype="42") for _ in range(150)]
    write_labels(root, rows)
    with pytest.raises(InvalidCorpusError, match=r"150 invalid item\(s\) \(all listed in .*out.problems.csv\)") as e:
        prepare_imv(root, tmp_path / "out", verbose=False)
    assert "... and 50 more" in str(e.value)
    with open(tmp_path / "out.problems.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 150


def test_real_mp3s_decode_to_16k_mono(tmp_path: Path, shared_dir: str) -> None:
    """The CC0 MP3s (44.1/48 kHz, mono and stereo) in Watkins' layout, one 'species' per animal."""
    sources = sorted(Path(shared_dir, "data", "cc0_animal_sounds").glob("*.mp3"))
    assert len(sources) >= 3
    rows = []
    for src in sources:
        rel = f"{src.stem.title()}/{src.stem}.mp3"
        (tmp_path / "raw" / src.stem.title()).mkdir(parents=True)
        shutil.copy(src, tmp_path / "raw" / rel)
        rows.append((rel, src.stem.title()))
    with open(tmp_path / "raw" / "annotations.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "species"), *rows])
    prepare_watkins(tmp_path / "raw", tmp_path / "out", verbose=False)
    dd = load_prepared(tmp_path / "out")
    seen = {}
    for split in dd:
        for row in dd[split]:
            info = audio_info(tmp_path / "raw" / f"{row['file_id']}.mp3")
            array = row["audio"]["array"]
            assert row["audio"]["sampling_rate"] == 16_000 and array.ndim == 1
            assert row["original_sampling_rate"] == info.sampling_rate
            assert abs(len(array) / 16_000 - info.duration_s) < 0.1
            assert np.abs(array).max() > 0.01
            seen[row["file_id"]] = (info.sampling_rate, info.num_channels)
    assert len(seen) == len(sources)
    assert {rate for rate, _ in seen.values()} == {44_100, 48_000}
    assert {channels for _, channels in seen.values()} == {1, 2}


def test_imv_times_in_milliseconds_get_a_hint_and_a_flag(tmp_path: Path) -> None:
    root, rows = make_imv(tmp_path / "raw", calls_per_recording=3)
    for row in rows:
        row["start"], row["end"] = f"{float(row['start']) * 1000:.0f}", f"{float(row['end']) * 1000:.0f}"
    write_labels(root, rows)
    with pytest.raises(InvalidCorpusError, match=r"(?s)lies outside the recording.*--time-unit ms"):
        prepare_imv(root, tmp_path / "out", verbose=False)
    dd = prepare_imv(root, tmp_path / "out", time_unit="ms", verbose=False)
    first = min((r for s in dd for r in dd[s].remove_columns("audio")), key=lambda r: (r["recording"], r["start"]))
    assert (first["start"], first["end"]) == (0.3, 0.4)
