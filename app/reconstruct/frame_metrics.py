"""Evaluation in the calibration's frame: the numbers a metric, calibrated reconstruction can be held to as it is.

When every window of a reconstruction was moved into its calibration's frame (``--cameras calibrated``), its depth
is in the calibration's units and its cameras are the calibration's, so it can be compared with ground truth that
shares that frame (a dataset root's ``depths/`` + ``extrs/``) with **no** alignment and **no** median scaling:

* ``abs_rel``, ``delta1``: the stored depth against the ground-truth depth, per pixel, as stored (reported for any
  reconstruction: a depth is a depth in any frame, so a predicted-mode run scaled by ``--calibration`` is held to it
  too);
* ``accuracy``, ``completeness``: the pose stream's points (the depth unprojected with the stored cameras) against
  the ground-truth depth unprojected with the ground-truth cameras, in calibration units;

per window (averaged) and over the whole sequence at once. ``keep`` (the command's pixel filter,
:func:`app.export.selection.pixel_filter` with ``--min-views``) restricts the predicted pixels they are taken over.
For any reconstruction, ``drift`` follows each camera the
ground truth holds still: how far its stored centre (stored units) and orientation (degrees) move from the first
stored timestep over the sequence. Chained windows accumulate it; calibrated windows have none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from app.reconstruct.evaluate import ground_truth_sample
from app.reconstruct.store import Reconstruction
from vggt_t_mv.eval.metrics import depth_errors, nearest_distances
from vggt_t_mv.npgeometry import camera_centers, rotation_angle_deg

STATIC_TOLERANCE = 1e-6  # ground-truth extrinsics that vary less than this over the sequence: a static camera
MAX_POINTS = 5000  # points sampled for accuracy / completeness, per window and for the whole sequence
FRAME_KEYS = ("abs_rel", "delta1", "accuracy", "completeness")


@dataclass(frozen=True)
class CameraDrift:
    """One static camera over the stored timesteps: the largest distance of its centre from its first stored centre
    (stored units) and the largest angle of its orientation from the first (degrees)."""

    name: str
    center_drift: float
    rotation_drift_deg: float


@dataclass
class FrameReport:
    """Unaligned metrics (``windows`` and ``sequence``, keys :data:`FRAME_KEYS`; empty when the reconstruction is not
    in the calibration's frame), static-camera ``drift`` and the ``units`` of lengths."""

    units: str
    in_calibration_frame: bool
    windows: list[dict[str, float]] = field(default_factory=list)
    sequence: dict[str, float] = field(default_factory=dict)
    drift: list[CameraDrift] = field(default_factory=list)

    def window_means(self) -> dict[str, float]:
        out = {}
        for key in FRAME_KEYS:
            values = [w[key] for w in self.windows if key in w and np.isfinite(w[key])]
            out[key] = float(np.mean(values)) if values else float("nan")
        return out

    def to_dict(self) -> dict:
        return {
            "units": self.units,
            "in_calibration_frame": self.in_calibration_frame,
            "window_means": self.window_means() if self.windows else {},
            "sequence": self.sequence,
            "windows": self.windows,
            "drift": [vars(d) for d in self.drift],
        }

    def table(self, title: str) -> str:
        """Markdown: the unaligned metrics (per-window mean and whole sequence) and the drift of each static camera."""
        lines = [f"### {title}: in the calibration frame, no alignment, no scaling (lengths in {self.units})", ""]
        means = self.window_means()
        lines += ["| | Abs Rel | δ<1.25 | accuracy | completeness |", "|---|---|---|---|---|"]
        for label, row in (("mean of windows", means), ("whole sequence", self.sequence)):
            cells = " | ".join(f"{row.get(k, float('nan')):.4g}" for k in FRAME_KEYS)
            lines.append(f"| {label} | {cells} |")
        if not self.in_calibration_frame:
            lines.append("\n(not in a calibration frame: accuracy / completeness need --cameras calibrated)")
        if self.drift:
            lines += ["", "| static camera | centre drift | rotation drift (deg) |", "|---|---|---|"]
            lines += [f"| {d.name} | {d.center_drift:.4g} | {d.rotation_drift_deg:.4g} |" for d in self.drift]
        return "\n".join(lines)


def _unprojected(depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """World points ``[..., H, W, 3]`` of z-depths ``[..., H, W]`` seen by cameras ``[..., 3, 4]``, ``[..., 3, 3]``
    (OpenCV camera-from-world, pixel centres at integer coordinates)."""
    height, width = depth.shape[-2:]
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    k = np.asarray(intrinsics, np.float64)
    x = (u - k[..., 0, 2, None, None]) / k[..., 0, 0, None, None] * depth
    y = (v - k[..., 1, 2, None, None]) / k[..., 1, 1, None, None] * depth
    camera = np.stack([x, y, np.asarray(depth, np.float64)], -1)
    rotation, translation = np.asarray(extrinsics, np.float64)[..., :3], np.asarray(extrinsics, np.float64)[..., 3]
    return np.einsum("...ji,...hwj->...hwi", rotation, camera - translation[..., None, None, :])


def _errors(depth, gt_depth, points, gt_points, valid, rng) -> dict[str, float]:
    out = depth_errors(np.clip(depth[valid], 0, None), gt_depth[valid])
    if points is None:
        return out
    pred, gt = points[valid], gt_points[valid]
    if len(gt) > MAX_POINTS:
        keep = rng.choice(len(gt), MAX_POINTS, replace=False)
        pred, gt = pred[keep], gt[keep]
    if len(gt) >= 3:
        out["accuracy"] = float(nearest_distances(pred, gt).mean())
        out["completeness"] = float(nearest_distances(gt, pred).mean())
    return out


PixelKeep = Callable[[int], np.ndarray]  # timestep -> bool [N, H, W]: the predicted pixels evaluated


def _unaligned(
    recon: Reconstruction, truth, times: range, rng, points: bool, keep: PixelKeep | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """Unaligned errors over ``times`` (depth; and points when ``points``; only pixels ``keep`` passes) and the
    ground-truth extrinsics ``[T, N, 3, 4]`` there."""
    sample = ground_truth_sample(recon, truth, times)
    gt_ext = sample.extrinsics.double().numpy()
    depth = recon.load("depth", times).astype(np.float64)
    gt_depth = sample.depth.numpy().astype(np.float64)
    pred_points = gt_points = None
    if points:
        pred_points = _unprojected(depth, recon.load("extrinsics", times), recon.load("intrinsics", times))
        gt_points = _unprojected(gt_depth, gt_ext, sample.intrinsics.double().numpy())
    valid = sample.valid.numpy() & (gt_depth > 0)
    if keep is not None:
        valid &= np.stack([np.asarray(keep(t), bool) for t in times])
    return _errors(depth, gt_depth, pred_points, gt_points, valid, rng), gt_ext


def frame_report(
    recon: Reconstruction, truth, in_calibration_frame: bool, units: str, keep: PixelKeep | None = None
) -> FrameReport:
    """:class:`FrameReport` of ``recon`` against the ground truth ``truth`` (a
    :class:`~app.capture.ground_truth.GroundTruth`); unaligned metrics only when ``in_calibration_frame``. The whole
    sequence is every stored timestep once (as the reconstruction serves it, overlaps from their owning window).
    ``keep(t)``: bool ``[N, H, W]``, the pixels of timestep ``t`` evaluated (None: all)."""
    report = FrameReport(units, in_calibration_frame)
    rng = np.random.default_rng(0)
    everything = range(recon.num_timesteps)
    frame = in_calibration_frame
    windows = recon.windows()
    report.windows = [_unaligned(recon, truth, range(*w.span), rng, frame, keep)[0] for w in windows]
    report.sequence, truth_ext = _unaligned(recon, truth, everything, rng, frame, keep)
    stored = recon.load("extrinsics", everything).astype(np.float64)
    report.drift = camera_drift(stored, truth_ext, recon.camera_names)
    return report


def camera_drift(stored: np.ndarray, truth: np.ndarray, camera_names: list[str]) -> list[CameraDrift]:
    """Drift (:class:`CameraDrift`) of each camera whose ground truth ``truth [T, N, 3, 4]`` is static, from the
    stored cameras ``stored [T, N, 3, 4]``."""
    out = []
    for n, name in enumerate(camera_names):
        if np.abs(truth[:, n] - truth[0, n]).max() > STATIC_TOLERANCE * max(1.0, float(np.abs(truth[0, n]).max())):
            continue
        centres = camera_centers(stored[:, n])
        out.append(
            CameraDrift(
                name,
                float(np.linalg.norm(centres - centres[0], axis=-1).max()),
                float(rotation_angle_deg(stored[:, n, :, :3], stored[:1, n, :, :3]).max()),
            )
        )
    return out


def reconstruction_frame(recon: Reconstruction) -> tuple[bool, str]:
    """Whether every window of ``recon`` is in its calibration's frame (``--cameras calibrated``), and the units of
    its lengths."""
    entries = recon.record.alignments()
    calibrated = bool(entries) and all(entry.kind == "calibrated" for entry in entries)
    calibration = recon.record.calibration
    scaled = calibrated or any(entry.metric_scale for entry in entries)
    units = calibration.units if scaled and calibration is not None else "model units"
    return calibrated, "calibration units (arbitrary)" if units == "arbitrary" else units
