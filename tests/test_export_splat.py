"""Gaussian splats lifted from point maps: the mapping of each pixel, and the 3DGS PLY read back by plyfile."""

from __future__ import annotations

import io

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli.export import export_command
from app.export.api import ExportError, ExportOptions, Selection, export_reconstruction, select_points
from app.export.splat import (
    SH_C0,
    Gaussians,
    SplatOptions,
    camera_quaternions,
    lift_pixels,
    mid_ranks,
    splat_properties,
    write_splat_ply,
)
from app.reconstruct.store import Reconstruction
from tests.helpers.export import rig_arrays, small_rig, write_recon
from vggt_t_mv.data.synthetic import SyntheticRigConfig, make_synthetic_rig

STANDARD_PROPERTIES = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [
    "opacity",
    "scale_0",
    "scale_1",
    "scale_2",
    "rot_0",
    "rot_1",
    "rot_2",
    "rot_3",
]


@pytest.fixture(scope="module")
def rig():
    config = SyntheticRigConfig(num_timesteps=2, num_cameras=3, height=24, width=32, seed=5, camera_spacing_deg=40.0)
    return make_synthetic_rig(config)


@pytest.fixture(scope="module")
def pixels(rig):
    """The valid pixels of the rig as flat arrays, with each pixel's frame index into ``[T * N]`` cameras."""
    t, n, v, u = np.nonzero(rig.valid)
    rng = np.random.default_rng(0)
    return {
        "xyz": rig.world_points[t, n, v, u],
        "rgb": rig.images[t, n, v, u],
        "conf": (1.0 + 4.0 * rng.random(len(t))).astype(np.float32),
        "frame": t * rig.num_cameras + n,
        "timestep": t,
        "depth": rig.depth[t, n, v, u],
        "extrinsics": rig.extrinsics.reshape(-1, 3, 4),
        "intrinsics": rig.intrinsics.reshape(-1, 3, 3),
    }


def lift(pixels, options: SplatOptions | None = None, **kwargs) -> Gaussians:
    return lift_pixels(
        pixels["xyz"],
        pixels["rgb"],
        pixels["conf"],
        pixels["frame"],
        pixels["extrinsics"],
        pixels["intrinsics"],
        options,
        groups=pixels["timestep"],
        **kwargs,
    )


def read_back(gaussians: Gaussians, sh_degree: int = 0):
    from plyfile import PlyData

    buffer = io.BytesIO()
    write_splat_ply(gaussians, buffer, sh_degree)
    data = buffer.getvalue()
    return PlyData.read(io.BytesIO(data)), data


# ----------------------------------------------------------------------------------------------------------------------
# The PLY layout
# ----------------------------------------------------------------------------------------------------------------------


def test_ply_has_the_standard_3dgs_layout_in_float32_little_endian(pixels) -> None:
    gaussians = lift(pixels)
    ply, data = read_back(gaussians)
    assert ply.header.startswith("ply\nformat binary_little_endian 1.0\n")
    assert [element.name for element in ply.elements] == ["vertex"]
    vertex = ply["vertex"]
    assert [p.name for p in vertex.properties] == STANDARD_PROPERTIES
    assert all(vertex.data.dtype[name] == np.dtype("<f4") for name in STANDARD_PROPERTIES)
    assert vertex.count == len(gaussians) == len(pixels["xyz"])
    header_end = data.index(b"end_header\n") + len(b"end_header\n")
    assert len(data) == header_end + 4 * len(STANDARD_PROPERTIES) * len(gaussians)  # 68 bytes per splat
    values = np.stack([vertex[name] for name in STANDARD_PROPERTIES], axis=-1)
    assert np.isfinite(values).all()
    np.testing.assert_array_equal(np.stack([vertex["nx"], vertex["ny"], vertex["nz"]], -1), 0.0)


def test_ply_values_read_back_as_written(pixels) -> None:
    gaussians = lift(pixels)
    vertex = read_back(gaussians)[0]["vertex"]
    np.testing.assert_array_equal(np.stack([vertex[a] for a in "xyz"], -1), pixels["xyz"])
    np.testing.assert_array_equal(np.stack([vertex[f"f_dc_{i}"] for i in range(3)], -1), gaussians.f_dc)
    np.testing.assert_array_equal(np.stack([vertex[f"scale_{i}"] for i in range(3)], -1), gaussians.log_scales)
    np.testing.assert_array_equal(np.stack([vertex[f"rot_{i}"] for i in range(4)], -1), gaussians.quaternions)
    np.testing.assert_array_equal(vertex["opacity"], gaussians.opacity)


