"""A machine without libusb, simulated: ``import open3d`` fails as it does there.

:func:`open3d_blocked` blocks it inside one test; :func:`write_sitecustomize` writes a ``sitecustomize.py`` that
blocks it in every Python process started with that folder first on ``PYTHONPATH`` (pytest and what it starts).
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LIBUSB_ERROR = "libusb-1.0.so.0: cannot open shared object file: No such file or directory"

_SITECUSTOMIZE = f'''"""Written by tests/helpers/block_open3d.py: import open3d fails as on a machine without libusb."""
import importlib.abc
import sys


class _NoOpen3d(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "open3d" or name.startswith("open3d."):
            raise ImportError({LIBUSB_ERROR!r})
        return None


sys.meta_path.insert(0, _NoOpen3d())
'''


class _NoOpen3d(importlib.abc.MetaPathFinder):
    """Fails every import of open3d (or a submodule) with the loader error of a machine without libusb."""

    def find_spec(self, name, path, target=None):  # noqa: ANN001, ANN201 (the MetaPathFinder protocol)
        if name == "open3d" or name.startswith("open3d."):
            raise ImportError(LIBUSB_ERROR)
        return None


@contextmanager
def open3d_blocked() -> Iterator[None]:
    """Within the block, ``import open3d`` raises as without libusb (an open3d already imported is hidden)."""
    hidden = {name: module for name, module in sys.modules.items() if name == "open3d" or name.startswith("open3d.")}
    for name in hidden:
        del sys.modules[name]
    blocker = _NoOpen3d()
    sys.meta_path.insert(0, blocker)
    try:
        yield
    finally:
        sys.meta_path.remove(blocker)
        sys.modules.update(hidden)


def write_sitecustomize(folder: Path) -> Path:
    """``folder/sitecustomize.py`` blocking open3d; put ``folder`` first on ``PYTHONPATH``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    return folder
