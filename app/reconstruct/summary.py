"""One screen of text about a reconstruction (what ``vggt-mv run`` prints at the end)."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np

from app.common.text import plural
from app.reconstruct.pipeline import RunResult
from app.reconstruct.record import Agreement, CameraSpread, CaptureRecord, RigReport
from app.reconstruct.store import Reconstruction
from vggt_t_mv.weights import layout_name


def rig_lines(cameras: list[CameraSpread], num_timesteps: int) -> list[str]:
    """The rig diagnostics of the cameras after camera 0 (``rig_diagnostics``' entries): one line per camera, or,
    for a static capture (one timestep: every spread over time is 0 by construction), one line for all of them."""
    if not cameras:
        return []
    if num_timesteps <= 1:
        baselines = [camera.baseline_mean or 0.0 for camera in cameras]
        return [
            f"  rig       {plural(len(cameras) + 1, 'camera')} at a single timestep: baselines to camera 0 "
            f"{min(baselines):.3g}..{max(baselines):.3g} (no spread over time to report)"
        ]
    return [
        f"  rig {camera.name:>8}: focal spread {camera.focal_spread_pct or 0.0:.1f} %, baseline "
        f"{camera.baseline_mean or 0.0:.3g} (spread {camera.translation_spread_pct or 0.0:.1f} %), rotation spread "
        f"{camera.rotation_spread_mean_deg or 0.0:.2f} deg"
        for camera in cameras
    ]


def agreement_lines(agreement: Agreement | None) -> list[str]:
    """The calibrated windows' agreement (``rig.agreement``): how far the model's cameras were from the calibration
    after each window's Sim(3), and which windows were flagged."""
    if agreement is None:
        return []
    units = "units" if agreement.units == "arbitrary" else agreement.units
    flagged = agreement.flagged_windows
    return [
        f"  cameras   the calibration's, {plural(agreement.windows, 'window')} each moved by its own Sim(3); "
        f"predicted vs calibrated: rotation median {agreement.rotation_error_deg_median:.2f} deg "
        f"(max {agreement.rotation_error_deg_max:.2f}), centre median {agreement.center_error_median:.3g} "
        f"{units} (max {agreement.center_error_max:.3g})",
        "  agreement "
        + (
            f"FLAGGED windows {flagged} (the model disagrees with the calibration there)"
            if flagged
            else "within limits"
        ),
    ]


def summary_text(recon: Reconstruction, result: RunResult | None = None) -> str:
    """One screen about a reconstruction: capture, shapes, timing, per-window alignment, rig report."""
    record = recon.record
    capture, settings = record.capture or CaptureRecord(), record.settings
    height, width = recon.image_hw
    lines = [
        f"reconstruction {recon.root}  ({record.status})",
        f"  capture   {capture.path}  [{capture.form}, sync {capture.sync}]",
        f"  cameras   {recon.num_cameras}: {', '.join(recon.camera_names)}",
        f"  timesteps {recon.num_timesteps} of {capture.total_timesteps}  at {width}x{height} px "
        + ("" if settings is None else f"({settings.mode})"),
    ]
    if settings is not None:
        lines.append(
            f"  windows   {len(recon.spans)} x {settings.window} (stride {settings.stride}) on {settings.device}, "
            f"{settings.dtype}"
        )
    model = record.model
    if model is not None:
        weights = "random weights" if model.random_weights else (model.load_report or "")
        checkpoint = model.sources.get("checkpoint")
        layout = None if checkpoint is None else checkpoint.layout
        lines.append(
            f"  model     {model.config.describe()}"
            + (f"; checkpoint layout {layout_name(layout)}" if layout else "")
            + (f"; {weights}" if weights else "")
        )
    if capture.spread_s is not None:
        spread = capture.spread_s
        lines.append(f"  sync      camera time spread mean {spread.mean * 1e3:.1f} ms, max {spread.max * 1e3:.1f} ms")
    if result is not None:
        lines.append(
            f"  time      {result.seconds:.1f} s for {plural(result.windows_run, 'window')}, "
            f"{result.frames_per_s:.1f} frames/s"
            + (f" (resumed: {plural(result.first_window, 'window')} already on disk)" if result.first_window else "")
        )
    align = [a for a in record.alignments() if a.kind == "sim3" and a.sim3 is not None]
    if align:
        scales = np.array([a.sim3.scale for a in align if a.sim3 is not None])
        residuals = np.array([a.residual_median for a in align], dtype=float)
        inliers = np.array([a.inlier_fraction for a in align], dtype=float)
        lines.append(
            f"  stitching scale {scales.min():.3g}..{scales.max():.3g}, median residual {np.median(residuals):.3g} "
            f"(max {residuals.max():.3g}), inliers {100 * inliers.min():.0f}..{100 * inliers.max():.0f} %"
        )
    failed = [entry.index for entry in record.alignment if entry.alignment.kind == "failed"]
    if failed:
        lines.append(f"  stitching FAILED for windows {failed} (left unaligned)")
    rig = record.rig or RigReport()
    lines.extend(agreement_lines(rig.agreement))
    lines.extend(rig_lines([] if rig.diagnostics is None else rig.diagnostics.cameras[1:], recon.num_timesteps))
    calibration = rig.calibration
    if calibration is not None:
        scale = record.alignment[0].alignment.metric_scale if record.alignment else None
        if scale:
            lines.append(f"  metric    scale {scale:.4g} from the calibrated baselines")
        units = "units" if calibration.units == "arbitrary" else calibration.units
        for camera in calibration.rig or []:
            lines.append(
                f"  vs calib {camera.name:>8}: rotation {camera.rotation_error_deg:.2f} deg, translation "
                f"{camera.translation_error:.3f} {units} (baseline {camera.baseline_calibrated:.3f} {units})"
            )
    if capture.warnings or (result and result.warnings):
        lines.append(f"  warnings  {len(capture.warnings) + len(result.warnings if result else [])}")
    return "\n".join(lines)


def next_steps(out: str | Path, ground_truth: str | Path | None = None) -> str:
    """What to do with the reconstruction in ``out`` (the path as the user gave it), as commands to copy: view it,
    export it (a merged point cloud), share it (a folder that plays it in a browser), evaluate it (against
    ``ground_truth`` when the capture has its own, else with a placeholder the user fills in)."""
    folder = shlex.quote(str(out))
    name = Path(out).name or "recon"
    gt = shlex.quote(str(ground_truth)) if ground_truth is not None else "GROUND_TRUTH"
    lines = [
        "next:",
        f"  view      vggt-mv-view {folder}",
        f"  export    vggt-mv export {folder} --format ply --out {shlex.quote(name + '_points.ply')} --merge",
        f"  share     vggt-mv export {folder} --format web --out {shlex.quote(name + '_web')}",
        f"  evaluate  vggt-mv eval {folder} --gt {gt}"
        + ("" if ground_truth is not None else "   (GROUND_TRUTH: a dataset root with depths/, intrs/, extrs/, ...)"),
    ]
    return "\n".join(lines)
