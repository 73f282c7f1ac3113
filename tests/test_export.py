"""Export: selection filters, PLY / GLB / COLMAP / NPZ read back by their own libraries, atomic writes, CLI."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli.export import export_command
from app.export.api import (
    ColmapOptions,
    ExportError,
    ExportOptions,
    GlbOptions,
    Selection,
    export_reconstruction,
    select_points,
)
from app.export.formats import GLTF_FROM_OPENCV
from app.export.selection import parse_timesteps
from app.reconstruct.store import Reconstruction, derive_world_points
from tests.helpers.export import GEO_STREAM_OFFSET, rig_arrays, small_rig, write_recon


@pytest.fixture(scope="module")
def rig():
    return small_rig()


@pytest.fixture(scope="module")
def arrays(rig):
    return rig_arrays(rig)


@pytest.fixture(scope="module")
def recon(rig, arrays, tmp_path_factory) -> Reconstruction:
    return write_recon(tmp_path_factory.mktemp("export") / "recon", arrays, rig.camera_names)


def valid_pixels(arrays, t: int) -> np.ndarray:
    return arrays["depth"][t] > 0


# ----------------------------------------------------------------------------------------------------------------------
# Selection
# ----------------------------------------------------------------------------------------------------------------------


def test_select_points_takes_every_valid_pixel_with_its_values(recon, arrays) -> None:
    points = select_points(recon, Selection(timesteps=(1,), conf_percentile=0.0))
    valid = valid_pixels(arrays, 1)
    assert len(points) == valid.sum() > 0
    n, v, u = points.camera, points.pixel[:, 1], points.pixel[:, 0]
    assert (points.timestep == 1).all()
    np.testing.assert_array_equal(points.xyz, arrays["world_points"][1][n, v, u])
    np.testing.assert_array_equal(points.rgb, arrays["images"][1][n, v, u])
    np.testing.assert_array_equal(points.conf, arrays["world_points_conf"][1][n, v, u])
    np.testing.assert_allclose(points.dynamic, arrays["dynamic_mask"][1][n, v, u].astype(np.float32))
    assert valid[n, v, u].all()


def test_pose_stream_reads_points_from_depth_and_depth_conf(rig, arrays, tmp_path) -> None:
    moved = write_recon(
        tmp_path / "moved", {**arrays, "world_points": arrays["world_points"] + GEO_STREAM_OFFSET}, rig.camera_names
    )
    geo = select_points(moved, Selection(timesteps=(0,), conf_percentile=0.0))
    pose = select_points(moved, Selection(timesteps=(0,), stream="pose", conf_percentile=0.0))
    np.testing.assert_allclose(geo.xyz - pose.xyz, np.broadcast_to(GEO_STREAM_OFFSET, geo.xyz.shape), atol=1e-5)
    n, v, u = pose.camera, pose.pixel[:, 1], pose.pixel[:, 0]
    unprojected = derive_world_points(arrays["depth"][0], arrays["extrinsics"][0], arrays["intrinsics"][0])
    np.testing.assert_array_equal(pose.xyz, unprojected[n, v, u])
    np.testing.assert_array_equal(pose.conf, arrays["depth_conf"][0][n, v, u])


@pytest.mark.parametrize("percentile", [30.0, 75.0])
def test_conf_percentile_keeps_the_confident_share_per_timestep(recon, arrays, percentile) -> None:
    points = select_points(recon, Selection(timesteps=(0, 2), conf_percentile=percentile))
    for t in (0, 2):
        conf = arrays["world_points_conf"][t][valid_pixels(arrays, t)]
        threshold = np.percentile(conf, percentile)
        kept = points.conf[points.timestep == t]
        assert len(kept) == (conf >= threshold).sum()
        assert abs(len(kept) / len(conf) - (1 - percentile / 100)) < 0.02
        assert kept.min() >= threshold


def test_static_and_dynamic_filters_split_the_points(recon, arrays) -> None:
    everything = select_points(recon, Selection(conf_percentile=0.0))
    static = select_points(recon, Selection(motion="static", conf_percentile=0.0))
    dynamic = select_points(recon, Selection(motion="dynamic", conf_percentile=0.0))
    assert len(static) + len(dynamic) == len(everything) and len(dynamic) > 0 and len(static) > 0
    assert (static.dynamic < 0.5).all() and (dynamic.dynamic >= 0.5).all()
    moving = arrays["dynamic_mask"] > 0.5
    assert len(dynamic) == (moving & (arrays["depth"] > 0)).sum()


def test_voxel_keeps_the_most_confident_point_per_voxel_and_timestep(recon) -> None:
    voxel = 0.5
    full = select_points(recon, Selection())
    down = select_points(recon, Selection(voxel=voxel))
    assert 0 < len(down) < len(full)
    key = lambda p: np.concatenate([p.timestep[:, None], np.floor(p.xyz / voxel).astype(np.int64)], axis=1)
    assert len(np.unique(key(down), axis=0)) == len(down)
    full_keys, down_keys = key(full), key(down)
    for row in range(0, len(down), max(1, len(down) // 20)):
        same = (full_keys == down_keys[row]).all(axis=1)
        assert down.conf[row] == full.conf[same].max()


def test_empty_selection_is_an_error_and_writes_nothing(recon, tmp_path) -> None:
    nothing = Selection(motion="dynamic", dynamic_threshold=0.95)  # probabilities are 0.1 or 0.9
    formats = [("ply", "x.ply"), ("glb", "x.glb"), ("colmap", "x"), ("npz", "x.npz"), ("mesh", "x.ply")]
    for fmt, name in [*formats, ("splat", "x.ply")]:
        with pytest.raises(ExportError, match="keeps no"):
            export_reconstruction(recon, fmt, nothing, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_bad_selection_arguments_are_clear_errors(recon) -> None:
    with pytest.raises(ExportError, match="stream"):
        Selection(stream="depth")
    with pytest.raises(ExportError, match="conf_percentile"):
        Selection(conf_percentile=100)
    with pytest.raises(ExportError, match="motion"):
        Selection(motion="moving")
    with pytest.raises(ExportError, match=r"timestep\(s\) \[7\] out of range.*0\.\.2"):
        select_points(recon, Selection(timesteps=(0, 7)))
    with pytest.raises(ExportError, match="camera"):
        select_points(recon, Selection(cameras=(5,)))


def test_parse_timesteps() -> None:
    assert parse_timesteps("5", 10) == (5,)
    assert parse_timesteps("0:3", 10) == (0, 1, 2)
    assert parse_timesteps("0:7:3,9", 10) == (0, 3, 6, 9)
    assert parse_timesteps("8:", 10) == (8, 9)
    assert parse_timesteps("all", 10) is None
    for bad in ("a", "3:1", "1:5:0", "-1"):
        with pytest.raises(ExportError, match="bad timestep spec"):
            parse_timesteps(bad, 10)


# ----------------------------------------------------------------------------------------------------------------------
# PLY
# ----------------------------------------------------------------------------------------------------------------------


def test_ply_read_back_by_trimesh(recon, tmp_path) -> None:
    import trimesh

    selection = Selection(timesteps=(2,), conf_percentile=40, motion="static")
    expected = select_points(recon, selection)
    (path,) = export_reconstruction(recon, "ply", selection, tmp_path / "cloud.ply")
    assert path == tmp_path / "cloud.ply"
    cloud = trimesh.load(path)
    assert isinstance(cloud, trimesh.PointCloud) and len(cloud.vertices) == len(expected)
    np.testing.assert_allclose(cloud.vertices, expected.xyz, atol=1e-6)
    np.testing.assert_array_equal(cloud.colors[:, :3], expected.rgb)
    raw = cloud.metadata["_ply_raw"]["vertex"]["data"]
    np.testing.assert_array_equal(raw["confidence"], expected.conf)
    np.testing.assert_array_equal(raw["dynamic"], expected.dynamic)
    np.testing.assert_array_equal(raw["camera"], expected.camera)
    assert (raw["timestep"] == 2).all()


@pytest.mark.needs_open3d
def test_ply_read_back_by_open3d(recon, tmp_path) -> None:
    import open3d as o3d

    selection = Selection(timesteps=(2,), conf_percentile=40, motion="static")
    expected = select_points(recon, selection)
    (path,) = export_reconstruction(recon, "ply", selection, tmp_path / "cloud.ply")
    tensor_cloud = o3d.t.io.read_point_cloud(str(path))
    np.testing.assert_array_equal(tensor_cloud.point.colors.numpy(), expected.rgb)
    np.testing.assert_array_equal(tensor_cloud.point.confidence.numpy()[:, 0], expected.conf)


def test_several_timesteps_give_one_file_each_or_one_merged(recon, tmp_path) -> None:
    import trimesh

    written = export_reconstruction(recon, "ply", Selection(timesteps=(0, 2)), tmp_path / "s.ply")
    assert [p.name for p in written] == ["s_t00000.ply", "s_t00002.ply"]
    for t, path in zip((0, 2), written, strict=True):
        assert len(trimesh.load(path).vertices) == len(select_points(recon, Selection(timesteps=(t,))))
    (merged,) = export_reconstruction(
        recon, "ply", Selection(timesteps=(0, 2)), tmp_path / "m.ply", ExportOptions(True)
    )
    raw = trimesh.load(merged).metadata["_ply_raw"]["vertex"]["data"]
    assert sorted(np.unique(raw["timestep"]).tolist()) == [0, 2]
    assert len(raw) == sum(len(trimesh.load(p).vertices) for p in written)


def test_existing_output_is_refused_unless_overwrite_and_writes_are_atomic(recon, tmp_path) -> None:
    out = tmp_path / "c.ply"
    export_reconstruction(recon, "ply", Selection(timesteps=(0,)), out)
    before = out.read_bytes()
    with pytest.raises(ExportError, match="exists.*--overwrite"):
        export_reconstruction(recon, "ply", Selection(timesteps=(1,)), out)
    assert out.read_bytes() == before
    export_reconstruction(recon, "ply", Selection(timesteps=(1,)), out, ExportOptions(overwrite=True))
    assert out.read_bytes() != before
    # the output and its marker (app.export.ownership), no temporary file left
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c.ply.vggt-mv-export.json", "c.ply"]


# ----------------------------------------------------------------------------------------------------------------------
# GLB
# ----------------------------------------------------------------------------------------------------------------------


def test_glb_points_frustums_at_camera_centres_and_trajectories(recon, rig, tmp_path) -> None:
    import trimesh

    selection = Selection(timesteps=(0, 1, 2), conf_percentile=10)
    expected = select_points(recon, selection)
    (path,) = export_reconstruction(recon, "glb", selection, tmp_path / "scene.glb", ExportOptions(merge=True))
    scene = trimesh.load(path)
    cloud = scene.geometry["points"]
    assert len(cloud.vertices) == len(expected)
    np.testing.assert_allclose(cloud.vertices, expected.xyz @ GLTF_FROM_OPENCV.T, atol=1e-5)  # glTF: y, z flipped
    np.testing.assert_array_equal(cloud.colors[:, :3], expected.rgb)
    frustums = {name: g for name, g in scene.geometry.items() if name.startswith("frustum_")}
    assert len(frustums) == 3 * 2
    for t in range(3):
        for n, name in enumerate(rig.camera_names):
            rotation, translation = rig.extrinsics[t, n, :, :3], rig.extrinsics[t, n, :, 3]
            centre = -rotation.T.astype(np.float64) @ translation
            frustum = frustums[f"frustum_{name}_t{t:05d}"]
            np.testing.assert_allclose(frustum.vertices[0], GLTF_FROM_OPENCV @ centre, atol=1e-5)
            # the frustum opens along the camera's viewing direction (+z in OpenCV = -z in glTF camera terms)
            axis = frustum.vertices[1:].mean(0) - frustum.vertices[0]
            assert axis @ (GLTF_FROM_OPENCV @ rotation[2]) > 0
    assert sorted(name for name in scene.geometry if name.startswith("trajectory_")) == [
        f"trajectory_{name}" for name in rig.camera_names
    ]
    colors = {tuple(frustums[f"frustum_{name}_t00000"].visual.vertex_colors[0]) for name in rig.camera_names}
    assert len(colors) == 2  # one colour per camera


def test_glb_without_frustums_or_trajectory(recon, tmp_path) -> None:
    import trimesh

    options = ExportOptions(glb=GlbOptions(frustums=False, trajectory=False))
    (path,) = export_reconstruction(recon, "glb", Selection(timesteps=(1,)), tmp_path / "p.glb", options)
    assert list(trimesh.load(path).geometry) == ["points"]


# ----------------------------------------------------------------------------------------------------------------------
# COLMAP
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False])
def test_colmap_model_read_back_by_pycolmap(recon, rig, tmp_path, binary) -> None:
    import cv2
    import pycolmap

    selection = Selection(timesteps=(0, 2), conf_percentile=20, voxel=0.2)
    expected = select_points(recon, selection)
    options = ExportOptions(merge=True, colmap=ColmapOptions(binary=binary, tracks=False))
    (out,) = export_reconstruction(recon, "colmap", selection, tmp_path / "colmap", options)
    suffix = ".bin" if binary else ".txt"
    assert {p.name for p in (out / "sparse" / "0").iterdir()} >= {f"{n}{suffix}" for n in ("cameras", "images")}
    model = pycolmap.Reconstruction(str(out / "sparse" / "0"))
    # 2 physical cameras with constant intrinsics: 2 COLMAP cameras for the 4 images; a rigid rig: 1 rig, 2 frames
    assert model.num_cameras() == 2 and model.num_images() == 4 and model.num_points3D() == len(expected)
    assert model.num_rigs() == 1 and model.num_frames() == 2
    height, width = rig.image_hw
    for image in model.images.values():
        t, name = int(image.name[1:6]), image.name[7:-4]
        n = rig.camera_names.index(name)
        pose = image.cam_from_world().matrix()
        np.testing.assert_allclose(pose, rig.extrinsics[t, n], atol=1e-5)
        camera = image.camera
        assert camera.model_name == "PINHOLE" and (camera.width, camera.height) == (width, height)
        fx, fy, cx, cy = camera.params
        intrinsics = rig.intrinsics[t, n]
        np.testing.assert_allclose([fx, fy, cx, cy], [*intrinsics[[0, 1], [0, 1]], *(intrinsics[:2, 2] + 0.5)])
        picture = cv2.imread(str(out / "images" / image.name))[..., ::-1]
        np.testing.assert_array_equal(picture, rig.images[t, n])
    xyz = np.array([p.xyz for p in model.points3D.values()])
    order = np.lexsort(xyz.T)
    np.testing.assert_allclose(xyz[order], expected.xyz[np.lexsort(expected.xyz.T)], atol=1e-6)
    colors = np.array([p.color for p in model.points3D.values()])[order]
    np.testing.assert_array_equal(colors, expected.rgb[np.lexsort(expected.xyz.T)])


def test_colmap_point_projects_to_its_pixel_within_half_a_pixel(recon, rig, tmp_path) -> None:
    import pycolmap

    options = ExportOptions(colmap=ColmapOptions(tracks=False))
    (out,) = export_reconstruction(recon, "colmap", Selection(timesteps=(1,)), tmp_path / "c", options)
    model = pycolmap.Reconstruction(str(out / "sparse" / "0"))
    checked = 0
    for point in model.points3D.values():
        (element,) = point.track.elements
        image = model.image(element.image_id)
        t, n = 1, rig.camera_names.index(image.name[7:-4])
        # ground truth: where the synthetic camera sees this point (pixel index, centre at integer + 0 here)
        rotation, translation = rig.extrinsics[t, n, :, :3], rig.extrinsics[t, n, :, 3]
        camera_point = rotation.astype(np.float64) @ point.xyz + translation
        pixel = (rig.intrinsics[t, n].astype(np.float64) @ camera_point)[:2] / camera_point[2]
        projected = image.project_point(point.xyz)  # COLMAP convention: top-left pixel centre at (0.5, 0.5)
        assert np.abs(projected - (pixel + 0.5)).max() < 0.5
        assert np.abs(projected - (pixel + 0.5)).max() < 1e-3  # exact, in fact
        np.testing.assert_allclose(image.points2D[element.point2D_idx].xy, projected, atol=1e-3)
        checked += 1
    assert checked == len(select_points(recon, Selection(timesteps=(1,))))


# ----------------------------------------------------------------------------------------------------------------------
# NPZ
# ----------------------------------------------------------------------------------------------------------------------


def test_npz_has_vggt_keys_in_t_n_order(recon, arrays, tmp_path) -> None:
    selection = Selection(timesteps=(0, 2), cameras=(1, 0), conf_percentile=50)
    (path,) = export_reconstruction(recon, "npz", selection, tmp_path / "p.npz", ExportOptions(merge=True))
    data = np.load(path)
    vggt_keys = {"extrinsic", "intrinsic", "depth", "depth_conf", "world_points", "world_points_conf", "images"}
    assert vggt_keys | {"dynamic_mask", "timestep", "camera", "world_points_from_depth", "pose_enc"} <= set(data.files)
    assert data["timestep"].tolist() == [0, 0, 2, 2] and data["camera"].tolist() == [0, 1, 0, 1]
    height, width = recon.image_hw
    assert data["images"].shape == (4, 3, height, width) and data["images"].dtype == np.float32
    assert data["depth"].shape == (4, height, width, 1) and data["pose_enc"].shape == (4, 9)
    for s, (t, n) in enumerate([(0, 0), (0, 1), (2, 0), (2, 1)]):
        np.testing.assert_array_equal(data["extrinsic"][s], arrays["extrinsics"][t, n])
        np.testing.assert_array_equal(data["intrinsic"][s], arrays["intrinsics"][t, n])
        np.testing.assert_array_equal(data["depth"][s, ..., 0], arrays["depth"][t, n])
        np.testing.assert_array_equal(data["world_points"][s], arrays["world_points"][t, n])
        np.testing.assert_array_equal(data["world_points_conf"][s], arrays["world_points_conf"][t, n])
        np.testing.assert_allclose(data["images"][s], arrays["images"][t, n].transpose(2, 0, 1) / 255.0, atol=1e-6)
        np.testing.assert_array_equal(data["dynamic_mask"][s], arrays["dynamic_mask"][t, n].astype(np.float32))
    kept = select_points(recon, selection)
    assert data["mask"].sum() == len(kept)


# ----------------------------------------------------------------------------------------------------------------------
# CLI
# ----------------------------------------------------------------------------------------------------------------------


def test_cli_exports_with_filters(recon, tmp_path) -> None:
    import trimesh

    out = tmp_path / "cli.ply"
    args = [str(recon.root), "--format", "ply", "--out", str(out), "--t", "1", "--conf-percentile", "50"]
    result = CliRunner().invoke(export_command, [*args, "--static-only", "--cameras", "cam1"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    expected = select_points(recon, Selection(timesteps=(1,), cameras=(1,), conf_percentile=50, motion="static"))
    assert len(trimesh.load(out).vertices) == len(expected)
    result = CliRunner().invoke(export_command, [*args, "--stream", "pose", "--overwrite"])
    assert result.exit_code == 0, result.output
    cloud = trimesh.load(out)
    np.testing.assert_allclose(cloud.vertices, select_points(recon, Selection((1,), None, "pose", 50)).xyz, atol=1e-6)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--format", "ply", "--out", "x.glb"], "writes a .ply file"),
        (["--format", "ply", "--out", "x.ply", "--t", "9"], r"out of range"),
        (["--format", "ply", "--out", "x.ply", "--t", "2:x"], "bad timestep spec"),
        (["--format", "ply", "--out", "x.ply", "--static-only", "--dynamic-only"], "exclude each other"),
        (["--format", "ply", "--out", "x.ply", "--cameras", "cam7"], "unknown camera"),
        (["--format", "ply", "--out", "x.ply", "--conf-percentile", "120"], "--conf-percentile"),
        (["--format", "npz", "--out", "x.npz", "--voxel", "0.1"], "--voxel does not apply"),
        (["--format", "colmap", "--out", "x.ply"], "writes a folder"),
        (["--format", "splat", "--out", "x.splat"], "writes a .ply file"),
        (["--format", "splat", "--out", "x.ply", "--sh-degree", "4"], "--sh-degree"),
        (["--format", "obj", "--out", "x.obj"], "Invalid value for '--format'"),
    ],
)
def test_cli_bad_arguments_are_clear_errors(recon, tmp_path, extra, message) -> None:
    extra = [str(tmp_path / a) if a.startswith("x.") else a for a in extra]
    result = CliRunner().invoke(export_command, [str(recon.root), *extra])
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_cli_on_a_folder_that_is_no_reconstruction(tmp_path) -> None:
    result = CliRunner().invoke(export_command, [str(tmp_path), "--format", "ply", "--out", str(tmp_path / "x.ply")])
    assert result.exit_code == 1 and "not a reconstruction" in result.output


@pytest.mark.parametrize(
    "fmt, out, extra",
    [
        ("glb", "s.glb", ["--no-trajectory", "--frustum-size", "0.2"]),
        ("mesh", "s.obj", ["--max-depth-ratio", "1.2"]),
        ("colmap", "s", ["--colmap-text", "--no-images", "--voxel", "0.3"]),
        ("npz", "s.npz", ["--dynamic-only"]),
        ("splat", "s.ply", ["--splat-opacity", "confidence"]),
    ],
)
def test_cli_writes_one_output_per_timestep_or_one_merged(recon, tmp_path, fmt, out, extra) -> None:
    base = [str(recon.root), "--format", fmt, "--t", "0:2", *extra]
    result = CliRunner().invoke(export_command, [*base, "--out", str(tmp_path / "each" / out)], catch_exceptions=False)
    assert result.exit_code == 1 and "does not exist" in result.output  # missing parent folder: a clear error
    (tmp_path / "each").mkdir()
    result = CliRunner().invoke(export_command, [*base, "--out", str(tmp_path / "each" / out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    stem, suffix = out.split(".")[0], out[len(out.split(".")[0]) :]
    expected = [tmp_path / "each" / f"{stem}_t{t:05d}{suffix}" for t in (0, 1)]
    assert result.output.split() == [str(p) for p in expected] and all(p.exists() for p in expected)
    result = CliRunner().invoke(export_command, [*base, "--merge", "--out", str(tmp_path / out)])
    assert result.exit_code == 0 and result.output.split() == [str(tmp_path / out)]
    if fmt == "colmap":
        assert (tmp_path / out / "sparse" / "0" / "points3D.txt").is_file()
        assert not (tmp_path / out / "images").exists()
    if fmt == "npz":
        assert np.load(tmp_path / out)["timestep"].tolist() == [0, 0, 1, 1]


def test_colmap_folder_is_replaced_only_with_overwrite(recon, tmp_path) -> None:
    out = tmp_path / "model"
    export_reconstruction(recon, "colmap", Selection(timesteps=(0,)), out)
    with pytest.raises(ExportError, match="exists"):
        export_reconstruction(recon, "colmap", Selection(timesteps=(1,)), out)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["t00000_cam0.png", "t00000_cam1.png"]
    export_reconstruction(recon, "colmap", Selection(timesteps=(1,)), out, ExportOptions(overwrite=True))
    assert sorted(p.name for p in (out / "images").iterdir()) == ["t00001_cam0.png", "t00001_cam1.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary or old folder left
