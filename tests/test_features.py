"""Feature extraction: batching invariance, the cache (key, reload, resume), processes, and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, Value

from hf_bio import features as F
from hf_bio import prepared_features as P
from hf_bio.configuration_bio import DEFAULT_MIN_INPUT_SAMPLES, PAPER_MIN_INPUT_SAMPLES

LABELS = ["peep", "phee", "trill"]
TINY_HUBERT = {
    "model_type": "hubert",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": [32, 32, 32],
    "conv_kernel": [10, 3, 3],
    "conv_stride": [5, 2, 2],
    "conv_bias": False,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "feat_extract_norm": "group",
    "layerdrop": 0.0,
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_model(**overrides):
    from hf_bio.configuration_bio import BioClassifierConfig
    from hf_bio.modeling_bio import BioClassifierModel

    torch.manual_seed(0)
    overrides.setdefault("backbone_config", dict(TINY_HUBERT))
    config = BioClassifierConfig(id2label=dict(enumerate(LABELS)), **overrides)
    return BioClassifierModel(config).eval()


def make_clips(n: int, seed: int = 0) -> list[np.ndarray]:
    """IMV-like lengths (lognormal around 127 ms) plus a few long ones, so buckets and repeat-padding both occur."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(2032), 0.7, n), 400, 24000).astype(int)
    lengths[:2] = [9000, 21000]
    return [(0.5 * rng.standard_normal(k)).astype(np.float32) for k in lengths]


def make_dataset(n: int = 22, seed: int = 0, rate: int = 16000, labels: list[str] = LABELS) -> Dataset:
    clips = make_clips(n, seed)
    features = Features({"audio": Audio(sampling_rate=rate), "label": ClassLabel(names=labels)})
    return Dataset.from_dict(
        {"audio": [{"array": c, "sampling_rate": rate} for c in clips], "label": [i % len(labels) for i in range(n)]},
        features=features,
    )




@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def dataset():
    return make_dataset()


def extract(dataset, model, cache_dir, **kwargs):
    kwargs.setdefault("shard_size", 6)
    return F.extract_features(
        dataset, model, cache_dir, split="train", backbone_id="tiny", revision=None, progress=False, **kwargs
    )


def test_bucketed_batches_equal_one_clip_at_a_time(model):
    clips = make_clips(16, seed=3)
    lengths = F._effective_lengths(np.array([len(c) for c in clips]), model).tolist()
    budget = 16000 * 4
    buckets = F.length_buckets(lengths, budget)
    assert max(len(b) for b in buckets) > 4  # short clips really share batches
    assert sorted(i for b in buckets for i in b) == list(range(16))
    batched = F.pooled_features(model, clips, budget)
    alone = torch.cat([F.pooled_features(model, [c], 1) for c in clips])
    assert batched.shape == (16, model.num_hidden_states, model.pooled_dim)
    assert (batched - alone).abs().max().item() <= 1e-4


def test_length_buckets_respect_budget():
    lengths = [5000, 100, 7000, 5000, 30000, 5000]
    buckets = F.length_buckets(lengths, 15000)
    assert buckets == [[1, 0, 3], [5, 2], [4]]  # sorted, stable, and the 30000 clip alone
    for b in buckets[:-1]:
        assert max(lengths[i] for i in b) * len(b) <= 15000


