"""Atomic writes: a file or folder is built under a temporary sibling name and renamed into place, so a reader (or a
crash) never sees half of it. Every writer in the app (reconstruction store, exports) goes through these."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def temp_sibling(path: Path, tag: str = "tmp") -> Path:
    """``.<name>.<tag>-<pid><suffix>`` next to ``path`` (the suffix kept, so e.g. ``np.save`` adds none)."""
    return path.with_name(f".{path.stem}.{tag}-{os.getpid()}{path.suffix}")


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path`` (atomic), else removed."""
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Like :func:`atomic_file` for a folder: built under a temporary name, then swapped in (an existing folder is
    moved aside first and deleted only after the new one is in place)."""
    path = Path(path)
    tmp = temp_sibling(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        old = temp_sibling(path, "old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        if old.exists():
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_bytes_atomic(path: Path, produce: Callable[[], bytes]) -> None:
    """Write the bytes returned by ``produce()`` to ``path`` atomically (``produce`` runs before anything is
    created, so a failing encoder leaves no file)."""
    data = produce()
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """``data`` as indented JSON (NaN allowed) at ``path``, atomically."""
    write_bytes_atomic(path, lambda: json.dumps(data, indent=1, allow_nan=True).encode())
