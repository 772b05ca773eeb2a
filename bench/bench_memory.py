"""Peak memory of extracting one long clip vs one short clip with a base-sized random model and windowing.

Each case runs in a fresh Python process, which builds a base-sized random HuBERT (768-d, 12 layers), warms
it up on a 1 s clip, allocates the test clip, resets the kernel's peak-RSS mark and records the RSS, runs the
clip through the extraction path (`hf_bio.features.pooled_features`, as `extract_features` does), then reads
the peak-RSS mark again. The growth of the peak over the baseline is what extraction itself needed: the
model's weights and the clip's own samples are excluded, everything else (activations, copies, the pooled
output, allocator slack) is included.

The peak mark is reset through /proc/self/clear_refs (Linux >= 4.0); where that is not allowed the script
samples /proc/self/statm every millisecond from a thread instead (and says so). glibc's dynamic mmap
threshold is pinned (MALLOC_MMAP_THRESHOLD_) so that freed large blocks go back to the kernel and RSS tracks
live memory rather than allocator caches, in every case alike.

    python bench/bench_memory.py                      # windows of 10 s (the default) and 20 s, 2 threads
    python bench/bench_memory.py --window-seconds 10

Memory is bounded by the window, not the clip: a clip longer than `max_window_seconds` costs what one full
window costs. A 10 s clip under 20 s windows runs as one 10 s pass, so it needs about half of what any clip
of 20 s or more needs; with 10 s windows the 10 s clip and the 10 min one need about the same.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

SAMPLING_RATE = 16_000


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(seconds: float, window_seconds: float, threads: int) -> dict:
    import numpy as np
    import torch

    from hf_bio.configuration_bio import BioClassifierConfig
    from hf_bio.features import DEFAULT_BATCH_MAX_SECONDS, pooled_features
    from hf_bio.modeling_bio import BioClassifierModel
    from hf_bio.tiny import BASE_CONFIG

    torch.set_num_threads(threads)
    settings = {"model_type": "hubert", **{k: list(v) if isinstance(v, tuple) else v for k, v in BASE_CONFIG.items()}}
    config = BioClassifierConfig(backbone_config=settings, max_window_seconds=window_seconds, id2label={0: "a", 1: "b"})
    model = BioClassifierModel(config).eval()
    budget = int(DEFAULT_BATCH_MAX_SECONDS * SAMPLING_RATE)
    rng = np.random.default_rng(0)
    pooled_features(model, [rng.standard_normal(SAMPLING_RATE).astype(np.float32)], budget)  # warm-up
    clip = (0.3 * rng.standard_normal(int(seconds * SAMPLING_RATE))).astype(np.float32)

    exact = _reset_peak()
    baseline = _rss_kib()
    peak_seen = [baseline]
    stop = threading.Event()

    def sample() -> None:  # fallback when the peak mark cannot be reset
        while not stop.is_set():
            peak_seen[0] = max(peak_seen[0], _rss_kib())
            time.sleep(0.001)

    sampler = None if exact else threading.Thread(target=sample, daemon=True)
    if sampler:
        sampler.start()
    start = time.perf_counter()
    features = pooled_features(model, [clip], budget)
    wall = time.perf_counter() - start
    stop.set()
    if sampler:
        sampler.join()
    peak = _hwm_kib() if exact else peak_seen[0]
    return {
        "seconds": seconds, "window_seconds": window_seconds, "baseline_mib": baseline / 1024,
        "growth_mib": (peak - baseline) / 1024, "wall_s": wall, "method": "VmHWM reset" if exact else "RSS sampling",
        "shape": list(features.shape),
    }


def measure(seconds: float, window_seconds: float, threads: int) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", PYTHONWARNINGS="ignore")
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(seconds), "--window-seconds", str(window_seconds),
         "--threads", str(threads)],
        env=env, capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child for {seconds} s failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--window-seconds", type=float, nargs="+", default=[10.0, 20.0],
                        help="the model's max_window_seconds; one table per value (default: 20, the model's, and 10)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--short", type=float, default=10.0)
    parser.add_argument("--long", type=float, default=600.0)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.window_seconds[0], args.threads)))
        return

    summary = []
    for window in args.window_seconds:
        cases = [args.short, args.long]
        if window != args.short:
            cases.insert(1, window)  # a clip of exactly one window: the most one backbone pass holds
        rows = [measure(s, window, args.threads) for s in cases]
        print(f"base-sized random HuBERT, max_window_seconds={window:g}, {args.threads} threads, "
              f"peak RSS growth by {rows[0]['method']}")
        print(f"{'clip':>8} {'peak growth MiB':>16} {'wall s':>7} {'vs short':>9}")
        for r in rows:
            print(f"{r['seconds']:>7g}s {r['growth_mib']:>16.0f} {r['wall_s']:>7.1f} "
                  f"{r['growth_mib'] / rows[0]['growth_mib']:>8.2f}x")
        summary.append((window, rows[-1]["growth_mib"] / rows[0]["growth_mib"],
                        rows[-1]["growth_mib"] / rows[-2]["growth_mib"]))
    for window, vs_short, vs_window in summary:
        print(f"window {window:g} s: {args.long:g} s vs {args.short:g} s clip {vs_short:.2f}x (target <= 1.5x); "
              f"vs one full window {vs_window:.2f}x")


if __name__ == "__main__":
    main()
