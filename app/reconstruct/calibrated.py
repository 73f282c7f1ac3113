"""Known-camera mode (``--cameras calibrated``): every window is moved into the calibration's frame on its own.

For window ``w`` with predicted cameras ``P [Tw, N, 3, 4]`` (the window's own frame) and the calibration's cameras
``C [Tw, N, 3, 4]`` at the same frames, one robust Sim(3) ``S`` (:func:`vggt_t_mv.npgeometry.robust_sim3`) maps the
predicted world to the calibrated one. It is fitted on the cameras' poses: each camera's centre plus three points
along its x, y and z axes at a distance of ``AXIS_LENGTH`` times the calibrated rig's camera spacing (in the
predicted frame: that length over a first scale estimate from the centres alone), so the orientations count as much
as the positions and two cameras already fix the rotation. Then:

* the stored extrinsics ARE ``C`` and the stored intrinsics the calibration's ``K`` through the run's crop / pad /
  resize transform (the frames were undistorted first, so ``K`` is their pinhole camera);
* the depth is scaled by ``s`` (the calibration's units); the pose stream's points, derived on read from depth and
  cameras, are the scaled depth unprojected with the calibrated cameras;
* the geo stream's point map is moved by ``S``.

No window depends on another (no chained alignment, hence no drift, and resuming or splitting windows over GPUs
needs nothing from a neighbour). The agreement report says, per camera, how far the predicted camera moved by ``S``
is from the calibrated one (rotation in degrees, centre distance in calibration units); a camera beyond
:data:`AGREEMENT_LIMITS` flags the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from app.common.vocab import LengthUnit
from vggt_t_mv.npgeometry import Sim3, Sim3Fit, camera_centers, robust_sim3, rotation_angle_deg

AXIS_LENGTH = 0.5  # axis points sit this many rig spacings from each camera centre
ROTATION_LIMIT_DEG = 5.0  # a camera whose predicted orientation is further off flags its window
CENTER_LIMIT = 0.1  # ... or whose predicted centre is further off than this fraction of the rig's camera spacing
MIN_SPACING = 1e-9  # cameras closer than this (relative to their distance from the origin + 1) are co-located


@dataclass(frozen=True)
class CameraAgreement:
    """One camera of one window after the Sim(3): mean rotation error (degrees) and mean centre error (calibration
    units) over the window's timesteps, and whether either is beyond the limits."""

    name: str
    rotation_error_deg: float
    center_error: float
    flagged: bool


@dataclass
class Agreement:
    """End-of-run summary of the calibrated windows (``--cameras calibrated``): how far the model's cameras were from
    the calibration after each window's Sim(3) (rotation in degrees, centre in ``units``) and the flagged windows."""

    windows: int
    rotation_error_deg_max: float
    rotation_error_deg_median: float
    center_error_max: float
    center_error_median: float
    flagged_windows: list[int]
    units: LengthUnit


@dataclass(frozen=True)
class CalibratedFit:
    """The Sim(3) of one window from its predicted frame to the calibration's, its fit statistics and the agreement
    of each camera."""

    fit: Sim3Fit
    cameras: list[CameraAgreement]
    spacing: float  # the calibrated rig's camera spacing (calibration units), the scale of the centre limit

    @property
    def sim3(self) -> Sim3:
        return self.fit.sim3

    @property
    def flagged(self) -> bool:
        return any(c.flagged for c in self.cameras)


def rig_spacing(extrinsics: np.ndarray) -> float:
    """Median distance between the cameras' centres at each timestep, median over timesteps; ``extrinsics [T, N, 3,
    4]``. 0 for one camera or co-located cameras."""
    centres = camera_centers(np.asarray(extrinsics, np.float64))  # [T, N, 3]
    count = centres.shape[1]
    if count < 2:
        return 0.0
    upper = np.triu_indices(count, 1)
    distances = np.linalg.norm(centres[:, :, None] - centres[:, None], axis=-1)[:, upper[0], upper[1]]
    return float(np.median(distances))


def has_baseline(extrinsics: np.ndarray) -> bool:
    """Whether cameras ``[T, N, 3, 4]`` (or ``[N, 3, 4]``) have a baseline to fit a scale on: at least 2 cameras
    that are not all at one place."""
    extrinsics = np.asarray(extrinsics, np.float64)
    if extrinsics.ndim == 3:
        extrinsics = extrinsics[None]
    if extrinsics.shape[1] < 2:
        return False
    reach = float(np.abs(camera_centers(extrinsics)).max()) + 1.0
    return rig_spacing(extrinsics) > MIN_SPACING * reach


def pose_points(extrinsics: np.ndarray, length: float) -> np.ndarray:
    """Each camera's centre and the three points ``length`` along its x, y, z axes: ``[M * 4, 3]`` for
    ``extrinsics [..., 3, 4]`` (M cameras); the axes in world coordinates are the rows of ``R``."""
    extrinsics = np.asarray(extrinsics, np.float64).reshape(-1, 3, 4)
    centres = camera_centers(extrinsics)  # [M, 3]
    axes = extrinsics[:, :3, :3]  # row k: camera axis k in world coordinates
    return np.concatenate([centres[:, None], centres[:, None] + length * axes], axis=1).reshape(-1, 3)


