"""The numpy ray caster of the synthetic rigs: exact on boxes and spheres, and what open3d answers on the scenes."""

from __future__ import annotations

import numpy as np
import pytest

from vggt_t_mv.data import synthetic
from vggt_t_mv.data.raycast import cast_rays


def unit_cube() -> tuple[np.ndarray, np.ndarray]:
    return synthetic._box_mesh(np.array([0.5, 0.5, 0.5]))


def test_rays_hit_a_cube_at_its_faces_with_outward_normals() -> None:
    vertices, triangles = unit_cube()
    rays = np.array(
        [
            [-2.0, 0.1, 0.2, 1.0, 0.0, 0.0],  # towards -x face at t = 1.5
            [0.0, 0.0, 3.0, 0.0, 0.0, -2.0],  # towards +z face, direction of length 2: t = 1.25
            [0.0, 0.0, 3.0, 0.0, 0.0, 1.0],  # away from it
            [2.0, 2.0, 0.0, 1.0, 0.0, 0.0],  # passes beside it
            [0.0, 0.0, 0.0, 0.0, 1.0, 0.0],  # from inside: the exit face
        ]
    )
    hits = cast_rays([(vertices, triangles)], rays)
    np.testing.assert_allclose(hits.t_hit, [1.5, 1.25, np.inf, np.inf, 0.5])
    assert hits.mesh_ids.tolist() == [0, 0, -1, -1, 0]
    np.testing.assert_allclose(hits.normals[[0, 1, 4]], [[-1, 0, 0], [0, 0, 1], [0, 1, 0]])


def test_the_nearer_of_two_meshes_wins() -> None:
    vertices, triangles = unit_cube()
    far = (vertices + [5.0, 0.0, 0.0], triangles)
    near = (vertices + [2.0, 0.0, 0.0], triangles)
    hits = cast_rays([far, near], np.array([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]]))
    assert hits.mesh_ids.tolist() == [1] and hits.t_hit.tolist() == [1.5]


def test_a_mesh_that_is_not_convex_is_refused() -> None:
    vertices, triangles = unit_cube()
    dented = vertices.copy()
    dented[7] *= 0.2  # one corner pushed inwards
    with pytest.raises(ValueError, match="convex"):
        cast_rays([(dented, triangles)], np.zeros((1, 6)))


@pytest.mark.needs_open3d
def test_the_synthetic_scene_casts_as_in_open3d() -> None:
    import open3d as o3d

    config = synthetic.SyntheticRigConfig(num_timesteps=1, num_cameras=3, height=48, width=64, seed=3)
    objects = synthetic._build_scene(config, np.random.default_rng(config.seed))
    meshes = [
        ((obj.vertices @ obj.pose_at(0.7)[:3, :3].T + obj.pose_at(0.7)[:3, 3]).astype(np.float32), obj.triangles)
        for obj in objects
    ]
    extrinsics = synthetic._camera_extrinsics(config, 0.3)[0]
    intrinsics = np.stack([synthetic._intrinsics(config)] * 3)
    rays = synthetic._world_rays(extrinsics, synthetic._pixel_rays_camera(48, 64, intrinsics))

    scene = o3d.t.geometry.RaycastingScene()
    for vertices, triangles in meshes:
        scene.add_triangles(o3d.core.Tensor(vertices), o3d.core.Tensor(triangles.astype(np.uint32)))
    expected = scene.cast_rays(o3d.core.Tensor(rays))
    hits = cast_rays(meshes, rays)

    expected_t = expected["t_hit"].numpy()
    assert np.isfinite(expected_t).tolist() == np.isfinite(hits.t_hit).tolist()
    hit = np.isfinite(expected_t)
    np.testing.assert_allclose(hits.t_hit[hit], expected_t[hit], rtol=1e-5)
    same_mesh = hits.mesh_ids[hit] == expected["geometry_ids"].numpy().astype(np.int64)[hit]
    assert same_mesh.mean() > 0.999
    normals = expected["primitive_normals"].numpy()[hit][same_mesh]
    np.testing.assert_allclose(np.abs((normals * hits.normals[hit][same_mesh]).sum(-1)), 1.0, atol=1e-5)
