"""From a capture and weights to an on-disk reconstruction: ``reconstruct(...)`` in :mod:`.run` (one call), the
sliding-window pipeline (:mod:`.pipeline`), Sim(3) stitching and rig diagnostics (:mod:`.stitching`), the folder
format (:mod:`.store`), its text summary (:mod:`.summary`) and scoring against ground truth (:mod:`.evaluate`).
``reconstruct`` and ``prepare_reconstruction`` are re-exported here."""

from app.reconstruct.run import PreparedRun, prepare_reconstruction, reconstruct

__all__ = ["PreparedRun", "prepare_reconstruction", "reconstruct"]
