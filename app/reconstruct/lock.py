"""One writer per reconstruction folder: an exclusive ``flock`` on ``RECON/.vggt-mv.lock``.

A run holds the lock from the moment it creates or reopens its output until it ends (the operating system releases
it when the process dies, SIGKILL included, so a stale lock file never blocks anything). A second run on the same
``--out`` (``--resume`` or ``--overwrite`` alike) is refused before it reads, writes or deletes anything there.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from app.common.paths import file_ancestor
from app.reconstruct.store import LOCK_NAME, ReconstructionError


class RunLock:
    """The held lock of one folder; :meth:`release` (or process exit) frees it."""

    def __init__(self, folder: Path, handle, created: tuple[Path, ...] = ()) -> None:
        self.folder, self._handle = folder, handle
        self.created = created  # what acquire made (lock file, folders): removed by abandon()

    @classmethod
    def acquire(cls, folder: str | Path) -> RunLock:
        """Lock ``folder`` (created if missing) or raise :class:`ReconstructionError` naming the running process."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise ReconstructionError(f"output {folder} is a file; pass a folder path with --out")
        blocker = file_ancestor(folder)
        if blocker is not None:
            raise ReconstructionError(f"output {folder} is below {blocker}, which is a file; choose another --out")
        path = folder / LOCK_NAME
        made = [p for p in (folder, *folder.parents) if not p.exists()]
        existed = folder.is_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            lock_is_new = not path.exists()
            handle = open(path, "a+")
        except OSError as error:
            if existed:
                raise ReconstructionError(
                    f"cannot write in the output folder {folder} ({error.strerror or error}): it is read-only for "
                    "this user; make it writable, or copy it to a writable place and --resume there"
                ) from error
            raise ReconstructionError(
                f"cannot create the output folder {folder} ({error.strerror or error}); choose another --out"
            ) from error
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise ReconstructionError(
                f"--out {folder}: another vggt-mv run is writing it right now ({holder}; lock {path}). Wait for it "
                "to finish (then --resume if needed) or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        return cls(folder, handle, ((path,) if lock_is_new else ()) + tuple(made))

    @property
    def held(self) -> bool:
        return self._handle is not None

    def abandon(self) -> None:
        """Release, and remove the lock file and folders :meth:`acquire` created (the run was refused before it
        wrote anything: nothing of it stays behind)."""
        self.release()
        for path in self.created:
            try:
                path.unlink() if path.name == LOCK_NAME else path.rmdir()  # rmdir: only while empty
            except OSError:
                break

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def running_writer(folder: str | Path) -> str | None:
    """Who holds ``folder``'s lock right now (``"pid 1234"``), i.e. a run still writing it; None when no run does.
    Only tries the lock (shared, non-blocking), so a reader never waits or blocks a writer."""
    path = Path(folder) / LOCK_NAME
    try:
        handle = open(path)
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        except OSError:
            return None
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None
