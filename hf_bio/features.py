"""Frozen-backbone feature extraction into a resumable, content-keyed cache of per-layer pooled features.

The backbone runs once per clip: every hidden state is pooled over the clip's valid frames
(`BioClassifierModel.pooled_hidden_states`) and kept, so the heads of all layers train from one pass.

Clips are sorted by length inside each shard and packed into batches under a budget of padded samples,
so a shard of 127 ms calls runs as a few large batches and a ten-minute recording runs alone (the model
windows it). The model guarantees that padding does not change a clip's features, so the batching is
an implementation detail, not a setting: it is not part of the cache key.

Cache layout (`cache_dir/<key>/`), `<key>` = a hash of everything that changes the numbers (`cache_key`):

    key.json                      what the key was computed from (readable), plus the shard layout
    shards/shard-00000.safetensors  `features` [n, L, D], `labels` [n], `indices` [n] (dataset rows)
    features/                     the finished `FeatureSet` (features.safetensors + meta.json, meta last)

Shards are written atomically as they finish; a killed run leaves only whole shards, and a re-run skips
them. Once `features/` is complete the shards are deleted and later calls load `features/` directly.
Under `accelerate`, process p computes shards p, p + P, p + 2P, ...; the main process assembles them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_bio.atomic import atomic_write, atomic_write_text

if TYPE_CHECKING:  # torch and numpy load on first use, so the CLI's argument parsing stays fast

    import datasets
    import numpy as np
    import torch

    from hf_bio.feature_set import FeatureSet
    from hf_bio.modeling_bio import BioClassifierModel

# Bump when what a shard holds, or how a clip is turned into features outside the model, changes.
EXTRACTION_FORMAT_VERSION = 1
# The model config fields that change pooled features (the head, labels and layer selection do not).
EXTRACTION_CONFIG_FIELDS = (
    "backbone_config",
    "pooling",
    "max_window_seconds",
    "min_input_samples",
    "peak_normalize",
    "sampling_rate",
)
# Keys of a backbone config that name or describe it but do not change its outputs.
_NON_NUMERIC_BACKBONE_KEYS = ("transformers_version", "architectures", "auto_map", "id2label", "label2id")
# Measured on a 2-core CPU with a base model (bench/bench_extract.py): 4 s of padded audio per batch was
# fastest (16 s: 5% slower, 64 s: 37% slower: activations outgrow the caches). On a GPU, raise it.
DEFAULT_BATCH_MAX_SECONDS = 4.0
DEFAULT_SHARD_SIZE = 512
SPLITS = ("train", "validation", "test")
FEATURES_DIR = "features"
SHARDS_DIR = "shards"
KEY_FILE = "key.json"


# ---------------------------------------------------------------------------------------------
# The cache key.


def _extraction_settings(model: BioClassifierModel) -> dict[str, Any]:
    config = model.config
    settings: dict[str, Any] = {}
    for name in EXTRACTION_CONFIG_FIELDS:
        value = getattr(config, name, None)
        if name == "backbone_config" and isinstance(value, dict):
            value = {
                k: v for k, v in value.items() if not k.startswith("_") and k not in _NON_NUMERIC_BACKBONE_KEYS
            }
        settings[name] = value
    return settings


def _local_weights_stamp(backbone_id: str) -> list[list[Any]] | None:
    """Size and mtime of a local backbone folder's weight files: a folder rewritten in place gets a new key."""
    path = Path(backbone_id)
    if not path.is_dir():
        return None
    files = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".json"))
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def cache_key_inputs(
    dataset: datasets.Dataset, model: BioClassifierModel, *, split: str, backbone_id: str, revision: str | None
) -> dict[str, Any]:
    """Everything the cache key hashes, as a JSON-able dict (also written to `key.json`)."""
    return {
        "format_version": EXTRACTION_FORMAT_VERSION,
        "dataset_fingerprint": dataset._fingerprint,
        "num_rows": dataset.num_rows,
        "split": split,
        "backbone": {"id": str(backbone_id), "revision": revision, "local_files": _local_weights_stamp(backbone_id)},
        "settings": _extraction_settings(model),
    }


