"""The synthetic demo corpus: IMV layout, deterministic, documented as synthetic, and learnable."""

from __future__ import annotations

import csv
import doctest
import hashlib
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf

import dataset_scripts.demo
from dataset_scripts.demo import DEMO_CALL_TYPES, make_demo_corpus, prepare_demo
from dataset_scripts.imv import CALL_TYPES

datasets.disable_progress_bars()
SMALL = {"num_twins": 2, "recordings_per_caller": 1, "recording_s": 8.0, "calls_per_recording": 12}


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return h.hexdigest()


def test_demo_corpus_layout_and_determinism(tmp_path: Path) -> None:
    raw = make_demo_corpus(tmp_path / "a", seed=0, **SMALL)
    assert _digest(raw) == _digest(make_demo_corpus(tmp_path / "b", seed=0, **SMALL))
    assert _digest(raw) != _digest(make_demo_corpus(tmp_path / "c", seed=1, **SMALL))
    stamp = (raw / "labels.csv").stat().st_mtime_ns
    make_demo_corpus(raw, seed=0, **SMALL)  # same arguments: found, not rewritten
    assert (raw / "labels.csv").stat().st_mtime_ns == stamp

    with open(raw / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["filename", "start", "end", "duration", "calltype", "caller"]
    assert len(rows) == 4 * 12
    wavs = sorted((raw / "data").glob("twin_*/*.wav"))
    assert [p.relative_to(raw / "data").as_posix() for p in wavs] == [
        "twin_1/20160901_Twin1_marmoset1.wav", "twin_1/20160901_Twin1_marmoset2.wav",
        "twin_2/20160901_Twin2_marmoset1.wav", "twin_2/20160901_Twin2_marmoset2.wav",
    ]
    assert {sf.info(p).samplerate for p in wavs} == {44_100, 48_000}
    assert all(abs(sf.info(p).duration - 8.0) < 1e-3 for p in wavs)
    codes = {CALL_TYPES[int(r["calltype"])] for r in rows}
    assert set(DEMO_CALL_TYPES) <= codes <= set(DEMO_CALL_TYPES) | {"Silence", "Noise"}
    lengths = [float(r["end"]) - float(r["start"]) for r in rows]
    assert min(lengths) < 0.1 and max(lengths) > 0.5, "varied call lengths"
    with pytest.raises(ValueError, match="not empty"):
        make_demo_corpus(tmp_path / "a" / "data", seed=0)
    assert doctest.testmod(dataset_scripts.demo).failed == 0


def test_prepare_demo_is_marked_synthetic(tmp_path: Path) -> None:
    dd = prepare_demo(tmp_path / "raw", tmp_path / "out", verbose=False, **SMALL)
    assert dd["train"].features["label"].names == list(DEMO_CALL_TYPES)
    assert set(dd["train"]["original_sampling_rate"]) == {44_100, 48_000}
    card = (tmp_path / "out" / "README.md").read_text()
    assert "**Synthetic data.**" in card and "license: cc0-1.0" in card and "- synthetic" in card


def _spectral_features(ds: datasets.Dataset) -> np.ndarray:
    rows = []
    for row in ds:
        y = row["audio"]["array"]
        y = y / (np.abs(y).max() + 1e-9)
        frames = np.lib.stride_tricks.sliding_window_view(np.pad(y, (0, max(0, 512 - len(y)))), 512)[::256]
        spectrum = np.log(np.abs(np.fft.rfft(frames * np.hanning(512), axis=1)) + 1e-4)
        rows.append(np.r_[spectrum.mean(0)[::8], spectrum.std(0)[::8], np.log(len(y))])
    return np.asarray(rows)


@pytest.mark.slow
def test_default_demo_corpus_is_learnable(tmp_path: Path) -> None:
    """The default corpus (what `make demo` uses): ~250 calls, and a linear probe beats chance clearly."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import recall_score
    from sklearn.preprocessing import StandardScaler

    dd = prepare_demo(tmp_path / "raw", tmp_path / "out", num_proc=2, verbose=False)
    sizes = [len(dd[s]) for s in dd]
    assert 200 <= sum(sizes) <= 400
    scaler = StandardScaler().fit(_spectral_features(dd["train"]))
    probe = LogisticRegression(max_iter=1000).fit(scaler.transform(_spectral_features(dd["train"])), dd["train"]["label"])
    predicted = probe.predict(scaler.transform(_spectral_features(dd["test"])))
    uar = recall_score(dd["test"]["label"], predicted, average="macro")
    assert uar > 0.6, f"UAR {uar:.2f} on 5 classes (chance 0.2)"
