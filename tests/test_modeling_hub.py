"""BioClassifierModel as a transformers citizen: save/load, Auto classes, pipeline, remote code, from_backbone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    HubertConfig,
    HubertModel,
    pipeline,
)

from hf_bio.backbones import BackboneLoadError, load_backbone
from hf_bio.modeling_bio import BioClassifierModel, save_pretrained_with_extractor
from tests.test_modeling import LABELS, tiny_backbone_config, tiny_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[BioClassifierModel, Path]:
    """A tiny classifier with non-trivial head and statistics, saved with its feature extractor."""
    model = tiny_model(layer_selection=[1, 2], min_input_samples=5000)
    with torch.no_grad():
        model.feature_mean.normal_()
        model.feature_std.uniform_(0.5, 2.0)
    folder = save_pretrained_with_extractor(model, tmp_path_factory.mktemp("model") / "bio")
    return model, folder


def test_saved_folder_is_complete(saved: tuple[BioClassifierModel, Path]) -> None:
    _, folder = saved
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= names
    assert {"configuration_bio.py", "modeling_bio.py", "handcrafted.py"} <= names  # remote code travels
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "hf_bio"
    assert config["auto_map"]["AutoModelForAudioClassification"] == "modeling_bio.BioClassifierModel"
    assert config["id2label"] == {"0": "bark", "1": "growl", "2": "whine"}
    extractor = json.loads((folder / "preprocessor_config.json").read_text())
    assert extractor["sampling_rate"] == 16000 and extractor["do_normalize"] is False
    assert extractor["return_attention_mask"] is True
    assert not list(folder.parent.glob(".bio*"))  # no staging folder left behind


def test_save_load_round_trip_is_exact(saved: tuple[BioClassifierModel, Path]) -> None:
    model, folder = saved
    stored = load_file(folder / "model.safetensors")
    for key, value in model.state_dict().items():
        assert torch.equal(stored[key], value), key
    loaded = AutoModelForAudioClassification.from_pretrained(folder)
    assert isinstance(loaded, BioClassifierModel) and not loaded.backbone.training
    assert loaded.config.id2label == LABELS and loaded.config.label2id == {"bark": 0, "growl": 1, "whine": 2}
    assert loaded.config.layer_selection == [1, 2] and isinstance(AutoConfig.from_pretrained(folder), type(model.config))
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    audio = torch.randn(2, 4000)
    assert torch.equal(loaded(audio).logits, model(audio).logits)


def test_pipeline_returns_label_names(saved: tuple[BioClassifierModel, Path]) -> None:
    model, folder = saved
    classifier = pipeline("audio-classification", model=str(folder))
    audio = np.random.default_rng(0).standard_normal(6000).astype(np.float32)
    predictions = classifier(audio, top_k=3)
    assert {p["label"] for p in predictions} == set(LABELS.values())
    expected = torch.softmax(model(torch.from_numpy(audio)[None]).logits[0], -1)
    best = max(predictions, key=lambda p: p["score"])
    assert best["label"] == LABELS[int(expected.argmax())]
    assert abs(best["score"] - float(expected.max().detach())) < 1e-5


def test_feature_extractor_rejects_a_wrong_sampling_rate(saved: tuple[BioClassifierModel, Path]) -> None:
    extractor = AutoFeatureExtractor.from_pretrained(saved[1])
    with pytest.raises(ValueError, match="16000"):
        extractor(np.zeros(4410, dtype=np.float32), sampling_rate=44100)


REMOTE_SCRIPT = """
import sys

class BlockHfBio:  # hf_bio is installed in this venv: make sure it cannot be imported
    def find_spec(self, name, path=None, target=None):
        if name == "hf_bio" or name.startswith("hf_bio."):
            raise ImportError("hf_bio is blocked in this test")

sys.meta_path.insert(0, BlockHfBio())
import torch
from transformers import AutoModelForAudioClassification

model = AutoModelForAudioClassification.from_pretrained(sys.argv[1], trust_remote_code=True)
assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
assert not any(name.startswith("hf_bio") for name in sys.modules)
audio = torch.load(sys.argv[2])
torch.save(model(audio).logits, sys.argv[3])
"""


@pytest.mark.slow
def test_loads_with_trust_remote_code_without_hf_bio(saved: tuple[BioClassifierModel, Path], tmp_path: Path) -> None:
    model, folder = saved
    copy = tmp_path / "pushed"
    shutil.copytree(folder, copy)
    audio = torch.randn(2, 4000)
    torch.save(audio, tmp_path / "audio.pt")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_MODULES_CACHE"] = str(tmp_path / "modules")
    result = subprocess.run(
        [sys.executable, "-I", "-c", REMOTE_SCRIPT, str(copy), str(tmp_path / "audio.pt"), str(tmp_path / "out.pt")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.equal(torch.load(tmp_path / "out.pt"), model(audio).logits)


def test_from_backbone_loads_weights_from_a_local_folder(tmp_path: Path) -> None:
    torch.manual_seed(3)
    backbone = HubertModel(HubertConfig(**{k: v for k, v in tiny_backbone_config().items() if k != "model_type"}))
    backbone.save_pretrained(tmp_path / "tiny-hubert")
    model = BioClassifierModel.from_backbone(str(tmp_path / "tiny-hubert"), id2label=["a", "b"], layer=2)
    assert model.config.backbone_name == "tiny-hubert" and model.config.id2label == {0: "a", 1: "b"}
    assert model.config.layer_selection == 2 and "_name_or_path" not in model.config.backbone_config
    own = model.backbone.state_dict()
    for key, value in backbone.state_dict().items():
        assert torch.equal(own[key], value), key
    assert not any(p.requires_grad for p in model.backbone.parameters()) and not model.backbone.training


def test_offline_hub_id_fails_fast_with_instructions() -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(BackboneLoadError, match="hf download facebook/hubert-base-ls960") as error:
        BioClassifierModel.from_backbone("hubert", id2label=["a", "b"])
    assert "HF_HUB_OFFLINE" in str(error.value) and "folder" in str(error.value)
    with pytest.raises(ValueError, match="convert-aves"):
        load_backbone("aves-bio")
