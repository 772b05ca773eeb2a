"""Tiny corpora in each EXACT raw layout (shared README section 4), and tests of the corpus scans.

The writers here are imported by the other `test_data_*` files; every clip is a fraction of a
second so a whole prepare run takes seconds.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

RATES = (8_000, 44_100, 48_000)


def tone(freq: float, seconds: float, rate: int, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A tone plus a little noise; shape (frames,) or (frames, channels) as soundfile wants it."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    if channels == 1:
        return mono.astype(np.float32)
    # Channel 0 carries the tone, the others silence: a correct down-mix halves the amplitude (2 ch).
    out = np.zeros((len(t), channels), dtype=np.float32)
    out[:, 0] = mono
    return out


def write(path: Path, audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype=subtype)
    return path


def make_watkins(root: Path, per_species: int = 6) -> Path:
    """annotations.csv (path,species) + <Species>/<id>.wav; one stereo 8 kHz file."""
    species = {"Atlantic_Spotted_Dolphin": 1500.0, "Bowhead_Whale": 400.0, "Weddell_Seal": 3000.0}
    rows = []
    for s_index, (name, freq) in enumerate(species.items()):
        for i in range(per_species):
            rate = RATES[(s_index + i) % 3]
            rel = f"{name}/{8300 + s_index * 100 + i:08d}.wav"
            channels = 2 if (s_index, i) == (0, 0) else 1
            write(root / rel, tone(freq * (1 + 0.05 * i), 0.2 + 0.1 * i, rate, seed=i, channels=channels), rate)
            rows.append((rel, name))
    with open(root / "annotations.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "species"), *rows])
    return root


IMV_RECORDINGS = {  # filename -> (twin folder, rate)
    "20160907_Twin1_marmoset1": ("twin_1", 44_100),
    "20160907_Twin1_marmoset2": ("twin_1", 48_000),
    "20160908_Twin2_marmoset1": ("twin_2", 44_100),
    "20160908_Twin2_marmoset2": ("twin_2", 8_000),
}


def make_imv(root: Path, calls_per_recording: int = 9, recording_s: float = 6.0) -> tuple[Path, list[dict]]:
    """labels.csv (filename,start,end,duration,calltype,caller) + data/twin_<T>/<filename>.wav.

    Call types 1 Phee, 2 Twitter, 3 Trill cycle through each recording; one Silence (11) and one
    Noise (12) row per recording are added. Returns the root and the rows written.
    """
    rows = []
    for r_index, (filename, (folder, rate)) in enumerate(IMV_RECORDINGS.items()):
        audio = tone(300.0, recording_s, rate, seed=r_index)
        for k in range(calls_per_recording):
            start = 0.3 + k * 0.5
            end = start + 0.1 + 0.02 * (k % 4)
            code = 1 + k % 3
            a, b = int(start * rate), int(end * rate)
            audio[a:b] += 0.4 * np.sin(2 * np.pi * 1000 * code * np.arange(b - a) / rate)
            rows.append({"filename": filename, "start": f"{start:.3f}", "end": f"{end:.3f}",
                         "duration": f"{end - start:.3f}", "calltype": str(code), "caller": str(1 + k % 2)})
        for code in (11, 12):
            start = recording_s - 0.9 + (code - 11) * 0.3
            rows.append({"filename": filename, "start": f"{start:.3f}", "end": f"{start + 0.2:.3f}",
                         "duration": "0.200", "calltype": str(code), "caller": "1"})
        write(root / "data" / folder / f"{filename}.wav", np.clip(audio, -1, 1), rate)
    write_labels(root, rows)
    return root, rows


def write_labels(root: Path, rows: list[dict]) -> None:
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["filename", "start", "end", "duration", "calltype", "caller"])
        writer.writeheader()
        writer.writerows(rows)


ABZALIEV_DOGS = ("Mescalina_01", "Rex_02", "Luna_03", "Toby_04")


def make_abzaliev(root: Path, per_code: int = 2) -> Path:
    """data/<Dogname_xxx>/<CALLTYPE>/*.wav at 48 kHz (one dog at 44.1 kHz), codes L-S2, GR-P, CH-N and S."""
    for d_index, dog in enumerate(ABZALIEV_DOGS):
        rate = 44_100 if d_index == 3 else 48_000
        for c_index, code in enumerate(("L-S2", "GR-P", "CH-N", "S")):
            for i in range(per_code):
                audio = tone(500.0 * (c_index + 1), 0.15 + 0.1 * i, rate, seed=d_index * 10 + i)
                write(root / "data" / dog / code / f"{dog.lower()}_{code}_{i}.wav", audio, rate)
    (root / "data" / "Rex_02" / "notes.txt").write_text("not audio")
    return root


def test_scans_read_each_layout(tmp_path: Path) -> None:
    from dataset_scripts.abzaliev import scan_abzaliev
    from dataset_scripts.imv import scan_imv
    from dataset_scripts.watkins import scan_watkins

    items, problems, dropped = scan_watkins(make_watkins(tmp_path / "w"))
    assert (len(items), problems, dropped) == (18, [], 0)
    assert items[0].item_id == "Atlantic_Spotted_Dolphin/00008300" and items[0].label == "Atlantic_Spotted_Dolphin"
    items, problems, dropped = scan_watkins(tmp_path / "w", drop_species=("Weddell_Seal",))
    assert (len(items), dropped) == (12, 6)

    root, rows = make_imv(tmp_path / "i")
    items, problems, dropped = scan_imv(root)
    assert (len(items), problems, dropped) == (36, [], {"Silence": 4, "Noise": 4})
    first = items[0]
    assert (first.label, first.start, first.end, first.group) == ("Phee", 0.3, 0.4, "twin1_marmoset1")
    assert first.meta == {"caller": "twin1_marmoset1", "recording": "20160907_Twin1_marmoset1", "start": 0.3, "end": 0.4}
    assert {i.group for i in items} == {"twin1_marmoset1", "twin1_marmoset2", "twin2_marmoset1", "twin2_marmoset2"}
    assert len(scan_imv(root, keep_silence_noise=True)[0]) == 44

    items, problems, dropped, ignored = scan_abzaliev(make_abzaliev(tmp_path / "a"))
    assert (len(items), problems, dropped, ignored) == (24, [], 8, 1)
    assert {i.meta["individual"] for i in items} == {"mescalina", "rex", "luna", "toby"}
    assert len(scan_abzaliev(tmp_path / "a", keep_s=True)[0]) == 32