def cache_key(
    dataset: datasets.Dataset, model: BioClassifierModel, *, split: str, backbone_id: str, revision: str | None
) -> str:
    """A 20-hex-digit key: changes whenever the dataset, split, backbone, revision or extraction settings do."""
    inputs = cache_key_inputs(dataset, model, split=split, backbone_id=backbone_id, revision=revision)
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


# ---------------------------------------------------------------------------------------------
# Input checks.


def label_names_of(dataset: datasets.Dataset, split: str) -> list[str]:
    from datasets import ClassLabel

    feature = dataset.features.get("label")
    if not isinstance(feature, ClassLabel):
        raise ValueError(
            f"split {split!r}: column 'label' must be a ClassLabel (found {feature!r}); prepare the dataset with "
            "a dataset_scripts/<corpus>.py script or cast it: ds.cast_column('label', ClassLabel(names=[...]))"
        )
    return list(feature.names)


def check_dataset(dataset: datasets.Dataset, model: BioClassifierModel, split: str) -> list[str]:
    """Raise a ValueError naming the problem unless `dataset` can be extracted; return its label names."""
    from datasets import Audio

    if dataset.num_rows == 0:
        raise ValueError(f"split {split!r} is empty (0 rows): nothing to extract; check the prepared dataset")
    audio = dataset.features.get("audio")
    if not isinstance(audio, Audio):
        raise ValueError(
            f"split {split!r} has no 'audio' column of type Audio (columns: {list(dataset.features)}); "
            "a prepared dataset has `audio` = Audio(sampling_rate=16000)"
        )
    if not audio.decode:
        raise ValueError(
            f"split {split!r}: column 'audio' is not decoded (Audio(decode=False)); "
            "cast it back: ds.cast_column('audio', Audio(sampling_rate=16000))"
        )
    expected = int(model.config.sampling_rate)
    if audio.sampling_rate is not None and int(audio.sampling_rate) != expected:
        raise ValueError(
            f"split {split!r}: column 'audio' is decoded at {audio.sampling_rate} Hz but the model expects "
            f"{expected} Hz; resample it: ds.cast_column('audio', Audio(sampling_rate={expected}))"
        )
    return label_names_of(dataset, split)


def check_same_labels(label_names: dict[str, list[str]]) -> None:
    """Every split must carry the same label set, in the same order (ids index the same names)."""
    items = list(label_names.items())
    first_split, first = items[0]
    for split, names in items[1:]:
        if names != first:
            raise ValueError(
                f"label sets differ between splits: {first_split!r} has {first} but {split!r} has {names}; "
                "every split of a prepared dataset must share one ClassLabel (re-prepare the dataset)"
            )


# ---------------------------------------------------------------------------------------------
# Batching.


def _effective_lengths(lengths: np.ndarray, model: BioClassifierModel) -> np.ndarray:
    """Samples a clip occupies in a padded batch: repeat-padded up to the minimum, cut into windows."""
    import numpy as np

    config = model.config
    window = max(1, int(config.max_window_seconds * config.sampling_rate))
    return np.minimum(np.maximum(lengths, int(config.min_input_samples)), window)