@pytest.mark.parametrize("degree, rest", [(1, 9), (3, 45)])
def test_higher_sh_degrees_add_zero_f_rest_between_f_dc_and_opacity(pixels, degree, rest) -> None:
    names = splat_properties(degree)
    assert names[:9] == STANDARD_PROPERTIES[:9] and names[9 + rest :] == STANDARD_PROPERTIES[9:]
    assert names[9 : 9 + rest] == [f"f_rest_{i}" for i in range(rest)]
    vertex = read_back(lift(pixels), degree)[0]["vertex"]
    assert [p.name for p in vertex.properties] == names
    for i in range(rest):
        assert (vertex[f"f_rest_{i}"] == 0).all()


# ----------------------------------------------------------------------------------------------------------------------
# The mapping of one pixel
# ----------------------------------------------------------------------------------------------------------------------


def test_positions_are_the_points_and_colours_come_back_through_sh_c0(pixels) -> None:
    gaussians = lift(pixels)
    np.testing.assert_array_equal(gaussians.means, pixels["xyz"])
    assert SH_C0 == pytest.approx(1.0 / (2.0 * np.sqrt(np.pi)), abs=1e-15)
    np.testing.assert_allclose(0.5 + SH_C0 * gaussians.f_dc, pixels["rgb"] / 255.0, atol=1e-6)
    np.testing.assert_allclose(gaussians.colors(), pixels["rgb"] / 255.0, atol=1e-6)


def test_scales_are_the_pixel_footprint_depth_over_focal(pixels) -> None:
    options = SplatOptions(sigma_pixels=0.7, thickness=0.2)
    gaussians = lift(pixels, options)
    sigma = np.exp(gaussians.log_scales.astype(np.float64))
    k = pixels["intrinsics"][pixels["frame"]]
    depth = pixels["depth"].astype(np.float64)  # the rig's true z-depth of each pixel
    np.testing.assert_allclose(sigma[:, 0], 0.7 * depth / k[:, 0, 0], rtol=1e-4)
    np.testing.assert_allclose(sigma[:, 1], 0.7 * depth / k[:, 1, 1], rtol=1e-4)
    np.testing.assert_allclose(sigma[:, 2], 0.2 * np.minimum(sigma[:, 0], sigma[:, 1]), rtol=1e-4)
    # proportional to depth / focal: one ratio for every splat
    ratio = sigma[:, 0] / (depth / k[:, 0, 0])
    assert ratio.std() / ratio.mean() < 1e-4
    # a subset of a quarter of the pixels gets splats twice as wide
    wide = lift(pixels, options, density=2.0)
    np.testing.assert_allclose(np.exp(wide.log_scales[:, :2]), 2.0 * sigma[:, :2], rtol=1e-5)


def test_quaternions_are_unit_wxyz_and_turn_the_gaussian_axes_onto_its_camera_axes(pixels) -> None:
    gaussians = lift(pixels)
    norms = np.linalg.norm(gaussians.quaternions.astype(np.float64), axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-6)
    assert (gaussians.quaternions[:, 0] >= 0).all()  # w first, the sign fixed
    world_from_camera = np.swapaxes(pixels["extrinsics"][pixels["frame"], :, :3], 1, 2)
    np.testing.assert_allclose(gaussians.rotations(), world_from_camera, atol=1e-5)
    # the flat axis (axis 2, smallest scale) is the optical axis of the pixel's camera: the splat faces it
    covariance = gaussians.covariances().astype(np.float64)
    optical_axis = world_from_camera[:, :, 2]
    variance_along = np.einsum("mi,mij,mj->m", optical_axis, covariance, optical_axis)
    np.testing.assert_allclose(variance_along, np.exp(2 * gaussians.log_scales[:, 2].astype(np.float64)), rtol=1e-3)
    smallest = np.linalg.eigvalsh(covariance)[:, 0]
    np.testing.assert_allclose(smallest, variance_along, rtol=1e-2)


