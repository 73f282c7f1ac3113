"""Reconstruction format 2 (issue 16): what is stored, at which precision every array reads back, the pose stream
derived on read; and format 1 reconstructions (tests/fixtures/recon_v1) opening, viewing and exporting unchanged."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from app.export.api import ExportOptions, export_reconstruction
from app.export.selection import Selection
from app.reconstruct.pipeline import prepare_output
from app.reconstruct.store import (
    ARRAY_NAMES,
    DERIVED_ARRAYS,
    FORMAT_VERSION,
    Reconstruction,
    ReconstructionError,
    derive_world_points,
)
from app.viewer.data import CloudSettings, filter_timestep
from vggt_t_mv.geometry import depth_to_world_points
from vggt_t_mv.npgeometry import Sim3

FIXTURES = Path(__file__).resolve().parent / "fixtures"
T, N, H, W = 3, 2, 6, 8


def computed_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Float32 arrays as the pipeline computes them for one window ``[T, N, ...]`` (confidences span 1..1e6, so
    some exceed float16's range)."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-0.3, 0.3, (T, N))
    rotation = np.zeros((T, N, 3, 3))
    rotation[..., 0, 0], rotation[..., 0, 2] = np.cos(angle), np.sin(angle)
    rotation[..., 2, 0], rotation[..., 2, 2] = -np.sin(angle), np.cos(angle)
    rotation[..., 1, 1] = 1.0
    extrinsics = np.concatenate([rotation, rng.normal(0, 1, (T, N, 3, 1))], -1).astype(np.float32)
    intrinsics = np.broadcast_to(np.array([[7.0, 0, 4.0], [0, 7.0, 3.0], [0, 0, 1]], np.float32), (T, N, 3, 3))
    return {
        "images": rng.integers(0, 256, (T, N, H, W, 3), dtype=np.uint8),
        "depth": rng.uniform(0.5, 40.0, (T, N, H, W)).astype(np.float32),
        "depth_conf": np.exp(rng.uniform(0, np.log(1e6), (T, N, H, W))).astype(np.float32),
        "world_points": rng.normal(0, 30.0, (T, N, H, W, 3)).astype(np.float32),
        "world_points_conf": np.exp(rng.uniform(0, np.log(1e6), (T, N, H, W))).astype(np.float32),
        "extrinsics": extrinsics,
        "intrinsics": intrinsics.copy(),
        "dynamic_mask": rng.uniform(0, 1, (T, N, H, W)).astype(np.float32),
    }


def written(root: Path, arrays: dict[str, np.ndarray]) -> Reconstruction:
    recon = Reconstruction.create(root, {"camera_names": ["a", "b"], "image_hw": [H, W], "spans": [[0, T]]})
    recon.write_window(0, arrays, {"alignment": {"kind": "test"}})
    return Reconstruction.open(root)


def confidence_tolerance(expected: np.ndarray, actual: np.ndarray) -> None:
    """float16 storage: relative error <= 2**-11 below 65504, saturation at 65504 above."""
    limit = np.float32(65504.0)
    below = expected <= limit
    np.testing.assert_array_less(np.abs(actual[below] - expected[below]), expected[below] * 2.0**-11 + 1e-30)
    assert np.all(actual[~below] == limit) and (~below).any() and np.isfinite(actual).all()


# precision documented in app/reconstruct/store.py, one check per array
CHECKS = {
    "images": lambda expected, actual: np.testing.assert_array_equal(actual, expected),
    "depth": lambda expected, actual: np.testing.assert_array_equal(actual, expected),
    "depth_conf": confidence_tolerance,
    "world_points": lambda expected, actual: np.testing.assert_array_equal(actual, expected),
    "world_points_conf": confidence_tolerance,
    "extrinsics": lambda expected, actual: np.testing.assert_array_equal(actual, expected),
    "intrinsics": lambda expected, actual: np.testing.assert_array_equal(actual, expected),
    "dynamic_mask": lambda expected, actual: np.testing.assert_array_less(np.abs(actual - expected), 2.0**-12 + 1e-9),
}
DISK_DTYPES = {
    "images": np.uint8,
    "depth": np.float32,
    "depth_conf": np.float16,
    "world_points": np.float32,
    "world_points_conf": np.float16,
    "extrinsics": np.float32,
    "intrinsics": np.float32,
    "dynamic_mask": np.float16,
}


def test_every_array_has_a_documented_precision() -> None:
    assert set(CHECKS) | set(DERIVED_ARRAYS) == set(ARRAY_NAMES)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_stored_array_round_trips_to_its_documented_precision(tmp_path: Path, name: str) -> None:
    arrays = computed_arrays()
    recon = written(tmp_path / "r", arrays)
    on_disk = np.load(tmp_path / "r" / "windows" / "00000" / f"{name}.npy", mmap_mode="r")
    assert on_disk.dtype == DISK_DTYPES[name]
    CHECKS[name](arrays[name], np.asarray(recon.load(name), np.float64 if name != "images" else np.uint8))
    CHECKS[name](arrays[name][1], np.asarray(recon.get(name, 1), np.float64 if name != "images" else np.uint8))


def test_pose_stream_points_are_derived_on_read_not_stored(tmp_path: Path) -> None:
    arrays = computed_arrays()
    recon = written(tmp_path / "r", arrays)
    assert not (tmp_path / "r" / "windows" / "00000" / "world_points_from_depth.npy").exists()
    assert recon.has("world_points_from_depth") and "world_points_from_depth" in recon.array_names()
    expected = depth_to_world_points(*(torch.from_numpy(arrays[k]) for k in ("depth", "extrinsics", "intrinsics")))
    np.testing.assert_array_equal(recon.load("world_points_from_depth"), expected.numpy())
    np.testing.assert_array_equal(recon.get("world_points_from_depth", 2), expected.numpy()[2])
    np.testing.assert_array_equal(recon.window_arrays(0)["world_points_from_depth"], expected.numpy())
    points, conf = recon.stream(1, "pose")
    np.testing.assert_array_equal(points, expected.numpy()[1])
    np.testing.assert_array_equal(conf, recon.get("depth_conf", 1))


def test_derived_points_match_format_1s_unproject_then_move_order() -> None:
    """Format 1 unprojected in the window's frame, then applied the window's Sim(3); format 2 derives from the moved
    depth and cameras: the same points up to float32 rounding (1e-5 of the scene's extent)."""
    arrays = computed_arrays()
    sim3 = Sim3(1.7, Sim3.identity().rotation @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]]), np.array([3.0, -2, 5]))
    before = derive_world_points(arrays["depth"], arrays["extrinsics"], arrays["intrinsics"])
    format_1 = sim3.apply(before)
    moved_depth = arrays["depth"] * np.float32(sim3.scale)
    format_2 = derive_world_points(moved_depth, sim3.apply_to_extrinsics(arrays["extrinsics"]), arrays["intrinsics"])
    extent = float(np.abs(format_1).max())
    np.testing.assert_allclose(format_2, format_1, rtol=0, atol=1e-5 * extent)


