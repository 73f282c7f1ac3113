"""Checks on output paths that every writer (reconstruction store, exports) makes before it writes."""

from __future__ import annotations

from pathlib import Path


def file_ancestor(path: str | Path) -> Path | None:
    """The nearest existing ancestor of ``path`` that is a file (so ``path`` can never be created), or None."""
    return next((parent for parent in Path(path).parents if parent.exists() and not parent.is_dir()), None)