def test_camera_quaternions_of_known_rotations() -> None:
    angle = np.pi / 3  # camera rotated about the world y axis: world-from-camera is R_y(angle)
    c, s = np.cos(angle), np.sin(angle)
    world_from_camera = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    extrinsics = np.zeros((2, 3, 4))
    extrinsics[0, :, :3] = np.eye(3)
    extrinsics[1, :, :3] = world_from_camera.T
    quaternions = camera_quaternions(extrinsics)
    np.testing.assert_allclose(quaternions[0], [1, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(quaternions[1], [np.cos(angle / 2), 0, np.sin(angle / 2), 0], atol=1e-12)


def test_each_splat_projects_to_sigma_pixels_in_its_own_image() -> None:
    """A splat seen from its own camera, first-order projection: sigma_pixels pixels across in both directions."""
    extrinsics = np.array([[[0.0, 0, 1, 0.3], [0, 1, 0, -0.1], [-1, 0, 0, 0.5]]])  # a turned, shifted camera
    intrinsics = np.array([[[300.0, 0, 160], [0, 250.0, 120], [0, 0, 1]]])
    depth = 4.0
    camera_point = np.array([0.0, 0.0, depth])  # on the optical axis
    rotation, translation = extrinsics[0, :, :3], extrinsics[0, :, 3]
    world_point = rotation.T @ (camera_point - translation)
    options = SplatOptions(sigma_pixels=0.7)
    rgb = np.array([[10, 20, 30]], np.uint8)
    gaussians = lift_pixels(world_point[None], rgb, [2.0], [0], extrinsics, intrinsics, options)
    camera_covariance = rotation @ gaussians.covariances()[0].astype(np.float64) @ rotation.T
    fx, fy = intrinsics[0, 0, 0], intrinsics[0, 1, 1]
    jacobian = np.array([[fx / depth, 0, 0], [0, fy / depth, 0]])  # d(u, v) / d(x, y, z) on the optical axis
    image_covariance = jacobian @ camera_covariance @ jacobian.T
    np.testing.assert_allclose(np.sqrt(np.diag(image_covariance)), options.sigma_pixels, rtol=1e-5)
    assert abs(image_covariance[0, 1]) < 1e-9


# ----------------------------------------------------------------------------------------------------------------------
# Opacity from the confidence
# ----------------------------------------------------------------------------------------------------------------------


def test_rank_opacity_follows_the_confidence_order_per_timestep_within_the_clamp(pixels) -> None:
    options = SplatOptions(opacity="rank", opacity_min=0.1, opacity_max=0.9)
    alpha = lift(pixels, options).opacities().astype(np.float64)
    assert (alpha >= 0.1 - 1e-6).all() and (alpha <= 0.9 + 1e-6).all()
    for t in np.unique(pixels["timestep"]):
        at = pixels["timestep"] == t
        order = np.argsort(pixels["conf"][at])
        assert (np.diff(alpha[at][order]) >= -1e-6).all()  # more confident, more opaque
        assert alpha[at].min() < 0.11 and alpha[at].max() > 0.89  # each timestep spans the range
    np.testing.assert_allclose(mid_ranks(np.array([3.0, 1.0, 2.0, 2.0]), np.zeros(4)), [7 / 8, 1 / 8, 1 / 2, 1 / 2])


def test_confidence_opacity_is_one_minus_inverse_confidence_clamped() -> None:
    conf = np.array([1.0, 1.02, 2.0, 5.0, 1e6], np.float32)
    options = SplatOptions(opacity="confidence", opacity_min=0.05, opacity_max=0.99)
    extrinsics, intrinsics = np.eye(4)[None, :3], np.diag([100.0, 100.0, 1.0])[None]
    xyz = np.tile([0.0, 0.0, 2.0], (len(conf), 1))
    gaussians = lift_pixels(xyz, np.zeros((5, 3), np.uint8), conf, np.zeros(5, int), extrinsics, intrinsics, options)
    # the sigmoid of the head's raw output x for conf = 1 + exp(x)
    np.testing.assert_allclose(gaussians.opacities(), [0.05, 0.05, 0.5, 0.8, 0.99], rtol=1e-5)
    assert np.isfinite(gaussians.opacity).all()


def test_empty_selection_and_bad_options_are_clear_errors() -> None:
    empty = np.zeros((0, 3))
    with pytest.raises(ValueError, match="selection is empty"):
        lift_pixels(empty, empty.astype(np.uint8), [], [], np.eye(4)[None, :3], np.eye(3)[None])
    with pytest.raises(ValueError, match="opacity must be one of"):
        SplatOptions(opacity="sigmoid")
    with pytest.raises(ValueError, match="sh_degree"):
        SplatOptions(sh_degree=4)
    with pytest.raises(ValueError, match="opacity_min"):
        SplatOptions(opacity_min=0.0)


# ----------------------------------------------------------------------------------------------------------------------
# Exported from a reconstruction (API and CLI)
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recon_rig():
    return small_rig()


@pytest.fixture(scope="module")
def recon(recon_rig, tmp_path_factory) -> Reconstruction:
    return write_recon(tmp_path_factory.mktemp("splat") / "recon", rig_arrays(recon_rig), recon_rig.camera_names)


def read_vertices(path):
    from plyfile import PlyData

    vertex = PlyData.read(str(path))["vertex"]
    assert [p.name for p in vertex.properties] == STANDARD_PROPERTIES
    assert all(vertex.data.dtype[name] == np.dtype("<f4") for name in STANDARD_PROPERTIES)
    return {name: np.asarray(vertex[name]) for name in STANDARD_PROPERTIES}


def test_exported_splats_are_the_selected_points_with_their_footprints(recon, recon_rig, tmp_path) -> None:
    selection = Selection(timesteps=(0, 2), conf_percentile=30, motion="static")
    written = export_reconstruction(recon, "splat", selection, tmp_path / "scene.ply", ExportOptions(merge=True))
    assert written == [tmp_path / "scene.ply"]
    assert (tmp_path / "scene.ply").read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    v = read_vertices(tmp_path / "scene.ply")
    points = select_points(recon, selection)
    assert len(v["x"]) == len(points)
    assert np.isfinite(np.stack(list(v.values()))).all()
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], -1), points.xyz)
    quaternions = np.stack([v[f"rot_{i}"] for i in range(4)], -1).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(quaternions, axis=-1), 1.0, atol=1e-6)
    # scales: sigma = sigma_pixels * depth / focal, with the rig's true depth and focal of each point's pixel
    t, n, row, col = points.timestep, points.camera, points.pixel[:, 1], points.pixel[:, 0]
    depth = recon_rig.depth[t, n, row, col].astype(np.float64)
    k = recon_rig.intrinsics[t, n]
    sigma = SplatOptions().sigma_pixels
    np.testing.assert_allclose(np.exp(v["scale_0"]), sigma * depth / k[:, 0, 0], rtol=1e-4)
    np.testing.assert_allclose(np.exp(v["scale_1"]), sigma * depth / k[:, 1, 1], rtol=1e-4)
    np.testing.assert_allclose(
        0.5 + SH_C0 * np.stack([v[f"f_dc_{i}"] for i in range(3)], -1), points.rgb / 255, atol=1e-6
    )
    # the rank opacity ranks each timestep on its own: both span the clamp range
    alpha = 1 / (1 + np.exp(-v["opacity"].astype(np.float64)))
    for step in (0, 2):
        assert alpha[t == step].min() < 0.07 and alpha[t == step].max() > 0.97


