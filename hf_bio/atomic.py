"""Atomic file writes: a reader (or a later run after a crash) sees the old file or the new one, never half.

Every writer in hf_bio that must not leave a truncated file (caches, run folders, results, cards) goes
through `atomic_write`: it writes to a temporary file in the same folder, then renames it over the target.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it to `path` (atomic on POSIX).

    The temporary file is removed if `write` fails or the process is interrupted.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8, newlines as given) to `path` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))


def replace_dir(new: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move the finished folder `new` to `target`, atomically: an earlier `target` stays whole until the
    last moment, then is removed. `new` must be on the same file system (build it beside `target`)."""
    import shutil

    new, target = Path(new), Path(target)
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / "x")
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)
    return target
