"""The vggt-mv application. Packages, each importing only those after it:

``cli`` (commands) -> ``viewer`` (viser 4D viewer) -> ``export`` (files for other tools) -> ``reconstruct`` (windows,
stitching, the on-disk store) -> ``capture`` (cameras, sync, calibration, preprocessing) -> ``common`` (shared
vocabularies and helpers) -> the model library :mod:`vggt_t_mv`.
"""
