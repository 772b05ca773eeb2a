"""Building, saving and loading prepared datasets: the shared half of every `dataset_scripts/<corpus>.py`.

A corpus module only reads its raw layout into a list of `Item`s (file, optional segment, label,
metadata) plus the `Problem`s it found on the way. `build_prepared_dataset` does the rest, the same
way for every corpus:

1. validate every item's audio before writing anything (header, segment bounds, silence, NaN), so a
   broken corpus fails in seconds with ONE error listing every problem, or, with `skip_invalid`,
   is built without those items, which are written to `skipped.csv`;
2. split (`hf_bio.splits`), then decode/down-mix/resample each item in a generator, shard by shard,
   in `num_proc` processes (`Dataset.from_generator`), so memory stays bounded whatever the corpus size;
3. write a self-contained folder, both `save_to_disk` Arrow (for `load_from_disk`) and
   `data/<split>-*.parquet` with the audio bytes embedded plus a README card (for `load_dataset`);
4. build in a temporary folder beside `output_dir` and move it into place at the end, writing a
   completion marker last: an interrupted or failed run never damages an earlier output.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hf_bio.atomic import replace_dir
from hf_bio.audio import (
    TARGET_SAMPLING_RATE,
    AudioDecodeError,
    audio_info,
    check_finite_and_audible,
    load_mono,
    read_audio,
    to_mono,
)
from hf_bio.dataset_card import CorpusInfo, build_dataset_card
from hf_bio.splits import DEFAULT_FRACTIONS, SPLIT_NAMES, make_splits

MARKER_NAME = ".hf_bio_prepared.json"
SKIPPED_NAME = "skipped.csv"
PARQUET_SHARD_BYTES = 500 * 1024 * 1024  # the Hub's dataset viewer and `datasets` like shards of a few 100 MB
ITEMS_PER_SHARD = 500  # generator shards: small enough to balance `num_proc` workers
MAX_LISTED_PROBLEMS = 100
# Rows per Arrow record batch / Parquet row group: bounds memory for long clips (Watkins has minutes-long
# ones) and is the row-group size the Hub's dataset viewer recommends for audio.
WRITER_BATCH_SIZE = 100


@dataclass(frozen=True)
class Item:
    """One example to be: a whole file, or the `start`-`end` seconds of it.

    Args:
        item_id: unique and stable, e.g. `"Clymene_Dolphin/83006002"`; names the item in errors.
        path: the audio file.
        label: the class name (one of the corpus's label names).
        start: segment start in seconds, or None for the whole file.
        end: segment end in seconds, or None for the whole file.
        group: caller/individual for `split="grouped"`, or None.
        meta: the corpus's metadata columns for this item (names as in its extra features).
    """

    item_id: str
    path: str
    label: str
    start: float | None = None
    end: float | None = None
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """An item that cannot be prepared: `item` names it (id or file), `reason` says why and what to do."""

    item: str
    reason: str


class InvalidCorpusError(ValueError):
    """The raw corpus has problems; the message lists every one (file + reason) and the way out."""

    def __init__(
        self, problems: Sequence[Problem], corpus: str, details_file: Path | None = None, hint: str = ""
    ):
        self.problems = list(problems)
        self.details_file = details_file
        shown = "\n".join(f"  - {p.item}: {p.reason}" for p in self.problems[:MAX_LISTED_PROBLEMS])
        more = len(self.problems) - MAX_LISTED_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        where = f" (all listed in {details_file})" if details_file else ""
        super().__init__(
            f"{corpus}: {len(self.problems)} invalid item(s){where}; nothing was written:\n{shown}{tail}\n"
            + (f"{hint}\n" if hint else "")
            + "Fix or remove these files, or pass skip_invalid=True (`--skip-invalid`) to build without "
            f"them and list them in {SKIPPED_NAME}."
        )


# ---------------------------------------------------------------------------------------------
# Validation: everything that can be checked before a single clip is written.


def _validate_file_items(path: str, items: Sequence[Item]) -> list[Problem]:
    try:
        audio_info(path)  # one header read decides missing/empty/corrupt for all the file's items
    except AudioDecodeError as err:
        return [Problem(item.item_id, str(err)) for item in items]
    problems = []
    for item in items:
        try:
            decoded = read_audio(path, item.start, item.end)
            check_finite_and_audible(to_mono(decoded.samples), _describe(item))
        except AudioDecodeError as err:
            problems.append(Problem(item.item_id, str(err)))
    return problems


def _validate_chunk(chunk: list[tuple[str, list[Item]]]) -> list[Problem]:
    return [p for path, items in chunk for p in _validate_file_items(path, items)]


def validate_items(items: Sequence[Item], num_proc: int = 1) -> list[Problem]:
    """Read every item's audio once at its own rate (no resampling) and report what is wrong with it.

    Catches: missing, empty, corrupt or undecodable files, segments outside their recording, silent
    clips and clips with NaN/inf. Multi-channel and any sampling rate are fine (they are converted).
    """
    by_path: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        by_path[item.path].append(item)
    groups = sorted(by_path.items())
    if num_proc <= 1 or len(groups) < 2:
        return _validate_chunk(groups)
    chunks = [groups[i::num_proc] for i in range(num_proc)]
    with ProcessPoolExecutor(max_workers=num_proc) as pool:
        results = list(pool.map(_validate_chunk, chunks))
    order = {item.item_id: i for i, item in enumerate(items)}
    return sorted((p for r in results for p in r), key=lambda p: order.get(p.item, -1))


def _describe(item: Item) -> str:
    if item.start is None and item.end is None:
        return item.path
    return f"{item.path} [{item.start:.3f}-{item.end:.3f} s]"


# ---------------------------------------------------------------------------------------------
# Writing.


def _wav_bytes(samples: np.ndarray) -> bytes:
    import soundfile as sf

    buffer = io.BytesIO()
    # 16-bit PCM like most distributed corpora; clip the rare resampling overshoot beyond full scale.
    sf.write(buffer, np.clip(samples, -1.0, 1.0), TARGET_SAMPLING_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _generate_examples(shards: list[list[Item]]) -> Iterator[dict[str, Any]]:
    import torch

    # One clip is far too small for torch's intra-op threads: they cost 5-40x the resampling itself
    # (measured on 2 cores); parallelism comes from num_proc instead. Restored when the generator ends.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for shard in shards:
            for item in shard:
                samples, rate = load_mono(item.path, TARGET_SAMPLING_RATE, item.start, item.end)
                name = item.item_id.replace("/", "__").replace(":", "_") + ".wav"
                yield {
                    "audio": {"bytes": _wav_bytes(samples), "path": name},
                    "label": item.label,
                    **item.meta,
                    "original_sampling_rate": rate,
                    "duration_s": len(samples) / TARGET_SAMPLING_RATE,
                }
    finally:
        torch.set_num_threads(threads)


def _build_split(items: list[Item], features: Any, num_proc: int, cache_dir: Path) -> Any:
    from datasets import Dataset

    shards = [items[i : i + ITEMS_PER_SHARD] for i in range(0, len(items), ITEMS_PER_SHARD)]
    return Dataset.from_generator(
        _generate_examples,
        features=features,
        gen_kwargs={"shards": shards},
        num_proc=min(num_proc, len(shards)) if num_proc > 1 else None,
        cache_dir=str(cache_dir),  # inside the temporary build folder, never the user's global cache
        keep_in_memory=False,
        writer_batch_size=WRITER_BATCH_SIZE,
    )


def _write_parquet(ds: Any, split: str, data_dir: Path) -> list[str]:
    num_shards = max(1, math.ceil(ds.data.nbytes / PARQUET_SHARD_BYTES))
    names = []
    for i in range(num_shards):
        name = f"{split}-{i:05d}-of-{num_shards:05d}.parquet"
        # The audio column already holds the WAV bytes, so the Parquet file is self-contained.
        ds.shard(num_shards, i, contiguous=True).to_parquet(str(data_dir / name), batch_size=WRITER_BATCH_SIZE)
        names.append(name)
    return names


def _write_csv(path: Path, rows: Sequence[Problem]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["item", "reason"])
        writer.writerows((p.item, p.reason) for p in rows)
    os.replace(tmp, path)


def _remove_stale_builds(output_dir: Path) -> None:
    """Delete temporary folders left by killed runs (their process is gone); a live run's is kept."""
    for stale in output_dir.parent.glob(f".{output_dir.name}.building-*"):
        try:
            os.kill(int(stale.name.rsplit("-", 1)[1]), 0)
            if int(stale.name.rsplit("-", 1)[1]) != os.getpid():
                continue  # another prepare is writing there right now
        except (ProcessLookupError, ValueError):
            pass
        except PermissionError:
            continue  # the process exists (owned by someone else)
        shutil.rmtree(stale, ignore_errors=True)


def _check_output_dir(output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output_dir {output_dir} is a file; give a folder path")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (output_dir / MARKER_NAME).is_file():
        raise ValueError(
            f"output_dir {output_dir} exists, is not empty and is not a dataset prepared by hf_bio; "
            "refusing to replace it: choose a new folder or delete this one"
        )


def build_prepared_dataset(
    items: Sequence[Item],
    problems: Sequence[Problem],
    *,
    corpus: CorpusInfo,
    label_names: Sequence[str],
    extra_features: dict[str, Any],
    output_dir: str | Path,
    split: str = "paper",
    seed: int = 42,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    skip_invalid: bool = False,
    num_proc: int = 1,
    overwrite: bool = False,
    params: dict[str, Any] | None = None,
    extra_notes: list[str] | None = None,
    verbose: bool = True,
) -> Any:
    """Validate, split, convert and save `items` as a self-contained dataset folder; returns its DatasetDict.

    Args:
        items: what the corpus scan found, in a stable order (the split depends on it).
        problems: what the corpus scan already found wrong (missing files, unknown labels, ...).
        corpus: the card's description of the corpus.
        label_names: the taxonomy in its canonical order; classes absent from the valid items are dropped.
        extra_features: metadata column name -> `datasets` feature (values come from `Item.meta`).
        output_dir: the folder to create (or replace, if it holds an earlier hf_bio dataset).
        split: one of `hf_bio.splits.SPLIT_METHODS`.
        seed: the split seed.
        skip_invalid: build without the invalid items (listed in `skipped.csv`) instead of failing.
        num_proc: worker processes for validation and conversion.
        overwrite: rebuild even when `output_dir` already holds this exact preparation.
        params: the preparation's arguments, stored in the completion marker; a re-run with the same
            params finds the marker and returns the existing dataset without rebuilding.

    Raises:
        InvalidCorpusError: invalid items and `skip_invalid=False` (nothing is written).
        ValueError: no valid item, a bad split request, or an `output_dir` that is not ours to replace.
    """
    from datasets import Audio as AudioFeature
    from datasets import ClassLabel, Features, Value

    output_dir = Path(output_dir).absolute()
    params = {"corpus": corpus.name, "split": split, "seed": seed, "fractions": list(fractions), **(params or {})}
    _check_output_dir(output_dir)
    marker = output_dir / MARKER_NAME
    if marker.is_file() and not overwrite:
        done = json.loads(marker.read_text())
        if done.get("params") == json.loads(json.dumps(params)):
            if verbose:
                print(f"{output_dir}: already prepared with these settings (pass overwrite to rebuild)")
            return load_prepared(output_dir)

    report = print if verbose else (lambda *a, **k: None)
    report(f"{corpus.name}: found {len(items)} items; validating audio ...")
    problems = list(problems) + validate_items(items, num_proc)
    if problems and not skip_invalid:
        details = None
        if len(problems) > MAX_LISTED_PROBLEMS:
            details = output_dir.parent / f"{output_dir.name}.problems.csv"
            _write_csv(details, problems)
        raise InvalidCorpusError(problems, corpus.name, details)
    bad = {p.item for p in problems}
    valid = [item for item in items if item.item_id not in bad]
    if not valid:
        raise ValueError(f"{corpus.name}: no valid item left to prepare ({len(problems)} invalid)")
    present = {item.label for item in valid}
    names = [n for n in label_names if n in present]
    unknown = present - set(label_names)
    if unknown:  # a corpus module must report unknown labels as problems; this is a programming error
        raise ValueError(f"labels {sorted(unknown)} are not among label_names")
    features = Features(
        {
            "audio": AudioFeature(sampling_rate=TARGET_SAMPLING_RATE),
            "label": ClassLabel(names=names),
            **extra_features,
            "original_sampling_rate": Value("int32"),
            "duration_s": Value("float32"),
        }
    )
    label_ids = [names.index(item.label) for item in valid]
    groups = [item.group for item in valid] if all(item.group is not None for item in valid) else None
    split_idx = make_splits(split, label_ids, groups, seed, fractions)
    empty = [s for s in SPLIT_NAMES if len(split_idx[s]) == 0]
    if empty:
        raise ValueError(
            f"{corpus.name}: split={split!r} leaves {empty} empty with {len(valid)} valid items; "
            "a train/validation/test dataset needs at least one item in each (add data or change --split)"
        )

    _remove_stale_builds(output_dir)
    build = output_dir.parent / f".{output_dir.name}.building-{os.getpid()}"
    build.mkdir(parents=True)
    try:
        report(
            f"{corpus.name}: {len(valid)} valid, {len(problems)} skipped; writing "
            + ", ".join(f"{s} {len(split_idx[s])}" for s in SPLIT_NAMES)
        )
        from datasets import DatasetDict

        dd = DatasetDict(
            {
                s: _build_split([valid[i] for i in split_idx[s]], features, num_proc, build / ".cache")
                for s in SPLIT_NAMES
            }
        )
        dd.save_to_disk(str(build))
        (build / "data").mkdir()
        for s in SPLIT_NAMES:
            _write_parquet(dd[s], s, build / "data")
        info = dd["train"].info.copy()
        from datasets import SplitDict, SplitInfo

        splits = SplitDict()
        for s in SPLIT_NAMES:
            splits.add(SplitInfo(name=s, num_examples=len(dd[s]), num_bytes=dd[s].data.nbytes))
        info.splits = splits
        card = build_dataset_card(
            corpus,
            {"features": info._to_yaml_dict()["features"], "splits": info._to_yaml_dict()["splits"]},
            names,
            {s: [label_ids[i] for i in split_idx[s]] for s in SPLIT_NAMES},
            split,
            seed,
            fractions,
            num_skipped=len(problems),
            extra_notes=extra_notes,
        )
        (build / "README.md").write_text(card, encoding="utf-8")
        if problems:
            _write_csv(build / SKIPPED_NAME, problems)
        del dd  # release the memory-mapped cache files before deleting them
        shutil.rmtree(build / ".cache", ignore_errors=True)
        summary = {
            "params": params,
            "num_items": len(valid),
            "num_skipped": len(problems),
            "splits": {s: len(split_idx[s]) for s in SPLIT_NAMES},
            "label_names": names,
        }
        (build / MARKER_NAME).write_text(json.dumps(summary, indent=2))  # last: marks the build complete
        replace_dir(build, output_dir)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
    report(
        f"{corpus.name}: wrote {output_dir} ({len(valid)} items: "
        + ", ".join(f"{s} {len(split_idx[s])}" for s in SPLIT_NAMES)
        + (f"; {len(problems)} skipped, see {output_dir / SKIPPED_NAME})" if problems else ")")
    )
    return load_prepared(output_dir)


# ---------------------------------------------------------------------------------------------
# Reading back.


def is_prepared(path: str | Path) -> bool:
    """True if `path` is a complete dataset folder written by `build_prepared_dataset`."""
    path = Path(path)
    return (path / MARKER_NAME).is_file() and (path / "dataset_dict.json").is_file()


def prepared_summary(path: str | Path) -> dict[str, Any]:
    """The completion marker of a prepared folder: params (corpus, split, seed, ...), sizes, label names."""
    if not is_prepared(path):
        raise ValueError(_not_prepared_message(Path(path)))
    return json.loads((Path(path) / MARKER_NAME).read_text())


def _not_prepared_message(path: Path) -> str:
    why = "does not exist" if not path.exists() else "is not a complete dataset prepared by hf_bio"
    return (
        f"{path} {why} (no {MARKER_NAME} and dataset_dict.json); create it with "
        f"`hf-bio prepare <corpus> RAW_DIR {path}` (or `hf-bio prepare demo RAW_DIR {path}`)"
    )


def load_prepared(path: str | Path) -> Any:
    """Load a prepared dataset folder as a `DatasetDict` with splits train/validation/test.

    Raises:
        ValueError: `path` is missing or not a complete prepared dataset (the message says how to make one).
    """
    from datasets import load_from_disk

    path = Path(path)
    if not is_prepared(path):
        raise ValueError(_not_prepared_message(path))
    return load_from_disk(str(path))


def hub_files(path: str | Path) -> list[Path]:
    """The files `load_dataset` needs from a prepared folder (README card + Parquet): what a push uploads."""
    path = Path(path)
    if not is_prepared(path):
        raise ValueError(_not_prepared_message(path))
    return [path / "README.md", *sorted((path / "data").glob("*.parquet"))]


def push_prepared(
    path: str | Path, repo_id: str, *, dry_run_dir: str | Path | None = None, private: bool = False
) -> str:
    """Upload the README card and Parquet files of a prepared folder as the dataset repo `repo_id`.

    With `dry_run_dir`, writes exactly the files it would upload there instead. Returns the URL or folder.
    """
    import tempfile

    from hf_bio.hub import push_folder

    path = Path(path)
    files = hub_files(path)
    with tempfile.TemporaryDirectory(prefix="hf_bio_push_") as staging:
        # A staging folder of hard links (copies across file systems) holding only what load_dataset needs.
        for f in files:
            dest = Path(staging) / f.relative_to(path)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f, dest)
            except OSError:
                shutil.copy2(f, dest)
        return push_folder(staging, repo_id, "dataset", dry_run_dir=dry_run_dir, private=private,
                           commit_message="Upload dataset prepared with hf-bio")

