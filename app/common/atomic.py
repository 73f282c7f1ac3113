"""Atomic writes: a file or folder is built under a temporary sibling name and renamed into place, so a reader (or a
crash) never sees half of it. Every writer in the app (reconstruction store, exports) goes through these. What a
killed writer left (``kill -9`` gives no chance to clean up) is removed by the next write of the same path."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def temp_sibling(path: Path, tag: str = "tmp") -> Path:
    """``.<name>.<tag>-<pid><suffix>`` next to ``path`` (the suffix kept, so e.g. ``np.save`` adds none)."""
    return path.with_name(f".{path.stem}.{tag}-{os.getpid()}{path.suffix}")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def clear_stale_temporaries(path: Path) -> None:
    """Remove the temporary siblings of ``path`` (:func:`temp_sibling`) that a killed writer left behind (its process
    is gone, or it is this process); a folder moved aside (``old``) while ``path`` is missing is put back instead,
    since it is then the only copy."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.stem)}\.(tmp|old)-(\d+){re.escape(path.suffix)}$")
    if not path.parent.is_dir():
        return
    for entry in path.parent.iterdir():
        found = pattern.match(entry.name)
        if found is None:
            continue
        pid = int(found.group(2))
        if pid != os.getpid() and process_alive(pid):
            continue
        with contextlib.suppress(OSError):
            if found.group(1) == "old" and not path.exists():
                os.replace(entry, path)
            elif entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()


def disk_problem(path: Path) -> int | None:
    """``errno.ENOSPC`` when the disk that would hold ``path`` is (nearly) full, ``errno.EACCES`` when its nearest
    existing folder is not writable, else None: the cause of a failed write that did not say why."""
    folder = next((p for p in Path(path).parents if p.exists()), Path("."))
    if shutil.disk_usage(folder).free < 1 << 20:
        return errno.ENOSPC
    if not os.access(folder, os.W_OK):
        return errno.EACCES
    return None


def write_failure_cause(path: Path, error: OSError | None = None) -> tuple[str, str] | None:
    """``(what happened, the fix)`` for a failed write of ``path``. Some writers (numpy's ``tofile``, pycolmap,
    OpenCV) fail without the system's reason, or name a temporary file: the disk is then asked directly
    (:func:`disk_problem`). None when neither the error nor the disk tells."""
    folder = next((p for p in Path(path).parents if p.exists()), Path("."))
    code = error.errno if error is not None and error.errno is not None else disk_problem(path)
    if code == errno.ENOSPC:
        free = shutil.disk_usage(folder).free
        fix = "free some space on that disk (or choose another --out)"
        return f"{os.strerror(code)}: the disk holding {folder} has {free} bytes free", fix
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"{os.strerror(code)}: {folder} is not writable", "make the folder writable (or choose another --out)"
    if error is None:
        return None
    return error.strerror or str(error), "check the disk and the folder"


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path`` (atomic), else removed."""
    path = Path(path)
    clear_stale_temporaries(path)
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
    clear_stale_temporaries(path)
    tmp = temp_sibling(path)
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
