"""From a capture and weights to an on-disk reconstruction: ``reconstruct(...)`` in :mod:`.run` (one call), the
sliding-window pipeline (:mod:`.pipeline`), Sim(3) stitching and rig diagnostics (:mod:`.stitching`), the folder
format (:mod:`.store`), its text summary (:mod:`.summary`) and scoring against ground truth (:mod:`.evaluate`).
``reconstruct`` and ``prepare_reconstruction`` are re-exported here, loaded on first use (PEP 562), so that
``import app.reconstruct.store`` loads neither the pipeline nor the model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.reconstruct.run import PreparedRun, prepare_reconstruction, reconstruct

__all__ = ["PreparedRun", "prepare_reconstruction", "reconstruct"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'app.reconstruct' has no attribute {name!r}")
    from app.reconstruct import run

    value = getattr(run, name)
    globals()[name] = value
    return value
