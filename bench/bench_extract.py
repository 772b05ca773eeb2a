"""Extraction throughput on many short clips: length-bucketed batches vs one clip at a time.

IMV-like clip lengths (lognormal around the corpus's 127 ms median) run through a tiny random model and a
base-sized random model (768-d, 12 layers, the paper's backbone size). For each, the script prints the wall
time of both ways, the speed-up, the largest difference between their features (must be <= 1e-4), and the
useful compute rate: the backbone's FLOPs for the clips' TRUE lengths (counted with
`torch.utils.flop_counter.FlopCounterMode`, once per distinct length) divided by the wall time, next to this
machine's own fp32 matmul rate measured in the same run.

The model repeat-pads clips shorter than `min_input_samples` before the backbone sees them: by default 400
samples, the shortest input the encoder turns into a frame, so only clips under 25 ms are lengthened. The
paper's code repeat-pads to 5,000 samples (`--min-input-samples 5000`); that work is real but not "useful" by
the definition above (on these clips it more than doubles the backbone's FLOPs), so the script also prints the
rate counted on the lengths the backbone actually runs ("executed") and the ceiling the padding puts on the
useful rate.

    python bench/bench_extract.py                 # 300 clips, 2 threads, tiny + base
    python bench/bench_extract.py --clips 100 --models tiny
    python bench/bench_extract.py --models base --min-input-samples 5000   # the paper's repeat-padding
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from hf_bio.configuration_bio import DEFAULT_MIN_INPUT_SAMPLES, PAPER_MIN_INPUT_SAMPLES, BioClassifierConfig
from hf_bio.features import length_buckets, pooled_features
from hf_bio.modeling_bio import BioClassifierModel
from hf_bio.tiny import BASE_CONFIG, TINY_CONFIG

SAMPLING_RATE = 16_000
MEDIAN_SECONDS = 0.127  # InfantMarmosetsVox's median call length (the paper's dataset table)


def imv_like_lengths(count: int, seed: int) -> list[int]:
    """Lognormal lengths around 127 ms, in whole milliseconds as annotations give them, 30 ms to 2 s."""
    rng = np.random.default_rng(seed)
    seconds = np.clip(rng.lognormal(math.log(MEDIAN_SECONDS), 0.6, count), 0.03, 2.0)
    return [int(round(s * 1000)) * SAMPLING_RATE // 1000 for s in seconds]


def build_model(size: str, min_input_samples: int) -> BioClassifierModel:
    settings = {"model_type": "hubert", **(TINY_CONFIG if size == "tiny" else BASE_CONFIG)}
    settings = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
    torch.manual_seed(0)
    config = BioClassifierConfig(backbone_config=settings, id2label={0: "a", 1: "b"},
                                 min_input_samples=min_input_samples)
    return BioClassifierModel(config).eval()


def matmul_rate(size: int = 2048, repeats: int = 5) -> float:
    """fp32 FLOP/s of a square torch.mm: the best of `repeats` timed runs after a warm-up."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def backbone_flops(model: BioClassifierModel, lengths: list[int]) -> float:
    """Sum of the backbone's FLOPs over clips run alone at these lengths (fake tensors: nothing is computed)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    per_length: dict[int, int] = {}
    # no_grad, not inference_mode: FlopCounterMode's module hooks break weight-norm parametrisations under
    # inference mode.
    with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True) as fake:
        for n in sorted(set(lengths)):
            with FlopCounterMode(display=False) as counter:
                model.backbone(fake.from_tensor(torch.zeros(1, n)), output_hidden_states=True)
            per_length[n] = counter.get_total_flops()
    return float(sum(per_length[n] for n in lengths))


def one_at_a_time(model: BioClassifierModel, clips: list[np.ndarray]) -> torch.Tensor:
    out = []
    with torch.inference_mode():
        for clip in clips:
            out.append(model.pooled_hidden_states(torch.from_numpy(clip)[None]))
    return torch.cat(out)


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def run(size: str, clips: list[np.ndarray], budgets: list[float], peak: float, min_input_samples: int) -> list[dict]:
    model = build_model(size, min_input_samples)
    lengths = [len(c) for c in clips]
    executed_lengths = [max(n, model.config.min_input_samples) for n in lengths]
    useful = backbone_flops(model, lengths)
    executed = backbone_flops(model, executed_lengths)
    pooled_features(model, clips[:8], int(budgets[0] * SAMPLING_RATE))  # warm-up: allocator, kernels
    alone, t_alone = timed(one_at_a_time, model, clips)
    rows = []
    for budget in budgets:
        samples = int(budget * SAMPLING_RATE)
        batched, t_batched = timed(pooled_features, model, clips, samples)
        diff = (batched - alone).abs().max().item()
        assert diff <= 1e-4, f"batched and one-at-a-time features differ by {diff}"
        batches = length_buckets(
            [min(max(n, model.config.min_input_samples), samples) for n in lengths], samples
        )
        rows.append({
            "model": size, "budget_s": budget, "batches": len(batches), "t_alone": t_alone, "t_batched": t_batched,
            "speedup": t_alone / t_batched, "max_diff": diff,
            "useful_rate": useful / t_batched, "executed_rate": executed / t_batched,
            "useful_alone": useful / t_alone, "peak": peak, "useful_gflop": useful / 1e9,
            "executed_gflop": executed / 1e9, "min_input_samples": model.config.min_input_samples,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (the machine's cores)")
    parser.add_argument("--models", nargs="+", default=["tiny", "base"], choices=["tiny", "base"])
    parser.add_argument("--budgets", nargs="+", type=float, default=[2.0, 4.0, 16.0, 64.0],
                        help="padded seconds per batch to try (features.extract_features' batch_max_seconds)")
    parser.add_argument("--min-input-samples", type=int, default=DEFAULT_MIN_INPUT_SAMPLES,
                        help=f"the model's repeat-padding length (default {DEFAULT_MIN_INPUT_SAMPLES}, the conv "
                        f"encoder's minimum: true lengths); {PAPER_MIN_INPUT_SAMPLES} is the paper's rule")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    clips = [(0.3 * rng.standard_normal(n)).astype(np.float32) for n in imv_like_lengths(args.clips, args.seed)]
    seconds = np.array([len(c) for c in clips]) / SAMPLING_RATE
    print(f"{len(clips)} clips, median {1000 * np.median(seconds):.0f} ms, total {seconds.sum():.1f} s; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    rows = []
    for size in args.models:
        before = matmul_rate()
        size_rows = run(size, clips, args.budgets, before, args.min_input_samples)
        after = matmul_rate()
        for row in size_rows:  # the machine is shared: use the better of the two measurements around the run
            row["peak"] = max(before, after)
        rows += size_rows

    header = (f"{'model':5} {'budget':>7} {'batches':>7} {'alone s':>8} {'batched s':>9} {'speed-up':>8} "
              f"{'max diff':>9} {'useful GFLOP/s':>14} {'exec GFLOP/s':>12} {'matmul GFLOP/s':>14} "
              f"{'useful/matmul':>13} {'exec/matmul':>11}")
    print(header)
    for r in rows:
        print(f"{r['model']:5} {r['budget_s']:>6.0f}s {r['batches']:>7} {r['t_alone']:>8.2f} {r['t_batched']:>9.2f} "
              f"{r['speedup']:>7.1f}x {r['max_diff']:>9.1e} {r['useful_rate'] / 1e9:>14.1f} "
              f"{r['executed_rate'] / 1e9:>12.1f} {r['peak'] / 1e9:>14.1f} {r['useful_rate'] / r['peak']:>13.2f} "
              f"{r['executed_rate'] / r['peak']:>11.2f}")
    for size in args.models:
        size_rows = [x for x in rows if x["model"] == size]
        r = max(size_rows, key=lambda x: x["speedup"])
        padding = r["executed_gflop"] / r["useful_gflop"]
        print(f"{size}: backbone work for the true lengths {r['useful_gflop']:.1f} GFLOP; after the model's "
              f"repeat-padding to {r['min_input_samples']} samples {r['executed_gflop']:.1f} GFLOP ({padding:.2f}x), "
              f"so even at the matmul rate useful/matmul could not exceed {1 / padding:.2f}")
        targets = " (targets on the base-sized model: speed-up >= 3x, useful/matmul >= 0.5)" if size == "base" else ""
        print(f"{size}: best budget {r['budget_s']:g} s: speed-up {r['speedup']:.1f}x, useful/matmul "
              f"{r['useful_rate'] / r['peak']:.2f}, executed/matmul {r['executed_rate'] / r['peak']:.2f}; one at a time: "
              f"executed/matmul {r['useful_alone'] * padding / r['peak']:.2f}{targets}")


if __name__ == "__main__":
    main()
