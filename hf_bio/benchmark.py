"""The paper's whole study in one command: datasets x backbones -> extract, train every layer, report.

`hf-bio benchmark` (or `run_benchmark(BenchmarkConfig(...))`) runs, for every prepared dataset and
every backbone: cached feature extraction of the three splits, the layer-wise heads of all hidden states
trained together, then the fusion runs, and writes one results folder:

    OUTPUT/results.json, results.csv    one row per (dataset, backbone, layer, seed), with 95% CIs
    OUTPUT/table.md, table.tex          the comparative table in the paper's form
    OUTPUT/figures/                     layer-wise curves, fine-tuning figure, confusion matrices
    OUTPUT/report.md                    all of it, with the significance tests and the fusion methods
    OUTPUT/models/<dataset>/            the best single-backbone model per dataset (from_pretrained)
    OUTPUT/runs/<dataset>/<backbone>-<settings>/   each training run (resumable), keyed by its settings
    OUTPUT/cache/                       pooled features (reused across runs with the same settings)

Re-running skips every run whose results already exist for the same settings; a run folder's name holds
a hash of those settings, so results from different settings are never mixed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from hf_bio.backbones import BACKBONES, offline_backbone_names, paper_backbone_names, resolve_backbone

SPLITS = ("train", "validation", "test")
BACKBONE_GROUPS: dict[str, Callable[[], list[str]]] = {"paper": paper_backbone_names, "offline": offline_backbone_names}


@dataclass
class BenchmarkConfig:
    """What to run. Every field can come from a YAML/JSON file (`from_file`) or from flags.

    Args:
        datasets: prepared dataset folders (`hf-bio prepare ...`).
        backbones: registry names, Hub ids or local folders; `paper` = the paper's seven,
            `offline` = the tiny random backbones and the handcrafted baseline.
        output_dir: the results folder.
        cache_dir: where pooled features are cached (default OUTPUT/cache).
        recipe: overrides of `hf_bio.recipe.TrainRecipe` (e.g. {"max_epochs": 5, "seeds": [1, 2, 3]}).
        fusion: also train the two fusion variants (`hf_bio.fusion`) when >= 2 backbones ran.
        n_resamples: bootstrap resamples for the confidence intervals and the paired tests.
        export_best: save the best single-backbone model of each dataset under OUTPUT/models/.
        max_window_seconds: window length for long clips (default: the model config's).
        min_input_samples: repeat shorter clips up to this many samples (default: the model config's, 400;
            5000 reproduces the paper's code).
        figures: extra layer-wise figures, name -> backbones to compare (the paper's pre-training-domain
            and fine-tuning figures are drawn whenever their backbones ran).
    """

    datasets: list[str]
    backbones: list[str] = field(default_factory=lambda: ["paper"])
    output_dir: str = "benchmark_output"
    cache_dir: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    fusion: bool = True
    n_resamples: int = 1000
    export_best: bool = True
    max_window_seconds: float | None = None
    min_input_samples: int | None = None
    figures: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("BenchmarkConfig.datasets is empty: give at least one prepared dataset folder")
        if not self.backbones:
            raise ValueError("BenchmarkConfig.backbones is empty: give backbone names, `paper` or `offline`")
        from hf_bio.recipe import TrainRecipe

        # Fail now, naming the bad field, rather than after hours of extraction.
        unknown = sorted(set(self.recipe) - {f.name for f in fields(TrainRecipe)})
        if unknown:
            raise ValueError(f"unknown recipe field(s) {unknown}; known: {[f.name for f in fields(TrainRecipe)]}")
        TrainRecipe(**self.recipe)
        if self.max_window_seconds is not None and not self.max_window_seconds > 0:
            raise ValueError(f"max_window_seconds must be > 0 seconds, got {self.max_window_seconds!r}")
        if self.min_input_samples is not None and (not isinstance(self.min_input_samples, int) or self.min_input_samples < 0):
            raise ValueError(f"min_input_samples must be a whole number of samples >= 0, got {self.min_input_samples!r}")

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> BenchmarkConfig:
        """Read a YAML or JSON config; `overrides` (non-None values) win over the file."""
        import yaml

        path = Path(path)
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a benchmark config is a mapping of fields, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{path}: unknown field(s) {unknown}; known fields: {sorted(known)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def backbone_names(self) -> list[str]:
        """`backbones` with the groups `paper`/`offline` expanded, duplicates removed, order kept."""
        names: list[str] = []
        for name in self.backbones:
            names += BACKBONE_GROUPS[name]() if name in BACKBONE_GROUPS else [name]
        return list(dict.fromkeys(names))


def preflight(names: list[str]) -> tuple[list[str], dict[str, str]]:
    """Which backbones can be loaded here, before any work starts: (loadable, {name: reason}).

    Reads only each backbone's config, never its weights. Once the Hub has proved unreachable, the other
    Hub ids are looked up in the local cache only, so an offline machine is told at once rather than after
    a round of network retries per backbone.
    """
    from hf_bio.backbones import BackboneLoadError, check_backbone_config

    loadable, problems = [], {}
    hub_unreachable = False
    for name in names:
        try:
            check_backbone_config(name, local_only=hub_unreachable)
            loadable.append(name)
        except BackboneLoadError as error:
            hub_unreachable = True
            problems[name] = str(error)
        except ValueError as error:  # every failure is reported by name; none stops the check of the others
            problems[name] = str(error)
    return loadable, problems


def _settings_hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _training_type(name: str) -> tuple[str, str]:
    """(training group for the table, label) of a backbone."""
    spec = resolve_backbone(name)
    if spec.family == "handcrafted":
        return "baseline", spec.paper_label
    if spec.training in ("PT", "PT+FT", "random"):
        return spec.training, spec.paper_label
    return "PT", spec.paper_label  # an unregistered Hub id or folder: pre-trained, of unknown kind


class BenchmarkRunner:
    """Runs one `BenchmarkConfig`; `run()` returns the paths of what it wrote."""

    def __init__(self, config: BenchmarkConfig, log: Callable[[str], None] = print) -> None:
        from hf_bio.recipe import TrainRecipe

        self.config = config
        self.log = log
        self.output = Path(config.output_dir)
        self.cache = Path(config.cache_dir) if config.cache_dir else self.output / "cache"
        self.recipe = TrainRecipe(**config.recipe)

    # -- one dataset x one backbone ---------------------------------------------------------------------
    def extract(self, dataset_dir: Path, backbone: str) -> dict[str, Any]:
        """Pooled features of the three splits (from the cache when they are there)."""
        from hf_bio.prepared_features import extract_prepared

        return extract_prepared(
            dataset_dir, backbone, cache_dir=self.cache, max_window_seconds=self.config.max_window_seconds,
            min_input_samples=self.config.min_input_samples,
        )

    def train(self, features: dict[str, Any], run_dir: Path) -> dict[str, Any]:
        """Train (or resume, or reuse) the layer-wise heads of one feature set; returns results.json."""
        from hf_bio.train import train_layerwise

        results_file = run_dir / "results.json"
        if results_file.is_file():
            self.log(f"  reuse {run_dir} (already trained with these settings)")
            return json.loads(results_file.read_text())
        return train_layerwise(
            features["train"], features["validation"], features["test"], recipe=self.recipe,
            output_dir=run_dir, resume=run_dir.exists(),
        )

    def run_dir(self, dataset: str, backbone: str, fingerprint: str, features_meta: dict[str, Any]) -> Path:
        key = _settings_hash({
            "dataset": fingerprint, "backbone": backbone, "features": features_meta, "recipe": self.recipe.to_dict(),
        })
        from hf_bio.report import safe_name

        safe = safe_name(Path(backbone).name)
        return self.output / "runs" / dataset / f"{safe}-{key}"

    # -- the whole study ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Path]:
        from hf_bio.data import prepared_summary
        from hf_bio.report import best_models, confusion_input_from_run, write_report
        from hf_bio.results import rows_from_run, write_results

        names = self.config.backbone_names()
        loadable, problems = preflight(names)
        for name, reason in problems.items():
            self.log(f"cannot load backbone {name!r}, skipping it: {reason}")
        if not loadable:
            raise ValueError(f"none of the backbones {names} can be loaded here; see the messages above")
        datasets = {Path(p): prepared_summary(p) for p in self.config.datasets}  # fails fast on a bad folder
        self.log(f"benchmark: {len(datasets)} dataset(s) x {len(loadable)} backbone(s): {', '.join(loadable)}")

        rows, run_dirs, confusions = [], {}, []
        for path in datasets:
            per_backbone: dict[str, dict[str, Any]] = {}
            for i, backbone in enumerate(loadable, 1):
                self.log(f"[{path.name}] {i}/{len(loadable)} {backbone}: features")
                features = self.extract(path, backbone)
                per_backbone[backbone] = features
                name = features["train"].meta["dataset"]["name"]
                fingerprint = features["train"].meta["dataset"]["fingerprint"]
                run_dir = self.run_dir(name, backbone, fingerprint, features["train"].meta)
                self.log(f"[{name}] {i}/{len(loadable)} {backbone}: training every layer -> {run_dir}")
                results = self.train(features, run_dir)
                run_dirs[(name, backbone)] = (run_dir, results)
                training, label = _training_type(backbone)
                rows += rows_from_run(run_dir, training=training, backbone_label=label,
                                      n_resamples=self.config.n_resamples)

            if self.config.fusion:
                rows += self._fusion(name, fingerprint, per_backbone, run_dirs)

        paths = write_results(rows, self.output)
        for dataset, (backbone, layer) in best_models(rows).items():
            run_dir, _ = run_dirs[(dataset, backbone)]
            confusions.append(confusion_input_from_run(run_dir, _run_layer(layer), model=f"{backbone}, layer {layer}"))
        comparisons = self._comparisons(rows, run_dirs)
        paths.update(write_report(rows, self.output, confusion_inputs=confusions, comparisons=comparisons,
                                  figure_sets=self.config.figures or None, n_resamples=self.config.n_resamples))
        if self.config.export_best:
            paths.update(self._export_best(rows, run_dirs))
        return paths

    def _fusion(self, dataset, fingerprint, per_backbone, run_dirs):
        """The two fusion variants of `hf_bio.fusion`, trained like single backbones."""
        from hf_bio.fusion import concat_features
        from hf_bio.results import rows_from_run

        backbones = list(per_backbone)
        variants = {
            # every backbone's mean over all its hidden states (the paper code's layer average), side by side
            "fusion-mean": ["mean"] * len(backbones),
        }
        if len(backbones) >= 2:
            # the best validation layer of every backbone, side by side
            variants["fusion-concat"] = [run_dirs[(dataset, b)][1]["best_layer"] for b in backbones]
        rows = []
        for variant, layers in variants.items():
            fused = {
                split: concat_features([per_backbone[b][split] for b in backbones], layers, variant)
                for split in SPLITS
            }
            run_dir = self.run_dir(dataset, variant, fingerprint, fused["train"].meta)
            self.log(f"[{dataset}] {variant}: {', '.join(f'{b}:{layer}' for b, layer in zip(backbones, layers, strict=True))}")
            results = self.train(fused, run_dir)
            run_dirs[(dataset, variant)] = (run_dir, results)
            label = "Fusion (concat best layers)" if variant == "fusion-concat" else "Fusion (mean of layers)"
            for row in rows_from_run(run_dir, training="fusion", backbone_label=label,
                                     n_resamples=self.config.n_resamples):
                row.layer = "concat" if variant == "fusion-concat" else "mean"
                rows.append(row)
        return rows

    def _comparisons(self, rows, run_dirs):
        """Per dataset, paired tests of the best model (chosen on validation) against every other model.

        The paper's top scores often differ by less than a point: these tests say which differences the
        test set can resolve.
        """
        from hf_bio.report import Comparison, confusion_input_from_run
        from hf_bio.table import best_layers

        def test_predictions(dataset, backbone, layer):
            # One trained head per model is compared: the first seed's (the table averages the seeds).
            run_dir, results = run_dirs[(dataset, backbone)]
            picked = confusion_input_from_run(
                run_dir, _run_layer(layer), model=f"{backbone} (layer {layer}, seed {results['seeds'][0]})"
            )
            return picked.model, picked.labels, picked.predictions

        chosen = best_layers(rows)
        comparisons = []
        for dataset in dict.fromkeys(r.dataset for r in rows):
            ranked = sorted(
                ((b, layer) for (d, b), layer in chosen.items() if d == dataset),
                key=lambda bl: -_mean_val(rows, dataset, *bl),
            )
            if len(ranked) < 2:
                continue
            best_name, labels, best_predictions = test_predictions(dataset, *ranked[0])
            for backbone, layer in ranked[1:]:
                name, _, predictions = test_predictions(dataset, backbone, layer)
                comparisons.append(Comparison(dataset, best_name, name, labels, best_predictions, predictions))
        return comparisons

    def _export_best(self, rows, run_dirs) -> dict[str, Path]:
        """Save the best single-backbone model of each dataset (fusion runs span several backbones)."""
        from hf_bio.export import export_model
        from hf_bio.report import best_models

        single = [r for r in rows if r.training != "fusion"]
        paths = {}
        for dataset, (backbone, layer) in best_models(single).items():
            run_dir, _ = run_dirs[(dataset, backbone)]
            model_dir = export_model(run_dir, backbone, layer=layer)  # with the run's recorded extraction settings
            paths[f"models/{dataset}"] = model_dir
            self.log(f"[{dataset}] best model: {backbone} layer {layer} -> {model_dir}")
        return paths


def _run_layer(layer: int | str) -> int:
    """The layer index inside a run folder: a fusion row's layer ("mean", "concat") is its run's only layer, 0."""
    return layer if isinstance(layer, int) else 0


def _mean_val(rows, dataset, backbone, layer) -> float:
    values = [r.val_uar for r in rows if r.dataset == dataset and r.backbone == backbone and r.layer == layer]
    return sum(values) / len(values)


def run_benchmark(config: BenchmarkConfig, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Run the whole study described by `config`; returns {name: path} of every file written."""
    return BenchmarkRunner(config, log).run()


def config_to_dict(config: BenchmarkConfig) -> dict[str, Any]:
    return asdict(config)


__all__ = ["BACKBONES", "BenchmarkConfig", "preflight", "run_benchmark"]
