"""Fixtures for the export tests (no tests here): small reconstructions with known cameras and geometry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from app.reconstruct.store import Reconstruction
from vggt_t_mv.data.synthetic import SyntheticRig, SyntheticRigConfig, make_synthetic_rig
from vggt_t_mv.geometry import depth_to_world_points

GEO_STREAM_OFFSET = np.array([0.01, 0.0, 0.0], dtype=np.float32)  # makes the two streams distinguishable


def small_rig() -> SyntheticRig:
    """3 timesteps x 2 cameras of 24 x 32 pixels, moving objects included."""
    config = SyntheticRigConfig(num_timesteps=3, num_cameras=2, height=24, width=32, seed=3, camera_spacing_deg=30.0)
    return make_synthetic_rig(config)


def rig_arrays(rig: SyntheticRig) -> dict[str, np.ndarray]:
    """Reconstruction arrays from a synthetic rig: the exact geometry, seeded random confidences (float16 values, as
    stored), and a dynamic probability of 0.9 on moving pixels and 0.1 elsewhere. The pose stream is derived on
    read from depth and cameras (:func:`app.reconstruct.store.derive_world_points`)."""
    rng = np.random.default_rng(0)
    shape = rig.depth.shape
    return {
        "images": rig.images,
        "depth": rig.depth,
        "depth_conf": (1.0 + rng.random(shape)).astype(np.float16).astype(np.float32),
        "world_points": rig.world_points,
        "world_points_conf": (1.0 + 4.0 * rng.random(shape)).astype(np.float16).astype(np.float32),
        "extrinsics": rig.extrinsics,
        "intrinsics": rig.intrinsics,
        "dynamic_mask": np.where(rig.dynamic_masks, 0.9, 0.1).astype(np.float16),
    }


def write_recon(
    root: Path, arrays: dict[str, np.ndarray], camera_names: list[str], format_version: int = 2
) -> Reconstruction:
    """One-window reconstruction holding ``arrays`` (``[T, N, ...]`` each). Format 2 by default: it stores depth
    and points as given (float32), so the export tests check their geometry against ``arrays`` exactly; format 3's
    read-back precision, and exports of format 3 against format 2, are ``tests/test_store_format.py``'s."""
    num_timesteps, _, height, width = arrays["depth"].shape
    meta = {"camera_names": camera_names, "image_hw": [height, width], "spans": [[0, num_timesteps]]}
    recon = Reconstruction.create(root, meta, format_version=format_version)
    recon.write_window(0, arrays, {"alignment": {"kind": "test"}})
    return Reconstruction.open(root)


def single_camera_recon(root: Path, depth: np.ndarray, intrinsics: np.ndarray, extrinsics: np.ndarray):
    """A 1-timestep, 1-camera reconstruction of ``depth [H, W]`` (both streams = its exact unprojection)."""
    height, width = depth.shape
    points = depth_to_world_points(
        torch.from_numpy(depth).double(), torch.from_numpy(extrinsics).double(), torch.from_numpy(intrinsics).double()
    ).numpy()
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    images = np.stack([u * 255 // max(width - 1, 1), v * 255 // max(height - 1, 1), np.full_like(u, 128)], -1)
    arrays = {
        "images": images.astype(np.uint8)[None, None],
        "depth": depth[None, None],
        "depth_conf": np.ones((1, 1, height, width), np.float32),
        "world_points": points[None, None],
        "world_points_conf": np.ones((1, 1, height, width), np.float32),
        "extrinsics": extrinsics[None, None],
        "intrinsics": intrinsics[None, None],
    }
    return write_recon(root, arrays, ["cam0"])


def pinhole(height: int, width: int, focal: float) -> np.ndarray:
    """Intrinsics with the principal point at the image centre ``(W / 2, H / 2)``."""
    return np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=np.float64)


def plane_depth(intrinsics: np.ndarray, height: int, width: int, normal: np.ndarray, offset: float) -> np.ndarray:
    """Z-depth of the plane ``normal . X = offset`` (camera coordinates) seen through pixel indices ``(u, v)``."""
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(intrinsics).T  # z = 1
    return (offset / (rays @ normal)).astype(np.float32)


def quad_area(corners: np.ndarray) -> float:
    """Area of a planar quadrilateral ``[4, 3]`` given in order."""
    a, b, c, d = corners
    return 0.5 * float(np.linalg.norm(np.cross(c - a, d - b)))


def connected_components(faces: np.ndarray) -> int:
    """Number of connected components of a triangle mesh (faces sharing a vertex are connected)."""
    parent = np.arange(int(faces.max()) + 1)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, c in faces.tolist():
        ra, rb, rc = find(a), find(b), find(c)
        parent[rb] = ra
        parent[find(rc)] = ra
    return len({find(int(v)) for v in np.unique(faces)})
