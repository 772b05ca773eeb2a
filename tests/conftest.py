"""Test-session set-up: everything runs offline, and any non-loopback connection fails the test."""

from __future__ import annotations

import ipaddress
import os
import socket
import tempfile

# Set before transformers/datasets/huggingface_hub are imported anywhere, so they read them.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tiny random backbones and other hf_bio caches go to a throw-away folder, never the user's ~/.cache.
os.environ["HF_BIO_CACHE"] = tempfile.mkdtemp(prefix="hf_bio_test_cache_")

import pytest  # noqa: E402


class NetworkAccessError(RuntimeError):
    """Raised when a test tries to reach anything but this machine."""


def _is_local(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and the like stay on this machine
    host = str(address[0])
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost would need DNS: not local


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: object) -> None:
    if not _is_local(address):
        raise NetworkAccessError(f"test tried to open a network connection to {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    if not _is_local(address):
        raise NetworkAccessError(f"test tried to open a network connection to {address!r}")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def shared_dir() -> str:
    """The reference folder `shared/` holding real CC0 recordings.

    It sits beside the checkout (`../shared`, as in CI) or higher up (a worktree in `/work/wt/<name>`
    with `/work/shared`): the nearest ancestor holding `shared/README.md` wins.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    folder = os.path.dirname(here)
    while True:
        candidate = os.path.join(folder, "shared")
        if os.path.isfile(os.path.join(candidate, "README.md")):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            pytest.fail(f"no shared/ folder (with README.md) beside or above {os.path.dirname(here)}")
        folder = parent


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models and heads gain nothing from intra-op threads, and on a loaded 2-core machine OpenMP
    threads waiting for each other make each small op ~1000x slower (measured: 9 us -> 7 ms per baddbmm).

    Modules opt in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
