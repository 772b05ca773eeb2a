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


def _check_dry_run_dir(dry_run: str | None) -> None:
    """push_folder replaces the dry-run folder: allow that only for a new, empty or earlier dry-run folder."""
    from pathlib import Path

    if dry_run is None or not Path(dry_run).exists():
        return
    folder = Path(dry_run)
    if not folder.is_dir():
        raise ValueError(f"--dry-run {folder}: exists and is not a folder")
    if not any(folder.iterdir()):
        return
    from huggingface_hub import metadata_load

    readme = folder / "README.md"
    tags = (metadata_load(readme) or {}).get("tags") or [] if readme.is_file() else []
    if "hf-bio" not in tags or (folder / ".git").exists():
        raise ValueError(
            f"--dry-run {folder}: not empty and not an earlier hf-bio dry run; it would be replaced, "
            f"so name a new or empty folder"
        )


def _push_staged(stage, repo_id: str, repo_type: str, args: argparse.Namespace, **push_kwargs) -> int:
    """Stage the upload folder in a temporary place, then upload it (or copy it for --dry-run)."""
    import tempfile
    from pathlib import Path

    from hf_bio.hub import push_folder

    with tempfile.TemporaryDirectory(prefix="hf-bio-push-") as tmp:
        try:
            _check_dry_run_dir(args.dry_run)
            staged = stage(Path(tmp) / "staged")
            files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
            where = push_folder(
                staged, repo_id, repo_type, dry_run_dir=args.dry_run, private=args.private, **push_kwargs
            )
        except ValueError as error:
            print(f"hf-bio: error: {error}", file=sys.stderr)
            return 2
        except Exception as error:  # Hub errors (offline, no token, no permission): say which, no trace
            print(f"hf-bio: upload of {repo_id} failed: {type(error).__name__}: {error}", file=sys.stderr)
            return 1
    verb = "wrote (dry run, nothing uploaded)" if args.dry_run else "uploaded"
    print(f"{verb} {len(files)} files: {where}")
    for name in files:
        print(f"  {name}")
    return 0


def _cmd_push_model(args: argparse.Namespace) -> int:
    from hf_bio.model_card import stage_model_folder

    def stage(out):
        return stage_model_folder(args.run_dir, out, args.repo_id, license=args.license)

    return _push_staged(stage, args.repo_id, "model", args)


def _cmd_push_space(args: argparse.Namespace) -> int:
    from hf_bio.space import stage_space_folder

    def stage(out):
        return stage_space_folder(args.space_dir, out, model=args.model)

    return _push_staged(stage, args.repo_id, "space", args, space_sdk="gradio")


def _cmd_space(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hf_bio.space import DEFAULT_MODEL, launch, resolve_max_seconds, resolve_models

    try:
        resolve_max_seconds(args.max_seconds)
    except ValueError as error:
        print(f"hf-bio: error: {error}", file=sys.stderr)
        return 2
    if resolve_models(args.model)[0] == DEFAULT_MODEL and not Path(DEFAULT_MODEL).is_dir():
        print(f"hf-bio: note: {DEFAULT_MODEL} does not exist yet: run `make demo`, or pass --model DIR_OR_REPO")
    launch(args.model, host=args.host, port=args.port, max_seconds=args.max_seconds)
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from dataset_scripts import PREPARERS

    # A flag meant for another corpus would be ignored without a word: refuse it instead.
    misplaced = [flag for flag, given, corpora in (
        ("--keep-silence-noise", args.keep_silence_noise, ("imv", "demo")),
        ("--time-unit", args.time_unit != "s", ("imv", "demo")),
        ("--keep-s", args.keep_s, ("abzaliev",)),
        ("--drop-species", bool(args.drop_species), ("watkins",)),
        ("--demo-seed", args.demo_seed != 0, ("demo",)),
    ) if given and args.corpus not in corpora]
    if misplaced:
        print(f"error: {', '.join(misplaced)} do(es) not apply to corpus {args.corpus!r}", file=sys.stderr)
        return 2
    options: dict[str, object] = {
        "split": args.split, "skip_invalid": args.skip_invalid, "num_proc": args.num_proc, "overwrite": args.overwrite,
    }
    if args.corpus == "demo":
        options["split_seed"] = args.seed
        options["seed"] = args.demo_seed
    else:
        options["seed"] = args.seed
    if args.corpus in ("imv", "demo"):
        options["keep_silence_noise"] = args.keep_silence_noise
        options["time_unit"] = args.time_unit
    if args.corpus == "abzaliev":
        options["keep_s"] = args.keep_s
    if args.corpus == "watkins":
        options["drop_species"] = tuple(args.drop_species or ())
    try:
        dd = PREPARERS[args.corpus](args.raw_dir, args.out_dir, **options)
    except ValueError as err:  # invalid corpus / bad option: one clear message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 1
    names = dd["train"].features["label"].names
    print(f"{args.out_dir}: " + ", ".join(f"{s} {len(dd[s])}" for s in dd) + f"; {len(names)} classes: {', '.join(names)}")
    return 0


def _cmd_push_dataset(args: argparse.Namespace) -> int:
    from hf_bio.data import push_prepared

    try:
        where = push_prepared(args.out_dir, args.repo_id, dry_run_dir=args.dry_run, private=args.private)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"dry run: wrote the files to upload to {where}" if args.dry_run else f"pushed to {where}")
    return 0


