"""Reconstructions for tests that compare against exact ground truth (no tests here)."""

from __future__ import annotations

import warnings
from pathlib import Path

from app.capture.preprocess import PreprocessConfig
from app.capture.rig import CaptureOptions
from app.reconstruct.pipeline import PipelineConfig
from app.reconstruct.run import reconstruct
from vggt_t_mv.loading import WeightsSpec


def exact_run(capture: Path, out: Path, size: int, window: int, stride: int | None = None, **capture_options) -> None:
    """``vggt-mv run CAPTURE --out OUT --config tiny --random-weights --device cpu --size ... --window ...`` in
    reconstruction format 2, which stores depth and points as computed (float32): tests that put the ground truth
    into a reconstruction and expect the viewer or the evaluation to find it exactly use it (format 3 stores them
    to 2**-11 relative, ``tests/test_store_format.py``)."""
    config = PipelineConfig(
        window=window, stride=stride, device="cpu", preprocess=PreprocessConfig(size=size), format_version=2
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untrained-weights warning
        weights = WeightsSpec(config="tiny", random_weights=True)
        reconstruct(capture, out, weights, config, CaptureOptions(**capture_options))
