"""Turn a training run into a self-contained transformers model: backbone + one layer's head + standardisation.

    RUN_DIR/results.json               which layer won on validation UAR, the label names, the recipe
    RUN_DIR/heads.safetensors          every (seed, layer) head, keys `seed{s}.layer{l}.<BioHead key>`
    RUN_DIR/feature_stats.safetensors  the training split's per-layer mean/std [L, D]
        -> RUN_DIR/model/              `BioClassifierModel.save_pretrained` + feature extractor + remote code

The exported folder loads with `AutoModelForAudioClassification.from_pretrained(RUN_DIR/model)` and
`pipeline("audio-classification", model=RUN_DIR/model)` and classifies raw 16 kHz audio exactly as the
run's head classified the cached features of the same clips.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from hf_bio.modeling_bio import BioClassifierModel

MODEL_DIR = "model"


def _read_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "results.json"
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a training run folder (no results.json); train first: hf-bio train ...")
    return json.loads(path.read_text(encoding="utf-8"))


def choose_head(results: dict[str, Any], layer: int | None = None, seed: int | None = None) -> tuple[int, int]:
    """(layer, seed) to export: the run's best layer unless given, and that layer's best seed by val UAR."""
    layer = int(results["best_layer"]) if layer is None else int(layer)
    rows = [r for r in results["layers"] if r["layer"] == layer]
    if not rows:
        trained = sorted({r["layer"] for r in results["layers"]})
        raise ValueError(f"layer {layer} was not trained in this run (trained layers: {trained})")
    if seed is None:
        # max() keeps the first of equals: ties go to the seed listed first.
        return layer, int(max(rows, key=lambda r: r["val_uar"])["seed"])
    if seed not in [r["seed"] for r in rows]:
        raise ValueError(f"seed {seed} was not trained in this run (seeds: {[r['seed'] for r in rows]})")
    return layer, int(seed)


def export_model(
    run_dir: str | Path,
    model_or_backbone: BioClassifierModel | str,
    layer: int | None = None,
    seed: int | None = None,
    **config_overrides: Any,
) -> Path:
    """Build and save the classifier of one trained head as `RUN_DIR/model`; returns that folder.

    Args:
        run_dir: a training run folder (`hf_bio.train`).
        model_or_backbone: the `BioClassifierModel` the features were extracted with (its backbone weights
            and extraction settings are reused), or a backbone name/Hub id/folder to load with `from_backbone`
            with the extraction settings the run recorded (results.json "extraction").
        layer: which hidden state's head; default the run's `best_layer` (chosen on validation UAR).
        seed: which seed's head; default the seed with the best validation UAR for that layer.
        config_overrides: other `BioClassifierConfig` fields for a backbone given by name. An extraction
            setting that contradicts the run's recorded one is refused.

    Raises:
        ValueError: not a run folder, a layer or seed that was not trained, or a backbone or extraction
            settings whose pooled features do not fit the trained heads (another backbone, pooling, window
            or repeat-padding length).
    """
    from safetensors.torch import load_file

    from hf_bio.configuration_bio import BioClassifierConfig
    from hf_bio.features import EXTRACTION_CONFIG_FIELDS
    from hf_bio.modeling_bio import BioClassifierModel, save_pretrained_with_extractor
    from hf_bio.run_outputs import load_head

    run_dir = Path(run_dir)
    results = _read_results(run_dir)
    layer, seed = choose_head(results, layer, seed)
    label_names = list(results["dataset"]["label_names"])
    id2label = dict(enumerate(label_names))
    hidden_sizes = list(results["recipe"]["hidden_sizes"])
    backbone = results.get("backbone") or {}
    recorded = results.get("extraction") or {}  # absent in runs trained from hand-made features

    if isinstance(model_or_backbone, str):
        source = BioClassifierModel.from_backbone(
            model_or_backbone, id2label=id2label, revision=backbone.get("revision"), **{**recorded, **config_overrides}
        )
    else:
        source = model_or_backbone
    settings = {name: getattr(source.config, name) for name in EXTRACTION_CONFIG_FIELDS}
    differ = {name: (value, settings[name]) for name, value in recorded.items() if settings.get(name) != value}
    if differ:
        listed = ", ".join(f"{name} {was!r} (model: {now!r})" for name, (was, now) in differ.items())
        raise ValueError(
            f"{run_dir}: the heads were trained on features extracted with {listed}; export with the settings "
            "used for extraction (the run's results.json, \"extraction\")"
        )
    if results.get("pooling") not in (None, settings["pooling"]):
        raise ValueError(
            f"the heads were trained on {results['pooling']!r} pooling but the model pools {settings['pooling']!r}; "
            "export with the model (or settings) used for extraction"
        )
    config = BioClassifierConfig(
        **settings,
        backbone_name=backbone.get("name") or source.config.backbone_name,
        layer_selection=layer,
        head_hidden_sizes=hidden_sizes,
        id2label=id2label,
    )
    model = BioClassifierModel(config)
    model.backbone.load_state_dict(source.backbone.state_dict())

    stats = load_file(str(run_dir / "feature_stats.safetensors"))
    if tuple(stats["feature_mean"].shape) != tuple(model.feature_mean.shape):
        raise ValueError(
            f"{run_dir / 'feature_stats.safetensors'}: statistics of shape {tuple(stats['feature_mean'].shape)} do "
            f"not fit this backbone's pooled states {tuple(model.feature_mean.shape)}: the run was trained on "
            "features of another backbone or pooling"
        )
    head = load_head(run_dir, layer, seed)
    try:
        model.head.load_state_dict(head)
    except RuntimeError as error:
        raise ValueError(f"{run_dir / 'heads.safetensors'}: head of layer {layer} does not fit the model: {error}") from error
    with torch.no_grad():
        model.feature_mean.copy_(stats["feature_mean"])
        model.feature_std.copy_(stats["feature_std"])
    model.eval()
    return save_pretrained_with_extractor(model, run_dir / MODEL_DIR)
