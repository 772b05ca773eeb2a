"""AVES converter: torchaudio `wav2vec2_model` checkpoints -> transformers `HubertModel`, checked numerically."""

from __future__ import annotations

import argparse
import json
import time

import pytest
import torch
import torchaudio
from transformers import HubertModel

from hf_bio.aves import convert_aves, load_torchaudio_state_dict, read_torchaudio_config
from hf_bio.cli import main

# aves-base-bio.torchaudio.model_config.json as AVES publishes it (no aux_num_out: its loaders pass
# `aux_num_out=None` themselves).
AVES_BASE_CONFIG = {
    "extractor_mode": "group_norm",
    "extractor_conv_layer_config": [[512, 10, 5]] + [[512, 3, 2]] * 4 + [[512, 2, 2]] * 2,
    "extractor_conv_bias": False,
    "encoder_embed_dim": 768,
    "encoder_projection_dropout": 0.1,
    "encoder_pos_conv_kernel": 128,
    "encoder_pos_conv_groups": 16,
    "encoder_num_layers": 12,
    "encoder_num_heads": 12,
    "encoder_attention_dropout": 0.1,
    "encoder_ff_interm_features": 3072,
    "encoder_ff_interm_dropout": 0.0,
    "encoder_dropout": 0.1,
    "encoder_layer_norm_first": False,
    "encoder_layer_drop": 0.05,
}

TINY_CONFIG = {
    **AVES_BASE_CONFIG,
    "extractor_conv_layer_config": [[32, 10, 5], [32, 3, 2], [32, 3, 2]],
    "encoder_embed_dim": 32,
    "encoder_pos_conv_kernel": 16,
    "encoder_pos_conv_groups": 2,
    "encoder_num_layers": 2,
    "encoder_num_heads": 2,
    "encoder_ff_interm_features": 64,
    "aux_num_out": None,
}

# BirdAVES-large style: layer-norm feature encoder with conv bias, pre-norm transformer.
TINY_PRENORM_CONFIG = {
    **TINY_CONFIG,
    "extractor_mode": "layer_norm",
    "extractor_conv_bias": True,
    "encoder_layer_norm_first": True,
    "encoder_num_layers": 3,
}


def _torchaudio_model(config: dict, seed: int = 0) -> torch.nn.Module:
    """A torchaudio wav2vec2_model with random weights, its norms and biases randomised too.

    Default init leaves every LayerNorm at (1, 0); randomising them makes a swapped norm mapping visible.
    """
    torch.manual_seed(seed)
    model = torchaudio.models.wav2vec2_model(**{"aux_num_out": None, **config}).eval()
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim == 1:
                param.add_(0.2 * torch.randn_like(param))
    return model


def _write(tmp_path, model: torch.nn.Module, config: dict, state_dict: dict | None = None):
    checkpoint, config_json = tmp_path / "model.torchaudio.pt", tmp_path / "model.torchaudio.model_config.json"
    torch.save(model.state_dict() if state_dict is None else state_dict, checkpoint)
    config_json.write_text(json.dumps(config))
    return checkpoint, config_json


