"""The `hf-bio` command. Thin: it parses arguments and calls the modules that do the work."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from hf_bio import __version__


def _cmd_backbones(args: argparse.Namespace) -> int:
    from hf_bio.backbones import BACKBONES, offline_backbone_names, paper_backbone_names

    groups = [
        ("The paper's seven backbones", paper_backbone_names()),
        ("Offline: tiny RANDOM backbones (tests, demos) and the handcrafted baseline", offline_backbone_names()),
    ]
    placeholder = {"random": "(built locally on first use)", "baseline": "(no weights)"}
    header = ("name", "hub id", "family", "type", "pre-training data")
    rows = [header]
    for _, names in groups:
        rows += [
            (s.name, s.hub_id or placeholder.get(s.training, "(convert, see below)"), s.family, s.training, s.pretraining)
            for s in (BACKBONES[n] for n in names)
        ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()

    for title, names in groups:
        print(f"{title}:\n{line(header)}")
        for name in names:
            print(line(next(r for r in rows[1:] if r[0] == name)))
        print()
    for spec in BACKBONES.values():
        if spec.how_to_get:
            print(f"{spec.name}: {spec.how_to_get}")
    print("\nAny Hub id or local folder of a hubert/wav2vec2/wavlm model is accepted as well.")
    return 0


def _cmd_convert_aves(args: argparse.Namespace) -> int:
    from hf_bio.aves import convert_aves

    try:
        out = convert_aves(args.checkpoint, args.config_json, args.out_dir, overwrite=args.overwrite)
    except ValueError as err:
        print(f"hf-bio convert-aves: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote a transformers HubertModel folder to {out}; use it as a backbone: --backbone {out}")
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

    p = sub.add_parser(
        "convert-aves", help="convert AVES's torchaudio checkpoint into a transformers HubertModel folder"
    )
    p.add_argument("checkpoint", help="aves-base-bio.torchaudio.pt (a torchaudio wav2vec2_model state dict)")
    p.add_argument("config_json", help="aves-base-bio.torchaudio.model_config.json")
    p.add_argument("out_dir", help="folder to write (config.json, model.safetensors, preprocessor_config.json)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR if it exists")
    p.set_defaults(func=_cmd_convert_aves)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