def test_cli_splat_export_with_options_and_one_file_per_timestep(recon, tmp_path) -> None:
    args = [str(recon.root), "--format", "splat", "--t", "0:2", "--cameras", "cam1", "--stream", "pose"]
    args += ["--splat-sigma", "0.8", "--splat-opacity", "confidence", "--sh-degree", "1"]
    result = CliRunner().invoke(export_command, [*args, "--out", str(tmp_path / "s.ply")])
    assert result.exit_code == 0, result.output
    for step in (0, 1):
        from plyfile import PlyData

        vertex = PlyData.read(str(tmp_path / f"s_t{step:05d}.ply"))["vertex"]
        assert [p.name for p in vertex.properties] == splat_properties(1)
        points = select_points(recon, Selection(timesteps=(step,), cameras=(1,), stream="pose"))
        np.testing.assert_array_equal(np.stack([vertex[a] for a in "xyz"], -1), points.xyz)
        alpha = 1 / (1 + np.exp(-np.asarray(vertex["opacity"], np.float64)))
        np.testing.assert_allclose(alpha, np.clip(1 - 1 / points.conf, 0.05, 0.99), rtol=1e-4)


def test_empty_splat_selection_is_a_clear_error_and_writes_nothing(recon, tmp_path) -> None:
    nothing = Selection(motion="dynamic", dynamic_threshold=0.95)  # probabilities are 0.1 or 0.9
    with pytest.raises(ExportError, match="keeps no point"):
        export_reconstruction(recon, "splat", nothing, tmp_path / "x.ply")
    result = CliRunner().invoke(
        export_command,
        [
            str(recon.root),
            "--format",
            "splat",
            "--out",
            str(tmp_path / "x.ply"),
            "--dynamic-only",
            "--dynamic-threshold",
            "0.95",
        ],
    )
    assert result.exit_code == 1 and "keeps no point" in result.output and "loosen the filters" in result.output
    assert list(tmp_path.iterdir()) == []
