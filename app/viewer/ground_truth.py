"""Ground truth next to the prediction in the viewer (``--ground-truth``): the ground-truth cameras and the
ground-truth depth unprojected with them, moved into the reconstruction's frame by the inverse of the Sim(3) the
evaluation fits (:func:`app.reconstruct.evaluate.camera_alignment`).

The ground truth is read through :mod:`app.capture.ground_truth` and brought to the model's pixels by
:func:`app.reconstruct.evaluate.ground_truth_sample` (the run's own crop / pad), one timestep at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.capture.ground_truth import GroundTruth
from app.reconstruct.error_map import surface_error
from app.reconstruct.evaluate import camera_alignment, ground_truth_sample
from app.reconstruct.store import Reconstruction
from vggt_t_mv.npgeometry import Sim3

GT_COLOR = (40, 220, 120)  # the ground truth's frustums: one colour, unlike any camera's (its points: image colours)
GT_MAX_POINTS = 20_000  # per camera and timestep


@dataclass
class GroundTruthTimestep:
    """One timestep's ground truth. In the reconstruction's frame: ``extrinsics [N, 3, 4]``, ``intrinsics [N, 3, 3]``
    (model pixels) and per camera the valid points ``[P_n, 3]`` with their image colours ``uint8 [P_n, 3]`` (the
    reconstruction's images at those pixels). As read (the ground truth's frame and units, for
    :func:`app.reconstruct.error_map.surface_error`): ``gt_extrinsics [N, 3, 4]`` and ``depth [N, H, W]``."""

    extrinsics: np.ndarray
    intrinsics: np.ndarray
    points: list[np.ndarray]
    colors: list[np.ndarray]
    gt_extrinsics: np.ndarray
    depth: np.ndarray


class GroundTruthView:
    """The ground truth of one reconstruction, read per timestep on demand, in the reconstruction's frame by the
    camera alignment over the windows stored so far (:meth:`refresh_alignment` refits it as a live run adds
    windows; :attr:`version` counts the windows it was fitted on, 0 = not aligned yet)."""

    def __init__(self, recon: Reconstruction, gt: GroundTruth, max_points: int = GT_MAX_POINTS) -> None:
        self.recon, self.gt, self.max_points = recon, gt, max_points
        self.to_gt: Sim3 | None = None  # x_gt = s R x_recon + t
        self.from_gt: Sim3 | None = None
        self.version = 0

    def refresh_alignment(self) -> bool:
        """Refit the alignment when more windows are stored than it was fitted on; True when it changed."""
        count = len(self.recon.windows())
        if count == 0 or count == self.version:
            return False
        self.to_gt = camera_alignment(self.recon, self.gt)
        self.from_gt = self.to_gt.inverse()
        self.version = count
        return True

    def timestep(self, t: int) -> GroundTruthTimestep:
        """Timestep ``t``'s ground truth in the reconstruction's frame (needs :attr:`version` > 0)."""
        if self.from_gt is None or self.to_gt is None:
            raise RuntimeError("the ground truth is not aligned yet (no window stored)")
        sample = ground_truth_sample(self.recon, self.gt, range(t, t + 1))
        points, colors = [], []
        rng = np.random.default_rng(t)
        images = np.asarray(self.recon.get("images", t))
        for n in range(self.recon.num_cameras):
            valid = sample.valid[0, n].numpy()
            world = sample.world_points[0, n].double().numpy()[valid]
            rgb = images[n][valid]
            if len(world) > self.max_points:
                chosen = np.sort(rng.choice(len(world), self.max_points, replace=False))
                world, rgb = world[chosen], rgb[chosen]
            points.append(self.from_gt.apply(world).astype(np.float32))
            colors.append(np.ascontiguousarray(rgb, dtype=np.uint8))
        gt_extrinsics = sample.extrinsics[0].double().numpy()
        return GroundTruthTimestep(
            extrinsics=self.from_gt.apply_to_extrinsics(gt_extrinsics),
            intrinsics=sample.intrinsics[0].double().numpy(),
            points=points,
            colors=colors,
            gt_extrinsics=gt_extrinsics,
            depth=sample.depth[0].numpy(),
        )

    def errors(self, truth: GroundTruthTimestep, points: np.ndarray) -> np.ndarray:
        """:func:`~app.reconstruct.error_map.surface_error` of predicted ``points [N, H, W, 3]`` of the timestep
        ``truth`` belongs to (the distance to the ground truth's point of the same pixel, with the alignment the
        ground truth is drawn with): ``[N, H, W]`` in reconstruction units, NaN where unknown."""
        if self.to_gt is None:
            raise RuntimeError("the ground truth is not aligned yet (no window stored)")
        return surface_error(points, self.to_gt, truth.gt_extrinsics, truth.intrinsics, truth.depth)
