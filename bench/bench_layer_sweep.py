"""The full layer sweep trained together (one StackedHeads run) vs one training per layer.

Both arms run the same code (`hf_bio.train.train_layerwise`) with the same recipe on the same cached
features: the "separate" arm calls it once per layer with `layers=(l,)`, which is what training one
head per layer costs (the paper's 13 runs per backbone and dataset); the "stacked" arm trains all
layers in one call. Heads, batches and initialisation are identical per layer (tests/test_train.py),
so the two arms produce the same heads; the bench checks the per-layer validation UARs agree.

A second comparison runs both as the commands a user types (`python -m hf_bio.train ... [--layers l]`,
each a fresh process that loads the cached features from disk): 13 commands vs one. It counts what a
per-layer workflow really pays on top of the arithmetic (start-up, reading the cache); on a CPU the
arithmetic of the heads is the same either way, so the in-process ratio is bounded by the per-step
overhead that stacking removes.

Synthetic features of IMV-like size: 13 hidden states x 1536 (mean+std of 768-d), 11 classes. To finish
in a few minutes on 2 CPU cores the default trains 2 epochs on 3,000 clips (IMV's train split has
~51,000 clips and the recipe up to 30 epochs); the per-step costs, hence the ratio, do not depend on
those two numbers. Run: python bench/bench_layer_sweep.py [--epochs 2 --train-size 3000 --threads 1]
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
    parser.add_argument("--eval-size", type=int, default=600, help="clips in validation and in test")
    parser.add_argument("--layers", type=int, default=13)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--classes", type=int, default=11)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both arms")
    parser.add_argument("--no-commands", action="store_true", help="skip the comparison as separate commands")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    splits = [
        synthetic_split(n, args.layers, args.dim, args.classes, seed, split)
        for n, seed, split in ((args.train_size, 1, "train"), (args.eval_size, 2, "validation"), (args.eval_size, 3, "test"))
    ]
    recipe = TrainRecipe(max_epochs=args.epochs)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s)")
    print(f"features: train {args.train_size}, val/test {args.eval_size} clips x {args.layers} layers x {args.dim}; "
          f"{args.classes} classes; recipe = paper's with max_epochs={args.epochs} (no early stop in so few epochs)")
    with tempfile.TemporaryDirectory() as tmp:
        train_layerwise(*splits, recipe=TrainRecipe(max_epochs=1, layers=(0,)), output_dir=Path(tmp) / "warmup")
        start = time.perf_counter()
        stacked = train_layerwise(*splits, recipe=recipe, output_dir=Path(tmp) / "stacked")
        t_stacked = time.perf_counter() - start
        start = time.perf_counter()
        separate = []
        for layer in range(args.layers):
            one = TrainRecipe(**{**recipe.to_dict(), "layers": (layer,)})
            separate += train_layerwise(*splits, recipe=one, output_dir=Path(tmp) / f"layer{layer}")["layers"]
        t_separate = time.perf_counter() - start
        if not args.no_commands:
            t_commands_separate, t_commands_stacked = time_commands(splits, args, Path(tmp))
    worst = max(abs(a["val_uar"] - b["val_uar"]) for a, b in zip(stacked["layers"], separate, strict=True))
    print(f"\n{'in one process (same features in memory)':<48}{'wall s':>9}")
    print(f"{f'{args.layers} separate trainings (1 head each)':<48}{t_separate:>9.1f}")
    print(f"{f'one stacked training ({args.layers} heads)':<48}{t_stacked:>9.1f}")
    print(f"speed-up: {t_separate / t_stacked:.2f}x (target >= 5x); largest per-layer val UAR difference: {worst:.2e}")
    if not args.no_commands:
        print(f"\n{'as commands (python -m hf_bio.train, cache on disk)':<48}{'wall s':>9}")
        print(f"{f'{args.layers} commands, --layers l each':<48}{t_commands_separate:>9.1f}")
        print(f"{'one command, all layers':<48}{t_commands_stacked:>9.1f}")
        print(f"speed-up: {t_commands_separate / t_commands_stacked:.2f}x (target >= 5x)")


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
