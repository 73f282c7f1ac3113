"""Camera geometry. Convention everywhere: OpenCV axes (x right, y down, z forward) and
camera-from-world extrinsics ``[R | t]`` (a world point X maps to camera coordinates R X + t).

Pose encoding ``absT_quaR_FoV`` (9 numbers): translation t (3), rotation quaternion (x, y, z, w) with
the scalar last (4), field of view in radians, vertical then horizontal (2). The principal point is
the image centre.

This is the torch side (the model, its losses); the numpy side (Sim(3) and its fits, rotation angles, quaternions,
camera centres), used by the app and the evaluation, is :mod:`vggt_t_mv.npgeometry`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def quaternion_to_rotation(quaternion: Tensor) -> Tensor:
    """Quaternion ``[..., 4]`` (x, y, z, w; need not be unit) -> rotation matrix ``[..., 3, 3]``."""
    x, y, z, w = quaternion.unbind(-1)
    two_s = 2.0 / (quaternion * quaternion).sum(-1)
    matrix = torch.stack(
        (
            1 - two_s * (y * y + z * z),
            two_s * (x * y - z * w),
            two_s * (x * z + y * w),
            two_s * (x * y + z * w),
            1 - two_s * (x * x + z * z),
            two_s * (y * z - x * w),
            two_s * (x * z - y * w),
            two_s * (y * z + x * w),
            1 - two_s * (x * x + y * y),
        ),
        dim=-1,
    )
    return matrix.reshape(quaternion.shape[:-1] + (3, 3))


def rotation_to_quaternion(rotation: Tensor) -> Tensor:
    """Rotation matrix ``[..., 3, 3]`` -> unit quaternion ``[..., 4]`` (x, y, z, w) with w >= 0.

    Each of the four candidate formulas is stable where its component is largest; the best
    conditioned one is picked per matrix.
    """
    m = rotation
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # 4 * component^2 for w, x, y, z
    squares = torch.stack((1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22), dim=-1)
    roots = squares.clamp(min=1e-12).sqrt()  # 2 * |component|
    d21, d12 = m[..., 2, 1], m[..., 1, 2]
    d02, d20 = m[..., 0, 2], m[..., 2, 0]
    d10, d01 = m[..., 1, 0], m[..., 0, 1]
    # Candidate (w, x, y, z) * 2|c| for each choice of the dominant component c.
    candidates = torch.stack(
        (
            torch.stack((squares[..., 0], d21 - d12, d02 - d20, d10 - d01), dim=-1),
            torch.stack((d21 - d12, squares[..., 1], d10 + d01, d02 + d20), dim=-1),
            torch.stack((d02 - d20, d10 + d01, squares[..., 2], d21 + d12), dim=-1),
            torch.stack((d10 - d01, d20 + d02, d12 + d21, squares[..., 3]), dim=-1),
        ),
        dim=-2,
    ) / (2.0 * roots[..., :, None])
    best = squares.argmax(dim=-1)
    wxyz = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    wxyz = wxyz / wxyz.norm(dim=-1, keepdim=True)
    wxyz = torch.where(wxyz[..., :1] < 0, -wxyz, wxyz)
    return torch.cat([wxyz[..., 1:], wxyz[..., :1]], dim=-1)


def pose_encoding_to_extri_intri(pose_encoding: Tensor, image_hw: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Pose encoding ``[..., 9]`` -> camera-from-world extrinsics ``[..., 3, 4]`` and pixel intrinsics ``[..., 3, 3]``.

    ``fy = (H/2) / tan(fov_h/2)``, ``fx = (W/2) / tan(fov_w/2)``, principal point ``(W/2, H/2)``.
    """
    height, width = image_hw
    translation, quaternion = pose_encoding[..., :3], pose_encoding[..., 3:7]
    fov_h, fov_w = pose_encoding[..., 7], pose_encoding[..., 8]
    rotation = quaternion_to_rotation(quaternion)
    extrinsics = torch.cat([rotation, translation[..., None]], dim=-1)
    intrinsics = torch.zeros(pose_encoding.shape[:-1] + (3, 3), dtype=pose_encoding.dtype, device=pose_encoding.device)
    intrinsics[..., 0, 0] = (width / 2.0) / torch.tan(fov_w / 2.0)
    intrinsics[..., 1, 1] = (height / 2.0) / torch.tan(fov_h / 2.0)
    intrinsics[..., 0, 2] = width / 2.0
    intrinsics[..., 1, 2] = height / 2.0
    intrinsics[..., 2, 2] = 1.0
    return extrinsics, intrinsics