def length_buckets(lengths: Sequence[int], budget_samples: int) -> list[list[int]]:
    """Group positions into batches of similar length whose padded size (count x longest) fits the budget.

    Sorted by length (stable, so equal lengths keep dataset order); a clip longer than the budget gets a
    batch of its own. Deterministic, which makes a resumed extraction bit-identical to a straight one.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and lengths[i] * (len(current) + 1) > budget_samples:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _decode_rows(dataset: datasets.Dataset, start: int, stop: int, split: str, expected_rate: int):
    import numpy as np

    rows = dataset[start:stop]
    clips, labels = [], []
    for offset, (audio, label) in enumerate(zip(rows["audio"], rows["label"], strict=True)):
        row = start + offset
        array = np.asarray(audio["array"], dtype=np.float32)
        rate = int(audio["sampling_rate"])
        if rate != expected_rate:
            raise ValueError(
                f"split {split!r}, row {row}: audio decoded at {rate} Hz, the model expects {expected_rate} Hz; "
                f"cast the column: ds.cast_column('audio', Audio(sampling_rate={expected_rate}))"
            )
        if array.ndim != 1:
            raise ValueError(
                f"split {split!r}, row {row}: audio has shape {array.shape}, expected mono; cast the column: "
                f"ds.cast_column('audio', Audio(sampling_rate={expected_rate}, num_channels=1))"
            )
        if array.size == 0:
            raise ValueError(f"split {split!r}, row {row}: empty audio (0 samples); drop the row or re-prepare")
        clips.append(array)
        labels.append(int(label))
    return clips, labels


def pooled_features(
    model: BioClassifierModel, clips: Sequence[np.ndarray], budget_samples: int, where: str = "clips"
) -> torch.Tensor:
    """Pooled hidden states [n, L, D] (float32, CPU) of `clips`, run in length-bucketed padded batches.

    Raises:
        ValueError: a clip gives NaN/inf features (e.g. silent or broken audio), naming its position.
    """
    import numpy as np
    import torch

    device = model.feature_mean.device
    lengths = np.array([len(c) for c in clips])
    out = torch.empty(len(clips), model.num_hidden_states, model.pooled_dim, dtype=torch.float32)
    for batch in length_buckets(_effective_lengths(lengths, model).tolist(), budget_samples):
        longest = int(lengths[batch].max())
        if len(batch) == 1:
            # A long recording runs alone: no padded copy and no int64 mask of its length.
            values, mask = torch.from_numpy(clips[batch[0]])[None], None
        else:
            values = torch.zeros(len(batch), longest, dtype=torch.float32)
            mask = torch.zeros(len(batch), longest, dtype=torch.long)
            for j, i in enumerate(batch):
                values[j, : lengths[i]] = torch.from_numpy(clips[i])
                mask[j, : lengths[i]] = 1
            mask = mask.to(device)
        with torch.inference_mode():
            pooled = model.pooled_hidden_states(values.to(device), attention_mask=mask)
        out[batch] = pooled.float().cpu()
    bad = ~torch.isfinite(out).reshape(len(clips), -1).all(dim=1)
    if bad.any():
        positions = bad.nonzero().flatten().tolist()
        raise ValueError(
            f"{where}: NaN or infinite features for clip(s) {positions[:20]}; check that audio for silence, "
            "NaN samples or corruption, then drop or fix it and re-run"
        )
    return out


# ---------------------------------------------------------------------------------------------
# Shards on disk.


def _shard_path(entry: Path, index: int) -> Path:
    return entry / SHARDS_DIR / f"shard-{index:05d}.safetensors"


def _read_layout(entry: Path, key: str, shard_size: int, budget_samples: int) -> tuple[int, int]:
    """The shard layout of an unfinished cache wins over new arguments, so a resume fits its shards."""
    try:
        saved = json.loads((entry / KEY_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return shard_size, budget_samples
    if saved.get("key") != key:
        raise ValueError(f"{entry / KEY_FILE} belongs to key {saved.get('key')!r}, not {key!r}; delete {entry}")
    layout = saved.get("layout", {})
    return int(layout.get("shard_size", shard_size)), int(layout.get("budget_samples", budget_samples))


def cache_entry(
    dataset: datasets.Dataset,
    model: BioClassifierModel,
    cache_dir: str | os.PathLike,
    *,
    split: str,
    backbone_id: str,
    revision: str | None,
) -> Path:
    """The folder `cache_dir/<key>` where this split's features are (or will be) cached."""
    key = cache_key(dataset, model, split=split, backbone_id=backbone_id, revision=revision)
    return Path(cache_dir) / key


