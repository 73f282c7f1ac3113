"""Camera geometry in OpenCV convention, camera-from-world."""

from __future__ import annotations

import math

import torch

from vggt_t_mv.geometry import (
    closed_form_inverse_se3,
    depth_to_world_points,
    extri_intri_to_pose_encoding,
    pose_encoding_to_extri_intri,
    project_world_points,
    quaternion_to_rotation,
    rotation_to_quaternion,
)

HW = (70, 98)


def random_pose_encodings(count: int, generator: torch.Generator) -> torch.Tensor:
    translation = torch.randn(count, 3, generator=generator)
    quaternion = torch.nn.functional.normalize(torch.randn(count, 4, generator=generator), dim=-1)
    quaternion = torch.where(quaternion[:, 3:] < 0, -quaternion, quaternion)
    fov = 0.3 + 1.5 * torch.rand(count, 2, generator=generator)
    return torch.cat([translation, quaternion, fov], dim=-1).double()


def test_rotations_are_orthonormal_and_quaternions_round_trip() -> None:
    g = torch.Generator().manual_seed(0)
    enc = random_pose_encodings(500, g)
    rotation = quaternion_to_rotation(enc[:, 3:7])
    eye = torch.eye(3, dtype=rotation.dtype).expand_as(rotation)
    torch.testing.assert_close(rotation @ rotation.transpose(1, 2), eye)
    torch.testing.assert_close(torch.linalg.det(rotation), torch.ones(500, dtype=rotation.dtype))
    torch.testing.assert_close(rotation_to_quaternion(rotation), enc[:, 3:7])


def test_quaternion_scale_does_not_change_the_rotation() -> None:
    q = torch.tensor([0.1, -0.4, 0.3, 0.8], dtype=torch.float64)
    torch.testing.assert_close(quaternion_to_rotation(3.0 * q), quaternion_to_rotation(q))


def test_near_180_degree_rotations_round_trip() -> None:
    for axis in torch.eye(3, dtype=torch.float64):
        q = torch.cat([axis * math.sin(math.pi / 2 * 0.9999), torch.tensor([math.cos(math.pi / 2 * 0.9999)])])
        torch.testing.assert_close(rotation_to_quaternion(quaternion_to_rotation(q)), q)


def test_pose_encoding_round_trip() -> None:
    enc = random_pose_encodings(64, torch.Generator().manual_seed(1)).view(2, 32, 9)
    extrinsics, intrinsics = pose_encoding_to_extri_intri(enc, HW)
    assert extrinsics.shape == (2, 32, 3, 4) and intrinsics.shape == (2, 32, 3, 3)
    torch.testing.assert_close(intrinsics[..., 0, 2], torch.full((2, 32), HW[1] / 2, dtype=enc.dtype))
    torch.testing.assert_close(intrinsics[..., 1, 2], torch.full((2, 32), HW[0] / 2, dtype=enc.dtype))
    torch.testing.assert_close(extri_intri_to_pose_encoding(extrinsics, intrinsics, HW), enc)


def test_fov_gives_the_focal_length() -> None:
    enc = torch.zeros(9, dtype=torch.float64)
    enc[6] = 1.0  # identity rotation
    enc[7] = enc[8] = math.pi / 2  # 90 degrees: focal = half the image size
    _, intrinsics = pose_encoding_to_extri_intri(enc, HW)
    torch.testing.assert_close(intrinsics[0, 0], torch.tensor(HW[1] / 2, dtype=torch.float64))
    torch.testing.assert_close(intrinsics[1, 1], torch.tensor(HW[0] / 2, dtype=torch.float64))


def test_unprojected_depth_projects_back_to_its_pixels() -> None:
    enc = random_pose_encodings(3, torch.Generator().manual_seed(2))
    extrinsics, intrinsics = pose_encoding_to_extri_intri(enc, HW)
    depth = 1.0 + torch.rand(3, *HW, dtype=torch.float64)
    world = depth_to_world_points(depth, extrinsics, intrinsics)
    assert world.shape == (3, *HW, 3)
    pixels, z = project_world_points(world.flatten(1, 2), extrinsics, intrinsics)
    v, u = torch.meshgrid(torch.arange(HW[0]), torch.arange(HW[1]), indexing="ij")
    expected = torch.stack([u, v], dim=-1).flatten(0, 1).double().expand(3, -1, -1)
    torch.testing.assert_close(pixels, expected)
    torch.testing.assert_close(z, depth.flatten(1))


def test_camera_centre_is_minus_r_transpose_t() -> None:
    enc = random_pose_encodings(4, torch.Generator().manual_seed(3))
    extrinsics, _ = pose_encoding_to_extri_intri(enc, HW)
    world_from_camera = closed_form_inverse_se3(extrinsics)
    rotation, translation = extrinsics[..., :3], extrinsics[..., 3]
    centre = -(rotation.transpose(1, 2) @ translation[..., None])[..., 0]
    torch.testing.assert_close(world_from_camera[..., 3], centre)
    torch.testing.assert_close((rotation @ centre[..., None])[..., 0] + translation, torch.zeros(4, 3, dtype=enc.dtype))
