"""What ``vggt-mv view PATH`` opens: a reconstruction folder, a capture to run live, or (no PATH) the demo rig.

:func:`plan_view` turns the command's inputs into a :class:`ViewPlan` (no I/O besides looking at ``PATH``, checking a
reconstruction's files, and making the temporary output folder); the CLI prints its ``messages`` and starts the viewer.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from app.capture.preprocess import DEFAULT_SIZE
from app.capture.rig import CaptureOptions
from app.common.atomic import process_alive
from app.reconstruct.pipeline import PipelineConfig
from app.reconstruct.run import trained_input_size
from app.reconstruct.store import Reconstruction
from app.viewer.gui import UNTRAINED_NOTICE
from app.viewer.live import DEMO_RIG, DEMO_WEIGHTS, LiveRunSpec, demo_weights_available
from vggt_t_mv.loading import ModelLoadError, WeightsSpec

# The size the demo runs at when the bundled weights are missing (the tiny random model): the demo weights' own,
# 112x154 px (their config.json's input_hw; the demo rig, 224x160, cropped to width 154 gives 112x154).
DEMO_SIZE = 154
NO_WEIGHTS = (
    "no weights for the capture: pass --checkpoint FILE_OR_FOLDER (VGGT-family weights or a save_pretrained "
    f"folder; the repository bundles small demo weights: --checkpoint {DEMO_WEIGHTS}) "
    "and/or --pi3 FILE (Pi3 weights), or --random-weights (untrained, testing only); where to get VGGT-1B, "
    "PAGE-4D and Pi3 weights: README, Weights"
)


class ViewUsageError(ValueError):
    """The options cannot be viewed (a capture without weights)."""


@dataclass
class ViewPlan:
    """``recon``: a reconstruction folder to open; else ``live``: the background run to start. ``notice``: shown
    in the GUI; ``messages``: for the console."""

    recon: Path | None = None
    live: LiveRunSpec | None = None
    notice: str | None = None
    messages: list[str] = field(default_factory=list)


def is_reconstruction(path: Path | None) -> bool:
    """``path`` is a reconstruction folder (it has the store's ``meta.json``)."""
    return path is not None and Reconstruction.exists(path)


TEMP_PREFIX = "vggt-mv-view-"  # + pid: the reconstruction of a live view without --out, in the temporary folder


def clear_earlier_views(folder: Path | None = None) -> list[str]:
    """Remove the temporary reconstructions (``vggt-mv-view-<pid>-*``) of viewers that have exited, so repeated
    launches without ``--out`` do not fill the temporary folder; returns what to tell the user."""
    folder = Path(tempfile.gettempdir()) if folder is None else folder
    removed, size = 0, 0
    for entry in folder.glob(f"{TEMP_PREFIX}*"):
        found = re.match(rf"^{re.escape(TEMP_PREFIX)}(\d+)-", entry.name)
        if found is None or not entry.is_dir() or entry.is_symlink() or process_alive(int(found.group(1))):
            continue
        size += sum(p.stat().st_size for p in entry.rglob("*") if p.is_file() and not p.is_symlink())
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    if not removed:
        return []
    return [f"removed {removed} earlier viewer reconstruction(s) from {folder} ({size / 1e6:.0f} MB); --out keeps one"]


def plan_view(
    path: Path | None,
    weights: WeightsSpec,
    pipeline: PipelineConfig,
    capture: CaptureOptions | None = None,
    out: Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> ViewPlan:
    """The :class:`ViewPlan` of ``vggt-mv view`` (module docstring): ``pipeline`` and ``capture`` are what
    ``vggt-mv run`` would get from the same options. ``pipeline.preprocess.size`` (model input width) ``None``: the
    size the weights were trained at (their ``save_pretrained`` folder's ``input_hw``), else 518 (the demo with
    random weights: :data:`DEMO_SIZE`)."""
    capture_options = capture or CaptureOptions()
    size = pipeline.preprocess.size
    if path is not None and is_reconstruction(path):
        Reconstruction.open(path)  # a damaged folder is refused here, naming the file, before the server starts
        return ViewPlan(recon=path)
    plan = ViewPlan()
    source = DEMO_RIG if path is None else path
    if path is None:
        if not weights.has_weights() and not weights.random_weights:
            if demo_weights_available():
                weights = dataclasses.replace(weights, checkpoint=DEMO_WEIGHTS)
            else:
                weights = dataclasses.replace(weights, config=weights.config or "tiny", random_weights=True)
                size = size or DEMO_SIZE
        plan.messages.append(f"demo: {source}" + (f" with {weights.checkpoint}" if weights.checkpoint else ""))
    if not weights.has_weights() and not weights.random_weights:
        raise ViewUsageError(NO_WEIGHTS)
    if not weights.has_weights():
        plan.notice = UNTRAINED_NOTICE
    if out is None:
        plan.messages += clear_earlier_views()
    target = out or Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
    if size is None:
        try:
            trained = trained_input_size(weights, pipeline.preprocess.mode)
        except ModelLoadError as error:
            raise ViewUsageError(str(error)) from error
        plan.messages.append(
            f"input size {trained[0]} px: {trained[1]} (--size overrides)"
            if trained
            else f"input size {DEFAULT_SIZE} px, the default (--size overrides)"
        )
    preprocess = dataclasses.replace(pipeline.preprocess, size=size)
    plan.live = LiveRunSpec(
        capture=source,
        out=target,
        model=weights,
        pipeline=dataclasses.replace(pipeline, preprocess=preprocess),
        capture_options=capture_options,
        resume=resume,
        overwrite=overwrite or out is None,
    )
    plan.messages.append(f"reconstruction goes to {target}")
    return plan