def _layer_diffs(ta_model: torch.nn.Module, hf_dir, seconds: float) -> list[float]:
    """Max abs difference per transformer layer between torchaudio and the converted model.

    For pre-norm encoders the encoder's final LayerNorm is compared through `last_hidden_state`; whether
    `hidden_states[-1]` is taken before it (transformers 5) or after it (transformers 4) depends on the
    transformers version, so the last layer is compared with whichever of the two that version returns.
    """
    hf_model = HubertModel.from_pretrained(hf_dir).eval()
    audio = torch.randn(1, int(16000 * seconds), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ta_layers, _ = ta_model.extract_features(audio)
        output = hf_model(audio, output_hidden_states=True)
    hidden = output.hidden_states[1:]
    assert len(hidden) == len(ta_layers) == len(ta_model.encoder.transformer.layers)
    diffs = [float((a - b).abs().max()) for a, b in zip(ta_layers, hidden, strict=True)]
    if hf_model.config.do_stable_layer_norm:
        with torch.no_grad():
            normed = ta_model.encoder.transformer.layer_norm(ta_layers[-1])
        diffs.append(float((normed - output.last_hidden_state).abs().max()))
        diffs[-2] = min(diffs[-2], float((normed - hidden[-1]).abs().max()))
    else:
        diffs.append(float((ta_layers[-1] - output.last_hidden_state).abs().max()))
    return diffs


def test_tiny_conversion_matches_torchaudio_layer_by_layer(tmp_path):
    ta_model = _torchaudio_model(TINY_CONFIG)
    checkpoint, config_json = _write(tmp_path, ta_model, TINY_CONFIG)
    out = convert_aves(checkpoint, config_json, tmp_path / "converted")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["converted", checkpoint.name, config_json.name])
    diffs = _layer_diffs(ta_model, out, seconds=1.0)
    assert max(diffs) <= 1e-4, diffs
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "hubert" and config["architectures"] == ["HubertModel"]
    assert config["hf_bio_converted_from"]["checkpoint"] == checkpoint.name
    assert len(config["hf_bio_converted_from"]["checkpoint_sha256"]) == 64
    preprocessor = json.loads((out / "preprocessor_config.json").read_text())
    assert preprocessor["sampling_rate"] == 16000
    assert preprocessor["do_normalize"] is False and preprocessor["return_attention_mask"] is True


def test_prenorm_layernorm_variant_matches_torchaudio(tmp_path):
    ta_model = _torchaudio_model(TINY_PRENORM_CONFIG, seed=3)
    checkpoint, config_json = _write(tmp_path, ta_model, TINY_PRENORM_CONFIG)
    out = convert_aves(checkpoint, config_json, tmp_path / "converted")
    config = json.loads((out / "config.json").read_text())
    assert config["feat_extract_norm"] == "layer" and config["do_stable_layer_norm"] is True
    diffs = _layer_diffs(ta_model, out, seconds=0.5)
    assert max(diffs) <= 1e-4, diffs


@pytest.mark.slow
def test_aves_base_sized_conversion_matches_all_12_layers(tmp_path):
    started = time.perf_counter()
    ta_model = _torchaudio_model(AVES_BASE_CONFIG)
    checkpoint, config_json = _write(tmp_path, ta_model, AVES_BASE_CONFIG)
    out = convert_aves(checkpoint, config_json, tmp_path / "aves-bio")
    diffs = _layer_diffs(ta_model, out, seconds=1.0)
    print(f"AVES base: per-layer max abs diff {max(diffs):.2e}, {time.perf_counter() - started:.1f} s")
    assert len(diffs) == 12 + 1  # every layer, then last_hidden_state
    assert max(diffs) <= 1e-4, diffs


def test_weight_norm_stored_as_weight_g_and_weight_v_converts_identically(tmp_path):
    ta_model = _torchaudio_model(TINY_CONFIG)
    old_style = {}
    for key, tensor in ta_model.state_dict().items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        old_style[key.replace("parametrizations.weight.original1", "weight_v")] = tensor
    assert "encoder.transformer.pos_conv_embed.conv.weight_g" in old_style
    checkpoint, config_json = _write(tmp_path, ta_model, TINY_CONFIG, state_dict=old_style)
    out = convert_aves(checkpoint, config_json, tmp_path / "converted")
    assert max(_layer_diffs(ta_model, out, seconds=0.5)) <= 1e-4


