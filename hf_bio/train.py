"""Train the MLP heads of every layer (and seed) at once from cached pooled features, with accelerate.

    accelerate launch --config_file accelerate_config.yaml -m hf_bio.train \
        --train-features F/train --val-features F/validation --test-features F/test --output-dir RUN_DIR

The paper trains one head per layer: 13 runs per backbone and dataset. Here all layers' heads are one
`StackedHeads` module, so one pass over the data trains all of them; each layer still keeps its own
learning-rate schedule, early stopping and best checkpoint, so the result per layer is that of a
separate run (same initialisation, same batches; see tests/test_train.py).

Recipe (`TrainRecipe`, defaults = the paper's): z-score with the training split's statistics, Adam 1e-3,
batch 16, at most 30 epochs, ReduceLROnPlateau(0.1, patience 10) on validation loss, early stopping on
validation UAR (patience 10), the best-validation-UAR checkpoint evaluated on test, seed 12345.

RUN_DIR gets results.json, predictions.safetensors, heads.safetensors, feature_stats.safetensors and
curves.json (contract 5; written by `hf_bio.run_outputs`); checkpoint/ holds `save_state` after every
epoch so `--resume` continues.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from hf_bio.atomic import replace_dir
from hf_bio.feature_set import FeatureSet, check_compatible, feature_stats
from hf_bio.heads import StackedAdam, StackedHeads
from hf_bio.prepared_features import add_dataset_arguments
from hf_bio.recipe import TrainRecipe, add_data_arguments, add_recipe_arguments, recipe_from_args
from hf_bio.run_outputs import run_results, write_run_dir
from hf_bio.uar import confusion_matrix, uar_from_confusion

CHECKPOINT_DIR = "checkpoint"


def _init_seed(seed: int, layer: int) -> int:
    # A head's initialisation depends only on (seed, layer): training layer 3 alone or with 12 others
    # starts from the same weights.
    return seed * 1_000_003 + layer


def _epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    # Seeded by (seed, epoch), not by a running RNG: a resumed run and every process see the same order.
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + 7919 * epoch))


class LayerwiseState:
    """Per member (seed x layer): plateau schedule, early stopping, best checkpoint and curves.

    Registered with `accelerator.register_for_checkpointing`, so `save_state`/`load_state` carry it.
    """

    def __init__(self, num_members: int, recipe: TrainRecipe, signature: str) -> None:
        k = num_members
        self.recipe, self.signature = recipe, signature
        self.epoch = 0  # epochs completed
        self.best_val_loss = torch.full((k,), float("inf"), dtype=torch.float64)
        self.plateau_bad = torch.zeros(k, dtype=torch.int64)
        self.best_val_uar = torch.full((k,), -1.0, dtype=torch.float64)
        self.stop_bad = torch.zeros(k, dtype=torch.int64)
        self.best_epoch = torch.full((k,), -1, dtype=torch.int64)
        self.stopped = torch.zeros(k, dtype=torch.bool)
        self.best_params: dict[str, torch.Tensor] = {}
        self.curves: dict[str, list[list[float]]] = {n: [[] for _ in range(k)] for n in ("train_loss", "val_loss", "val_uar", "lr")}

    def update(self, epoch: int, model: StackedHeads, optimizer: StackedAdam, train_loss, val_loss, val_uar) -> None:
        r = self.recipe
        for m in (~self.stopped).nonzero().flatten().tolist():
            for name, value in (("train_loss", train_loss[m]), ("val_loss", val_loss[m]), ("val_uar", val_uar[m])):
                self.curves[name][m].append(float(value))
            self.curves["lr"][m].append(float(optimizer.member_lr[m]))
            # ReduceLROnPlateau(mode="min", threshold_mode="rel", cooldown=0, min_lr=0), as in torch.
            if val_loss[m] < self.best_val_loss[m] * (1 - r.plateau_threshold):
                self.best_val_loss[m], self.plateau_bad[m] = float(val_loss[m]), 0
            else:
                self.plateau_bad[m] += 1
            if self.plateau_bad[m] > r.plateau_patience:
                optimizer.member_lr[m] *= r.plateau_factor
                self.plateau_bad[m] = 0
            # Early stopping and the best checkpoint on validation UAR (strictly better counts).
            if val_uar[m] > self.best_val_uar[m]:
                self.best_val_uar[m], self.stop_bad[m], self.best_epoch[m] = float(val_uar[m]), 0, epoch
                with torch.no_grad():
                    for name, p in model.named_parameters():
                        if name not in self.best_params:
                            self.best_params[name] = p.detach().cpu().clone()
                        self.best_params[name][m] = p.detach()[m].cpu()
            else:
                self.stop_bad[m] += 1
                if self.stop_bad[m] >= r.early_stopping_patience:
                    self.stopped[m] = True
        optimizer.active = ~self.stopped
        self.epoch = epoch + 1

    def state_dict(self) -> dict[str, Any]:
        tensors = ("best_val_loss", "plateau_bad", "best_val_uar", "stop_bad", "best_epoch", "stopped")
        return {
            "signature": self.signature,
            "epoch": self.epoch,
            "curves": json.dumps(self.curves),
            "best_params": self.best_params,
            **{name: getattr(self, name) for name in tensors},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["signature"] != self.signature:
            saved, now = json.loads(state["signature"]), json.loads(self.signature)
            differ = sorted(key for key in now if saved.get(key) != now[key])
            raise ValueError(
                f"--resume: the checkpoint was written with a different {', '.join(differ)} "
                f"(recipe, feature meta, split sizes or number of processes); "
                "use a new --output-dir or the original arguments"
            )
        for name, value in state.items():
            if name not in ("signature", "curves"):
                setattr(self, name, value)
        self.curves = json.loads(state["curves"])


class LayerStandardizer:
    """Selects the trained layers of a batch [B, L, D] and z-scores them with the training statistics.

    Applied per batch, so the (possibly many-GB) feature cache is never copied. The result is laid out
    member-first, [L', B, D], as the stacked heads take it, written in one pass: (x - mean) / std, the
    same two roundings as `BioClassifierModel.classify_pooled` applies with its buffers.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, layers: list[int]) -> None:
        self.index = torch.tensor(layers)
        self.every_layer = layers == list(range(mean.shape[0]))  # then no selection copy is needed
        self.mean, self.std = mean[layers][:, None], std[layers][:, None]  # [L', 1, D]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, D] -> z-scored [L', B, D], contiguous."""
        if not self.every_layer:
            x = x.index_select(1, self.index.to(x.device))
        out = torch.empty((x.shape[1], x.shape[0], x.shape[2]), dtype=x.dtype, device=x.device)
        torch.sub(x.transpose(0, 1), self.mean.to(x.device), out=out)
        return out.div_(self.std.to(x.device))


