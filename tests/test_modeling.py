"""BioClassifierModel: shapes, loss, frozen backbone, layer selection, padding invariance, windowing, bad input."""

from __future__ import annotations

import contextlib

import pytest
import torch
from transformers import HubertConfig, HubertModel, Wav2Vec2Config, WavLMConfig

from hf_bio.configuration_bio import BioClassifierConfig
from hf_bio.modeling_bio import BioClassifierModel

FAMILIES = {"hubert": HubertConfig, "wav2vec2": Wav2Vec2Config, "wavlm": WavLMConfig}
LABELS = {0: "bark", 1: "growl", 2: "whine"}


def tiny_backbone_config(family: str = "hubert", norm: str = "group") -> dict:
    """A 2-layer, 32-wide backbone of `family`; `norm="layer"` is the stable-layer-norm variant."""
    config = FAMILIES[family](
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32, 32), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        feat_extract_norm=norm, do_stable_layer_norm=norm == "layer",
    )
    return config.to_dict()


def tiny_model(family: str = "hubert", norm: str = "group", seed: int = 0, **overrides) -> BioClassifierModel:
    torch.manual_seed(seed)
    backbone = None if family == "handcrafted" else tiny_backbone_config(family, norm)
    overrides.setdefault("min_input_samples", 0 if family != "handcrafted" else 400)
    config = BioClassifierConfig(backbone_config=backbone, id2label=LABELS, head_hidden_sizes=[16, 8], **overrides)
    return BioClassifierModel(config).eval()


def pad(clips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    values = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
    lengths = torch.tensor([len(c) for c in clips])
    return values, (torch.arange(values.shape[1])[None] < lengths[:, None]).long()


def clips(seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3000, generator=g), 0.1 * torch.randn(16000, generator=g), torch.randn(800, generator=g)]


@pytest.fixture(scope="module")
def hubert() -> BioClassifierModel:
    return tiny_model("hubert")


def test_shapes_and_loss_only_with_labels(hubert: BioClassifierModel) -> None:
    values, mask = pad(clips())
    assert hubert.num_hidden_states == 3 and hubert.pooled_dim == 64
    assert hubert.pooled_hidden_states(values, mask).shape == (3, 3, 64)
    out = hubert(values, attention_mask=mask)
    assert out.logits.shape == (3, 3) and out.loss is None
    out = hubert(values, attention_mask=mask, labels=torch.tensor([0, 2, 1]))
    expected = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 2, 1]))
    assert out.loss.ndim == 0 and torch.allclose(out.loss, expected)
    assert tiny_model(pooling="mean").pooled_hidden_states(values, mask).shape == (3, 3, 32)


def test_state_dict_keys_follow_the_contract(hubert: BioClassifierModel) -> None:
    keys = set(hubert.state_dict())
    for key in ("feature_mean", "feature_std", "head.blocks.0.0.weight", "head.blocks.0.1.weight",
                "head.blocks.1.0.bias", "head.classifier.weight", "head.classifier.bias",
                "backbone.feature_extractor.conv_layers.0.layer_norm.weight"):
        assert key in keys, key
    assert hubert.feature_mean.shape == hubert.feature_std.shape == (3, 64)
    assert len(hubert.head.blocks) == 2 and hubert.head.classifier.out_features == 3


def test_standardisation_and_layer_selection() -> None:
    values, mask = pad(clips()[:2])
    for selection, width in ((2, 64), ([0, 2], 128), ("weighted", 64)):
        model = tiny_model(layer_selection=selection)
        assert model.head.blocks[0][0].in_features == width
        model.feature_mean.normal_()
        model.feature_std.uniform_(0.5, 2.0)
        pooled = model.pooled_hidden_states(values, mask)
        z = (pooled - model.feature_mean) / model.feature_std
        if selection == "weighted":
            selected = z.mean(dim=1)  # zero-initialised weights: a plain average
        elif isinstance(selection, list):
            selected = torch.cat([z[:, 0], z[:, 2]], dim=-1)
        else:
            selected = z[:, 2]
        assert torch.allclose(model(values, mask).logits, model.head(selected), atol=1e-6)
    with pytest.raises(ValueError, match="layer_selection"):
        tiny_model(layer_selection=3)
    with pytest.raises(ValueError, match="pooling"):
        tiny_model(pooling="max")


def test_gradients_reach_the_head_only_and_backbone_stays_in_eval() -> None:
    model = tiny_model(layer_selection="weighted")
    model.train()
    assert model.training and model.head.training and not model.backbone.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    values, mask = pad(clips()[:2])
    model(values, mask, labels=torch.tensor([0, 1])).loss.backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.head.classifier.weight.grad.abs().sum() > 0
    assert model.head.blocks[0][0].weight.grad.abs().sum() > 0
    assert model.layer_weights.grad is not None
    model.eval()
    assert not model.backbone.training


@contextlib.contextmanager
def unmasked_group_norm(model: BioClassifierModel):
    """Run the backbone the way plain transformers does (first group norm over the padded time axis)."""
    original = model._masked_first_norm
    model._masked_first_norm = lambda lengths: contextlib.nullcontext()
    try:
        yield
    finally:
        model._masked_first_norm = original


