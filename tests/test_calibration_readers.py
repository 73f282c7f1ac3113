"""Each calibration reader on a real file gives the OpenCV camera-from-world ``[R | t]`` and ``K`` that an independent
computation here derives from the same file (own parsing, own rotation formulas), so a convention mix-up (a
transposed rotation, world-from-camera, a flipped axis, COLMAP's half-pixel) fails."""

from __future__ import annotations

import csv
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.capture.calibration import load_calibration, read_calibration_file
from app.capture.calibration.rig import CalibrationError
from tests.helpers.shared import require, shared_dir

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

CALIBRATIONS = shared_dir() / "realdata" / "calibrations"


def axis_angle_matrix(vector) -> np.ndarray:
    """Rodrigues' formula written out (not cv2): R = I + sin(a) K + (1 - cos(a)) K^2 for the unit axis's K."""
    vector = np.asarray(vector, dtype=np.float64)
    angle = np.linalg.norm(vector)
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = vector / angle
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def quaternion_wxyz_matrix(w, x, y, z) -> np.ndarray:
    n = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def test_anipose_toml_rodrigues_world_to_camera_in_millimetres() -> None:
    path = require(CALIBRATIONS / "anipose_freemocap" / "calibration.toml", "anipose calibration")
    raw = tomllib.loads(path.read_text())
    calibration = load_calibration(path, ["A", "B"], [(1920, 1080), (1920, 1080)])
    assert calibration.format == "anipose" and calibration.units == "mm"  # not stated: cameras ~2.7 m apart
    assert "cameras matched by name" in calibration.match
    for key, camera in zip(("cam_0", "cam_1"), calibration.cameras, strict=True):
        table = raw[key]
        assert camera.name == table["name"] and camera.size == tuple(table["size"])
        np.testing.assert_allclose(camera.intrinsics, table["matrix"])
        expected = np.concatenate([axis_angle_matrix(table["rotation"]), np.array(table["translation"])[:, None]], 1)
        np.testing.assert_allclose(camera.extrinsics, expected, atol=1e-9)
        assert camera.distortion.model == "opencv"
        np.testing.assert_allclose(camera.distortion.coefficients, table["distortions"])


def _opencv_yaml(path: Path) -> dict[str, np.ndarray | list[str]]:
    """A minimal reader of OpenCV's YAML (``names`` list, ``!!opencv-matrix`` nodes), independent of cv2."""
    text = path.read_text()
    out: dict[str, np.ndarray | list[str]] = {"names": re.findall(r'^\s+- "([^"]*)"', text, re.M)}
    for key, rows, cols, data in re.findall(
        r"^(\w+): !!opencv-matrix\s+rows: (\d+)\s+cols: (\d+)\s+dt: \w\s+data: \[([^\]]*)\]", text, re.M
    ):
        out[key] = np.array([float(v) for v in data.replace("\n", " ").split(",")]).reshape(int(rows), int(cols))
    return out


def test_easymocap_yaml_pair_matches_its_rotation_matrices() -> None:
    folder = require(CALIBRATIONS / "easymocap_anerf", "EasyMocap calibration")
    intri, extri = _opencv_yaml(folder / "intri.yml"), _opencv_yaml(folder / "extri.yml")
    names = list(intri["names"])
    calibration = load_calibration(folder, [f"cam{n}" for n in names])
    assert calibration.format == "easymocap" and calibration.units == "m"  # inferred: cameras metres apart
    assert calibration.match.startswith("cameras matched by name")
    for name, camera in zip(names, calibration.cameras, strict=True):
        np.testing.assert_allclose(camera.intrinsics, intri[f"K_{name}"])
        # EasyMocap stores the same rotation twice: R_ (Rodrigues, what it reads) and Rot_ (the matrix)
        np.testing.assert_allclose(camera.extrinsics[:, :3], extri[f"Rot_{name}"], atol=1e-6)
        np.testing.assert_allclose(camera.extrinsics[:, :3], axis_angle_matrix(extri[f"R_{name}"].ravel()), atol=1e-9)
        np.testing.assert_allclose(camera.extrinsics[:, 3], extri[f"T_{name}"].ravel())
    # the file's own camera centres agree with the rotation matrix: the rig looks at its middle
    centres = np.stack([c.centers() for c in calibration.cameras])
    middle = centres.mean(0)
    for camera in calibration.cameras:
        assert (camera.extrinsics[:, :3] @ middle + camera.extrinsics[:, 3])[2] > 0  # in front of every camera