def test_cli_converts_and_refuses_an_existing_folder_without_overwrite(tmp_path, capsys):
    ta_model = _torchaudio_model(TINY_CONFIG)
    checkpoint, config_json = _write(tmp_path, ta_model, TINY_CONFIG)
    out = tmp_path / "converted"
    assert main(["convert-aves", str(checkpoint), str(config_json), str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    assert main(["convert-aves", str(checkpoint), str(config_json), str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["convert-aves", str(checkpoint), str(config_json), str(out), "--overwrite"]) == 0
    assert max(_layer_diffs(ta_model, out, seconds=0.5)) <= 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["converted", checkpoint.name, config_json.name])


def test_fairseq_checkpoints_are_refused_with_the_file_to_download(tmp_path):
    path = tmp_path / "aves-base-bio.pt"
    torch.save({"cfg": {"model": {"_name": "hubert"}}, "model": {"encoder.layers.0.self_attn.k_proj.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(ValueError, match=r"fairseq checkpoint.*aves-base-bio\.torchaudio\.pt"):
        load_torchaudio_state_dict(path)
    # Real fairseq checkpoints pickle their settings as argparse/omegaconf objects, which weights_only refuses.
    torch.save({"args": argparse.Namespace(arch="hubert"), "model": {}}, path)
    with pytest.raises(ValueError, match=r"fairseq checkpoint.*aves-base-bio\.torchaudio\.model_config\.json"):
        load_torchaudio_state_dict(path)


def test_truncated_or_corrupt_checkpoints_are_refused(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(_torchaudio_model(TINY_CONFIG).state_dict(), good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"truncated\.pt: cannot read .*truncated or corrupt"):
        load_torchaudio_state_dict(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=r"garbage\.pt"):
        load_torchaudio_state_dict(garbage)
    with pytest.raises(ValueError, match=r"missing\.pt: no such checkpoint"):
        load_torchaudio_state_dict(tmp_path / "missing.pt")


def test_leftover_and_missing_tensors_are_named(tmp_path):
    ta_model = _torchaudio_model(TINY_CONFIG)
    state = dict(ta_model.state_dict())
    state["aux.weight"] = torch.zeros(4, 32)
    checkpoint, config_json = _write(tmp_path, ta_model, TINY_CONFIG, state_dict=state)
    with pytest.raises(ValueError, match=r"no place in HubertModel: \['aux.weight'\]"):
        convert_aves(checkpoint, config_json, tmp_path / "a")
    del state["aux.weight"], state["encoder.transformer.layers.1.final_layer_norm.bias"]
    checkpoint, config_json = _write(tmp_path, ta_model, TINY_CONFIG, state_dict=state)
    with pytest.raises(ValueError, match=r"lacks: \['encoder.layers.1.final_layer_norm.bias'\]"):
        convert_aves(checkpoint, config_json, tmp_path / "b")
    # A config that does not fit the checkpoint (more layers) is caught the same way.
    checkpoint, config_json = _write(tmp_path, ta_model, {**TINY_CONFIG, "encoder_num_layers": 3})
    with pytest.raises(ValueError, match=r"lacks: \['encoder.layers.2"):
        convert_aves(checkpoint, config_json, tmp_path / "c")
    checkpoint, config_json = _write(tmp_path, ta_model, {**TINY_CONFIG, "encoder_ff_interm_features": 48})
    with pytest.raises(ValueError, match=r"shapes differ: \['encoder.layers.0.feed_forward.intermediate_dense.bias: "):
        convert_aves(checkpoint, config_json, tmp_path / "d")
    assert not any((tmp_path / name).exists() for name in "abcd")
    # A state dict nested inside another dict is not what torchaudio publishes.
    checkpoint, _ = _write(tmp_path, ta_model, TINY_CONFIG, state_dict={"state_dict": state, "epoch": 3})
    with pytest.raises(ValueError, match=r"not tensors: \['epoch', 'state_dict'\]"):
        load_torchaudio_state_dict(checkpoint)


def test_bad_configs_are_refused(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**TINY_CONFIG, "aux_num_out": 29}))
    with pytest.raises(ValueError, match="aux_num_out=29"):
        read_torchaudio_config(path)
    path.write_text(json.dumps({k: v for k, v in TINY_CONFIG.items() if k != "encoder_num_heads"} | {"heads": 2}))
    with pytest.raises(ValueError, match=r"missing keys \['encoder_num_heads'\], unknown keys \['heads'\]"):
        read_torchaudio_config(path)
    path.write_text(json.dumps({**TINY_CONFIG, "extractor_mode": "batch_norm"}))
    with pytest.raises(ValueError, match="extractor_mode='batch_norm'"):
        read_torchaudio_config(path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON file"):
        read_torchaudio_config(path)
