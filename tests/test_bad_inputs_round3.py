"""Bad inputs, round three (issue 26): what still gave a traceback, a hang or a silently wrong result.

Each case drives the CLI (in-process, ``CliRunner``) and checks, as ``tests/test_bad_inputs.py`` does: the exit
status, a message naming the file or option and the fix, no traceback, nothing left behind, nothing already written
lost.
"""

from __future__ import annotations

import json
import shutil
import struct
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from app.capture.rig import RigCapture
from tests.helpers.capture import write_solid_rig
from tests.test_bad_inputs import RUN, TINY, assert_kept, assert_ok, assert_refused, invoke, snapshot, template
from vggt_t_mv import VGGTTMV, ModelConfig, save_pretrained
from vggt_t_mv.data import make_synthetic_rig, write_capture
from vggt_t_mv.data.realdata import _read_rgb
from vggt_t_mv.data.recorded import read_camera_frames

__all__ = ["template"]  # the shared module fixture: a 2-camera capture and its reconstruction


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header says ``width x height`` (its pixel data is a stub: only the header is ever read)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) +
                     chunk(b"IEND", b""))  # fmt: skip
    return path


# ------------------------------------------------------------------------------------------------ tracebacks
def test_a_40000_px_png_is_refused_naming_the_file_and_its_size(tmp_path: Path) -> None:
    capture = write_solid_rig(tmp_path / "capture", num_cameras=2, num_timesteps=3, fmt="images")
    huge = png_header_only(capture / "cam1" / "000000.png", 40000, 40000)
    before = snapshot(tmp_path)
    result = invoke("run", capture, "--out", tmp_path / "recon", *RUN)
    assert_refused(result, huge, "1,600,000,000 pixels", "downscale")
    assert_kept(before, tmp_path)
    assert not (tmp_path / "recon").exists()


def test_a_config_json_asking_for_a_huge_model_is_refused_before_allocating(template, tmp_path: Path) -> None:
    folder = save_pretrained(VGGTTMV(ModelConfig.tiny()), tmp_path / "weights")
    config = json.loads((folder / "config.json").read_text())
    config["model"]["embed_dim"] = 100000
    (folder / "config.json").write_text(json.dumps(config))
    before = snapshot(tmp_path)
    start = time.monotonic()
    result = invoke("run", template[0], "--out", tmp_path / "out", "--checkpoint", folder, "--device", "cpu")
    assert time.monotonic() - start < 60
    assert_refused(result, folder, "embed_dim 100000", "free on cpu")
    assert_kept(before, tmp_path)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["export", "view"])
def test_an_object_dtype_npy_in_a_reconstruction_is_named_and_not_called_truncated(template, tmp_path, command):
    recon = Path(shutil.copytree(template[1], tmp_path / "recon"))
    bad = recon / "windows" / "00001" / "images.npy"
    shape = np.load(bad, mmap_mode="r").shape
    np.save(bad, np.full(shape, None, dtype=object), allow_pickle=True)
    before = snapshot(tmp_path)
    if command == "export":
        result = invoke("export", recon, "--format", "ply", "--out", tmp_path / "cloud.ply")
    else:
        result = invoke("view", recon, "--no-browser", "--port", "0", "--exit-after", "0")
    assert_refused(result, bad.relative_to(recon), "Python objects", "--resume")
    assert "truncated" not in result.output
    assert_kept(before, tmp_path)


