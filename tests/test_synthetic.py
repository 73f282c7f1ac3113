"""Procedural rigs (vggt_t_mv.data.synthetic): shapes, determinism, exact geometry, a rigid rig, dynamic masks,
capture folders, and the bundled demo capture assets/demo_rig."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.shared import REPO_ROOT
from vggt_t_mv.data import (
    SyntheticRig,
    SyntheticRigConfig,
    demo_rig_config,
    load_ground_truth,
    make_synthetic_rig,
    write_capture,
)

SMALL = SyntheticRigConfig(num_timesteps=4, num_cameras=3, height=48, width=64, seed=3)
DEMO_DIR = REPO_ROOT / "assets" / "demo_rig"


@pytest.fixture(scope="module")
def rig() -> SyntheticRig:
    return make_synthetic_rig(SMALL)


@pytest.fixture(scope="module")
def static_rig() -> SyntheticRig:
    return make_synthetic_rig(SMALL, rig_motion=False, num_timesteps=6)


def _pixel_grid(height: int, width: int) -> np.ndarray:
    """Homogeneous pixel coordinates ``[H, W, 3]`` (u = column, v = row, no +0.5), float64."""
    v, u = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    return np.stack([u, v, np.ones_like(u)], axis=-1)


def _to_4x4(extrinsics: np.ndarray) -> np.ndarray:
    matrix = np.zeros(extrinsics.shape[:-2] + (4, 4))
    matrix[..., :3, :] = extrinsics
    matrix[..., 3, 3] = 1.0
    return matrix


def test_shapes_dtypes_and_metadata(rig: SyntheticRig) -> None:
    t, n, h, w = SMALL.num_timesteps, SMALL.num_cameras, SMALL.height, SMALL.width
    expected = {
        "images": ((t, n, h, w, 3), np.uint8),
        "depth": ((t, n, h, w), np.float32),
        "valid": ((t, n, h, w), np.bool_),
        "world_points": ((t, n, h, w, 3), np.float32),
        "extrinsics": ((t, n, 3, 4), np.float32),
        "intrinsics": ((t, n, 3, 3), np.float32),
        "dynamic_masks": ((t, n, h, w), np.bool_),
    }
    for name, (shape, dtype) in expected.items():
        array = getattr(rig, name)
        assert array.shape == shape, name
        assert array.dtype == dtype, name
    assert rig.camera_names == ["cam0", "cam1", "cam2"]
    assert (rig.num_timesteps, rig.num_cameras, rig.image_hw) == (t, n, (h, w))
    assert rig.fps == SMALL.fps and rig.seed == SMALL.seed
    assert 5.0 < rig.scene_scale() < 50.0
    # Principal point at the image centre, square pixels (as vggt_t_mv.geometry's pose encoding assumes).
    np.testing.assert_allclose(rig.intrinsics[..., 0, 2], w / 2)
    np.testing.assert_allclose(rig.intrinsics[..., 1, 2], h / 2)
    np.testing.assert_allclose(rig.intrinsics[..., 0, 0], rig.intrinsics[..., 1, 1])


def test_sky_and_scene_pixels(rig: SyntheticRig) -> None:
    assert 0.5 < rig.valid.mean() < 1.0  # mostly scene, some sky above the walls
    assert np.array_equal(rig.valid, rig.depth > 0)
    assert not rig.world_points[~rig.valid].any()
    assert rig.images.std() > 20  # textured, not flat


def test_deterministic_by_seed(rig: SyntheticRig) -> None:
    again = make_synthetic_rig(SMALL)
    for name in ("images", "depth", "valid", "world_points", "extrinsics", "intrinsics", "dynamic_masks"):
        assert np.array_equal(getattr(rig, name), getattr(again, name)), name
    other = make_synthetic_rig(SMALL, seed=SMALL.seed + 1)
    assert not np.array_equal(rig.images, other.images)
    assert not np.array_equal(rig.extrinsics, other.extrinsics)


def test_overrides_and_config_validation() -> None:
    assert make_synthetic_rig(SMALL, num_timesteps=1, num_cameras=2).images.shape[:2] == (1, 2)
    assert SyntheticRigConfig.from_dict(SMALL.to_dict()) == SMALL
    with pytest.raises(ValueError):
        SyntheticRigConfig(num_cameras=0)
    with pytest.raises(ValueError):
        SyntheticRigConfig(rig_radius=10.0)  # outside the room


def test_unprojection_matches_world_points(rig: SyntheticRig) -> None:
    rays = _pixel_grid(*rig.image_hw)
    for t in range(rig.num_timesteps):
        for n in range(rig.num_cameras):
            rotation = rig.extrinsics[t, n, :, :3].astype(np.float64)
            translation = rig.extrinsics[t, n, :, 3].astype(np.float64)
            camera = rig.depth[t, n, ..., None] * (rays @ np.linalg.inv(rig.intrinsics[t, n].astype(np.float64)).T)
            world = (camera - translation) @ rotation  # R^T (X_cam - t)
            valid = rig.valid[t, n]
            np.testing.assert_allclose(rig.world_points[t, n][valid], world[valid], rtol=0, atol=2e-5)


def test_projection_returns_pixels_and_depth(rig: SyntheticRig) -> None:
    rays = _pixel_grid(*rig.image_hw)
    for t in range(rig.num_timesteps):
        for n in range(rig.num_cameras):
            valid = rig.valid[t, n]
            points = rig.world_points[t, n][valid].astype(np.float64)
            camera = points @ rig.extrinsics[t, n, :, :3].astype(np.float64).T + rig.extrinsics[t, n, :, 3]
            pixels = camera @ rig.intrinsics[t, n].astype(np.float64).T
            np.testing.assert_allclose(pixels[:, :2] / pixels[:, 2:], rays[valid][:, :2], rtol=0, atol=1e-3)
            np.testing.assert_allclose(camera[:, 2], rig.depth[t, n][valid], rtol=1e-5)


def test_matches_the_library_geometry(rig: SyntheticRig) -> None:
    """vggt_t_mv.geometry reads the ground truth with the same conventions (unprojection and pose encoding)."""
    import torch

    from vggt_t_mv.geometry import depth_to_world_points, extri_intri_to_pose_encoding, pose_encoding_to_extri_intri

    depth, extrinsics, intrinsics = (torch.from_numpy(a).double() for a in (rig.depth, rig.extrinsics, rig.intrinsics))
    points = depth_to_world_points(depth, extrinsics, intrinsics).numpy()
    np.testing.assert_allclose(points[rig.valid], rig.world_points[rig.valid], atol=2e-5)
    encoding = extri_intri_to_pose_encoding(extrinsics, intrinsics, rig.image_hw)
    extrinsics_back, intrinsics_back = pose_encoding_to_extri_intri(encoding, rig.image_hw)
    np.testing.assert_allclose(extrinsics_back.numpy(), rig.extrinsics, atol=1e-5)
    np.testing.assert_allclose(intrinsics_back.numpy(), rig.intrinsics, atol=1e-4)


def test_world_points_lie_in_the_room(rig: SyntheticRig) -> None:
    points = rig.world_points[rig.valid]
    extent = SMALL.room_half_extent + 0.2 + 1e-3
    assert np.abs(points[:, :2]).max() <= extent
    assert points[:, 2].min() >= -1e-3  # nothing below the ground plane z = 0
    assert np.isclose(points[:, 2], 0.0, atol=1e-3).mean() > 0.2  # and much of the view is ground


def test_views_agree_with_each_other(rig: SyntheticRig) -> None:
    """Camera 0's points, projected into camera 1, land where camera 1 sees the same depth (bar occlusions)."""
    height, width = rig.image_hw
    for t in range(rig.num_timesteps):
        points = rig.world_points[t, 0][rig.valid[t, 0]].astype(np.float64)
        camera = points @ rig.extrinsics[t, 1, :, :3].astype(np.float64).T + rig.extrinsics[t, 1, :, 3]
        pixels = camera @ rig.intrinsics[t, 1].astype(np.float64).T
        u, v = np.round(pixels[:, 0] / pixels[:, 2]).astype(int), np.round(pixels[:, 1] / pixels[:, 2]).astype(int)
        inside = (camera[:, 2] > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
        seen = rig.depth[t, 1][v[inside], u[inside]]
        agree = np.abs(seen - camera[inside, 2]) < 0.03 * camera[inside, 2]
        assert inside.mean() > 0.3 and agree.mean() > 0.8


def test_rig_is_rigid_and_moves(rig: SyntheticRig) -> None:
    poses = _to_4x4(rig.extrinsics.astype(np.float64))  # camera-from-world
    relative = poses @ np.linalg.inv(poses[:, :1])  # camera-k-from-camera-0
    np.testing.assert_allclose(relative, np.broadcast_to(relative[:1], relative.shape), atol=1e-5)
    centres = rig.camera_centers()
    assert np.linalg.norm(centres[-1] - centres[0], axis=-1).min() > 0.05
    # Neighbouring cameras are apart but look at the same region: their optical axes converge.
    forward = rig.extrinsics[0, :, 2, :3]
    assert (forward[:-1] * forward[1:]).sum(-1).min() > np.cos(np.deg2rad(45))


def test_static_cameras(static_rig: SyntheticRig) -> None:
    assert np.array_equal(
        static_rig.extrinsics, np.broadcast_to(static_rig.extrinsics[:1], static_rig.extrinsics.shape)
    )


def test_dynamic_masks_cover_exactly_what_moves(static_rig: SyntheticRig) -> None:
    masks = static_rig.dynamic_masks
    assert masks.any(axis=(2, 3)).mean() > 0.5  # the moving objects are in view in most frames
    assert not (masks & ~static_rig.valid).any()
    # With static cameras, a pixel that sees static scene at t and t+1 sees exactly the same thing.
    static_both = ~masks[1:] & ~masks[:-1]
    assert np.array_equal(static_rig.images[1:][static_both], static_rig.images[:-1][static_both])
    assert np.array_equal(static_rig.depth[1:][static_both], static_rig.depth[:-1][static_both])
    # Where the mask changes, the depth changes somewhere (the objects really move).
    changed = masks[1:] != masks[:-1]
    assert changed.any()
    assert (static_rig.depth[1:][changed] != static_rig.depth[:-1][changed]).mean() > 0.9


def test_no_moving_objects_means_empty_masks() -> None:
    still = make_synthetic_rig(SMALL, num_moving_objects=0, num_timesteps=2)
    assert not still.dynamic_masks.any()


def test_image_capture_round_trip_is_exact(rig: SyntheticRig, tmp_path: Path) -> None:
    folder = write_capture(rig, tmp_path / "capture", fmt="images")
    assert sorted(p.name for p in (folder / "cam0").iterdir()) == [f"{i:06d}.png" for i in range(rig.num_timesteps)]
    assert (folder / "ground_truth.npz").is_file() and (folder / "README.txt").is_file()
    loaded = load_ground_truth(folder)
    for name in ("images", "depth", "valid", "world_points", "extrinsics", "intrinsics", "dynamic_masks"):
        assert np.array_equal(getattr(loaded, name), getattr(rig, name)), name
    assert (loaded.camera_names, loaded.fps, loaded.seed, loaded.config) == (
        rig.camera_names,
        rig.fps,
        rig.seed,
        rig.config,
    )


def test_video_capture_round_trip(rig: SyntheticRig, tmp_path: Path) -> None:
    folder = write_capture(rig, tmp_path / "capture")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.txt",
        "cam0.mp4",
        "cam1.mp4",
        "cam2.mp4",
        "ground_truth.npz",
    ]
    loaded = load_ground_truth(folder)
    assert loaded.images.shape == rig.images.shape
    assert np.abs(loaded.images.astype(np.int16) - rig.images).mean() < 12  # mp4v is lossy
    assert np.array_equal(loaded.depth, rig.depth)
    assert np.array_equal(loaded.world_points, rig.world_points)