def test_extract_caches_in_dataset_order_and_reloads_without_the_backbone(dataset, model, tmp_path, monkeypatch):
    result = extract(dataset, model, tmp_path)
    assert result.features.shape == (22, 3, 64)
    assert result.labels.tolist() == [i % 3 for i in range(22)]
    assert result.label_names == LABELS
    key = F.cache_key(dataset, model, split="train", backbone_id="tiny", revision=None)
    entry = tmp_path / key
    assert (entry / "features" / "meta.json").is_file() and not (entry / "shards").exists()
    assert json.loads((entry / "key.json").read_text())["key"] == key
    assert result.meta["cache_key"] == key and result.meta["split"] == "train"
    assert result.meta["extraction"]["min_input_samples"] == DEFAULT_MIN_INPUT_SAMPLES

    # Row order: features of row 7 are those of its own audio, decoded as the dataset stores it.
    row = np.asarray(dataset[7]["audio"]["array"], dtype=np.float32)
    assert torch.allclose(result.features[7], F.pooled_features(model, [row], 1)[0], atol=1e-4)

    def fail(*args, **kwargs):
        raise AssertionError("the backbone ran although the cache is finished")

    monkeypatch.setattr(model, "pooled_hidden_states", fail)
    again = extract(dataset, model, tmp_path)
    assert torch.equal(again.features, result.features)


class Interrupt(Exception):
    pass


def test_killed_extraction_resumes_to_an_identical_result(dataset, model, tmp_path):
    straight = extract(dataset, model, tmp_path / "straight")

    def stop_after_two(index: int) -> None:
        if index == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        extract(dataset, model, tmp_path / "resumed", on_shard_done=stop_after_two)
    entry = next((tmp_path / "resumed").iterdir())
    assert sorted(p.name for p in (entry / "shards").iterdir()) == ["shard-00000.safetensors", "shard-00001.safetensors"]
    assert not (entry / "features").exists()

    computed = []
    resumed = extract(dataset, model, tmp_path / "resumed", on_shard_done=computed.append)
    assert computed == [2, 3]  # the finished shards were not recomputed
    assert torch.equal(resumed.features, straight.features)
    assert torch.equal(resumed.labels, straight.labels)


def test_resume_keeps_the_first_shard_layout(dataset, model, tmp_path):
    with pytest.raises(Interrupt):
        extract(dataset, model, tmp_path, on_shard_done=lambda i: (_ for _ in ()).throw(Interrupt()))
    computed = []
    extract(dataset, model, tmp_path, shard_size=100, on_shard_done=computed.append)
    assert computed == [1, 2, 3]  # still 6 rows a shard, as the interrupted run began


class FakeAccelerator:
    """Two processes, run one after the other: process 1 stops at its final barrier."""

    def __init__(self, index: int, stop_at_barrier: int | None = None):
        self.process_index, self.num_processes = index, 2
        self.is_main_process = index == 0
        self.barriers, self.stop_at_barrier = 0, stop_at_barrier

    def wait_for_everyone(self) -> None:
        self.barriers += 1
        if self.barriers == self.stop_at_barrier:
            raise Interrupt


def test_each_process_takes_its_own_shards_and_the_main_one_assembles(dataset, model, tmp_path):
    straight = extract(dataset, model, tmp_path / "one")
    # The main process writes key.json first (barrier 1), so process 1 runs after it.
    main = FakeAccelerator(0, stop_at_barrier=1)
    with pytest.raises(Interrupt):
        extract(dataset, model, tmp_path / "two", accelerator=main)
    other = []
    with pytest.raises(Interrupt):
        extract(dataset, model, tmp_path / "two", accelerator=FakeAccelerator(1, stop_at_barrier=2),
                on_shard_done=other.append)
    assert other == [1, 3]
    mine = []
    result = extract(dataset, model, tmp_path / "two", accelerator=FakeAccelerator(0), on_shard_done=mine.append)
    assert mine == [0, 2]
    assert torch.equal(result.features, straight.features)


