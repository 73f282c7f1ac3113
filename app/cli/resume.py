"""The ``vggt-mv run ... --resume`` command line that continues a run the viewer started (``vggt-mv view CAPTURE``),
written here, beside the options it spells, from the run's settings as its record holds them.

The viewer does not import the CLI (nothing does: tests/test_import_graph.py); ``vggt-mv view`` hands this function
to :func:`app.viewer.server.serve_until_interrupted`, which prints the command after a Ctrl-C.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from app.capture.masks import MASKS_AUTO
from app.capture.rig import CaptureOptions
from app.reconstruct.pipeline import PipelineConfig
from app.reconstruct.record import RunSettings
from app.reconstruct.track_queries import AUTO as QUERIES_AUTO
from app.viewer.live import LiveRunSpec


def path_or(value: Path | str | None, word: str) -> Path | str | None:
    """An option that is a path or ``word`` (``auto``): a path as a Path (written absolute), else as it is."""
    return value if value is None or value == word else Path(value)


def resume_command(spec: LiveRunSpec, settings: RunSettings | None) -> str:
    """The ``vggt-mv run ... --resume`` command that continues ``spec``'s run where it stopped: the same capture,
    output, weights and input options, and the run's resolved ``settings`` (meta.json: window, stride, size, mode,
    device, dtype; None: a record without settings, then the spec's own options), so that ``--resume`` finds nothing
    different."""
    words = ["vggt-mv", "run", str(Path(spec.capture).resolve()), "--out", str(Path(spec.out).resolve())]
    model = spec.model
    if isinstance(model.config, str | Path):
        words += ["--config", str(model.config)]
    for flag, path in (("--checkpoint", model.checkpoint), ("--pi3", model.pi3)):
        if path is not None:
            words += [flag, str(Path(path).resolve())]
    if model.random_weights:
        words.append("--random-weights")
    if settings is not None:
        for flag, setting in (
            ("--window", settings.window),
            ("--stride", settings.stride),
            ("--size", settings.size),
            ("--mode", settings.mode),
            ("--device", settings.device),
            ("--dtype", settings.dtype),
        ):
            words += [flag, str(setting)]
    capture, pipeline = spec.capture_options, spec.pipeline
    defaults, default_pipeline = CaptureOptions(), PipelineConfig()
    for flag, value, default in (
        ("--start", capture.start, defaults.start),
        ("--end", capture.end, defaults.end),
        ("--every", capture.every, defaults.every),
        ("--max-frames", capture.max_frames, defaults.max_frames),
        ("--layout", capture.layout, defaults.layout),
        ("--timestamps", capture.timestamps, defaults.timestamps),
        ("--sync", capture.sync, defaults.sync),
        ("--masks", path_or(pipeline.masks, MASKS_AUTO), None),
        ("--calibration", pipeline.calibration, default_pipeline.calibration),
        ("--calibration-units", pipeline.calibration_units, default_pipeline.calibration_units),
        ("--cameras", pipeline.cameras, default_pipeline.cameras),
        ("--track-queries", path_or(pipeline.track_queries, QUERIES_AUTO), None),  # part of the run's identity
    ):
        if value != default:
            words += [flag, str(Path(value).resolve()) if isinstance(value, Path) else str(value)]
    for flag, on in (("--skip-bad-cameras", capture.skip_unreadable), ("--rigid-rig", pipeline.rigid_rig)):
        if on:
            words.append(flag)
    words.append("--resume")
    return shlex.join(words)