def test_uint16_depth_is_millimetre_exact(rig: SyntheticRig, tmp_path: Path) -> None:
    loaded = load_ground_truth(write_capture(rig, tmp_path / "capture", fmt="images", depth_dtype="uint16"))
    assert np.abs(loaded.depth - rig.depth).max() <= 5e-4 + 1e-5
    assert np.array_equal(loaded.valid, rig.valid)
    np.testing.assert_allclose(loaded.world_points, rig.world_points, atol=2e-3)


def test_refuses_non_empty_folder_unless_overwrite(rig: SyntheticRig, tmp_path: Path) -> None:
    folder = tmp_path / "capture"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        write_capture(rig, folder)
    write_capture(rig, folder, fmt="images", overwrite=True)
    write_capture(rig, folder, fmt="video", overwrite=True)  # replaces the image folders by videos
    assert not (folder / "cam0").exists() and (folder / "cam0.mp4").is_file()
    assert (folder / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError):
        write_capture(rig, tmp_path / "other", fmt="gif")


def test_importing_the_package_loads_no_open3d_or_cv2() -> None:
    code = (
        "import sys, vggt_t_mv, vggt_t_mv.data; "
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {'open3d', 'cv2'})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert result.stdout.strip() == ""


def _video_frames(path: Path) -> tuple[int, tuple[int, int]]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    count, shape = 0, None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count, shape = count + 1, frame.shape[:2]
    capture.release()
    return count, shape


