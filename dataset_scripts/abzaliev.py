"""Abzaliev dog barks ("Mescalina Bark ID" data): call-type classification of dog vocalisations.

Corpus: 8,034 vocalisations (137 min, median 655 ms) of 14 context/call-type codes from dogs
recorded at 48 kHz by Abzaliev, Pérez-Espinosa and Mihalcea. The meaning of the codes is not
published in a form we found, so they are kept as they are: L-S1, L-S2, L-S3, L-A, L-PA, L-P, L-O,
S, CH-P, CH-N, GR-P, GR-N, L-TA, L-H. The paper drops `S`; so does `prepare_abzaliev` unless
`keep_s=True`.

Licence: not openly licensed; the data are shared on request by their authors. Do not push a
prepared copy publicly without their permission (`hf-bio push-dataset --private`).

Raw layout::

    RAW_DIR/data/<Dogname_xxx>/<CALLTYPE>/*.wav    e.g. data/Mescalina_01/L-S2/0001.wav

The individual is the first `_` token of the dog folder, lowercased (`mescalina`).

Output: `audio` (whole file, 16 kHz mono), `label` (call-type code), `individual`, `file_id`
(path below data/ without extension), `original_sampling_rate`, `duration_s`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_bio.data import Item, Problem, build_prepared_dataset
from hf_bio.dataset_card import CorpusInfo

CALL_TYPES = ("L-S1", "L-S2", "L-S3", "L-A", "L-PA", "L-P", "L-O", "S", "CH-P", "CH-N", "GR-P", "GR-N", "L-TA", "L-H")
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg"}

CORPUS = CorpusInfo(
    name="abzaliev",
    pretty_name="Abzaliev dog vocalisations (hf_bio, 16 kHz)",
    description=(
        "Vocalisations of individual dogs recorded at 48 kHz, labelled with 14 context/call-type codes "
        "(Abzaliev et al., 2024). Each example is one audio file; `individual` is the dog."
    ),
    license="other",
    license_note=(
        "Not openly licensed: the data are available on request from the authors. Keep prepared copies "
        "private unless they allow otherwise."
    ),
    homepage="on request from the authors of Abzaliev et al., LREC-COLING 2024",
    citation="""@inproceedings{abzaliev2024towards,
  title={Towards Dog Bark Decoding: Leveraging Human Speech Processing for Automated Bark Classification},
  author={Abzaliev, Artem and P{\\'e}rez-Espinosa, Humberto and Mihalcea, Rada},
  booktitle={Proc. LREC-COLING},
  year={2024}
}""",
    taxonomy={code: "call-type code as distributed (meaning not published in a form we found)" for code in CALL_TYPES},
    tags=["dogs", "call-type-classification"],
)


def scan_abzaliev(raw_dir: str | Path, keep_s: bool = False) -> tuple[list[Item], list[Problem], int, int]:
    """Walk data/<dog>/<code>/ into items; returns (items, problems, `S` files dropped, non-audio files ignored)."""
    data = Path(raw_dir).absolute() / "data"
    if not data.is_dir():
        raise ValueError(f"{data} not found: RAW_DIR must hold data/<Dogname_xxx>/<CALLTYPE>/*.wav")
    items: list[Item] = []
    problems: list[Problem] = []
    dropped = ignored = 0
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        rel = path.relative_to(data)
        if path.suffix.lower() not in AUDIO_SUFFIXES:
            ignored += 1
            continue
        if len(rel.parts) != 3:
            problems.append(Problem(str(rel), "not at data/<Dogname_xxx>/<CALLTYPE>/<file>: cannot tell dog and label"))
            continue
        dog, code = rel.parts[0], rel.parts[1]
        if code not in CALL_TYPES:
            problems.append(Problem(str(rel), f"unknown label (call-type folder) {code!r}; known: {', '.join(CALL_TYPES)}"))
            continue
        if code == "S" and not keep_s:
            dropped += 1
            continue
        file_id = str(rel.with_suffix("")).replace("\\", "/")
        individual = dog.split("_")[0].lower()
        items.append(Item(file_id, str(path), code, group=individual, meta={"individual": individual, "file_id": file_id}))
    return items, problems, dropped, ignored


def prepare_abzaliev(
    raw_dir: str | Path,
    output_dir: str | Path,
    *,
    split: str = "paper",
    seed: int = 42,
    keep_s: bool = False,
    skip_invalid: bool = False,
    num_proc: int = 1,
    overwrite: bool = False,
    verbose: bool = True,
) -> Any:
    """Prepare the Abzaliev dog corpus from its raw layout (see the module docstring) into `output_dir`.

    Args:
        split: `paper` (random 70/20/10, seed 42), `stratified`, or `grouped` (each dog in one split).
        keep_s: keep the `S` code, which the paper drops.
        skip_invalid: build without invalid items, listed in `skipped.csv`, instead of failing.

    Returns:
        The prepared `DatasetDict`.
    """
    from datasets import Value

    items, problems, dropped, ignored = scan_abzaliev(raw_dir, keep_s)
    if verbose and (dropped or ignored):
        print(f"abzaliev: dropped {dropped} files of code S as in the paper (keep_s / --keep-s keeps them); "
              f"ignored {ignored} non-audio files")
    notes = [
        "`S` kept." if keep_s else f"Code `S` dropped as in the paper ({dropped} files).",
        "`individual` = first `_` token of the dog folder, lowercased; `grouped` splits keep each dog in one split.",
    ]
    return build_prepared_dataset(
        items,
        problems,
        corpus=CORPUS,
        label_names=list(CALL_TYPES),
        extra_features={"individual": Value("string"), "file_id": Value("string")},
        output_dir=output_dir,
        split=split,
        seed=seed,
        skip_invalid=skip_invalid,
        num_proc=num_proc,
        overwrite=overwrite,
        params={"keep_s": keep_s, "skip_invalid": skip_invalid, "raw_dir": str(Path(raw_dir).absolute())},
        extra_notes=notes,
        verbose=verbose,
    )
