"""Benchmark: prepare a synthetic IMV-shaped corpus and print peak memory and throughput.

IMV is 350 ten-minute 44.1 kHz recordings with 72,920 segments (median 127 ms, 464 audio-minutes).
This writes a corpus of the same shape, only smaller by default (20 recordings, 4,000 segments,
~1 GB of WAV), runs `hf-bio prepare imv` on it in a child process, and prints the peak RSS of the
largest process (main or worker) and segments/s and audio-minutes/s. Peak RSS should stay flat as
the corpus grows: the builder never holds more than a shard of segments.

    python bench/bench_prepare_imv.py                          # default, a few minutes on 2 cores
    python bench/bench_prepare_imv.py --recordings 350 --segments 72920 --num-proc 8   # full scale, ~18 GB raw
    python bench/bench_prepare_imv.py --recordings 4 --minutes 2 --segments 400        # smoke test

The corpus is written to --work (default: a temporary folder, deleted afterwards).
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 44_100


def write_corpus(root: Path, recordings: int, minutes: float, segments: int, seed: int) -> float:
    """Write recordings block by block (bounded memory) and labels.csv; returns labelled audio-minutes."""
    rng = np.random.default_rng(seed)
    seconds = minutes * 60
    rows = []
    per_recording = np.full(recordings, segments // recordings)
    per_recording[: segments % recordings] += 1
    for r in range(recordings):
        twin, marmoset = r // 2 % 5 + 1, r % 2 + 1
        name = f"2016{r // 10 % 12 + 1:02d}{r % 28 + 1:02d}_Twin{twin}_marmoset{marmoset}_{r:03d}"
        path = root / "data" / f"twin_{twin}" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        with sf.SoundFile(path, "w", samplerate=RATE, channels=1, subtype="PCM_16") as f:
            block = 10 * RATE
            for start in range(0, int(seconds * RATE), block):
                n = min(block, int(seconds * RATE) - start)
                t = (start + np.arange(n)) / RATE
                f.write((0.02 * rng.standard_normal(n) + 0.1 * np.sin(2 * np.pi * 5000 * t)).astype(np.float32))
        lengths = np.clip(rng.lognormal(np.log(0.127), 0.8, per_recording[r]), 0.02, 3.0)
        starts = rng.uniform(0, seconds - 3.1, per_recording[r])
        codes = rng.choice(13, per_recording[r], p=[0.86 / 11] * 11 + [0.07, 0.07])  # 11/12: Silence/Noise
        for s, length, code in sorted(zip(starts, lengths, codes, strict=True)):
            rows.append((name, f"{s:.3f}", f"{s + length:.3f}", f"{length:.3f}", int(code), marmoset))
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "start", "end", "duration", "calltype", "caller"])
        writer.writerows(rows)
    return sum(float(r[3]) for r in rows if r[4] < 11) / 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=10.0, help="length of each recording")
    parser.add_argument("--segments", type=int, default=4000, help="labels.csv rows (about 1 in 7 Silence/Noise)")
    parser.add_argument("--num-proc", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="folder for the corpus and output (kept)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="bench_imv_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        labelled_minutes = write_corpus(work / "raw", args.recordings, args.minutes, args.segments, args.seed)
        t1 = time.perf_counter()
        raw_gb = sum(p.stat().st_size for p in (work / "raw").rglob("*") if p.is_file()) / 1e9
        print(f"corpus: {args.recordings} recordings x {args.minutes:g} min at 44.1 kHz ({raw_gb:.2f} GB), "
              f"{args.segments} rows, written in {t1 - t0:.0f} s")
        # The imports alone (CUDA-build torch, torchaudio, torchcodec, datasets) set a floor on RSS.
        subprocess.run([sys.executable, "-c", "import hf_bio.data, dataset_scripts, torch, torchaudio, torchcodec.decoders"],
                       check=True)
        baseline_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        command = [sys.executable, "-m", "hf_bio", "prepare", "imv", str(work / "raw"), str(work / "out"),
                   "--num-proc", str(args.num_proc), "--overwrite"]
        t2 = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elapsed = time.perf_counter() - t2
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
        summary = json.loads((work / "out" / ".hf_bio_prepared.json").read_text())
        n = summary["num_items"]
        out_mb = sum(p.stat().st_size for p in (work / "out").rglob("*") if p.is_file()) / 1e6
        print(f"prepared: {n} segments ({labelled_minutes:.1f} audio-minutes), output {out_mb:.0f} MB "
              f"(Arrow + Parquet), num_proc={args.num_proc}")
        print(f"time: {elapsed:.1f} s  |  {n / elapsed:.1f} segments/s  |  {labelled_minutes / elapsed:.2f} "
              f"audio-minutes/s  |  {args.recordings * args.minutes / elapsed:.2f} recording-minutes/s")
        print(f"peak RSS of the largest prepare process (main or worker): {peak_mb:.0f} MB "
              f"(of which {baseline_mb:.0f} MB is just importing torch/torchaudio/torchcodec/datasets)")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
