"""From a capture and weights to an on-disk reconstruction: :func:`reconstruct` (one call, :mod:`.run`), the
sliding-window pipeline (:mod:`.pipeline`), Sim(3) stitching and rig diagnostics (:mod:`.stitching`), the folder
format (:mod:`.store`) and its text summary (:mod:`.summary`)."""

from app.reconstruct.run import PreparedRun, prepare_reconstruction, reconstruct

__all__ = ["PreparedRun", "prepare_reconstruction", "reconstruct"]
