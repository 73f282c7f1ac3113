"""Optional dependencies that need a system library: what is missing and the command that installs it.

open3d (used only by the Poisson mesh export) loads ``libusb-1.0.so.0`` at import, which a bare Debian/Ubuntu image
lacks; everything else in the app runs without it. :func:`import_open3d` turns the failed import into one sentence
naming the missing library and the install command.
"""

from __future__ import annotations

import importlib
from types import ModuleType

# The system package (Debian/Ubuntu) that provides each shared library an optional module needs at import.
SYSTEM_LIBRARIES = {"libusb-1.0": "libusb-1.0-0"}


class MissingDependency(RuntimeError):
    """An optional module cannot be imported; the message names what is missing and how to install it."""


def open3d_missing() -> str | None:
    """Why open3d cannot be imported here, with the fix (None when it can)."""
    try:
        importlib.import_module("open3d")
    except (ImportError, OSError) as error:
        return describe_import_failure("open3d", error)
    return None


def describe_import_failure(module: str, error: BaseException) -> str:
    """One sentence: ``module`` does not import (``error``), and the command that fixes it."""
    text = str(error)
    for library, package in SYSTEM_LIBRARIES.items():
        if library in text:
            return (
                f"{module} cannot be imported: the system library {library} is missing ({text}); install it with "
                f"`sudo apt-get install {package}` (Debian/Ubuntu)"
            )
    return f"{module} cannot be imported ({text}); install it with `pip install {module}`"


def import_open3d(purpose: str) -> ModuleType:
    """open3d, or :class:`MissingDependency` saying that ``purpose`` needs it, what is missing and the fix."""
    try:
        return importlib.import_module("open3d")
    except (ImportError, OSError) as error:
        raise MissingDependency(f"{purpose} needs open3d, but {describe_import_failure('open3d', error)}") from None
