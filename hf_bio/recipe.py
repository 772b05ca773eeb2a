"""The training recipe: every hyper-parameter of the layer-wise heads in one dataclass.

Defaults are the paper's (Sarkar & Magimai-Doss, ICASSP 2025, from its released code). The same fields
become command-line flags (`--max-epochs 5`, `--seeds 1 2 3`) of `hf_bio.train` and `hf-bio train`.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, asdict, dataclass, field, fields


@dataclass
class TrainRecipe:
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    batch_size: int = field(default=16, metadata={"help": "global batch size, split evenly across processes"})
    max_epochs: int = field(default=30, metadata={"help": "maximum number of epochs"})
    plateau_factor: float = field(default=0.1, metadata={"help": "ReduceLROnPlateau factor (on validation loss)"})
    plateau_patience: int = field(default=10, metadata={"help": "ReduceLROnPlateau patience in epochs"})
    plateau_threshold: float = field(default=1e-4, metadata={"help": "ReduceLROnPlateau relative threshold (torch default)"})
    early_stopping_patience: int = field(
        default=10, metadata={"help": "stop a layer after this many epochs without a better validation UAR"}
    )
    seeds: tuple[int, ...] = field(default=(12345,), metadata={"help": "one full sweep per seed"})
    hidden_sizes: tuple[int, ...] = field(default=(128, 64, 32), metadata={"help": "hidden sizes of the MLP head"})
    layers: tuple[int, ...] | None = field(default=None, metadata={"help": "hidden-state indices to train (default: all)"})
    standardize: bool = field(default=True, metadata={"help": "z-score each layer with the training split's mean/std"})
    uar_average: str = field(
        default="balanced",
        metadata={"help": "'balanced' (classes in the references; sklearn balanced accuracy) or 'macro' (torchmetrics, the paper)"},
    )
    eval_batch_size: int = field(default=1024, metadata={"help": "batch size for validation/test passes"})

    def __post_init__(self) -> None:
        self.seeds = tuple(int(s) for s in self.seeds)
        self.hidden_sizes = tuple(int(h) for h in self.hidden_sizes)
        if self.layers is not None:
            self.layers = tuple(int(i) for i in self.layers)
        positive = ("lr", "batch_size", "max_epochs", "eval_batch_size")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainRecipe.{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.plateau_factor < 1:
            raise ValueError(f"TrainRecipe.plateau_factor must be in (0, 1), got {self.plateau_factor}")
        if self.plateau_patience < 0 or self.early_stopping_patience < 1:
            raise ValueError("TrainRecipe.plateau_patience must be >= 0 and early_stopping_patience >= 1")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"TrainRecipe.seeds must be non-empty and distinct, got {self.seeds}")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"TrainRecipe.hidden_sizes must be positive sizes, got {self.hidden_sizes}")
        if self.layers is not None and (not self.layers or len(set(self.layers)) != len(self.layers)):
            raise ValueError(f"TrainRecipe.layers must be distinct layer indices, got {self.layers}")
        if self.uar_average not in ("balanced", "macro"):
            raise ValueError(f"TrainRecipe.uar_average must be 'balanced' or 'macro', got {self.uar_average!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one `--flag` per TrainRecipe field (default None = keep the recipe's default)."""
    group = parser.add_argument_group("recipe (defaults: the paper's)")
    for f in fields(TrainRecipe):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        help_text = f"{f.metadata.get('help', '')} (default: {default})"
        if f.name == "standardize":
            group.add_argument("--no-standardize", dest="standardize", action="store_false", default=None, help=help_text)
        elif f.name == "uar_average":
            group.add_argument(flag, choices=("balanced", "macro"), default=None, help=help_text)
        elif f.name in ("seeds", "hidden_sizes", "layers"):
            group.add_argument(flag, type=int, nargs="+", default=None, help=help_text)
        else:
            group.add_argument(flag, type=type(default), default=None, help=help_text)


def recipe_from_args(args: argparse.Namespace) -> TrainRecipe:
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainRecipe) if getattr(args, f.name, None) is not None}
    return TrainRecipe(**overrides)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train-features", required=True, help="FeatureSet folder of the training split")
    parser.add_argument("--val-features", required=True, help="FeatureSet folder of the validation split")
    parser.add_argument("--test-features", required=True, help="FeatureSet folder of the test split")
    parser.add_argument("--output-dir", required=True, help="RUN_DIR for results, heads, curves, checkpoint")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint if present")
