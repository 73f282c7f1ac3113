"""From a capture and weights to an on-disk reconstruction: ``reconstruct(...)`` in :mod:`.run` (one call), the
sliding-window pipeline (:mod:`.pipeline`), Sim(3) stitching and rig diagnostics (:mod:`.stitching`), the folder
format (:mod:`.store`), its text summary (:mod:`.summary`) and scoring against ground truth (:mod:`.evaluate`).
Import from the modules (``from app.reconstruct.run import reconstruct``): the store alone needs no torch."""