def _scale_start(predicted: np.ndarray, calibrated: np.ndarray) -> float:
    """A first estimate of the Sim(3)'s scale, from the camera centres alone: a robust fit with 3 or more cameras (a
    camera the model misplaced does not move it), the ratio of the rig spacings with 2; 1 when the model put every
    camera at one place (then the axis points alone fix the rotation)."""
    spacing_pred = rig_spacing(predicted)
    if not np.isfinite(spacing_pred) or spacing_pred <= MIN_SPACING:
        return 1.0
    if predicted.shape[1] >= 3:
        try:
            scale = robust_sim3(
                camera_centers(predicted).reshape(-1, 3), camera_centers(calibrated).reshape(-1, 3)
            ).sim3.scale
            if np.isfinite(scale) and scale > 0:
                return float(scale)
        except ValueError:
            pass
    return rig_spacing(calibrated) / spacing_pred


def fit_to_calibration(predicted: np.ndarray, calibrated: np.ndarray, camera_names: list[str]) -> CalibratedFit:
    """The robust Sim(3) moving the predicted cameras ``[Tw, N, 3, 4]`` onto the calibrated ones ``[Tw, N, 3, 4]``
    (module docstring) and each camera's agreement after it. ``ValueError`` when the calibration has no baseline."""
    predicted, calibrated = np.asarray(predicted, np.float64), np.asarray(calibrated, np.float64)
    spacing_cal = rig_spacing(calibrated)
    if not has_baseline(calibrated):
        raise ValueError("the calibrated cameras have no baseline (one camera, or all at one place)")
    length = AXIS_LENGTH * spacing_cal
    fit = robust_sim3(
        pose_points(predicted, length / _scale_start(predicted, calibrated)), pose_points(calibrated, length)
    )
    moved = fit.sim3.apply_to_extrinsics(predicted)
    rotation_error = rotation_angle_deg(moved[..., :3], calibrated[..., :3])  # [Tw, N]
    center_error = np.linalg.norm(camera_centers(moved) - camera_centers(calibrated), axis=-1)  # [Tw, N]
    cameras = []
    for n, name in enumerate(camera_names):
        rotation, centre = float(rotation_error[:, n].mean()), float(center_error[:, n].mean())
        flagged = rotation > ROTATION_LIMIT_DEG or centre > CENTER_LIMIT * spacing_cal
        cameras.append(CameraAgreement(name, rotation, centre, flagged))
    return CalibratedFit(fit, cameras, spacing_cal)


def calibrated_arrays(
    arrays: dict[str, np.ndarray], sim3: Sim3, extrinsics: np.ndarray, intrinsics: np.ndarray
) -> dict[str, np.ndarray]:
    """A window's arrays in the calibration's frame (new dict; inputs untouched): ``extrinsics [Tw, N, 3, 4]`` and
    ``intrinsics [N, 3, 3]`` (model resolution) are the calibration's, depth scaled by ``s``, the point map moved by
    the Sim(3)."""
    out = dict(arrays)
    out["world_points"] = sim3.apply(arrays["world_points"])
    out["depth"] = arrays["depth"] * np.float32(sim3.scale)
    out["extrinsics"] = np.asarray(extrinsics, np.float32)
    out["intrinsics"] = np.broadcast_to(np.asarray(intrinsics, np.float32), arrays["intrinsics"].shape).copy()
    return out


class WindowAgreement(Protocol):
    """What the summary reads of a window's alignment (:class:`app.reconstruct.record.Alignment`): its ``kind``,
    and for a ``calibrated`` window the ``units``, whether it was ``flagged`` and each camera's agreement."""

    @property
    def kind(self) -> str | None: ...

    @property
    def units(self) -> LengthUnit | None: ...

    @property
    def flagged(self) -> bool | None: ...

    @property
    def cameras(self) -> list[CameraAgreement] | None: ...


def agreement_summary(alignments: Sequence[WindowAgreement]) -> Agreement | None:
    """The end-of-run summary of the calibrated windows among ``alignments`` (one per window, in order): worst and
    median rotation / centre error and the flagged windows (their positions in ``alignments``); None when no window
    is calibrated."""
    calibrated = [(i, a) for i, a in enumerate(alignments) if a.kind == "calibrated"]
    if not calibrated:
        return None
    cameras = [c for _, a in calibrated for c in a.cameras or []]
    return Agreement(
        windows=len(calibrated),
        rotation_error_deg_max=max(c.rotation_error_deg for c in cameras),
        rotation_error_deg_median=float(np.median([c.rotation_error_deg for c in cameras])),
        center_error_max=max(c.center_error for c in cameras),
        center_error_median=float(np.median([c.center_error for c in cameras])),
        flagged_windows=[i for i, a in calibrated if a.flagged],
        units=calibrated[0][1].units or "arbitrary",
    )


def agreement_status(alignments: Sequence[WindowAgreement]) -> str:
    """One line for the viewer: the calibrated windows so far and the flagged ones ('' when none is calibrated)."""
    summary = agreement_summary(alignments)
    if summary is None:
        return ""
    units = "units" if summary.units == "arbitrary" else summary.units
    line = (
        f"cameras: the calibration's ({summary.windows} windows); model vs calibration: rotation max "
        f"{summary.rotation_error_deg_max:.1f} deg, centre max {summary.center_error_max:.3g} {units}"
    )
    flagged = summary.flagged_windows
    return line + (f" · **flagged windows {flagged}**" if flagged else "")
