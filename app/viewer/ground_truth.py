"""Ground truth next to the prediction in the viewer (``--ground-truth``): the ground-truth cameras and the
ground-truth depth unprojected with them, moved into the reconstruction's frame by the inverse of the Sim(3) the
evaluation fits (:func:`app.reconstruct.evaluate.camera_alignment`).

The ground truth is read through :mod:`app.capture.ground_truth` and brought to the model's pixels by
:func:`app.reconstruct.evaluate.ground_truth_sample` (the run's own crop / pad), one timestep at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.capture.ground_truth import GroundTruth, open_ground_truth
from app.reconstruct.evaluate import camera_alignment, ground_truth_sample
from app.reconstruct.store import Reconstruction
from vggt_t_mv.npgeometry import Sim3

GT_COLOR = (40, 220, 120)  # the ground truth's points and frustums: one colour, unlike any camera's
GT_MAX_POINTS = 20_000  # per camera and timestep


@dataclass
class GroundTruthTimestep:
    """One timestep's ground truth in the reconstruction's frame: ``extrinsics [N, 3, 4]``, ``intrinsics [N, 3, 3]``
    (model pixels) and per camera the valid points ``[P_n, 3]``."""

    extrinsics: np.ndarray
    intrinsics: np.ndarray
    points: list[np.ndarray]


class GroundTruthView:
    """The ground truth of one reconstruction, aligned once, read per timestep on demand."""

    def __init__(self, recon: Reconstruction, gt: GroundTruth, max_points: int = GT_MAX_POINTS) -> None:
        self.recon, self.gt, self.max_points = recon, gt, max_points
        self.to_gt: Sim3 = camera_alignment(recon, gt)  # x_gt = s R x_recon + t
        self.from_gt: Sim3 = self.to_gt.inverse()

    def timestep(self, t: int) -> GroundTruthTimestep:
        sample = ground_truth_sample(self.recon, self.gt, range(t, t + 1))
        points = []
        rng = np.random.default_rng(t)
        for n in range(self.recon.num_cameras):
            valid = sample.valid[0, n].numpy()
            world = sample.world_points[0, n].double().numpy()[valid]
            if len(world) > self.max_points:
                world = world[rng.choice(len(world), self.max_points, replace=False)]
            points.append(self.from_gt.apply(world).astype(np.float32))
        extrinsics = self.from_gt.apply_to_extrinsics(sample.extrinsics[0].double().numpy())
        return GroundTruthTimestep(extrinsics, sample.intrinsics[0].double().numpy(), points)


def ground_truth_view(recon: Reconstruction, path: str | Path) -> GroundTruthView:
    """The :class:`GroundTruthView` of ``recon`` against the ground truth at ``path``
    (:class:`~app.capture.ground_truth.GroundTruthError` naming the file when it does not fit)."""
    return GroundTruthView(recon, open_ground_truth(path))
