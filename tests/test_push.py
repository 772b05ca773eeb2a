"""`hf-bio push-model` / `push-space`: dry runs write exactly the upload folder; the token never leaks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import SpaceCard, metadata_load

from hf_bio.cli import main
from hf_bio.space import SPACE_CONFIG_NAME, resolve_models
from tests.helpers_models import make_tiny_audio_classifier
from tests.test_model_card import LABELS, make_results

REPO_ROOT = Path(__file__).resolve().parent.parent
SPACE_DIR = REPO_ROOT / "spaces" / "hf-bio-demo"
SECRET = "hf_secretTOKENdoNotLeak0123456789abcdef"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_audio_classifier(tmp_path_factory.mktemp("tiny") / "model", LABELS)


@pytest.fixture
def run_dir(tmp_path: Path, tiny_model: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(make_results()))
    shutil.copytree(tiny_model, run / "model")
    return run


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_push_model_dry_run_writes_exactly_the_model_folder(run_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "dry"
    assert main(["push-model", str(run_dir), "someone/tiny-imv", "--dry-run", str(out)]) == 0
    assert files_under(out) == files_under(run_dir / "model") | {"README.md", "results.json"}
    assert (out / "results.json").read_bytes() == (run_dir / "results.json").read_bytes()
    for name in files_under(run_dir / "model"):
        assert (out / name).read_bytes() == (run_dir / "model" / name).read_bytes(), name
    meta = metadata_load(out / "README.md")
    assert meta["pipeline_tag"] == "audio-classification"
    assert meta["model-index"][0]["name"] == "tiny-imv"
    printed = capsys.readouterr().out
    assert "dry run, nothing uploaded" in printed and "README.md" in printed


def test_dry_run_model_loads_with_pipeline(run_dir: Path, tmp_path: Path) -> None:
    import numpy as np
    from transformers import pipeline

    out = tmp_path / "dry"
    assert main(["push-model", str(run_dir), "someone/tiny-imv", "--dry-run", str(out)]) == 0
    audio = {"raw": np.random.default_rng(0).standard_normal(8000).astype(np.float32), "sampling_rate": 16_000}
    for remote in (False, True):
        classifier = pipeline("audio-classification", model=str(out), trust_remote_code=remote)
        predictions = classifier(audio, top_k=len(LABELS))
        assert sorted(p["label"] for p in predictions) == sorted(LABELS)
        assert sum(p["score"] for p in predictions) == pytest.approx(1.0, abs=1e-4)


def test_push_model_refuses_a_run_without_model_or_with_missing_code(run_dir: Path, tmp_path: Path, capsys) -> None:
    config_path = run_dir / "model" / "config.json"
    (run_dir / "model" / "modeling_bio.py").unlink(missing_ok=True)  # an export that forgot its code
    config = json.loads(config_path.read_text())
    config["auto_map"] = {**config.get("auto_map", {}), "AutoModelForAudioClassification": "modeling_bio.BioClassifierModel"}
    config_path.write_text(json.dumps(config))
    assert main(["push-model", str(run_dir), "someone/x", "--dry-run", str(tmp_path / "dry")]) == 2
    assert "modeling_bio.py" in capsys.readouterr().err
    assert not (tmp_path / "dry").exists()

    (run_dir / "model" / "modeling_bio.py").write_text("# stands for the exported model code\n")
    assert main(["push-model", str(run_dir), "someone/x", "--dry-run", str(tmp_path / "dry")]) == 0
    assert (tmp_path / "dry" / "modeling_bio.py").is_file()

    empty = tmp_path / "empty-run"
    empty.mkdir()
    assert main(["push-model", str(empty), "someone/x", "--dry-run", str(tmp_path / "dry2")]) == 2
    assert "no exported model" in capsys.readouterr().err


def test_dry_run_replaces_only_an_earlier_dry_run(run_dir: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "dry"
    assert main(["push-model", str(run_dir), "someone/tiny-imv", "--dry-run", str(out)]) == 0
    assert main(["push-model", str(run_dir), "someone/tiny-imv", "--dry-run", str(out)]) == 0  # re-run: fine
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "README.md").write_text("# my own project\n")
    assert main(["push-model", str(run_dir), "someone/tiny-imv", "--dry-run", str(precious)]) == 2
    assert "not an earlier hf-bio dry run" in capsys.readouterr().err
    assert (precious / "README.md").read_text() == "# my own project\n"


def test_push_space_dry_run_ships_app_hf_bio_code_and_a_local_model(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "dry"
    assert main(["push-space", str(SPACE_DIR), "someone/demo", "--dry-run", str(out), "--model", str(tiny_model)]) == 0
    package = {f"hf_bio/{name}" for name in files_under(REPO_ROOT / "hf_bio") if "__pycache__" not in name}
    assert "hf_bio/model_card_template.md" in package and "hf_bio/space.py" in package  # code and package data
    shipped_model = {f"model/{name}" for name in files_under(tiny_model)}
    assert files_under(out) == files_under(SPACE_DIR) | package | shipped_model | {SPACE_CONFIG_NAME}
    assert SpaceCard.load(out / "README.md").data.to_dict()["sdk"] == "gradio"
    assert json.loads((out / SPACE_CONFIG_NAME).read_text()) == {"models": ["model"]}
    assert resolve_models(config_dir=out)[0] == str(out / "model")
    # The uploaded folder is self-contained: run from it, `hf_bio` is the copy beside app.py.
    found = subprocess.run(
        [sys.executable, "-c", "import hf_bio.space, hf_bio.audio; print(hf_bio.space.__file__)"],
        cwd=out, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert Path(found) == out / "hf_bio" / "space.py"


def test_push_space_with_a_hub_model_names_it_in_the_card(tmp_path: Path) -> None:
    out = tmp_path / "dry"
    assert main(["push-space", str(SPACE_DIR), "someone/demo", "--dry-run", str(out), "--model", "someone/tiny-imv"]) == 0
    assert "someone/tiny-imv" in SpaceCard.load(out / "README.md").data.to_dict()["models"]
    assert json.loads((out / SPACE_CONFIG_NAME).read_text()) == {"models": ["someone/tiny-imv"]}
    assert not (out / "model").exists()
    assert main(["push-space", str(SPACE_DIR), "someone/demo", "--dry-run", str(tmp_path / "d2"), "--model", "no such/thing!"]) == 2


def test_push_space_needs_a_default_model(tmp_path: Path, capsys) -> None:
    assert main(["push-space", str(SPACE_DIR), "someone/demo", "--dry-run", str(tmp_path / "dry")]) == 2
    assert "needs a default model" in capsys.readouterr().err
    own = tmp_path / "own-space"
    shutil.copytree(SPACE_DIR, own)
    (own / SPACE_CONFIG_NAME).write_text('{"models": ["someone/a", "someone/b"]}')
    assert main(["push-space", str(own), "someone/demo", "--dry-run", str(tmp_path / "dry")]) == 0
    assert resolve_models(config_dir=tmp_path / "dry")[:2] == ["someone/a", "someone/b"]


def test_token_is_never_printed_nor_written(run_dir: Path, tiny_model: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_TOKEN", SECRET)
    model_out, space_out = tmp_path / "model-dry", tmp_path / "space-dry"
    assert main(["push-model", str(run_dir), "someone/tiny-imv", "--dry-run", str(model_out)]) == 0
    assert main(["push-space", str(SPACE_DIR), "someone/demo", "--dry-run", str(space_out), "--model", str(tiny_model)]) == 0
    # A real upload cannot reach the Hub here (offline): it must fail with a message, still without the token.
    assert main(["push-model", str(run_dir), "someone/tiny-imv"]) == 1
    captured = capsys.readouterr()
    assert "upload of someone/tiny-imv failed" in captured.err
    for folder in (model_out, space_out):
        for path in folder.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
    assert SECRET not in captured.out and SECRET not in captured.err