@pytest.mark.parametrize("family", ["hubert", "wav2vec2", "wavlm"])
@pytest.mark.parametrize("norm", ["group", "layer"])
def test_padding_does_not_change_pooled_features(family: str, norm: str) -> None:
    model = tiny_model(family, norm)
    batch = clips()
    alone = torch.cat([model.pooled_hidden_states(c[None]) for c in batch])
    padded = model.pooled_hidden_states(*pad(batch))
    assert (alone - padded).abs().max() <= 1e-4
    if norm == "group":  # the check can fail: without the masked norm, padding shifts the features
        with unmasked_group_norm(model):
            corrupted = model.pooled_hidden_states(*pad(batch))
        assert (alone - corrupted).abs().max() > 1e-2


def test_handcrafted_baseline_is_padding_invariant_and_trains() -> None:
    model = BioClassifierModel.from_backbone("handcrafted", id2label=list(LABELS.values()), min_input_samples=400)
    assert model.num_hidden_states == 1 and model.pooled_dim == 2 * (64 + 20)
    batch = clips()
    alone = torch.cat([model.pooled_hidden_states(c[None]) for c in batch])
    padded = model.pooled_hidden_states(*pad(batch))
    assert torch.isfinite(padded).all()
    assert ((alone - padded).abs() / alone.abs().clamp_min(1.0)).max() <= 1e-4
    model.train()
    model(*pad(batch), labels=torch.tensor([0, 1, 2])).loss.backward()
    assert model.head.classifier.weight.grad.abs().sum() > 0


def reference_pooling(backbone: HubertModel, windows: list[torch.Tensor]) -> torch.Tensor:
    """Plain transformers, one window at a time, frames of all windows concatenated, then mean and std."""
    with torch.no_grad():
        per_window = [torch.stack(backbone(w[None], output_hidden_states=True).hidden_states, 1)[0] for w in windows]
    frames = torch.cat(per_window, dim=1)  # [layers, frames, hidden]
    return torch.cat([frames.mean(1), frames.std(1, unbiased=False)], dim=-1)


def test_windowed_pooling_matches_reference() -> None:
    model = tiny_model(max_window_seconds=0.25)  # windows of at most 4,000 samples
    clip = torch.randn(10000)  # three windows of 3,334 / 3,334 / 3,332 samples
    windows = model._windows(clip)
    assert [len(w) for w in windows] == [3334, 3334, 3332]
    reference = reference_pooling(model.backbone, windows)
    assert torch.allclose(model.pooled_hidden_states(clip[None])[0], reference, atol=1e-4)
    # A clip that fits in one window: windowing changes nothing, and batching with the long clip neither.
    short = torch.randn(3500)
    unwindowed = tiny_model(max_window_seconds=60.0)
    single = reference_pooling(unwindowed.backbone, [short])
    assert torch.allclose(unwindowed.pooled_hidden_states(short[None])[0], single, atol=1e-4)
    assert torch.allclose(model.pooled_hidden_states(short[None])[0], single, atol=1e-4)
    batched = model.pooled_hidden_states(*pad([clip, short]))
    assert torch.allclose(batched[0], reference, atol=1e-4) and torch.allclose(batched[1], single, atol=1e-4)


def test_peak_normalisation_and_repeat_padding() -> None:
    model = tiny_model(min_input_samples=5000)
    clip = torch.randn(1200)
    pooled = model.pooled_hidden_states(clip[None])
    assert torch.allclose(model.pooled_hidden_states(3.7 * clip[None]), pooled, atol=1e-5)
    tiled = (clip / clip.abs().max()).repeat(5)[:5000]
    raw = tiny_model(min_input_samples=0, peak_normalize=False)
    assert torch.allclose(raw.pooled_hidden_states(tiled[None]), pooled, atol=1e-5)
    assert torch.isfinite(model(torch.zeros(1, 2000)).logits).all()  # silence: no NaN
    # Normalisation happens per window on copies: the caller's audio is left as it was.
    long_clip = 5.0 * torch.randn(1, 9000)
    before = long_clip.clone()
    tiny_model(max_window_seconds=0.25).pooled_hidden_states(long_clip)
    assert torch.equal(long_clip, before)


def test_bad_input_gets_a_clear_error(hubert: BioClassifierModel) -> None:
    values, mask = pad(clips()[:2])
    with pytest.raises(ValueError, match="NaN or infinite"):
        hubert(torch.tensor([[0.1, float("nan"), 0.2] * 100]))
    empty = mask.clone()
    empty[1] = 0
    with pytest.raises(ValueError, match=r"empty audio: batch items \[1\]"):
        hubert(values, attention_mask=empty)
    with pytest.raises(ValueError, match="44100 Hz but this model expects 16000 Hz"):
        hubert(values, mask, sampling_rate=44100)
    with pytest.raises(ValueError, match="right padding"):
        hubert(values, attention_mask=mask.flip(-1))
    with pytest.raises(ValueError, match=r"batch items \[0\] are too short.*min_input_samples"):
        hubert(torch.randn(1, 30))  # shorter than the tiny backbone's 40-sample receptive field
    with pytest.raises(ValueError, match="backbone_config"):
        BioClassifierConfig(backbone_config={"model_type": "bert"})


def test_handcrafted_features_hear_pitch() -> None:
    """A reference point must mean something: a low and a high tone peak in low and high mel bands."""
    model = BioClassifierModel.from_backbone("handcrafted", id2label=["low", "high"])
    t = torch.arange(8000) / 16000
    tones = torch.stack([torch.sin(2 * torch.pi * 500 * t), torch.sin(2 * torch.pi * 4000 * t)])
    mean_log_mel = model.pooled_hidden_states(tones)[:, 0, :64]
    low_band, high_band = mean_log_mel.argmax(dim=-1).tolist()
    assert low_band < 20 < 40 < high_band