def _cmd_extract(args: argparse.Namespace) -> int:
    from hf_bio.prepared_features import SPLITS, extract_prepared, feature_set_dir

    splits = SPLITS if args.split == "all" else (args.split,)
    try:
        out = extract_prepared(
            args.dataset_dir, args.backbone, splits=splits, cache_dir=args.cache_dir, revision=args.revision,
            max_window_seconds=args.max_window_seconds, min_input_samples=args.min_input_samples,
            batch_max_seconds=args.batch_seconds,
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for split, features in out.items():
        print(f"{split}: {len(features)} clips x {features.num_layers} hidden states x {features.dim} -> "
              f"{feature_set_dir(args.cache_dir, features)}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from hf_bio.train import run_from_args, summary

    results = run_from_args(args)
    print(summary(results))
    print(f"wrote {args.output_dir}")
    if getattr(args, "dataset", None) and not args.no_export:
        print(f"exported layer {results['best_layer']}'s model to {args.output_dir}/model")
    return 0


def _cmd_benchmark(args: argparse.Namespace) -> int:
    from dataclasses import fields
    from pathlib import Path

    from hf_bio.benchmark import BenchmarkConfig, run_benchmark
    from hf_bio.recipe import TrainRecipe

    recipe = {f.name: getattr(args, f.name) for f in fields(TrainRecipe) if getattr(args, f.name, None) is not None}
    flags = {
        "datasets": args.datasets, "backbones": args.backbones, "output_dir": args.output_dir,
        "cache_dir": args.cache_dir, "n_resamples": args.n_resamples, "max_window_seconds": args.max_window_seconds,
        "min_input_samples": args.min_input_samples,
        "fusion": False if args.no_fusion else None, "export_best": False if args.no_export else None,
    }
    try:
        if args.config:
            config = BenchmarkConfig.from_file(args.config, **flags)
            config.recipe.update(recipe)
        else:
            if not args.datasets:
                raise ValueError("give --datasets DIR [DIR ...] (prepared with `hf-bio prepare`) or --config FILE")
            config = BenchmarkConfig(**{k: v for k, v in flags.items() if v is not None}, recipe=recipe)
        paths = run_benchmark(config)
    except ValueError as err:
        print(f"hf-bio benchmark: error: {err}", file=sys.stderr)
        return 2
    print(Path(paths["table.md"]).read_text())
    print(f"results: {paths['csv']}\nreport: {paths['report.md']}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hf_bio.demo import run_demo

    run_demo(args.output_dir)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from hf_bio.report import compare_runs

    try:
        r = compare_runs(args.run_a, args.run_b, args.layer_a, args.layer_b, n_resamples=args.n_resamples)
    except (ValueError, OSError) as err:
        print(f"hf-bio compare: error: {err}", file=sys.stderr)
        return 2
    print(f"dataset {r['dataset']}, same test clips, {r['n_resamples']} resamples")
    for side in ("a", "b"):
        low, high = r[f"ci_{side}"]
        print(f"  {side.upper()}: {r[f'model_{side}']:<40} UAR {100 * r[f'uar_{side}']:.2f}% [{100 * low:.2f}, {100 * high:.2f}]")
    print(f"  B - A: {100 * (r['uar_b'] - r['uar_a']):+.2f} points; paired bootstrap p = {r['p_paired_bootstrap']:.3f}, "
          f"permutation p = {r['p_permutation']:.3f} (p < 0.05: the test set resolves the difference)")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from hf_bio.report import main as report_main

    return report_main([args.results, *(["--out", args.out] if args.out else [])])


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

    p = sub.add_parser(
        "prepare",
        help="turn a raw corpus (or the synthetic demo) into a 16 kHz Hugging Face dataset folder",
        description="Prepare a corpus from its raw layout (see dataset_scripts/<corpus>.py) into OUT_DIR, "
        "readable with datasets.load_dataset(OUT_DIR) and load_from_disk(OUT_DIR). "
        "'demo' first generates the synthetic corpus in RAW_DIR.",
    )
    p.add_argument("corpus", choices=["watkins", "imv", "abzaliev", "demo"])
    p.add_argument("raw_dir", metavar="RAW_DIR")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--split", choices=["paper", "stratified", "grouped"], default="paper",
                   help="paper: random 70/20/10 (default); stratified: per class; grouped: per caller/individual")
    p.add_argument("--seed", type=int, default=42, help="split seed (default 42, the paper's)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="build without invalid items and list them in OUT_DIR/skipped.csv (default: fail)")
    p.add_argument("--num-proc", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--overwrite", action="store_true", help="rebuild even if OUT_DIR holds this preparation")
    p.add_argument("--keep-silence-noise", action="store_true", help="imv/demo: keep Silence and Noise")
    p.add_argument("--time-unit", choices=["s", "ms"], default="s", help="imv/demo: unit of labels.csv start/end")
    p.add_argument("--keep-s", action="store_true", help="abzaliev: keep the S code the paper drops")
    p.add_argument("--drop-species", nargs="*", metavar="SPECIES", help="watkins: species to leave out")
    p.add_argument("--demo-seed", type=int, default=0, help="demo: generator seed (default 0)")
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("push-dataset", help="upload a prepared dataset folder (Parquet + card) to the Hub")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("repo_id", metavar="REPO_ID")
    p.add_argument("--dry-run", metavar="DIR", help="write exactly the files that would be uploaded to DIR instead")
    p.add_argument("--private", action="store_true", help="create the dataset repo as private")
    p.set_defaults(func=_cmd_push_dataset)
    from hf_bio.prepared_features import add_dataset_arguments, add_extraction_arguments
    from hf_bio.recipe import add_data_arguments, add_recipe_arguments

    p = sub.add_parser(
        "extract",
        help="run a frozen backbone once over a prepared dataset and cache every layer's pooled features",
    )
    p.add_argument("dataset_dir", help="a prepared dataset folder (hf-bio prepare)")
    p.add_argument("--backbone", required=True, help="registry name (hf-bio backbones), Hub id or local folder")
    p.add_argument("--split", choices=["train", "validation", "test", "all"], default="all")
    p.add_argument("--cache-dir", default=None, help="default: $HF_BIO_CACHE/features or ~/.cache/hf_bio/features")
    p.add_argument("--revision", default=None, help="the backbone's Hub revision (branch, tag or commit)")
    add_extraction_arguments(p)
    p.add_argument("--batch-seconds", type=float, default=4.0,
                   help="padded audio per batch; raise it on a GPU, lower it when memory is short")
    p.set_defaults(func=_cmd_extract)

    p = sub.add_parser("train", help="train every layer's head from cached features (in-process; see hf_bio.train)")
    add_data_arguments(p)
    add_recipe_arguments(p)
    add_dataset_arguments(p)  # --dataset DIR --backbone NAME: extract (or reuse the cache), train, export
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "benchmark",
        help="the paper's study: datasets x backbones -> extract, train every layer, tables and figures",
        description="Run the whole comparison (see hf_bio/benchmark.py). A YAML/JSON --config gives the same "
        "fields as the flags (datasets, backbones, output_dir, cache_dir, recipe, fusion, n_resamples, "
        "export_best, max_window_seconds, min_input_samples); flags win over the file.",
    )
    p.add_argument("--config", help="YAML or JSON benchmark config")
    p.add_argument("--datasets", nargs="+", metavar="DIR", help="prepared dataset folders (hf-bio prepare)")
    p.add_argument("--backbones", nargs="+", metavar="NAME",
                   help="registry names, Hub ids or folders; 'paper' = the paper's seven, 'offline' = tiny random "
                   "+ handcrafted (default: paper)")
    p.add_argument("--output-dir", help="results folder (default benchmark_output)")
    p.add_argument("--cache-dir", help="feature cache (default OUTPUT/cache)")
    p.add_argument("--n-resamples", type=int, help="bootstrap resamples for CIs and paired tests (default 1000)")
    add_extraction_arguments(p)
    p.add_argument("--no-fusion", action="store_true", help="skip the fusion runs")
    p.add_argument("--no-export", action="store_true", help="do not export the best model per dataset")
    add_recipe_arguments(p)
    p.set_defaults(func=_cmd_benchmark)

    p = sub.add_parser("demo", help="the benchmark on the built-in synthetic corpus with offline backbones (make demo)")
    p.add_argument("--output-dir", default="demo_output", help="where everything goes (default demo_output)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("report", help="rebuild the tables and figures from a results.json/results.csv")
    p.add_argument("results", help="results.json, results.csv or the folder holding them")
    p.add_argument("--out", help="output folder (default: beside the results)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("compare", help="paired significance tests of two trained runs on the same test clips")
    p.add_argument("run_a", metavar="RUN_A", help="a training run folder (results.json, predictions.safetensors)")
    p.add_argument("run_b", metavar="RUN_B", help="another run on the same dataset split")
    p.add_argument("--layer-a", type=int, default=None, help="layer of RUN_A (default: its best on validation)")
    p.add_argument("--layer-b", type=int, default=None, help="layer of RUN_B (default: its best on validation)")
    p.add_argument("--n-resamples", type=int, default=1000, help="bootstrap / permutation rounds (default 1000)")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("push-model", help="push a trained run's model with its model card to the Hub")
    p.add_argument("run_dir", metavar="RUN_DIR", help="training run folder (results.json, model/)")
    p.add_argument("repo_id", metavar="REPO_ID", help="Hub model repo, owner/name")
    p.add_argument("--dry-run", metavar="DIR", help="write the folder that would be uploaded to DIR, upload nothing")
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--license", default="apache-2.0", help="licence of the model files (default: apache-2.0)")
    p.set_defaults(func=_cmd_push_model)

    p = sub.add_parser("push-space", help="push the Gradio Space (app folder + hf_bio code) to the Hub")
    p.add_argument("space_dir", metavar="SPACE_DIR", help="the Space folder, e.g. spaces/hf-bio-demo")
    p.add_argument("repo_id", metavar="REPO_ID", help="Hub Space repo, owner/name")
    p.add_argument("--dry-run", metavar="DIR", help="write the folder that would be uploaded to DIR, upload nothing")
    p.add_argument("--private", action="store_true", help="create the Space as private")
    p.add_argument("--model", metavar="REPO_OR_DIR", help="the Space's default model: a Hub id, or a folder to ship")
    p.set_defaults(func=_cmd_push_space)

    p = sub.add_parser("space", help="serve the Gradio app locally (upload a call, see the labels)")
    p.add_argument(
        "--model", action="append", metavar="DIR_OR_REPO",
        help="model folder or Hub id (repeat for several; default $HF_BIO_DEFAULT_MODEL or demo_output/model)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    p.add_argument("--max-seconds", type=float, default=None, help="longest recording accepted (default 60)")
    p.set_defaults(func=_cmd_space)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
