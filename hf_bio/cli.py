"""The `hf-bio` command. Thin: it parses arguments and calls the modules that do the work."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hf_bio import __version__


def _cmd_backbones(args: argparse.Namespace) -> int:
    from hf_bio.backbones import BACKBONES

    rows = [("name", "hub id", "family", "type", "pre-training data")]
    rows += [(s.name, s.hub_id or "(convert, see below)", s.family, s.training, s.pretraining) for s in BACKBONES.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for spec in BACKBONES.values():
        if spec.how_to_get:
            print(f"\n{spec.name}: {spec.how_to_get}")
    print("\nAny Hub id or local folder of a hubert/wav2vec2/wavlm model is accepted as well.")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from hf_bio.train import run_from_args, summary

    results = run_from_args(args)
    print(summary(results))
    print(f"wrote {args.output_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-bio",
        description="Classify animal calls with frozen self-supervised speech and audio models.",
    )
    parser.add_argument("--version", action="version", version=f"hf-bio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("backbones", help="list the known backbones")
    p.set_defaults(func=_cmd_backbones)

    from hf_bio.recipe import add_data_arguments, add_recipe_arguments

    p = sub.add_parser("train", help="train every layer's head from cached features (in-process; see hf_bio.train)")
    add_data_arguments(p)
    add_recipe_arguments(p)
    p.set_defaults(func=_cmd_train)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