def test_derived_array_cannot_be_written(tmp_path: Path) -> None:
    arrays = computed_arrays()
    arrays["world_points_from_depth"] = np.zeros((T, N, H, W, 3), np.float32)
    recon = Reconstruction.create(tmp_path / "r", {"camera_names": ["a", "b"], "image_hw": [H, W], "spans": [[0, T]]})
    with pytest.raises(ValueError, match="world_points_from_depth is derived on read"):
        recon.write_window(0, arrays, {})
    assert recon.num_timesteps == 0 and FORMAT_VERSION == 2


# ------------------------------------------------------------------------------------------------ format 1
def digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(array.tobytes()).hexdigest()[:16] + f" {array.dtype} {list(array.shape)}"


@pytest.fixture()
def recon_v1(tmp_path: Path) -> Reconstruction:
    shutil.copytree(FIXTURES / "recon_v1", tmp_path / "recon_v1")
    return Reconstruction.open(tmp_path / "recon_v1")


def test_format_1_reads_every_stored_array_as_written(recon_v1: Reconstruction) -> None:
    assert recon_v1.format_version == 1 and recon_v1.num_timesteps == 3 and recon_v1.is_complete
    assert recon_v1.array_names() == list(ARRAY_NAMES)
    owned = [(0, 0, 2), (1, 1, 2)]  # (window, first local index, end local index) by the merge rule
    for name in ARRAY_NAMES:
        parts = [np.load(recon_v1.root / "windows" / f"{w:05d}" / f"{name}.npy")[start:end] for w, start, end in owned]
        np.testing.assert_array_equal(recon_v1.load(name), np.concatenate(parts), err_msg=name)
    # the pose stream is the stored file (format 1), not a derivation
    stored = np.load(recon_v1.root / "windows" / "00000" / "world_points_from_depth.npy")[0]
    assert recon_v1.get("world_points_from_depth", 0).dtype == np.float32
    np.testing.assert_array_equal(recon_v1.stream(0, "pose")[0], stored)


def test_format_1_views_and_exports_unchanged(recon_v1: Reconstruction, tmp_path: Path) -> None:
    """The viewer's clouds and the ply / npz exports are bit for bit what the format-1 code produced
    (tests/fixtures/README.md)."""
    plyfile = pytest.importorskip("plyfile")
    expected = json.loads((FIXTURES / "recon_v1_expected.json").read_text())
    found = {}
    for stream in ("geo", "pose"):
        for t in range(recon_v1.num_timesteps):
            cloud = filter_timestep(recon_v1, t, stream, CloudSettings(conf_percentile=10.0))
            cameras = [np.concatenate([c.static_points, c.dynamic_points]) for c in cloud.cameras]
            found[f"view {stream} t={t}"] = digest(np.concatenate(cameras))
        merged = ExportOptions(merge=True)
        everything = Selection(stream=stream, conf_percentile=0.0)  # the digests were taken with every valid pixel
        (ply,) = export_reconstruction(recon_v1, "ply", everything, tmp_path / f"{stream}.ply", merged)
        vertex = plyfile.PlyData.read(str(ply))["vertex"].data
        found[f"ply {stream}"] = digest(np.stack([vertex[k].astype(np.float64) for k in vertex.dtype.names], -1))
        (npz,) = export_reconstruction(recon_v1, "npz", everything, tmp_path / f"{stream}.npz", merged)
        with np.load(npz) as data:
            found.update({f"npz {stream} {key}": digest(data[key]) for key in data.files})
    assert found == expected


def test_format_1_is_not_resumed_or_written(recon_v1: Reconstruction) -> None:
    with pytest.raises(ReconstructionError, match="format version 1.*--overwrite"):
        prepare_output(recon_v1.root, recon_v1.meta, resume=True, overwrite=False)
    with pytest.raises(ReconstructionError, match="writes version 2 only"):
        recon_v1.replace_arrays(0, {"depth": np.zeros((2, 4, 14, 28), np.float32)})
