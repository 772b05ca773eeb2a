"""The full layer sweep trained together (one StackedHeads run) vs one training per layer.

Both arms run the same code (`hf_bio.train.train_layerwise`) with the same recipe on the same cached
features: the "separate" arm calls it once per layer with `layers=(l,)`, which is what training one
head per layer costs (the paper's 13 runs per backbone and dataset); the "stacked" arm trains all
layers in one call. Heads, batches and initialisation are identical per layer (tests/test_train.py),
so the two arms produce the same heads; the bench checks the per-layer validation UARs agree.

Two numbers per arm, from the same runs:
- whole run: what a run of this size costs, including the per-run work (training-set statistics,
  final evaluation, figures, files) that 13 separate runs pay 13 times;
- per epoch: the steady state, timed between epoch ends with `on_epoch_end` (training steps, the
  validation pass, the checkpoint). A long run (IMV: ~51,000 training clips, up to 30 epochs)
  converges to this ratio; short runs (Watkins: ~1,200 clips) sit nearer the whole-run ratio.
On a CPU the per-epoch ratio is bounded by the heads' own work, which stacking does not share: each
head's step multiplies its 16 x 1536 batch into a 1536 x 128 layer forward and backward and moves that
layer's weights, gradient and Adam moments (~3.3 MB). On the 2-core EPYC this bench was written on, a step
costs ~1 ms plus ~0.37 ms per head (half that with 768-d inputs), so 13 stacked heads cannot beat 13 single
heads by much more than 3-4x per epoch, however the stacking is done. Where a step costs launch overhead
rather than arithmetic (a GPU), the per-head term nearly vanishes.

A third comparison runs both as the commands a user types (`python -m hf_bio.train ... [--layers l]`,
each a fresh process that loads the cached features from disk): 13 commands vs one.

Synthetic features of IMV-like shape: 13 hidden states x 1536 (mean+std of 768-d), 11 classes, the
paper's 70/20/10 split proportions. Default: 3 epochs on 3,000 training clips (a few minutes on 2 cores).
Run: python bench/bench_layer_sweep.py [--epochs 3 --train-size 3000 --threads 2]
On a machine with a GPU, both arms train on it (accelerate's default device); ACCELERATE_USE_CPU=true
keeps them on the CPU.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from hf_bio.feature_set import FeatureSet  # noqa: E402
from hf_bio.recipe import TrainRecipe  # noqa: E402
from hf_bio.train import train_layerwise  # noqa: E402


def synthetic_split(n: int, layers: int, dim: int, classes: int, seed: int, split: str) -> FeatureSet:
    """Class-dependent means whose strength grows with depth, so every layer has something to learn."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    centers = torch.randn(classes, layers, dim, generator=torch.Generator().manual_seed(0))
    strength = torch.linspace(0.05, 0.3, layers)[None, :, None]
    features = torch.randn(n, layers, dim, generator=g) + strength * centers[labels]
    meta = {"backbone": {"name": "synthetic"}, "dataset": {"name": "bench", "fingerprint": "bench"}, "split": split,
            "pooling": "mean+std", "extraction": {}}
    return FeatureSet(features, labels, [f"c{i}" for i in range(classes)], meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-size", type=int, default=3000)
    parser.add_argument("--eval-size", type=int, default=None,
                        help="clips in validation (test gets half); default 2/7 of --train-size, the 70/20/10 split")
    parser.add_argument("--layers", type=int, default=13)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--classes", type=int, default=11)
    parser.add_argument("--epochs", type=int, default=3, help="at least 2 (the per-epoch time is between epoch ends)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads for both arms")
    parser.add_argument("--no-commands", action="store_true", help="skip the comparison as separate commands")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the per-epoch time is measured between epoch ends")
    val_size = args.eval_size if args.eval_size is not None else round(args.train_size * 2 / 7)
    test_size = max(1, val_size // 2)
    torch.set_num_threads(args.threads)
    splits = [
        synthetic_split(n, args.layers, args.dim, args.classes, seed, split)
        for n, seed, split in ((args.train_size, 1, "train"), (val_size, 2, "validation"), (test_size, 3, "test"))
    ]
    recipe = TrainRecipe(max_epochs=args.epochs)
    from accelerate import Accelerator

    device = Accelerator().device  # what train_layerwise's own Accelerator will use (a GPU when there is one)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{args.threads} thread(s); training on {device}")
    print(f"features: train {args.train_size}, validation {val_size}, test {test_size} clips x {args.layers} layers x "
          f"{args.dim}; {args.classes} classes; recipe = paper's with max_epochs={args.epochs} (no early stop in so few epochs)")
    with tempfile.TemporaryDirectory() as tmp:
        train_layerwise(*splits, recipe=TrainRecipe(max_epochs=1, layers=(0,)), output_dir=Path(tmp) / "warmup")
        stacked, t_stacked, e_stacked = timed_run(splits, recipe, Path(tmp) / "stacked")
        separate, t_separate, e_separate = [], 0.0, 0.0
        for layer in range(args.layers):
            one = TrainRecipe(**{**recipe.to_dict(), "layers": (layer,)})
            results, seconds, per_epoch = timed_run(splits, one, Path(tmp) / f"layer{layer}")
            separate += results["layers"]
            t_separate, e_separate = t_separate + seconds, e_separate + per_epoch
        if not args.no_commands:
            t_commands_separate, t_commands_stacked = time_commands(splits, args, Path(tmp))
    worst = max(abs(a["val_uar"] - b["val_uar"]) for a, b in zip(stacked["layers"], separate, strict=True))
    print(f"\n{'in one process (same features in memory)':<48}{'whole run s':>12}{'per epoch s':>12}")
    print(f"{f'{args.layers} separate trainings (1 head each)':<48}{t_separate:>12.2f}{e_separate:>12.3f}")
    print(f"{f'one stacked training ({args.layers} heads)':<48}{t_stacked:>12.2f}{e_stacked:>12.3f}")
    print(f"{'speed-up (target >= 5x)':<48}{t_separate / t_stacked:>11.2f}x{e_separate / e_stacked:>11.2f}x")
    print(f"largest per-layer validation UAR difference between the arms: {worst:.2e}")
    if not args.no_commands:
        print(f"\n{'as commands (python -m hf_bio.train, cache on disk)':<48}{'whole run s':>12}")
        print(f"{f'{args.layers} commands, --layers l each':<48}{t_commands_separate:>12.2f}")
        print(f"{'one command, all layers':<48}{t_commands_stacked:>12.2f}")
        print(f"{'speed-up (target >= 5x)':<48}{t_commands_separate / t_commands_stacked:>11.2f}x")


def timed_run(splits: list[FeatureSet], recipe: TrainRecipe, output_dir: Path) -> tuple[dict, float, float]:
    """results, whole-run seconds, and the mean seconds between consecutive epoch ends (the steady state)."""
    ends: list[float] = []
    start = time.perf_counter()
    results = train_layerwise(*splits, recipe=recipe, output_dir=output_dir, on_epoch_end=lambda _: ends.append(time.perf_counter()))
    seconds = time.perf_counter() - start
    return results, seconds, (ends[-1] - ends[0]) / (len(ends) - 1)


def time_commands(splits: list[FeatureSet], args: argparse.Namespace, tmp: Path) -> tuple[float, float]:
    """Wall time of the per-layer commands and of the single all-layer command, features read from disk."""
    import subprocess

    names = ("train", "val", "test")
    for name, split in zip(names, splits, strict=True):
        split.save(tmp / f"features-{name}")
    base = [sys.executable, "-m", "hf_bio.train", *[f"--{n}-features={tmp / f'features-{n}'}" for n in names],
            f"--max-epochs={args.epochs}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def run(extra: list[str]) -> None:
        subprocess.run([*base, *extra], check=True, env=env, stdout=subprocess.DEVNULL)

    start = time.perf_counter()
    for layer in range(args.layers):
        run([f"--output-dir={tmp / f'cmd-layer{layer}'}", "--layers", str(layer)])
    t_separate = time.perf_counter() - start
    start = time.perf_counter()
    run([f"--output-dir={tmp / 'cmd-all'}"])
    return t_separate, time.perf_counter() - start


if __name__ == "__main__":
    main()