def test_demo_rig_asset_is_complete_and_reproducible() -> None:
    config = demo_rig_config()
    assert sorted(p.name for p in DEMO_DIR.iterdir()) == [
        "README.txt",
        "cam0.mp4",
        "cam1.mp4",
        "cam2.mp4",
        "cam3.mp4",
        "ground_truth.npz",
    ]
    assert sum(p.stat().st_size for p in DEMO_DIR.iterdir()) < 5e6
    for n in range(config.num_cameras):
        assert _video_frames(DEMO_DIR / f"cam{n}.mp4") == (config.num_timesteps, (config.height, config.width))
    with np.load(DEMO_DIR / "ground_truth.npz") as data:
        stored = {key: data[key] for key in ("depth", "depth_scale", "extrinsics", "intrinsics", "dynamic_masks")}
        assert [str(name) for name in data["camera_names"]] == ["cam0", "cam1", "cam2", "cam3"]
    # The asset was rendered by open3d's ray caster; the numpy one renders its first timesteps again (motion is a
    # function of time, so a shorter rig is a prefix of the longer one).
    first = 4
    fresh = make_synthetic_rig(config, num_timesteps=first)
    np.testing.assert_allclose(stored["extrinsics"][:first], fresh.extrinsics, atol=1e-6)
    np.testing.assert_allclose(stored["intrinsics"][:first], fresh.intrinsics, atol=1e-6)
    # Depth is stored in whole millimetres (rounding of a depth within 1e-5 m of a half millimetre may differ).
    depth_error = np.abs(stored["depth"][:first] * stored["depth_scale"] - fresh.depth)
    assert depth_error.max() <= 5.1e-4
    assert (stored["depth"][:first] > 0).tolist() == (fresh.depth > 0).tolist()
    assert (stored["dynamic_masks"][:first] == fresh.dynamic_masks).mean() > 0.9999
    assert load_ground_truth(DEMO_DIR).config == config
