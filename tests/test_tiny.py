"""Tiny RANDOM backbones: seeded, idempotent, atomic folders that load with from_pretrained; registry entries."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoFeatureExtractor, AutoModel

from hf_bio.backbones import (
    BACKBONES,
    PAPER_BACKBONES,
    offline_backbone_names,
    paper_backbone_names,
    resolve_backbone,
)
from hf_bio.cli import main
from hf_bio.tiny import FAMILIES, MARKER, base_random_backbone, default_root, tiny_backbone_dir


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_backbone_loads_and_runs_deterministically(tmp_path, family):
    folder = tiny_backbone_dir(family, root=tmp_path)
    assert folder == tmp_path / f"tiny-random-{family}"
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", MARKER} <= {
        p.name for p in folder.iterdir()
    }
    assert "RANDOM" in (folder / "README.md").read_text()
    model = AutoModel.from_pretrained(folder).eval()
    config = model.config
    assert config.model_type == family
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (32, 2, 2)
    assert (tuple(config.conv_dim), tuple(config.conv_kernel), tuple(config.conv_stride)) == (
        (32, 32, 32),
        (10, 3, 3),
        (5, 2, 2),
    )
    assert (config.feat_extract_norm, config.layerdrop, config.mask_time_prob) == ("group", 0.0, 0.0)
    extractor = AutoFeatureExtractor.from_pretrained(folder)
    assert (extractor.sampling_rate, extractor.do_normalize, extractor.return_attention_mask) == (16000, False, True)
    audio = torch.randn(1, 8000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first = model(audio, output_hidden_states=True).hidden_states
        second = model(audio, output_hidden_states=True).hidden_states
    assert len(first) == 3 and first[-1].shape == (1, 8000 // 20 - 1, 32)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_tiny_backbone_is_seeded_idempotent_and_rebuilds_stale_folders(tmp_path):
    a = tiny_backbone_dir("hubert", root=tmp_path / "a")
    b = tiny_backbone_dir("hubert", root=tmp_path / "b")
    weights_a, weights_b = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)
    assert not torch.equal(weights_a["encoder.layers.0.attention.q_proj.weight"], weights_a["encoder.layers.0.attention.k_proj.weight"])

    stamp = (a / "model.safetensors").stat().st_mtime_ns
    assert tiny_backbone_dir("hubert", root=tmp_path / "a") == a
    assert (a / "model.safetensors").stat().st_mtime_ns == stamp  # second call: nothing rewritten
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["tiny-random-hubert"]  # no temp folders left

    marker = json.loads((a / MARKER).read_text())
    (a / MARKER).write_text(json.dumps({**marker, "seed": 99}))  # a folder from another recipe
    (a / "stray.txt").write_text("left by an older version")
    assert tiny_backbone_dir("hubert", root=tmp_path / "a") == a
    assert json.loads((a / MARKER).read_text()) == marker and not (a / "stray.txt").exists()
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["tiny-random-hubert"]


def test_tiny_backbone_does_not_disturb_the_callers_random_stream(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny_backbone_dir("wavlm", root=tmp_path)
    assert torch.equal(torch.rand(3), expected)


def test_default_root_and_unknown_family(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_BIO_CACHE", str(tmp_path / "cache"))
    assert default_root() == tmp_path / "cache" / "tiny"
    monkeypatch.delenv("HF_BIO_CACHE")
    assert default_root().parts[-3:] == (".cache", "hf_bio", "tiny")
    with pytest.raises(ValueError, match="family 'bert' has no random backbone; use one of hubert, wav2vec2, wavlm"):
        tiny_backbone_dir("bert", root=tmp_path)
    with pytest.raises(ValueError, match="family 'bert'"):
        base_random_backbone("bert")


def test_registry_resolves_offline_names_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_BIO_CACHE", str(tmp_path))
    assert paper_backbone_names() == [s.name for s in PAPER_BACKBONES] and len(PAPER_BACKBONES) == 7
    assert offline_backbone_names() == ["tiny-random-hubert", "tiny-random-wav2vec2", "tiny-random-wavlm", "handcrafted"]
    for family in FAMILIES:
        assert BACKBONES[f"tiny-random-{family}"].hub_id is None  # nothing is built at import
        spec = resolve_backbone(f"tiny-random-{family}")
        assert spec.hub_id == str(tmp_path / "tiny" / f"tiny-random-{family}")
        assert (spec.family, spec.training) == (family, "random")
        assert AutoModel.from_pretrained(spec.hub_id).config.model_type == family
        assert resolve_backbone(spec.hub_id) == spec  # the folder keeps its "random" label
    handcrafted = resolve_backbone("handcrafted")
    assert (handcrafted.hub_id, handcrafted.family, handcrafted.training) == (None, "handcrafted", "baseline")


def test_cli_lists_paper_and_offline_backbones_in_groups(capsys):
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    paper, offline = out.index("The paper's seven"), out.index("Offline: tiny RANDOM")
    assert paper < offline
    for name in paper_backbone_names():
        assert paper < out.index(name) < offline
    for name in offline_backbone_names():
        assert out.index(name) > offline


@pytest.mark.slow
def test_base_random_backbone_has_the_base_architecture():
    model = base_random_backbone("hubert")
    assert not model.training
    assert model.config.hidden_size == 768 and model.config.num_hidden_layers == 12
    assert model.config.feat_extract_norm == "group" and tuple(model.config.conv_dim) == (512,) * 7
    assert 94e6 < sum(p.numel() for p in model.parameters()) < 95e6