def test_qualisys_qca_centres_are_the_transform_positions() -> None:
    path = require(CALIBRATIONS / "qualisys_pose2sim_multiperson" / "Calib.qca.txt", "Qualisys calibration")
    calibration = read_calibration_file(path)
    assert calibration.format == "qualisys" and calibration.units == "mm"
    cameras = ElementTree.parse(path).getroot().findall("cameras/camera")
    assert [c.name for c in calibration.cameras] == [c.get("serial") for c in cameras]
    for element, camera in zip(cameras, calibration.cameras, strict=True):
        transform, intrinsic, fov = element.find("transform"), element.find("intrinsic"), element.find("fov_video")
        position = np.array([float(transform.get(a)) for a in "xyz"])
        np.testing.assert_allclose(camera.centers(), position, atol=1e-6)
        # pose2sim: R_qualisys read by column, inverted to camera-centred, then a half turn about the camera's x
        orientation_by_column = np.array([[float(transform.get(f"r{i}{j}")) for i in "123"] for j in "123"])
        world_to_camera = orientation_by_column.T
        half_turn_x = np.array([[1, 0, 0], [0, np.cos(np.pi), -np.sin(np.pi)], [0, np.sin(np.pi), np.cos(np.pi)]])
        np.testing.assert_allclose(camera.extrinsics[:, :3], half_turn_x @ world_to_camera, atol=1e-12)
        np.testing.assert_allclose(camera.extrinsics[:, 3], -half_turn_x @ world_to_camera @ position, atol=1e-6)
        width = int(fov.get("right")) - int(fov.get("left")) + 1
        height = int(fov.get("bottom")) - int(fov.get("top")) + 1
        assert camera.size == (width, height) == (1088, 1920)
        expected_k = [
            [float(intrinsic.get("focalLengthU")) / 64, 0, float(intrinsic.get("centerPointU")) / 64],
            [0, float(intrinsic.get("focalLengthV")) / 64, float(intrinsic.get("centerPointV")) / 64],
            [0, 0, 1],
        ]
        np.testing.assert_allclose(camera.intrinsics, expected_k)  # fov_video left = top = 0 here
        assert 0 < camera.intrinsics[0, 2] < width and 0 < camera.intrinsics[1, 2] < height
        assert camera.distortion.coefficients[0] == pytest.approx(float(intrinsic.get("radialDistortion1")) / 64)


def test_caliscope_reprojects_its_own_charuco_detections() -> None:
    """The strongest convention check there is: caliscope's triangulated board corners, projected with the cameras
    we read (K, distortion, [R | t]), land on the corners it detected in each camera."""
    folder = require(shared_dir() / "realdata" / "caliscope_4cam_charuco", "caliscope capture")
    names = ["cam_0", "cam_1", "cam_2", "cam_3"]
    calibration = load_calibration(folder / "camera_array.toml", names, [(1280, 720)] * 4)
    assert calibration.format == "caliscope" and calibration.units == "m"
    charuco = folder / "calibration" / "extrinsic" / "CHARUCO"
    points = {}
    with open(charuco / "xyz_CHARUCO.csv") as handle:
        for row in csv.DictReader(handle):
            points[(row["sync_index"], row["keypoint_id"])] = [float(row[k]) for k in ("x_coord", "y_coord", "z_coord")]
    errors = []
    with open(charuco / "xy_CHARUCO.csv") as handle:
        for row in csv.DictReader(handle):
            key = (row["sync_index"], row["keypoint_id"])
            if key not in points:
                continue
            camera = calibration.cameras[int(row["cam_id"])]
            rvec = cv2.Rodrigues(camera.extrinsics[:, :3])[0]
            projected = cv2.projectPoints(
                np.array([points[key]]),
                rvec,
                camera.extrinsics[:, 3],
                camera.intrinsics,
                camera.distortion.coefficients,
            )[0].ravel()
            errors.append(np.linalg.norm(projected - [float(row["img_loc_x"]), float(row["img_loc_y"])]))
    assert len(errors) > 1000 and np.median(errors) < 2.0


def test_dataset_root_is_its_intrs_and_extrs() -> None:
    root = require(shared_dir() / "realdata" / "mv_page4d_rig", "mv_page4d_rig")
    calibration = load_calibration(root, [f"view{n}" for n in range(4)], [(640, 480)] * 4)
    assert calibration.format == "dataset" and calibration.units == "arbitrary" and not calibration.moving
    for n, camera in enumerate(calibration.cameras):
        np.testing.assert_array_equal(camera.intrinsics, np.load(root / "intrs" / "time_00" / f"view{n}.npy"))
        np.testing.assert_array_equal(camera.extrinsics, np.load(root / "extrs" / "time_05" / f"view{n}.npy")[:3])
        assert camera.distortion.is_identity and camera.size == (640, 480)


def test_dataset_root_whose_extrinsics_change_is_a_moving_rig(tmp_path: Path) -> None:
    root = tmp_path / "rig"
    for t in range(3):
        for n in range(2):
            (root / "images" / f"time_{t:02d}").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / "images" / f"time_{t:02d}" / f"view{n}.png"), np.zeros((48, 64, 3), np.uint8))
            for kind, value in (
                ("intrs", np.array([[50.0, 0, 32], [0, 50, 24], [0, 0, 1]])),
                ("extrs", np.concatenate([np.eye(3), [[t + n], [0], [0]]], 1)),
            ):
                (root / kind / f"time_{t:02d}").mkdir(parents=True, exist_ok=True)
                np.save(root / kind / f"time_{t:02d}" / f"view{n}.npy", value)
    calibration = load_calibration(root, ["view0", "view1"])
    assert calibration.moving
    frames = np.array([[0, 0], [2, 1]])
    np.testing.assert_array_equal(calibration.extrinsics_for(frames)[..., 0, 3], [[0, 1], [2, 2]])