def load_finished(entry: Path, key: str) -> FeatureSet | None:
    from hf_bio.feature_set import FeatureSet

    if not (entry / FEATURES_DIR / "meta.json").is_file():
        return None
    features = FeatureSet.load(entry / FEATURES_DIR)
    if features.meta.get("cache_key") != key:
        raise ValueError(
            f"{entry / FEATURES_DIR}: this cache was written for key {features.meta.get('cache_key')!r} "
            f"(another dataset, backbone or setting), not {key!r}; delete {entry} and re-extract"
        )
    return features


# ---------------------------------------------------------------------------------------------
# The extraction.


def extract_features(
    dataset: datasets.Dataset,
    model: BioClassifierModel,
    cache_dir: str | os.PathLike,
    *,
    split: str,
    backbone_id: str,
    revision: str | None,
    batch_max_seconds: float = DEFAULT_BATCH_MAX_SECONDS,
    shard_size: int = DEFAULT_SHARD_SIZE,
    accelerator: Any = None,
    progress: bool = True,
    backbone_name: str | None = None,
    dataset_name: str | None = None,
    dataset_fingerprint: str | None = None,
    on_shard_done: Callable[[int], None] | None = None,
) -> FeatureSet:
    """Pooled hidden states of every clip of `dataset`, computed once and cached under `cache_dir/<key>/`.

    Args:
        dataset: one split with columns `audio` (Audio at the model's rate, mono) and `label` (ClassLabel).
        model: a `BioClassifierModel`; only its frozen backbone and pooling run.
        cache_dir: root folder of the cache; the split's entry is `cache_dir/<cache_key(...)>`.
        split: the split's name (`train`, `validation`, `test`); part of the key and the meta.
        backbone_id: Hub id or local folder the backbone weights came from; part of the key.
        revision: the backbone's Hub revision (None for the default branch or a local folder).
        batch_max_seconds: budget of padded audio per batch (count x longest clip), in seconds.
        shard_size: clips per shard, the unit of resumption and of work across processes.
        accelerator: an `accelerate.Accelerator`; process p takes shards p, p + P, ...; all return the result.
        progress: show a progress bar (main process only).
        backbone_name / dataset_name / dataset_fingerprint: recorded in `meta` (not in the key);
            `dataset_fingerprint` defaults to the split's own fingerprint.
        on_shard_done: called with a shard's index after it is written (progress hooks, tests).

    Returns:
        A `FeatureSet` with features [N, L, D] in dataset order and meta recording the provenance.

    Raises:
        ValueError: no `audio` column, a wrong sampling rate, non-mono or empty audio, a label column that is
            not a ClassLabel, an empty split, NaN/inf features, or a cache written for another key.
    """
    import torch
    from safetensors.torch import save_file

    label_names = check_dataset(dataset, model, split)
    key = cache_key(dataset, model, split=split, backbone_id=backbone_id, revision=revision)
    entry = Path(cache_dir) / key
    meta_dataset = {"name": dataset_name or "", "fingerprint": dataset_fingerprint or dataset._fingerprint}

    finished = load_finished(entry, key)
    if finished is not None:
        finished.meta["dataset"] = meta_dataset
        return finished

    is_main = accelerator is None or accelerator.is_main_process
    rank = 0 if accelerator is None else accelerator.process_index
    world = 1 if accelerator is None else accelerator.num_processes
    budget = max(1, int(batch_max_seconds * model.config.sampling_rate))
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")

    if is_main:
        (entry / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
        shard_size, budget = _read_layout(entry, key, shard_size, budget)
        inputs = cache_key_inputs(dataset, model, split=split, backbone_id=backbone_id, revision=revision)
        record = {"key": key, "inputs": inputs, "layout": {"shard_size": shard_size, "budget_samples": budget}}
        atomic_write_text(entry / KEY_FILE, json.dumps(record, indent=2, sort_keys=True, default=str))
    if accelerator is not None:
        accelerator.wait_for_everyone()
        shard_size, budget = _read_layout(entry, key, shard_size, budget)

    num_rows = dataset.num_rows
    num_shards = -(-num_rows // shard_size)
    mine = [i for i in range(num_shards) if i % world == rank]
    todo = [i for i in mine if not _shard_path(entry, i).is_file()]
    columns = dataset.select_columns(["audio", "label"])
    rate = int(model.config.sampling_rate)

    bar = None
    if progress and is_main:
        from tqdm.auto import tqdm

        done_rows = sum(min(shard_size, num_rows - i * shard_size) for i in mine if i not in todo)
        bar = tqdm(total=sum(min(shard_size, num_rows - i * shard_size) for i in mine), initial=done_rows,
                   desc=f"extract {split}", unit="clip")
    for index in todo:
        start, stop = index * shard_size, min(num_rows, (index + 1) * shard_size)
        clips, labels = _decode_rows(columns, start, stop, split, rate)
        pooled = pooled_features(model, clips, budget, where=f"split {split!r}, rows {start}-{stop - 1}")
        tensors = {
            "features": pooled.contiguous(),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "indices": torch.arange(start, stop, dtype=torch.int64),
        }
        atomic_write(_shard_path(entry, index), lambda tmp, tensors=tensors: save_file(tensors, tmp))
        if bar is not None:
            bar.update(stop - start)
        if on_shard_done is not None:
            on_shard_done(index)
    if bar is not None:
        bar.close()

    if accelerator is not None:
        accelerator.wait_for_everyone()
    if is_main:
        features = _assemble(entry, key, num_shards, num_rows, label_names, model, split=split,
                             backbone_id=backbone_id, revision=revision, backbone_name=backbone_name,
                             meta_dataset=meta_dataset, split_fingerprint=dataset._fingerprint)
    if accelerator is not None:
        accelerator.wait_for_everyone()
        if not is_main:
            features = load_finished(entry, key)
    features.meta["dataset"] = meta_dataset
    return features


def _assemble(
    entry: Path, key: str, num_shards: int, num_rows: int, label_names: list[str], model: BioClassifierModel, *,
    split: str, backbone_id: str, revision: str | None, backbone_name: str | None, meta_dataset: dict[str, str],
    split_fingerprint: str,
) -> FeatureSet:
    import torch
    from safetensors.torch import load_file

    from hf_bio.feature_set import FeatureSet

    parts = []
    for index in range(num_shards):
        path = _shard_path(entry, index)
        if not path.is_file():
            raise ValueError(f"{path} is missing after extraction: a process failed; re-run to finish the cache")
        parts.append(load_file(str(path)))
    indices = torch.cat([p["indices"] for p in parts])
    if not torch.equal(indices, torch.arange(num_rows)):
        raise ValueError(f"{entry / SHARDS_DIR}: shards do not cover rows 0..{num_rows - 1} in order; delete {entry}")
    settings = _extraction_settings(model)
    extraction = {k: v for k, v in settings.items() if k not in ("backbone_config", "pooling")}
    extraction.update(format_version=EXTRACTION_FORMAT_VERSION, num_hidden_states=model.num_hidden_states,
                      pooled_dim=model.pooled_dim)
    meta = {
        "backbone": {"name": backbone_name or Path(str(backbone_id)).name, "hub_id": str(backbone_id),
                     "revision": revision},
        "dataset": meta_dataset,
        "split": split,
        "split_fingerprint": split_fingerprint,
        "pooling": settings["pooling"],
        "extraction": extraction,
        "backbone_config": settings["backbone_config"],
        "cache_key": key,
    }
    features = FeatureSet(torch.cat([p["features"] for p in parts]), torch.cat([p["labels"] for p in parts]),
                          label_names, meta)
    features.save(entry / FEATURES_DIR)  # meta.json last: the cache counts as finished only when whole
    shutil.rmtree(entry / SHARDS_DIR, ignore_errors=True)
    return features