def extri_intri_to_pose_encoding(extrinsics: Tensor, intrinsics: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """Inverse of :func:`pose_encoding_to_extri_intri` (the principal point is assumed central).

    ``extrinsics [..., 3, 4]`` camera-from-world, ``intrinsics [..., 3, 3]`` -> ``[..., 9]``.
    """
    height, width = image_hw
    quaternion = rotation_to_quaternion(extrinsics[..., :3, :3])
    fov_h = 2 * torch.atan((height / 2.0) / intrinsics[..., 1, 1])
    fov_w = 2 * torch.atan((width / 2.0) / intrinsics[..., 0, 0])
    return torch.cat([extrinsics[..., :3, 3], quaternion, fov_h[..., None], fov_w[..., None]], dim=-1)


def closed_form_inverse_se3(extrinsics: Tensor) -> Tensor:
    """Invert rigid transforms ``[..., 3, 4]`` (or ``[..., 4, 4]``): returns ``[..., 3, 4]`` ``[R^T | -R^T t]``."""
    rotation, translation = extrinsics[..., :3, :3], extrinsics[..., :3, 3:]
    rotation_t = rotation.transpose(-1, -2)
    return torch.cat([rotation_t, -rotation_t @ translation], dim=-1)


def depth_to_camera_points(depth: Tensor, intrinsics: Tensor) -> Tensor:
    """Back-project depth ``[..., H, W]`` with intrinsics ``[..., 3, 3]`` to camera coordinates ``[..., H, W, 3]``.

    Pixel (u, v) is the integer column/row index (no +0.5 centre offset), as in VGGT.
    """
    height, width = depth.shape[-2:]
    v, u = torch.meshgrid(
        torch.arange(height, dtype=depth.dtype, device=depth.device),
        torch.arange(width, dtype=depth.dtype, device=depth.device),
        indexing="ij",
    )
    fx = intrinsics[..., 0, 0][..., None, None]
    fy = intrinsics[..., 1, 1][..., None, None]
    cx = intrinsics[..., 0, 2][..., None, None]
    cy = intrinsics[..., 1, 2][..., None, None]
    x = (u - cx) / fx * depth
    y = (v - cy) / fy * depth
    return torch.stack([x, y, depth], dim=-1)


def depth_to_world_points(depth: Tensor, extrinsics: Tensor, intrinsics: Tensor) -> Tensor:
    """Unproject depth ``[..., H, W]`` to world points ``[..., H, W, 3]``.

    ``extrinsics [..., 3, 4]`` are camera-from-world; the result is ``R^T (X_cam - t)``. The model's
    ``depth`` output ``[..., H, W, 1]`` is passed as ``depth[..., 0]``.
    """
    camera_points = depth_to_camera_points(depth, intrinsics)
    world_from_camera = closed_form_inverse_se3(extrinsics)
    rotation = world_from_camera[..., :3, :3][..., None, None, :, :]
    translation = world_from_camera[..., :3, 3][..., None, None, :]
    return (rotation @ camera_points[..., None])[..., 0] + translation


def project_world_points(points: Tensor, extrinsics: Tensor, intrinsics: Tensor) -> tuple[Tensor, Tensor]:
    """Project world points ``[..., M, 3]`` into pixels ``[..., M, 2]``; also returns camera depth ``[..., M]``."""
    rotation, translation = extrinsics[..., :3, :3], extrinsics[..., :3, 3]
    camera = points @ rotation.transpose(-1, -2) + translation[..., None, :]
    pixels_h = camera @ intrinsics.transpose(-1, -2)
    depth = camera[..., 2]
    return pixels_h[..., :2] / depth[..., None], depth
