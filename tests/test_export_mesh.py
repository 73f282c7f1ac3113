"""Meshes from depth maps: a plane becomes one connected surface of the right area, jumps are not bridged,
and every mesh file type reads back with its colours."""

from __future__ import annotations

import numpy as np
import pytest

from app.export.api import ExportError, ExportOptions, MeshOptions, Selection, export_reconstruction
from app.export.formats import GLTF_FROM_OPENCV
from app.export.mesh import grid_mesh, poisson_mesh
from app.export.selection import select_frames, select_points
from tests.helpers.export import (
    connected_components,
    pinhole,
    plane_depth,
    quad_area,
    rig_arrays,
    single_camera_recon,
    small_rig,
    write_recon,
)

H, W, FOCAL = 40, 60, 50.0


def tilted_plane_recon(root):
    """One camera (not at the origin) looking at a plane tilted by about 35 degrees, 3 to 5 m away."""
    intrinsics = pinhole(H, W, FOCAL)
    normal = np.array([0.0, np.sin(np.radians(35)), np.cos(np.radians(35))])
    depth = plane_depth(intrinsics, H, W, normal, offset=3.5)
    angle = np.radians(20)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    extrinsics = np.concatenate([rotation, [[0.3], [-0.2], [1.0]]], axis=1)
    return single_camera_recon(root, depth, intrinsics, extrinsics), depth


def corner_area(recon) -> float:
    """Area of the plane quadrilateral spanned by the four corner pixels (the grid's projective image)."""
    points = recon.get("world_points", 0)[0]
    return quad_area(np.array([points[0, 0], points[0, -1], points[-1, -1], points[-1, 0]], dtype=np.float64))


def test_plane_mesh_is_one_connected_surface_with_the_expected_area(tmp_path) -> None:
    import trimesh

    recon, _ = tilted_plane_recon(tmp_path / "plane")
    (path,) = export_reconstruction(recon, "mesh", Selection(), tmp_path / "plane.ply")
    mesh = trimesh.load(path, process=False)
    assert len(mesh.faces) == 2 * (H - 1) * (W - 1)  # nothing dropped on a smooth surface
    assert connected_components(np.asarray(mesh.faces)) == 1
    assert mesh.area == pytest.approx(corner_area(recon), rel=0.05)
    # faces look towards the camera: normals point to the camera centre
    rotation, translation = recon.get("extrinsics", 0)[0][:, :3], recon.get("extrinsics", 0)[0][:, 3]
    centre = -rotation.T @ translation
    towards = centre - mesh.triangles_center
    assert ((mesh.face_normals * towards).sum(-1) > 0).all()


def test_depth_discontinuity_produces_no_bridging_triangles(tmp_path) -> None:
    import trimesh

    intrinsics = pinhole(H, W, FOCAL)
    depth = np.full((H, W), 2.0, dtype=np.float32)
    depth[:, W // 2 :] = 4.0  # a wall 2 m behind the right half
    recon = single_camera_recon(tmp_path / "step", depth, intrinsics, np.eye(3, 4))
    (path,) = export_reconstruction(recon, "mesh", Selection(), tmp_path / "step.ply")
    mesh = trimesh.load(path, process=False)
    z = mesh.vertices[mesh.faces][..., 2]
    assert (np.ptp(z, axis=1) < 1e-4).all()  # every triangle lies on one of the two planes
    assert connected_components(np.asarray(mesh.faces)) == 2
    assert len(mesh.faces) == 2 * (H - 1) * (W - 2)  # only the column of quads across the jump is gone
    # expected area: each half is a fronto-parallel rectangle of pixel spacing depth / focal
    left = (W // 2 - 1) * (H - 1) * (2.0 / FOCAL) ** 2
    right = (W - W // 2 - 1) * (H - 1) * (4.0 / FOCAL) ** 2
    assert mesh.area == pytest.approx(left + right, rel=0.05)


def test_mesh_file_types_read_back_with_colours(tmp_path) -> None:
    import trimesh

    recon, _ = tilted_plane_recon(tmp_path / "plane")
    frames = select_frames(recon, Selection())
    expected = grid_mesh(recon, Selection(), frames, MeshOptions())
    for suffix in (".ply", ".obj", ".glb"):
        (path,) = export_reconstruction(recon, "mesh", Selection(), tmp_path / f"m{suffix}")
        loaded = trimesh.load(path, process=False, force="mesh")
        assert len(loaded.faces) == len(expected.faces) and len(loaded.vertices) == len(expected.vertices)
        vertices = expected.vertices @ GLTF_FROM_OPENCV.T if suffix == ".glb" else expected.vertices
        np.testing.assert_allclose(loaded.vertices, vertices, atol=1e-5)
        np.testing.assert_array_equal(loaded.visual.vertex_colors[:, :3], expected.colors)


@pytest.mark.needs_open3d
def test_mesh_ply_reads_back_in_open3d(tmp_path) -> None:
    import open3d as o3d

    recon, _ = tilted_plane_recon(tmp_path / "plane")
    expected = grid_mesh(recon, Selection(), select_frames(recon, Selection()), MeshOptions())
    export_reconstruction(recon, "mesh", Selection(), tmp_path / "m.ply")
    o3d_mesh = o3d.io.read_triangle_mesh(str(tmp_path / "m.ply"))
    assert len(o3d_mesh.triangles) == len(expected.faces)
    np.testing.assert_allclose(np.asarray(o3d_mesh.vertex_colors) * 255, expected.colors, atol=0.51)


def test_mesh_respects_the_selection_filters(tmp_path) -> None:
    rig = small_rig()
    recon = write_recon(tmp_path / "rig", rig_arrays(rig), rig.camera_names)
    frames = select_frames(recon, Selection(timesteps=(0,)))
    full = grid_mesh(recon, Selection(timesteps=(0,)), frames, MeshOptions())
    static = grid_mesh(recon, Selection(timesteps=(0,), motion="static"), frames, MeshOptions())
    confident = grid_mesh(recon, Selection(timesteps=(0,), conf_percentile=50), frames, MeshOptions())
    assert 0 < len(static.faces) < len(full.faces) and 0 < len(confident.faces) < len(full.faces)
    kept = select_points(recon, Selection(timesteps=(0,), conf_percentile=50))
    kept_xyz = {tuple(p) for p in kept.xyz.astype(np.float64).round(5).tolist()}
    assert {tuple(v) for v in confident.vertices.round(5).tolist()} <= kept_xyz
    with pytest.raises(ExportError, match="--voxel does not apply to grid meshes"):
        export_reconstruction(recon, "mesh", Selection(voxel=0.1), tmp_path / "m.ply")
    with pytest.raises(ExportError, match="must end in"):
        export_reconstruction(recon, "mesh", Selection(), tmp_path / "m.stl")


@pytest.mark.needs_open3d
def test_poisson_mesh_lies_on_the_plane(tmp_path) -> None:
    recon, _ = tilted_plane_recon(tmp_path / "plane")
    selection = Selection()
    options = MeshOptions(method="poisson", poisson_depth=6, density_trim=0.1)
    mesh = poisson_mesh(select_points(recon, selection), select_frames(recon, selection), options)
    points = recon.get("world_points", 0)[0].reshape(-1, 3).astype(np.float64)
    centre = points.mean(0)
    normal = np.linalg.svd(points - centre)[2][-1]
    distance = np.abs((mesh.vertices - centre) @ normal)
    assert np.median(distance) < 0.05 and len(mesh.faces) > 100
    (path,) = export_reconstruction(recon, "mesh", selection, tmp_path / "poisson.obj", ExportOptions(mesh=options))
    assert path.stat().st_size > 0