def test_colmap_text_model_written_by_hand_round_trips(tmp_path: Path) -> None:
    """An old-style text model (no rigs/frames files), as COLMAP or a script writes it; COLMAP's pixel centres are
    at +0.5 and its quaternions are w x y z."""
    model = tmp_path / "sparse" / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text(
        "# CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
        "1 PINHOLE 640 480 500 510 320.5 240.5\n"
        "2 OPENCV 640 480 400 401 300.5 250.5 -0.1 0.01 0.001 -0.002\n"
    )
    quaternions = [(0.9238795, 0.0, 0.3826834, 0.0), (0.7071068, 0.7071068, 0.0, 0.0)]
    translations = [(0.1, -0.2, 3.0), (1.0, 0.5, 2.0)]
    lines = ["# IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME", "# POINTS2D"]
    for i, (q, t, name) in enumerate(zip(quaternions, translations, ("left/000000.png", "right.png"), strict=True)):
        lines += [f"{i + 1} {' '.join(map(str, q))} {' '.join(map(str, t))} {i + 1} {name}", ""]
    (model / "images.txt").write_text("\n".join(lines) + "\n")
    (model / "points3D.txt").write_text("")
    calibration = load_calibration(tmp_path, ["left", "right"], [(640, 480)] * 2)
    assert calibration.format == "colmap" and calibration.units == "arbitrary"
    left, right = calibration.cameras
    np.testing.assert_allclose(left.intrinsics, [[500, 0, 320], [0, 510, 240], [0, 0, 1]])
    np.testing.assert_allclose(right.intrinsics, [[400, 0, 300], [0, 401, 250], [0, 0, 1]])
    assert left.distortion.is_identity and right.distortion.model == "opencv"
    np.testing.assert_allclose(right.distortion.coefficients, [-0.1, 0.01, 0.001, -0.002])
    for camera, q, t in zip(calibration.cameras, quaternions, translations, strict=True):
        np.testing.assert_allclose(camera.extrinsics[:, :3], quaternion_wxyz_matrix(*q), atol=1e-6)
        np.testing.assert_allclose(camera.extrinsics[:, 3], t, atol=1e-9)
    # and written back by pycolmap as .bin, then read again: the same cameras
    import pycolmap

    binary = tmp_path / "binary"
    binary.mkdir()
    pycolmap.Reconstruction(str(model)).write_binary(str(binary))
    again = load_calibration(binary, ["left", "right"])
    for a, b in zip(calibration.cameras, again.cameras, strict=True):
        np.testing.assert_allclose(a.intrinsics, b.intrinsics)
        np.testing.assert_allclose(a.extrinsics, b.extrinsics, atol=1e-12)


def test_json_schema_units_and_matching_by_order(tmp_path: Path) -> None:
    path = tmp_path / "rig.json"
    path.write_text(
        '{"units": "mm", "cameras": ['
        '{"name": "north", "K": [[100, 0, 32], [0, 100, 24], [0, 0, 1]], "size": [64, 48], '
        '"R": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "t": [0, 0, 0], "dist": [0.1, 0, 0, 0]},'
        '{"name": "south", "K": [[100, 0, 32], [0, 100, 24], [0, 0, 1]], "size": [64, 48], '
        '"R": [[0, 0, 1], [0, 1, 0], [-1, 0, 0]], "t": [0, 0, 500], "distortion_model": "fisheye"}]}'
    )
    calibration = load_calibration(path, ["cam0", "cam1"], [(64, 48)] * 2)
    assert calibration.units == "mm" and calibration.units_source.startswith("as JSON")
    assert calibration.match == "cameras matched by order (names differ): north->cam0, south->cam1"
    assert calibration.cameras[0].distortion.model == "opencv" and calibration.cameras[1].distortion.is_identity
    assert "units: mm" in calibration.summary() and "matched by order" in calibration.summary()


def test_units_can_be_given_when_the_file_does_not_state_them(tmp_path: Path) -> None:
    path = tmp_path / "calibration.toml"
    path.write_text(
        '[cam_0]\nname = "a"\nsize = [64, 48]\nmatrix = [[100, 0, 32], [0, 100, 24], [0, 0, 1]]\n'
        "rotation = [0, 0, 0]\ntranslation = [0, 0, 0]\n"
        '[cam_1]\nname = "b"\nsize = [64, 48]\nmatrix = [[100, 0, 32], [0, 100, 24], [0, 0, 1]]\n'
        "rotation = [0, 0, 0]\ntranslation = [-50, 0, 0]\n"
    )
    with pytest.raises(CalibrationError, match="--calibration-units"):
        load_calibration(path, ["a", "b"])  # 50 apart: 50 m or 50 mm?
    assert load_calibration(path, ["a", "b"], units="cm").units == "cm"