@pytest.mark.parametrize("port", ["-1", "99999"])
def test_view_port_out_of_range(template, port: str) -> None:
    result = invoke("view", template[1], "--no-browser", "--port", port, "--exit-after", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--port" in result.output and "0<=x<=65535" in result.output


# ------------------------------------------------------------------------------------------------ hang
def test_a_huge_size_is_refused_before_anything_is_allocated(template, tmp_path: Path) -> None:
    start = time.monotonic()
    result = invoke("run", template[0], "--out", tmp_path / "recon", *TINY, "--size", "100002", "--window", "3")
    assert time.monotonic() - start < 30
    assert_refused(result, "--size 100002", "100002x74998", "Choose a --size well below")
    assert not (tmp_path / "recon").exists()


# ------------------------------------------------------------------------------------------------ timestamps
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_non_finite_timestamp_names_the_file_line_and_value(tmp_path: Path, value: str) -> None:
    capture = write_solid_rig(tmp_path / "capture", num_cameras=2, num_timesteps=3, fmt="images")
    rows = ["cam_id,frame_time"] + [f"{n},{t * 0.1:.1f}" for t in range(3) for n in range(2)]
    rows[4] = f"1,{value}"  # line 5 of the file: camera 1's second frame
    (capture / "timestamps.csv").write_text("\n".join(rows) + "\n")
    before = snapshot(tmp_path)
    result = invoke("run", capture, "--out", tmp_path / "recon", *RUN)
    assert_refused(result, capture / "timestamps.csv", "line 5", f"frame_time is {value}", "fix or delete")
    assert_kept(before, tmp_path)
    assert not (tmp_path / "recon").exists()


# ------------------------------------------------------------------------------------------------ EXIF
def test_exif_orientation_is_applied_the_same_in_run_eval_and_training(tmp_path: Path) -> None:
    """The same EXIF-tagged JPEG capture gives the same (upright) images to every reader, and runs say so once."""
    rig = make_synthetic_rig(num_timesteps=2, num_cameras=2, height=28, width=42, seed=4)
    folder = write_capture(rig, tmp_path / "rig", fmt="images")
    stored = {}  # the sensor's pixels, stored sideways with "rotate 90 degrees clockwise to view" (orientation 6)
    for name in rig.camera_names:
        for png in sorted((folder / name).glob("*.png")):
            upright = cv2.imread(str(png))[..., ::-1]
            sideways = np.ascontiguousarray(np.rot90(upright, k=1))  # what a phone held sideways stores
            exif = Image.Exif()
            exif[0x0112] = 6
            Image.fromarray(sideways).save(png.with_suffix(".jpg"), quality=100, subsampling=0, exif=exif.tobytes())
            png.unlink()
            stored[(name, png.stem)] = cv2.imread(str(png.with_suffix(".jpg")), cv2.IMREAD_COLOR)[..., ::-1]
    # run's reader
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        capture = RigCapture.open(folder)
        run_frames = {name: np.stack(list(source.frames(range(2)))) for name, source in zip(
            capture.camera_names, capture.sources, strict=True)}  # fmt: skip
    said = [str(w.message) for w in caught if "EXIF orientation 6" in str(w.message)]
    assert len(said) == len(rig.camera_names) and all("rotated 90 degrees clockwise" in s for s in said)
    # training's and evaluation's readers
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        training = {name: read_camera_frames(folder, name) for name in rig.camera_names}
    assert len([w for w in caught if "EXIF orientation 6" in str(w.message)]) == len(rig.camera_names)
    for name in rig.camera_names:
        evaluation = np.stack([_read_rgb(folder / name / f"{t:06d}.jpg") for t in range(2)])
        assert run_frames[name].shape == (2, 28, 42, 3)  # upright: the rig's own size, not 42x28
        np.testing.assert_array_equal(run_frames[name], training[name])
        np.testing.assert_array_equal(run_frames[name], evaluation)
        for t in range(2):  # OpenCV's own EXIF handling agrees
            np.testing.assert_array_equal(run_frames[name][t], stored[(name, f"{t:06d}")])
        assert np.abs(run_frames[name].astype(int) - rig.images[:, rig.camera_names.index(name)]).mean() < 3


# ------------------------------------------------------------------------------------------------ evaluation
@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A recorded capture (frames + ground_truth.npz) and its tiny reconstruction."""
    root = tmp_path_factory.mktemp("recorded")
    rig = make_synthetic_rig(num_timesteps=3, num_cameras=2, height=28, width=42, seed=9)
    folder = write_capture(rig, root / "rig", fmt="images")
    assert_ok(invoke("run", folder, "--out", root / "recon", *TINY, "--size", "42", "--window", "3"))
    return folder, root / "recon"


def broken_ground_truth(folder: Path, target: Path, key: str, value: float) -> Path:
    shutil.copytree(folder, target)
    with np.load(folder / "ground_truth.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays[key] = np.full_like(arrays[key], value)
    np.savez(target / "ground_truth.npz", **arrays)
    return target


@pytest.mark.parametrize(("key", "value", "says"), [("extrinsics", np.nan, "NaN or inf"), ("intrinsics", 0.0, "fx")])
@pytest.mark.parametrize("evaluated", ["reconstruction", "model"])
def test_eval_with_unusable_ground_truth_cameras(recorded, tmp_path: Path, key, value, says, evaluated) -> None:
    gt = broken_ground_truth(recorded[0], tmp_path / "gt", key, value)
    before = snapshot(tmp_path)
    if evaluated == "reconstruction":
        result = invoke("eval", recorded[1], "--gt", gt)
    else:
        result = invoke("eval", "--config", "tiny", "--random-weights", "--gt", gt, "-T", 2, "--width", 42)
    assert_refused(result, gt, key, says, "camera 0, frame 0")
    assert "LinAlgError" not in result.output
    assert_kept(before, tmp_path)


@pytest.mark.parametrize("value", [np.nan, 0.0])
def test_eval_says_when_the_ground_truth_depth_holds_no_valid_value(recorded, tmp_path: Path, value: float) -> None:
    gt = broken_ground_truth(recorded[0], tmp_path / "gt", "depth", value)
    result = invoke("eval", recorded[1], "--gt", gt, "--json", tmp_path / "eval.json")
    assert_ok(result)
    assert "stores depth, but no valid value" in result.output and str(gt) in result.output
    report = json.loads((tmp_path / "eval.json").read_text())
    results = [
        r
        for entry in report.values()
        if isinstance(entry, dict)
        for r in entry.values()
        if isinstance(r, dict) and "notes" in r
    ]
    assert results and all("no valid value" in " ".join(r["notes"]) for r in results)
