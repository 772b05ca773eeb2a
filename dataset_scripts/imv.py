"""InfantMarmosetsVox (IMV): marmoset call types cut from long recordings.

Corpus: 350 ten-minute recordings (44.1 kHz) of ten infant marmosets (five twin pairs), with
72,920 annotated calls (median 127 ms) of 13 types, 0-12: 0 Peep(Pre-Phee), 1 Phee, 2 Twitter,
3 Trill, 4 Trillphee, 5 Tsik Tse, 6 Egg, 7 Pheecry(cry), 8 TrllTwitter, 9 Pheetwitter, 10 Peep,
11 Silence, 12 Noise. The paper (Sarkar & Magimai-Doss, ICASSP 2025) drops Silence and Noise,
leaving 11 classes; so does `prepare_imv` unless `keep_silence_noise=True`.

Licence: CC-BY-4.0, Zenodo record 10130104 (https://zenodo.org/records/10130104).

Raw layout (what the Zenodo download unpacks to)::

    RAW_DIR/
      labels.csv                    filename,start,end,duration,calltype,caller
      data/twin_<T>/<filename>.wav  e.g. data/twin_1/20160907_Twin1_marmoset1.wav

`start`/`end` are seconds into the recording (`time_unit="ms"` reads milliseconds); `calltype` is
the integer code above (a class name is accepted too); `caller` is the marmoset (1 or 2) of the twin
pair `T` (from the folder `twin_<T>`, or `Twin<T>` in the file name), so the caller id is
`(T - 1) * 2 + caller - 1` (0-9) and its name `twin<T>_marmoset<caller>`.

Output: `audio` (16 kHz mono segment), `label` (call type name), `caller` (ClassLabel),
`recording` (file name), `start`, `end` (seconds), `original_sampling_rate`, `duration_s`.
Only each segment is read from its recording, never the whole ten minutes.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

from hf_bio.data import InvalidCorpusError, Item, Problem, build_prepared_dataset
from hf_bio.dataset_card import CorpusInfo

CALL_TYPES = (
    "Peep(Pre-Phee)",
    "Phee",
    "Twitter",
    "Trill",
    "Trillphee",
    "Tsik Tse",
    "Egg",
    "Pheecry(cry)",
    "TrllTwitter",
    "Pheetwitter",
    "Peep",
    "Silence",
    "Noise",
)
SILENCE_NOISE = ("Silence", "Noise")
REQUIRED_COLUMNS = ("filename", "start", "end", "calltype", "caller")

CORPUS = CorpusInfo(
    name="imv",
    pretty_name="InfantMarmosetsVox (hf_bio, 16 kHz)",
    description=(
        "Calls of ten infant common marmosets (five twin pairs), annotated with their call type and "
        "caller in 350 ten-minute recordings at 44.1 kHz. Each example is one annotated call cut from "
        "its recording by the start/end times of `labels.csv`."
    ),
    license="cc-by-4.0",
    license_note="Creative Commons Attribution 4.0, as stated on the Zenodo record; credit the authors below.",
    homepage="https://zenodo.org/records/10130104",
    citation="""@inproceedings{sarkar2023can,
  title={Can Self-Supervised Neural Representations Pre-Trained on Human Speech distinguish Animal Callers?},
  author={Sarkar, Eklavya and Magimai.-Doss, Mathew},
  booktitle={Proc. Interspeech},
  year={2023}
}
@inproceedings{sarkar2025comparing,
  title={Comparing Self-Supervised Learning Models Pre-Trained on Human Speech and Animal Vocalizations for Bioacoustics Processing},
  author={Sarkar, Eklavya and Magimai.-Doss, Mathew},
  booktitle={Proc. ICASSP},
  year={2025}
}""",
    taxonomy={
        "Peep(Pre-Phee)": "code 0, a peep preceding a phee",
        "Phee": "code 1, long tonal contact call",
        "Twitter": "code 2, series of short upward frequency-modulated syllables",
        "Trill": "code 3, frequency-modulated (vibrato) tonal call",
        "Trillphee": "code 4, a trill turning into a phee",
        "Tsik Tse": "code 5, short broadband alarm/mobbing calls",
        "Egg": "code 6, 'egg' call",
        "Pheecry(cry)": "code 7, infant cry built on phee",
        "TrllTwitter": "code 8, trill followed by twitter",
        "Pheetwitter": "code 9, phee followed by twitter",
        "Peep": "code 10, short high tonal call",
        "Silence": "code 11, annotated silence (dropped by default, as in the paper)",
        "Noise": "code 12, annotated noise (dropped by default, as in the paper)",
    },
    tags=["marmoset", "call-type-classification"],
)


def _int(value: str) -> int:
    number = float(value)
    if not number.is_integer():
        raise ValueError(value)
    return int(number)


def _twin_of(path: Path, filename: str) -> int | None:
    for text in (path.parent.name, filename):
        match = re.search(r"twin_?(\d+)", text, flags=re.IGNORECASE)
        if match:
            return int(match.group(1))
    return None


def scan_imv(
    raw_dir: str | Path, keep_silence_noise: bool = False, time_unit: str = "s"
) -> tuple[list[Item], list[Problem], dict[str, int]]:
    """Read `labels.csv` into items; returns (items, problems, counts of rows dropped on purpose)."""
    raw_dir = Path(raw_dir)
    labels_csv = raw_dir / "labels.csv"
    if not labels_csv.is_file():
        raise ValueError(f"{labels_csv} not found: RAW_DIR must be the unpacked IMV folder (labels.csv + data/)")
    if time_unit not in ("s", "ms"):
        raise ValueError(f"time_unit must be 's' or 'ms', got {time_unit!r}")
    scale = 1.0 if time_unit == "s" else 1e-3
    recordings = {p.stem: p for p in sorted((raw_dir / "data").glob("*/*")) if p.is_file()}
    items: list[Item] = []
    problems: list[Problem] = []
    dropped = {name: 0 for name in SILENCE_NOISE}
    seen: set[str] = set()
    with open(labels_csv, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{labels_csv}: missing column(s) {missing}; expected {','.join(REQUIRED_COLUMNS)}")
        for row_number, row in enumerate(reader, start=2):  # row 1 is the header
            where = f"labels.csv row {row_number}"
            filename = row["filename"].strip()
            code = row["calltype"].strip()
            try:
                label = CALL_TYPES[_int(code)] if code[:1].isdigit() or code[:1] == "-" else code
                if label not in CALL_TYPES:
                    raise ValueError(code)
            except (ValueError, IndexError):
                problems.append(Problem(where, f"unknown calltype {code!r}; known codes are 0-12 ({', '.join(CALL_TYPES)})"))
                continue
            if label in SILENCE_NOISE and not keep_silence_noise:
                dropped[label] += 1
                continue
            try:
                start, end = float(row["start"]) * scale, float(row["end"]) * scale
            except ValueError:
                problems.append(Problem(where, f"start/end {row['start']!r}/{row['end']!r} are not numbers"))
                continue
            if not end > start >= 0:
                problems.append(Problem(where, f"segment {start}-{end} s is empty or negative"))
                continue
            path = recordings.get(filename)
            if path is None:
                problems.append(Problem(where, f"recording {filename!r} is listed but no data/*/{filename}.wav exists"))
                continue
            twin = _twin_of(path, filename)
            try:
                marmoset = _int(row["caller"])
                if twin is None or marmoset not in (1, 2):
                    raise ValueError(row["caller"])
            except ValueError:
                problems.append(Problem(where, f"caller {row['caller']!r} of {filename} is not marmoset 1 or 2 of a twin_<T> pair"))
                continue
            item_id = f"{filename}_{start:.3f}-{end:.3f}"
            if item_id in seen:
                item_id += f"_row{row_number}"
            seen.add(item_id)
            caller = f"twin{twin}_marmoset{marmoset}"
            meta: dict[str, Any] = {"caller": caller, "recording": filename, "start": start, "end": end}
            items.append(Item(item_id, str(path), label, start, end, group=caller, meta=meta))
    return items, problems, dropped


def prepare_imv(
    raw_dir: str | Path,
    output_dir: str | Path,
    *,
    split: str = "paper",
    seed: int = 42,
    keep_silence_noise: bool = False,
    time_unit: str = "s",
    skip_invalid: bool = False,
    num_proc: int = 1,
    overwrite: bool = False,
    corpus: CorpusInfo = CORPUS,
    verbose: bool = True,
) -> Any:
    """Prepare InfantMarmosetsVox from its raw layout (see the module docstring) into `output_dir`.

    Args:
        split: `paper` (random 70/20/10, seed 42 as in the paper), `stratified` or `grouped` (by caller).
        keep_silence_noise: keep call types 11 Silence and 12 Noise, which the paper drops.
        time_unit: unit of `start`/`end` in labels.csv, `"s"` or `"ms"`.
        skip_invalid: build without invalid items, listed in `skipped.csv`, instead of failing.
        corpus: the card text (the demo corpus passes its own, saying it is synthetic).

    Returns:
        The prepared `DatasetDict` (also readable later with `hf_bio.data.load_prepared(output_dir)`).
    """
    from datasets import ClassLabel, Value

    items, problems, dropped = scan_imv(raw_dir, keep_silence_noise, time_unit)
    if verbose and any(dropped.values()):
        print("imv: dropped as in the paper: " + ", ".join(f"{n} {k}" for k, n in dropped.items())
              + " (keep_silence_noise / --keep-silence-noise keeps them)")
    callers = sorted({item.meta["caller"] for item in items}, key=lambda c: [int(x) for x in re.findall(r"\d+", c)])
    label_names = [c for c in CALL_TYPES if keep_silence_noise or c not in SILENCE_NOISE]
    notes = [
        "Segments cut from each recording by `labels.csv` start/end "
        f"({'seconds' if time_unit == 's' else 'milliseconds'}); only the segment is decoded.",
        "Silence and Noise rows kept." if keep_silence_noise
        else f"Silence ({dropped['Silence']} rows) and Noise ({dropped['Noise']} rows) dropped, as in the paper.",
        "`caller` = `twin<T>_marmoset<caller>`; `grouped` splits keep each caller in one split.",
    ]
    try:
        return build_prepared_dataset(
            items,
            problems,
            corpus=corpus,
            label_names=label_names,
            extra_features={
                "caller": ClassLabel(names=callers),
                "recording": Value("string"),
                "start": Value("float64"),
                "end": Value("float64"),
            },
            output_dir=output_dir,
            split=split,
            seed=seed,
            skip_invalid=skip_invalid,
            num_proc=num_proc,
            overwrite=overwrite,
            params={"keep_silence_noise": keep_silence_noise, "time_unit": time_unit, "skip_invalid": skip_invalid,
                    "raw_dir": str(Path(raw_dir).absolute())},
            extra_notes=notes,
            verbose=verbose,
        )
    except InvalidCorpusError as err:
        outside = sum("lies outside the recording" in p.reason for p in err.problems)
        if time_unit == "s" and outside > len(items) / 2:  # the classic unit mix-up: say so
            raise InvalidCorpusError(
                err.problems,
                corpus.name,
                err.details_file,
                hint="Most segments lie beyond the end of their recording: if labels.csv gives start/end in "
                "milliseconds, pass time_unit='ms' (`--time-unit ms`).",
            ) from None
        raise