def get_dataloaders(
    train: FeatureSet, val: FeatureSet, test: FeatureSet, recipe: TrainRecipe, layers: list[int]
) -> tuple[TensorDataset, DataLoader, DataLoader, LayerStandardizer, torch.Tensor, torch.Tensor]:
    """The training tensors, the evaluation loaders, and the per-batch standardiser (+ its mean/std [L, D]).

    Training batches are drawn by index from a per-(seed, epoch) permutation (see `training_function`),
    because different seeds need different batch orders within one stacked step.
    """
    mean, std = feature_stats(train)
    if not recipe.standardize:
        mean, std = torch.zeros_like(mean), torch.ones_like(std)
    val_loader = DataLoader(TensorDataset(val.features, val.labels), batch_size=recipe.eval_batch_size, shuffle=False)
    test_loader = DataLoader(TensorDataset(test.features, test.labels), batch_size=recipe.eval_batch_size, shuffle=False)
    return TensorDataset(train.features, train.labels), val_loader, test_loader, LayerStandardizer(mean, std, layers), mean, std


def _member_inputs(x: torch.Tensor, num_seeds: int) -> torch.Tensor:
    """[L, B, D] -> [S*L, B, D]: every seed's heads see every layer (member k = seed k // L, layer k % L)."""
    return x if num_seeds == 1 else x.repeat(num_seeds, 1, 1)