def test_cache_key_changes_with_every_input_that_changes_the_numbers(dataset, model):
    def key(ds=dataset, m=model, split="train", backbone_id="tiny", revision=None):
        return F.cache_key(ds, m, split=split, backbone_id=backbone_id, revision=revision)

    base = key()
    assert key() == base
    assert key(m=make_model(head_hidden_sizes=[8], layer_selection=1)) == base  # head and layer: not extraction
    changed_rows = dataset.map(lambda row, i: {"label": (row["label"] + (i == 0)) % 3}, with_indices=True)
    others = [
        key(ds=changed_rows),
        key(ds=dataset.select(range(10))),
        key(split="test"),
        key(backbone_id="other"),
        key(revision="abc123"),
        key(m=make_model(max_window_seconds=1.0)),
        key(m=make_model(min_input_samples=PAPER_MIN_INPUT_SAMPLES)),
        key(m=make_model(pooling="mean")),
        key(m=make_model(peak_normalize=False)),
        key(m=make_model(backbone_config={**TINY_HUBERT, "num_hidden_layers": 1})),
    ]
    assert base not in others and len(set(others)) == len(others)


def test_changed_dataset_is_extracted_again(dataset, model, tmp_path):
    first = extract(dataset, model, tmp_path)
    changed = make_dataset(seed=1)
    second = extract(changed, model, tmp_path)
    assert len(list(tmp_path.iterdir())) == 2
    assert not torch.equal(first.features, second.features)


def test_a_cache_from_another_key_is_refused(dataset, model, tmp_path):
    extract(dataset, model, tmp_path)
    other = make_dataset(seed=1)
    entry = tmp_path / F.cache_key(dataset, model, split="train", backbone_id="tiny", revision=None)
    wrong = tmp_path / F.cache_key(other, model, split="train", backbone_id="tiny", revision=None)
    entry.rename(wrong)
    with pytest.raises(ValueError, match="written for key"):
        extract(other, model, tmp_path)


def test_bad_input_gets_a_clear_error(dataset, model, tmp_path, monkeypatch):
    no_audio = Dataset.from_dict({"x": [1.0], "label": [0]},
                                 features=Features({"x": Value("float32"), "label": ClassLabel(names=LABELS)}))
    with pytest.raises(ValueError, match="no 'audio' column"):
        extract(no_audio, model, tmp_path)
    with pytest.raises(ValueError, match="8000 Hz.*16000 Hz"):
        extract(dataset.cast_column("audio", Audio(sampling_rate=8000)), model, tmp_path)
    with pytest.raises(ValueError, match="not decoded"):
        extract(dataset.cast_column("audio", Audio(sampling_rate=16000, decode=False)), model, tmp_path)
    with pytest.raises(ValueError, match="empty"):
        extract(dataset.select([]), model, tmp_path)
    with pytest.raises(ValueError, match="ClassLabel"):
        extract(dataset.cast_column("label", Value("int64")), model, tmp_path)

    real = model.pooled_hidden_states

    def nan_for_the_longest(values, attention_mask=None):
        out = real(values, attention_mask=attention_mask)
        out[0 if attention_mask is None else attention_mask.sum(-1).argmax()] = float("nan")
        return out

    monkeypatch.setattr(model, "pooled_hidden_states", nan_for_the_longest)
    with pytest.raises(ValueError, match="NaN or infinite features"):
        extract(dataset, model, tmp_path)


def test_splits_must_share_a_label_set(model, tmp_path):
    splits = DatasetDict(train=make_dataset(6), validation=make_dataset(6, seed=1),
                         test=make_dataset(6, seed=2, labels=["peep", "phee", "twitter"]))
    with pytest.raises(ValueError, match="label sets differ"):
        P.extract_splits(splits, model, tmp_path, backbone_id="tiny", revision=None, progress=False)
    assert not any(tmp_path.iterdir())  # checked before any extraction
    splits["test"] = make_dataset(6, seed=2)
    out = P.extract_splits(splits, model, tmp_path, backbone_id="tiny", revision=None, progress=False)
    assert {s: len(fs) for s, fs in out.items()} == {"train": 6, "validation": 6, "test": 6}
    # One dataset fingerprint for all splits, so the training code can check they belong together.
    assert len({fs.meta["dataset"]["fingerprint"] for fs in out.values()}) == 1
    assert len({json.dumps(fs.meta["extraction"], sort_keys=True) for fs in out.values()}) == 1
