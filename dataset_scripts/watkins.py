"""Watkins Marine Mammal Sound Database, as distributed by the BEANS benchmark: species classification.

Corpus: 1,697 clips of 32 marine mammal species (median 1.7 s, 295 min in all), mixed sampling
rates and very variable lengths, from the Watkins Marine Mammal Sound Database (Woods Hole
Oceanographic Institution / New Bedford Whaling Museum). `Weddell_Seal` has only 2 clips (BEANS
drops it); `prepare_watkins` keeps every species, as the paper's 32 classes do, unless it is named
in `drop_species`.

Licence: the Watkins database is free for personal and academic (non-commercial) use; commercial
use needs permission from WHOI. BEANS redistributes it under those terms. Check them before sharing.

Raw layout (BEANS `watkins.zip` unpacked)::

    RAW_DIR/
      annotations.csv            path,species
      <Species>/<file id>.wav    e.g. Clymene_Dolphin/83006002.wav (`path` is relative to RAW_DIR)

Output: `audio` (whole clip, 16 kHz mono), `label` (species folder name), `file_id` (the path
without extension, e.g. `Clymene_Dolphin/83006002`), `original_sampling_rate`, `duration_s`.
The corpus has no individual ids, so `split="grouped"` is not available.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hf_bio.data import Item, Problem, build_prepared_dataset
from hf_bio.dataset_card import CorpusInfo

CORPUS = CorpusInfo(
    name="watkins",
    pretty_name="Watkins Marine Mammal Sounds (BEANS subset, hf_bio, 16 kHz)",
    description=(
        "Recordings of 32 marine mammal species from the Watkins Marine Mammal Sound Database, in the "
        "selection distributed by the BEANS benchmark. Each example is one whole clip; its label is the "
        "species."
    ),
    license="other",
    license_note=(
        "The Watkins Marine Mammal Sound Database may be used freely for personal and academic "
        "(non-commercial) purposes; commercial use requires permission from Woods Hole Oceanographic "
        "Institution. See https://cis.whoi.edu/science/B/whalesounds/ ."
    ),
    homepage="https://cis.whoi.edu/science/B/whalesounds/ (BEANS: https://github.com/earthspecies/beans)",
    citation="""@inproceedings{sayigh2016watkins,
  title={The Watkins Marine Mammal Sound Database: an online, freely accessible resource},
  author={Sayigh, Laela and Daher, Mary Ann and Allen, Julie and Gordon, Helen and Joyce, Katherine and Stuhlmann, Claire and Tyack, Peter},
  booktitle={Proceedings of Meetings on Acoustics},
  volume={27},
  year={2016}
}
@inproceedings{hagiwara2023beans,
  title={BEANS: The Benchmark of Animal Sounds},
  author={Hagiwara, Masato and Hoffman, Benjamin and Liu, Jen-Yu and Cusimano, Maddie and Effenberger, Felix and Zacarian, Katie},
  booktitle={Proc. ICASSP},
  year={2023}
}""",
    tags=["marine-mammals", "species-classification"],
)


def scan_watkins(raw_dir: str | Path, drop_species: Sequence[str] = ()) -> tuple[list[Item], list[Problem], int]:
    """Read `annotations.csv` into items; returns (items, problems, rows dropped via `drop_species`)."""
    raw_dir = Path(raw_dir).absolute()
    annotations = raw_dir / "annotations.csv"
    if not annotations.is_file():
        raise ValueError(f"{annotations} not found: RAW_DIR must be the unpacked BEANS watkins folder")
    items: list[Item] = []
    problems: list[Problem] = []
    dropped = 0
    seen: set[str] = set()
    with open(annotations, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"path", "species"} <= set(reader.fieldnames or []):
            raise ValueError(f"{annotations}: expected columns path,species, found {reader.fieldnames}")
        for row_number, row in enumerate(reader, start=2):
            rel, species = row["path"].strip(), row["species"].strip()
            where = f"annotations.csv row {row_number} ({rel})"
            folder = Path(rel).parts[0] if len(Path(rel).parts) > 1 else ""
            if not species:
                problems.append(Problem(where, "empty species"))
                continue
            if folder and folder != species:
                problems.append(Problem(where, f"unknown label: species {species!r} differs from its folder {folder!r}"))
                continue
            if species in drop_species:
                dropped += 1
                continue
            file_id = str(Path(rel).with_suffix("")).replace("\\", "/")
            if file_id in seen:
                problems.append(Problem(where, "listed twice"))
                continue
            seen.add(file_id)
            path = raw_dir / rel
            if not path.is_file():
                problems.append(Problem(where, f"file {path} is listed in annotations.csv but missing"))
                continue
            items.append(Item(file_id, str(path), species, meta={"file_id": file_id}))
    return items, problems, dropped


def prepare_watkins(
    raw_dir: str | Path,
    output_dir: str | Path,
    *,
    split: str = "paper",
    seed: int = 42,
    drop_species: Sequence[str] = (),
    skip_invalid: bool = False,
    num_proc: int = 1,
    overwrite: bool = False,
    verbose: bool = True,
) -> Any:
    """Prepare Watkins from the BEANS raw layout (see the module docstring) into `output_dir`.

    Args:
        split: `paper` (random 70/20/10) or `stratified`; `grouped` is refused (no individual ids).
        drop_species: species to leave out on purpose, e.g. `("Weddell_Seal",)` as BEANS does.
        skip_invalid: build without invalid items, listed in `skipped.csv`, instead of failing.

    Returns:
        The prepared `DatasetDict`.
    """
    from datasets import Value

    items, problems, dropped = scan_watkins(raw_dir, drop_species)
    if verbose and dropped:
        print(f"watkins: dropped {dropped} clips of {list(drop_species)} on request (drop_species)")
    label_names = sorted({item.label for item in items})
    notes = ["Each clip is kept whole (long clips are not cut here; the feature extractor windows them)."]
    if drop_species:
        notes.append(f"Species left out on request: {', '.join(drop_species)} ({dropped} clips).")
    return build_prepared_dataset(
        items,
        problems,
        corpus=CORPUS,
        label_names=label_names,
        extra_features={"file_id": Value("string")},
        output_dir=output_dir,
        split=split,
        seed=seed,
        skip_invalid=skip_invalid,
        num_proc=num_proc,
        overwrite=overwrite,
        params={"drop_species": sorted(drop_species), "skip_invalid": skip_invalid,
                "raw_dir": str(Path(raw_dir).absolute())},
        extra_notes=notes,
        verbose=verbose,
    )