@torch.no_grad()
def evaluate(model, loader: DataLoader, accelerator, num_seeds: int, zscore: LayerStandardizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [N, K, C] and labels [N] over the whole split, gathered from every process."""
    model.eval()
    all_logits, all_labels = [], []
    for x, y in loader:
        logits = model(_member_inputs(zscore(x), num_seeds)).transpose(0, 1).contiguous()
        logits, y = accelerator.gather_for_metrics((logits, y))
        all_logits.append(logits.cpu())
        all_labels.append(y.cpu())
    model.train()
    return torch.cat(all_logits), torch.cat(all_labels)


def _scores(logits: torch.Tensor, labels: torch.Tensor, num_labels: int, average: str) -> dict[str, torch.Tensor]:
    """Per member: loss, UAR, accuracy, predictions [K, N]."""
    k = logits.shape[1]
    loss = F.cross_entropy(logits.permute(0, 2, 1), labels[:, None].expand(-1, k), reduction="none").mean(0)
    preds = logits.argmax(-1).T  # [K, N]
    uar = [uar_from_confusion(confusion_matrix(labels.numpy(), p.numpy(), num_labels), average) for p in preds]
    return {
        "loss": loss.double(),
        "uar": torch.tensor(uar, dtype=torch.float64),
        "accuracy": (preds == labels[None]).double().mean(1),
        "predictions": preds,
    }


def training_function(
    train: FeatureSet,
    val: FeatureSet,
    test: FeatureSet,
    recipe: TrainRecipe,
    output_dir: str | Path,
    accelerator=None,
    resume: bool = False,
    on_epoch_end: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    from accelerate import Accelerator

    accelerator = accelerator or Accelerator()
    output_dir = Path(output_dir)
    check_compatible(train, val, test)
    layers = list(recipe.layers) if recipe.layers is not None else list(range(train.num_layers))
    if min(layers) < 0 or max(layers) >= train.num_layers:
        raise ValueError(f"recipe.layers {layers} outside the features' 0..{train.num_layers - 1} hidden states")
    num_seeds, num_labels, procs = len(recipe.seeds), len(train.label_names), accelerator.num_processes
    members = [(s, layer) for s in recipe.seeds for layer in layers]
    if recipe.batch_size % procs:
        raise ValueError(f"batch_size {recipe.batch_size} must be divisible by the number of processes ({procs})")

    train_set, val_loader, test_loader, zscore, mean, std = get_dataloaders(train, val, test, recipe, layers)
    model = StackedHeads(len(members), train.dim, recipe.hidden_sizes, num_labels, init_seeds=[_init_seed(s, layer) for s, layer in members])
    optimizer = StackedAdam(model.parameters(), len(members), lr=recipe.lr)
    model, optimizer, val_loader, test_loader = accelerator.prepare(model, optimizer, val_loader, test_loader)
    signature = json.dumps(
        {"recipe": recipe.to_dict(), "meta": train.meta, "sizes": [len(train), len(val), len(test)], "procs": procs},
        sort_keys=True,
    )
    state = LayerwiseState(len(members), recipe, signature)
    accelerator.register_for_checkpointing(state)
    checkpoint = output_dir / CHECKPOINT_DIR
    if resume and checkpoint.is_dir():
        accelerator.load_state(str(checkpoint))
        accelerator.print(f"resumed from {checkpoint} after epoch {state.epoch}")
    unwrapped = accelerator.unwrap_model(model)
    unwrapped_optimizer = optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer

    x_train, y_train = train_set.tensors
    n = len(y_train)
    for epoch in range(state.epoch, recipe.max_epochs):
        if bool(state.stopped.all()):
            break
        perms = [_epoch_permutation(n, seed, epoch) for seed in recipe.seeds]
        loss_sum = torch.zeros(len(members), device=accelerator.device)
        for start in range(0, n, recipe.batch_size):
            # Each process takes every P-th row of the global batch, so P processes step like one.
            rows = [p[start : start + recipe.batch_size][accelerator.process_index :: procs] for p in perms]
            seeds_x = [zscore(x_train[r].to(accelerator.device)) for r in rows]
            x = seeds_x[0] if len(seeds_x) == 1 else torch.cat(seeds_x)  # one seed: no extra copy
            y = torch.stack([y_train[r] for r in rows]).repeat_interleave(len(layers), dim=0).to(accelerator.device)
            logits = model(x)
            per_member = F.cross_entropy(logits.permute(0, 2, 1), y, reduction="none").sum(1)
            global_batch = min(recipe.batch_size, n - start)
            # DDP averages gradients over processes: scale so the sum is the global batch mean per member.
            accelerator.backward(per_member.sum() * procs / global_batch)
            optimizer.step()
            optimizer.zero_grad()
            loss_sum += per_member.detach()
        train_loss = (accelerator.reduce(loss_sum, reduction="sum") / n).cpu()
        epoch_val = _scores(*evaluate(model, val_loader, accelerator, num_seeds, zscore), num_labels, recipe.uar_average)
        state.update(epoch, unwrapped, unwrapped_optimizer, train_loss, epoch_val["loss"], epoch_val["uar"])
        _save_checkpoint(accelerator, checkpoint)
        if on_epoch_end is not None:
            on_epoch_end(epoch)

    # The best-validation-UAR weights of every member, then the final evaluation.
    with torch.no_grad():
        for name, p in unwrapped.named_parameters():
            p.copy_(state.best_params[name].to(p.device))
    val_scores = _scores(*evaluate(model, val_loader, accelerator, num_seeds, zscore), num_labels, recipe.uar_average)
    test_logits, test_labels = evaluate(model, test_loader, accelerator, num_seeds, zscore)
    test_scores = _scores(test_logits, test_labels, num_labels, recipe.uar_average)
    results = run_results(train, recipe, members, state, val_scores, test_scores)
    if accelerator.is_main_process:
        write_run_dir(output_dir, results, unwrapped, members, layers, mean, std, val, test, val_scores, test_scores, state, train)
    accelerator.wait_for_everyone()
    # An Accelerator passed in may train again: do not leave this run's state registered on it.
    custom = getattr(accelerator, "_custom_objects", None)
    if isinstance(custom, list) and state in custom:
        custom.remove(state)
    return results


def _save_checkpoint(accelerator, checkpoint: Path) -> None:
    # save_state into a fresh folder, then swap it in, so a kill mid-save leaves the previous checkpoint.
    tmp = checkpoint.with_name(checkpoint.name + ".tmp")
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        replace_dir(tmp, checkpoint)
    accelerator.wait_for_everyone()


def train_layerwise(
    train: FeatureSet,
    val: FeatureSet,
    test: FeatureSet,
    recipe: TrainRecipe | None = None,
    output_dir: str | Path = "run",
    accelerator=None,
    resume: bool = False,
    on_epoch_end: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Trains every layer's head (for every seed) and writes RUN_DIR; returns the results.json dict.

    Args:
        train, val, test: feature sets of the three splits (checked with `check_compatible`).
        recipe: hyper-parameters; default the paper's `TrainRecipe()`.
        output_dir: RUN_DIR (created).
        accelerator: an `accelerate.Accelerator`; default a new one (single process unless launched).
        resume: continue from RUN_DIR/checkpoint when it exists.
        on_epoch_end: called with the epoch index once that epoch's checkpoint is written (progress, timing).
    """
    return training_function(train, val, test, recipe or TrainRecipe(), output_dir, accelerator, resume, on_epoch_end)


def run_from_dataset(args: argparse.Namespace, accelerator=None) -> dict[str, Any]:
    """Extract (or load from the cache) train/validation/test of `args.dataset`, train every layer, export.

    Under accelerate every process extracts its own shards of each split, then all train together;
    the main process exports the best layer's model to RUN_DIR/model (`hf_bio.export.export_model`).
    """
    from accelerate import Accelerator

    from hf_bio.export import export_model
    from hf_bio.prepared_features import extract_prepared

    if not args.backbone:
        raise ValueError("--dataset needs --backbone NAME_OR_PATH (see `hf-bio backbones`)")
    accelerator = accelerator or Accelerator()
    features = extract_prepared(
        args.dataset, args.backbone, cache_dir=args.cache_dir, revision=args.revision,
        max_window_seconds=args.max_window_seconds, min_input_samples=args.min_input_samples, accelerator=accelerator,
        batch_max_seconds=args.batch_seconds,
        shard_size=args.shard_size, progress=accelerator.is_main_process,
    )
    results = train_layerwise(
        features["train"], features["validation"], features["test"], recipe=recipe_from_args(args),
        output_dir=args.output_dir, accelerator=accelerator, resume=args.resume,
    )
    if not args.no_export:
        if accelerator.is_main_process:  # with the run's recorded extraction settings (results.json)
            export_model(args.output_dir, args.backbone, layer=results["best_layer"])
        accelerator.wait_for_everyone()
    return results


def run_from_args(args: argparse.Namespace, accelerator=None) -> dict[str, Any]:
    if getattr(args, "dataset", None):
        return run_from_dataset(args, accelerator)
    if not all(getattr(args, f"{s}_features", None) for s in ("train", "val", "test")):
        raise ValueError("pass --train-features, --val-features and --test-features, or --dataset and --backbone")
    recipe = recipe_from_args(args)
    splits = [FeatureSet.load(getattr(args, f"{s}_features")) for s in ("train", "val", "test")]
    return train_layerwise(*splits, recipe=recipe, output_dir=args.output_dir, accelerator=accelerator, resume=args.resume)


def summary(results: dict[str, Any]) -> str:
    lines = ["layer  seed      val_uar  test_uar"]
    lines += [f"{r['layer']:>5}  {r['seed']:>8}  {r['val_uar']:.4f}   {r['test_uar']:.4f}" for r in results["layers"]]
    lines.append(f"best layer (validation UAR): {results['best_layer']}  test UAR {results['test_uar']:.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(parser)
    add_recipe_arguments(parser)
    add_dataset_arguments(parser)  # hf_bio.prepared_features: --dataset DIR --backbone NAME
    args = parser.parse_args(argv)
    from accelerate import Accelerator

    accelerator = Accelerator()
    results = run_from_args(args, accelerator)
    accelerator.print(summary(results))
    accelerator.print(f"wrote {args.output_dir}")
    if args.dataset and not args.no_export:
        accelerator.print(f"exported layer {results['best_layer']}'s model to {Path(args.output_dir) / 'model'}")


if __name__ == "__main__":
    main()
