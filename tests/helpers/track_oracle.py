"""An oracle in place of the model for the track tests: true 2D tracks, visibility, depth and cameras of a
synthetic rig (ray cast at sub-pixel positions, rigid motion of its objects)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from vggt_t_mv.data.synthetic import SceneMotion, SyntheticRig, scene_motion
from vggt_t_mv.data.synthetic_tracks import exact_depth, ground_truth_tracks, ground_truth_visibility
from vggt_t_mv.npgeometry import project_points, unproject_pixels
from vggt_t_mv.tracks import View2D, WindowGeometry


class OracleTracker:
    """The true 2D tracks of one camera within window ``span``; ``corrupt(camera, pixels) -> pixels`` may spoil
    what a camera reports."""

    def __init__(
        self,
        rig: SyntheticRig,
        motion: SceneMotion,
        span: tuple[int, int],
        corrupt: Callable[[int, np.ndarray], np.ndarray] | None = None,
    ) -> None:
        self.rig, self.motion, self.span, self.corrupt = rig, motion, span, corrupt
        self.extrinsics = rig.extrinsics.astype(np.float64)
        self.intrinsics = rig.intrinsics.astype(np.float64)

    def track(self, camera: int, start: int, pixels: np.ndarray) -> View2D:
        first, end = self.span[0] + start, self.span[1]
        extrinsics, intrinsics = self.extrinsics[:, camera], self.intrinsics[:, camera]
        depth, valid = exact_depth(self.motion, first, extrinsics[first], intrinsics[first], pixels)
        assert valid.all(), "the pipeline asked to track a pixel that sees nothing"
        origin = unproject_pixels(pixels, depth, extrinsics[first], intrinsics[first])
        queries = np.concatenate([np.full((len(origin), 1), first), origin], axis=1)
        points = ground_truth_tracks(self.motion, queries, end)[:, first:end]  # [M, S, 3]
        tracked = np.stack(
            [project_points(points[:, s], extrinsics[first + s], intrinsics[first + s])[0] for s in range(end - first)]
        )
        visible = ground_truth_visibility(
            self.motion,
            points,
            extrinsics[first:end, None],
            intrinsics[first:end, None],
            self.rig.image_hw,
            first_timestep=first,
        )[..., 0].T.astype(np.float64)
        if self.corrupt is not None:
            tracked = self.corrupt(camera, tracked)
        return View2D(tracked, visible, np.ones_like(visible))


def oracle_windows(
    rig: SyntheticRig,
    spans: list[tuple[int, int]],
    corrupt: Callable[[int, np.ndarray], np.ndarray] | None = None,
) -> Iterator[tuple[WindowGeometry, OracleTracker]]:
    """Windows over ``spans`` with the rig's true cameras and exact (ray-cast) depth, tracked by the oracle."""
    motion = scene_motion(rig.config)
    extrinsics, intrinsics = rig.extrinsics.astype(np.float64), rig.intrinsics.astype(np.float64)
    for begin, end in spans:

        def depth_at(frame: int, camera: int, pixels: np.ndarray, begin: int = begin) -> tuple[np.ndarray, np.ndarray]:
            t = begin + frame
            return exact_depth(motion, t, extrinsics[t, camera], intrinsics[t, camera], pixels)

        geometry = WindowGeometry((begin, end), extrinsics[begin:end], intrinsics[begin:end], rig.image_hw, depth_at)
        yield geometry, OracleTracker(rig, motion, (begin, end), corrupt)


def surface_queries(rig: SyntheticRig, camera: int, timestep: int, pixels: np.ndarray) -> np.ndarray:
    """3D queries ``[M, 4]`` (t, x, y, z): the surface points camera ``camera`` sees at integer ``pixels [M, 2]``
    (exact float64 depth)."""
    motion = scene_motion(rig.config)
    extrinsics = rig.extrinsics[timestep, camera].astype(np.float64)
    intrinsics = rig.intrinsics[timestep, camera].astype(np.float64)
    depth, valid = exact_depth(motion, timestep, extrinsics, intrinsics, pixels)
    points = unproject_pixels(pixels[valid], depth[valid], extrinsics, intrinsics)
    return np.concatenate([np.full((len(points), 1), float(timestep)), points], axis=1)
