"""One screen of text about a reconstruction (what ``vggt-mv run`` prints at the end)."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np

from app.common.text import plural
from app.reconstruct.pipeline import RunResult
from app.reconstruct.store import Reconstruction
from vggt_t_mv.weights import layout_name


def rig_lines(cameras: list[dict], num_timesteps: int) -> list[str]:
    """The rig diagnostics of the cameras after camera 0 (``rig_diagnostics``' entries): one line per camera, or,
    for a static capture (one timestep: every spread over time is 0 by construction), one line for all of them."""
    if not cameras:
        return []
    if num_timesteps <= 1:
        baselines = [camera["baseline_mean"] for camera in cameras]
        return [
            f"  rig       {plural(len(cameras) + 1, 'camera')} at a single timestep: baselines to camera 0 "
            f"{min(baselines):.3g}..{max(baselines):.3g} (no spread over time to report)"
        ]
    return [
        f"  rig {camera['name']:>8}: focal spread {camera['focal_spread_pct']:.1f} %, baseline "
        f"{camera['baseline_mean']:.3g} (spread {camera['translation_spread_pct']:.1f} %), rotation spread "
        f"{camera['rotation_spread_mean_deg']:.2f} deg"
        for camera in cameras
    ]


def agreement_lines(agreement: dict | None) -> list[str]:
    """The calibrated windows' agreement (``rig.agreement``): how far the model's cameras were from the calibration
    after each window's Sim(3), and which windows were flagged."""
    if not agreement:
        return []
    units = "units" if agreement["units"] == "arbitrary" else agreement["units"]
    flagged = agreement["flagged_windows"]
    return [
        f"  cameras   the calibration's, {plural(agreement['windows'], 'window')} each moved by its own Sim(3); "
        f"predicted vs calibrated: rotation median {agreement['rotation_error_deg_median']:.2f} deg "
        f"(max {agreement['rotation_error_deg_max']:.2f}), centre median {agreement['center_error_median']:.3g} "
        f"{units} (max {agreement['center_error_max']:.3g})",
        "  agreement "
        + (
            f"FLAGGED windows {flagged} (the model disagrees with the calibration there)"
            if flagged
            else "within limits"
        ),
    ]


def summary_text(recon: Reconstruction, result: RunResult | None = None) -> str:
    """One screen about a reconstruction: capture, shapes, timing, per-window alignment, rig report."""
    meta = recon.meta
    capture, settings = meta["capture"], meta["settings"]
    height, width = recon.image_hw
    lines = [
        f"reconstruction {recon.root}  ({meta.get('status')})",
        f"  capture   {capture['path']}  [{capture['form']}, sync {capture['sync']}]",
        f"  cameras   {recon.num_cameras}: {', '.join(recon.camera_names)}",
        f"  timesteps {recon.num_timesteps} of {capture['total_timesteps']}  at {width}x{height} px "
        f"({settings['mode']})",
        f"  windows   {len(recon.spans)} x {settings['window']} (stride {settings['stride']}) on {settings['device']}, "
        f"{settings['dtype']}",
    ]
    model = meta.get("model", {})
    if model.get("architecture"):
        weights = "random weights" if model.get("random_weights") else model.get("load_report", "")
        layout = model.get("checkpoint_layout")
        lines.append(
            f"  model     {model['architecture']}"
            + (f"; checkpoint layout {layout_name(layout)}" if layout else "")
            + (f"; {weights}" if weights else "")
        )
    if capture.get("spread_s"):
        spread = capture["spread_s"]
        lines.append(
            f"  sync      camera time spread mean {spread['mean'] * 1e3:.1f} ms, max {spread['max'] * 1e3:.1f} ms"
        )
    if result is not None:
        lines.append(
            f"  time      {result.seconds:.1f} s for {plural(result.windows_run, 'window')}, "
            f"{result.frames_per_s:.1f} frames/s"
            + (f" (resumed: {plural(result.first_window, 'window')} already on disk)" if result.first_window else "")
        )
    align = [a for a in meta.get("alignment", []) if a.get("alignment", {}).get("kind") == "sim3"]
    if align:
        scales = np.array([a["alignment"]["sim3"]["scale"] for a in align])
        residuals = np.array([a["alignment"]["residual_median"] for a in align])
        inliers = np.array([a["alignment"]["inlier_fraction"] for a in align])
        lines.append(
            f"  stitching scale {scales.min():.3g}..{scales.max():.3g}, median residual {np.median(residuals):.3g} "
            f"(max {residuals.max():.3g}), inliers {100 * inliers.min():.0f}..{100 * inliers.max():.0f} %"
        )
    failed = [a["index"] for a in meta.get("alignment", []) if a.get("alignment", {}).get("kind") == "failed"]
    if failed:
        lines.append(f"  stitching FAILED for windows {failed} (left unaligned)")
    rig = meta.get("rig", {})
    lines.extend(agreement_lines(rig.get("agreement")))
    lines.extend(rig_lines(rig.get("diagnostics", {}).get("cameras", [])[1:], recon.num_timesteps))
    calibration = rig.get("calibration")
    if calibration:
        scale = (meta.get("alignment") or [{}])[0].get("alignment", {}).get("metric_scale")
        if scale:
            lines.append(f"  metric    scale {scale:.4g} from the calibrated baselines")
        units = calibration.get("units", "m")
        units = "units" if units == "arbitrary" else units
        for camera in calibration.get("rig", []):
            lines.append(
                f"  vs calib {camera['name']:>8}: rotation {camera['rotation_error_deg']:.2f} deg, translation "
                f"{camera['translation_error']:.3f} {units} (baseline {camera['baseline_calibrated']:.3f} {units})"
            )
    if capture.get("warnings") or (result and result.warnings):
        lines.append(f"  warnings  {len(capture.get('warnings', [])) + len(result.warnings if result else [])}")
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
