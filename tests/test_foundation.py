import socket
import subprocess
import sys

import pytest

from hf_bio import __version__
from hf_bio.backbones import BACKBONES, paper_backbone_names, resolve_backbone
from hf_bio.cli import main


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"hf-bio {__version__}"


def test_console_entry_point_runs_as_module():
    out = subprocess.run([sys.executable, "-m", "hf_bio", "--version"], capture_output=True, text=True, check=True)
    assert __version__ in out.stdout


def test_backbones_lists_the_papers_seven(capsys):
    assert main(["backbones"]) == 0
    out = capsys.readouterr().out
    for spec in BACKBONES.values():
        assert spec.name in out
        if spec.hub_id:
            assert spec.hub_id in out
    assert len(paper_backbone_names()) == 7
    assert {BACKBONES[n].training for n in paper_backbone_names()} == {"PT", "PT+FT"}


def test_resolve_backbone_rejects_unknown_names_and_foreign_families(tmp_path):
    with pytest.raises(ValueError, match="unknown backbone 'bert'"):
        resolve_backbone("bert")
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="model_type 'bert' is not a supported"):
        resolve_backbone(str(tmp_path))
    assert resolve_backbone("facebook/hubert-base-ls960").name == "hubert"


def test_network_is_blocked_in_tests():
    with pytest.raises(RuntimeError, match="network connection"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)
