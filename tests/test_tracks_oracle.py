"""4D tracks with the model replaced by an oracle (true 2D tracks, depth and cameras of a synthetic rig): lifting,
fusion and chaining across windows are exact; one wrong camera does not move a fused point; a hidden point is
marked occluded."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers.track_oracle import oracle_windows, surface_queries
from vggt_t_mv.data.synthetic import make_synthetic_rig, scene_motion
from vggt_t_mv.data.synthetic_tracks import ground_truth_tracks, ground_truth_visibility
from vggt_t_mv.tracks import Queries, TrackConfig, fuse_views, sample_depth, track_windows

SPANS = [(0, 3), (2, 5), (4, 7)]  # three windows, overlap 1
EXACT = TrackConfig(depth_tolerance=1e-6)  # exact depth: "the same surface" down to rounding


@pytest.fixture(scope="module")
def rig():
    return make_synthetic_rig(num_timesteps=7, num_cameras=4, height=48, width=64, seed=0)


def _grid_queries(rig) -> np.ndarray:
    v, u = np.mgrid[4:44:6, 4:60:6]
    pixels = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)
    queries = surface_queries(rig, 0, 0, pixels)
    # every third query starts at timestep 3 (mid-window), from where its point is then
    later = ground_truth_tracks(scene_motion(rig.config), queries[::3], rig.num_timesteps)[:, 3]
    queries[::3] = np.concatenate([np.full((len(later), 1), 3.0), later], axis=1)
    return queries


def _truth(rig, queries):
    motion = scene_motion(rig.config)
    points = ground_truth_tracks(motion, queries, rig.num_timesteps)
    seen = ground_truth_visibility(motion, points, rig.extrinsics, rig.intrinsics, rig.image_hw)
    started = np.arange(rig.num_timesteps)[None] >= queries[:, :1]
    return points, seen.any(-1) & started


def test_oracle_tracks_are_exact_across_windows(rig):
    queries = _grid_queries(rig)
    tracks = track_windows(Queries(queries, "3d"), oracle_windows(rig, SPANS), 7, 4, EXACT)
    points, visible = _truth(rig, queries)
    assert tracks.points.shape == (len(queries), 7, 3) and tracks.visible.shape == (len(queries), 7)
    np.testing.assert_array_equal(tracks.visible, visible)
    assert visible.sum() > 0.8 * (np.arange(7)[None] >= queries[:, :1]).sum()  # most points are seen: a real test
    assert (queries[:, 0] == 3).any() and scene_motion(rig.config).moving.any()
    error = np.linalg.norm(tracks.points - points, axis=-1)[visible]
    assert error.max() < 1e-9, error.max()
    # the per-camera 2D tracks at a 3D query's timestep are its projections
    first = np.flatnonzero(queries[:, 0] == 0)[0]
    from vggt_t_mv.npgeometry import project_points

    expected, _ = project_points(queries[first, 1:][None], rig.extrinsics[0, 0], rig.intrinsics[0, 0])
    np.testing.assert_allclose(tracks.pixels[first, 0, 0], expected[0], atol=1e-9)


def test_oracle_2d_queries_match_their_3d_points(rig):
    pixels = np.array([[10.0, 20.0], [30.0, 30.0], [50.0, 12.0]])
    as_3d = surface_queries(rig, 1, 0, pixels)
    as_2d = np.concatenate([np.zeros((3, 1)), np.ones((3, 1)), pixels], axis=1)
    tracks = track_windows(Queries(as_2d, "2d"), oracle_windows(rig, SPANS), 7, 4, EXACT)
    points, visible = _truth(rig, as_3d)
    np.testing.assert_array_equal(tracks.visible, visible)
    assert np.linalg.norm(tracks.points - points, axis=-1)[visible].max() < 1e-9


def test_one_wrong_camera_leaves_the_fused_point(rig):
    queries = _grid_queries(rig)
    queries = queries[queries[:, 0] == 0]

    def corrupt(camera: int, tracked: np.ndarray) -> np.ndarray:
        if camera != 1:
            return tracked
        spoiled = tracked.copy()
        spoiled[1:, 0] += 6.0  # query 0's track in camera 1 is off by 6 px after its first frame
        return spoiled

    tracks = track_windows(Queries(queries, "3d"), oracle_windows(rig, SPANS[:1], corrupt), 7, 4, EXACT)
    points, visible = _truth(rig, queries)
    assert tracks.view_visibility[0, 1:3].sum(-1).min() >= 3  # seen by >= 3 cameras, camera 1 among them
    assert tracks.view_visibility[0, 1:3, 1].min() == 1
    np.testing.assert_allclose(tracks.points[0, :3], points[0, :3], atol=1e-9)
    # without the robust step, the wrong view would pull the mean away
    lifted = np.stack([points[0, 1], points[0, 1], points[0, 1], points[0, 1] + [0.5, 0, 0]])[:, None]
    fused, inliers = fuse_views(lifted, np.ones((4, 1)), 0.01)
    np.testing.assert_allclose(fused[0], points[0, 1], atol=1e-12)
    assert inliers[:, 0].tolist() == [True, True, True, False]


def test_a_point_hidden_behind_an_object_is_occluded(rig):
    # floor / wall points seen at t=0 by every camera; find one a moving object hides from all of them later
    v, u = np.mgrid[2:46:2, 2:62:2]
    pixels = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float64)
    queries = surface_queries(rig, 0, 0, pixels)
    points, visible = _truth(rig, queries)
    hidden = np.flatnonzero(visible[:, 0] & ~visible[:, 1:3].all(1))
    assert len(hidden), "the rig has no point hidden at timesteps 1-2; pick another seed"
    chosen = queries[hidden[:5]]
    tracks = track_windows(Queries(chosen, "3d"), oracle_windows(rig, SPANS[:1]), 7, 4, EXACT)
    truth_points, truth_visible = _truth(rig, chosen)
    np.testing.assert_array_equal(tracks.visible[:, :3], truth_visible[:, :3])
    assert (~tracks.visible[:, 1:3]).any()
    # occluded: the last seen position is kept
    for q, t in zip(*np.nonzero(~tracks.visible[:, :3]), strict=True):
        last = max(s for s in range(t) if tracks.visible[q, s])
        np.testing.assert_array_equal(tracks.points[q, t], tracks.points[q, last])


def test_sample_depth_is_bilinear_and_refuses_holes():
    depth = np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 5.0]])
    values, valid = sample_depth(depth, np.array([[0.5, 0.5], [1.0, 1.0], [1.5, 0.5], [2.0, 1.0], [-0.1, 0.0]]))
    assert valid.tolist() == [True, True, False, True, False]
    np.testing.assert_allclose(values[valid], [2.5, 4.0, 5.0])
