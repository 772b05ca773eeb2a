"""What a layer-wise training run leaves in RUN_DIR, and how its heads are read back.

    results.json               per (seed, layer): validation/test UAR and accuracy, best epoch; the layer
                               chosen on validation UAR with its test UAR and 95% CI; data, backbone,
                               extraction settings, recipe, package versions
    predictions.safetensors    validation/test labels and every member's predictions
    heads.safetensors          every member's best head, keys `seed{s}.layer{l}.<BioHead key>`
    feature_stats.safetensors  the training split's per-layer mean/std [L, D]
    curves.json, curves.png/pdf  per-epoch losses, validation UAR and learning rate

`hf_bio.train` writes them; `hf_bio.export`, the benchmark and the model card read them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from hf_bio.atomic import atomic_write
from hf_bio.feature_set import FeatureSet
from hf_bio.features import EXTRACTION_CONFIG_FIELDS
from hf_bio.recipe import TrainRecipe
from hf_bio.results import package_versions


def run_results(train: FeatureSet, recipe: TrainRecipe, members, state, val_scores, test_scores) -> dict[str, Any]:
    """results.json: per (seed, layer) member its scores; the layer chosen on validation UAR; what produced them."""
    rows = [
        {
            "layer": layer,
            "seed": seed,
            "val_uar": float(val_scores["uar"][k]),
            "test_uar": float(test_scores["uar"][k]),
            "val_accuracy": float(val_scores["accuracy"][k]),
            "test_accuracy": float(test_scores["accuracy"][k]),
            "best_epoch": int(state.best_epoch[k]),
            "epochs_trained": len(state.curves["val_uar"][k]),
        }
        for k, (seed, layer) in enumerate(members)
    ]
    layers = sorted({layer for _, layer in members})

    def mean_over_seeds(layer: int, key: str) -> float:
        values = [r[key] for r in rows if r["layer"] == layer]
        return sum(values) / len(values)

    # The layer is chosen on validation UAR (mean over seeds); ties go to the lower layer.
    best_layer = max(layers, key=lambda layer: (mean_over_seeds(layer, "val_uar"), -layer))
    dataset = dict(train.meta.get("dataset") or {})
    dataset.setdefault("name", None)
    dataset.setdefault("fingerprint", None)
    dataset.setdefault("split_method", None)
    dataset["label_names"] = train.label_names
    backbone = dict(train.meta.get("backbone") or {})
    for key in ("name", "hub_id", "revision"):
        backbone.setdefault(key, None)
    return {
        "dataset": dataset,
        "backbone": backbone,
        "pooling": train.meta.get("pooling"),
        # How the clips became features: an exported model must turn audio into features the same way.
        "extraction": {k: v for k, v in (train.meta.get("extraction") or {}).items() if k in EXTRACTION_CONFIG_FIELDS},
        "recipe": recipe.to_dict(),
        "seeds": list(recipe.seeds),
        "layers": rows,
        "best_layer": best_layer,
        "val_uar": mean_over_seeds(best_layer, "val_uar"),
        "test_uar": mean_over_seeds(best_layer, "test_uar"),
        "test_accuracy": mean_over_seeds(best_layer, "test_accuracy"),
        "uar_average": recipe.uar_average,
        "num_train": len(train),
        "versions": package_versions(),
    }


def write_run_dir(output_dir, results, model, members, layers, mean, std, val, test, val_scores, test_scores, state, train) -> None:
    """Every RUN_DIR file, each written atomically, results.json last (its presence means the run finished)."""
    from safetensors.torch import save_file

    output_dir.mkdir(parents=True, exist_ok=True)
    num_seeds, num_layers = len(results["seeds"]), len(layers)

    def per_seed(preds: torch.Tensor) -> torch.Tensor:  # [K, N] -> [S, L, N]
        return preds.reshape(num_seeds, num_layers, -1).contiguous()

    predictions = {
        "layers": torch.tensor(layers),
        "seeds": torch.tensor(results["seeds"]),
        "val_labels": val.labels.clone(),
        "test_labels": test.labels.clone(),
        "val_predictions": per_seed(val_scores["predictions"])[0].clone(),  # first seed, [L, N]
        "test_predictions": per_seed(test_scores["predictions"])[0].clone(),
        "val_predictions_per_seed": per_seed(val_scores["predictions"]),  # [S, L, N]
        "test_predictions_per_seed": per_seed(test_scores["predictions"]),
    }
    heads = {f"seed{seed}.layer{layer}.{key}": t for k, (seed, layer) in enumerate(members) for key, t in model.member_state_dict(k).items()}
    head_meta = {
        "in_dim": str(model.in_dim),
        "hidden_sizes": json.dumps(list(model.hidden_sizes)),
        "num_labels": str(model.num_labels),
        "label_names": json.dumps(train.label_names),
        "layers": json.dumps(layers),
        "seeds": json.dumps(results["seeds"]),
        "key_format": "seed{seed}.layer{layer}.<BioHead state-dict key>",
    }
    curves = {
        "layers": [{"seed": seed, "layer": layer, **{name: state.curves[name][k] for name in state.curves}} for k, (seed, layer) in enumerate(members)],
        "best_layer": results["best_layer"],
    }
    results["test_uar_ci95"] = _best_layer_ci(results, layers, test.labels, predictions["test_predictions_per_seed"])
    atomic_write(output_dir / "predictions.safetensors", lambda p: save_file(predictions, p))
    atomic_write(output_dir / "heads.safetensors", lambda p: save_file(heads, p, metadata=head_meta))
    stats = {"feature_mean": mean.contiguous(), "feature_std": std.contiguous()}
    atomic_write(output_dir / "feature_stats.safetensors", lambda p: save_file(stats, p))
    atomic_write(output_dir / "curves.json", lambda p: Path(p).write_text(json.dumps(curves, indent=1)))
    from hf_bio.figures import plot_training_curves

    plot_training_curves(curves, output_dir / "curves")  # curves.png / curves.pdf, the first seed
    atomic_write(output_dir / "results.json", lambda p: Path(p).write_text(json.dumps(results, indent=2)))


def _best_layer_ci(results: dict[str, Any], layers: list[int], labels: torch.Tensor, per_seed: torch.Tensor) -> list[float]:
    """95% bootstrap interval of the chosen layer's test UAR: per seed, bounds averaged over seeds (as the
    comparative table reports it), with the run's own UAR definition. Model cards read it from results.json."""
    from hf_bio.stats import bootstrap_ci

    metric = "uar_macro" if results["uar_average"] == "macro" else "uar"
    best = layers.index(results["best_layer"])
    bounds = [bootstrap_ci(labels.numpy(), predictions[best].numpy(), metric=metric, seed=int(seed))
              for seed, predictions in zip(results["seeds"], per_seed, strict=True)]
    return [sum(low for low, _ in bounds) / len(bounds), sum(high for _, high in bounds) / len(bounds)]


def load_head(run_dir: str | Path, layer: int, seed: int | None = None) -> dict[str, torch.Tensor]:
    """The best head of `layer` (and `seed`, default the first) from RUN_DIR/heads.safetensors, as a BioHead state dict."""
    from safetensors import safe_open

    path = Path(run_dir) / "heads.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        seeds, layers = json.loads(meta["seeds"]), json.loads(meta["layers"])
        seed = seeds[0] if seed is None else seed
        if seed not in seeds or layer not in layers:
            raise ValueError(f"{path}: no head for seed {seed}, layer {layer} (seeds {seeds}, layers {layers})")
        prefix = f"seed{seed}.layer{layer}."
        return {key[len(prefix) :]: f.get_tensor(key) for key in f.keys() if key.startswith(prefix)}
