"""Bad inputs get a message, never a traceback or silent garbage (issue 15, part B).

Every case drives the CLI (click's CliRunner, in-process, so a full or read-only disk is simulated by making the
writer raise ``OSError``) and checks the same four things: the exit status is non-zero (or zero with a warning where
the input is usable), the message names the file or option, no traceback, and nothing already written was deleted
or altered (:func:`snapshot` before, compared after).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from app.capture.preprocess import frame_transform, preprocess_frame
from app.capture.rig import MAX_STATIC_CAMERAS
from app.cli.main import main
from app.reconstruct import store as store_module
from app.reconstruct.pipeline import PipelineConfig, PipelineError, plan_run
from app.reconstruct.store import Reconstruction
from tests.helpers.capture import write_solid_rig
from vggt_t_mv import VGGTTMV, ModelConfig, load_model, save_pretrained

TINY = ["--config", "tiny", "--random-weights", "--device", "cpu"]
RUN = [*TINY, "--size", "56", "--window", "3", "--stride", "2"]  # 5 timesteps -> windows [0, 3) and [2, 5)


# ------------------------------------------------------------------------------------------------------- helpers
def invoke(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def assert_kept(before: dict[str, str], root: Path) -> None:
    """Every file of ``before`` is still there with the same bytes, and no temporary file was left behind."""
    after = snapshot(root)
    changed = sorted(name for name, digest in before.items() if after.get(name) != digest)
    assert changed == [], f"deleted or altered: {changed}"
    assert [name for name in after if ".tmp-" in name] == []


def first_window_arrays(recon: Path) -> dict[str, str]:
    """:func:`snapshot` of window 0's arrays (its window.json holds timings, which differ between runs)."""
    return {k: v for k, v in snapshot(recon).items() if k.startswith("windows/00000/") and k.endswith((".npy", ".zst"))}


def assert_refused(result: Result, *names: object) -> None:
    """Non-zero exit, a message naming each of ``names``, and no traceback."""
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for name in names:
        assert str(name) in result.output, (name, result.output)


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 2-camera, 5-timestep image capture and its complete reconstruction (tiny random model, 2 windows)."""
    root = tmp_path_factory.mktemp("template")
    capture = write_solid_rig(root / "capture", num_cameras=2, num_timesteps=5, fmt="images")
    assert_ok(invoke("run", capture, "--out", root / "recon", *RUN))
    return capture, root / "recon"


@pytest.fixture
def recon_copy(template: tuple[Path, Path], tmp_path: Path) -> Path:
    """A copy of the template reconstruction this test may damage."""
    return Path(shutil.copytree(template[1], tmp_path / "recon"))


# ---------------------------------------------------------------------------------------- damaged reconstructions
def _write(path: str, data: bytes | str) -> Callable[[Path], Path]:
    def damage(recon: Path) -> Path:
        target = recon / path
        target.write_bytes(data if isinstance(data, bytes) else data.encode())
        return target

    return damage


def _drop_meta_key(key: str) -> Callable[[Path], Path]:
    def damage(recon: Path) -> Path:
        meta = json.loads((recon / "meta.json").read_text())
        del meta[key]
        (recon / "meta.json").write_text(json.dumps(meta))
        return recon / "meta.json"

    return damage


def _delete(path: str) -> Callable[[Path], Path]:
    def damage(recon: Path) -> Path:
        (recon / path).unlink()
        return recon / path

    return damage


def _truncate(path: str) -> Callable[[Path], Path]:
    def damage(recon: Path) -> Path:
        data = (recon / path).read_bytes()
        (recon / path).write_bytes(data[: len(data) // 2])
        return recon / path

    return damage


def _reshape(path: str) -> Callable[[Path], Path]:
    def damage(recon: Path) -> Path:
        np.save(recon / path, np.zeros((3, 2, 3, 3), np.float32))  # extrinsics must be [3, 2, 3, 4]
        return recon / path

    return damage


META_DAMAGE = {
    "meta_not_json": _write("meta.json", "{not json"),
    "meta_not_utf8": _write("meta.json", b"\xff\xfe\x00garbage"),
    "meta_a_list": _write("meta.json", "[1, 2]"),
    "meta_without_camera_names": _drop_meta_key("camera_names"),
}
WINDOW_DAMAGE = {
    "window_json_not_json": _write("windows/00001/window.json", "{oops"),
    "window_json_missing": _delete("windows/00001/window.json"),
    "npy_truncated": _truncate("windows/00001/images.npy"),
    "zst_truncated": _truncate("windows/00001/depth.zst"),
    "zst_missing": _delete("windows/00001/world_points.zst"),
    "npy_wrong_shape": _reshape("windows/00001/extrinsics.npy"),
    "npy_not_npy": _write("windows/00001/images.npy", b"not an npy file at all"),
}


@pytest.mark.parametrize("case", sorted({**META_DAMAGE, **WINDOW_DAMAGE}))
@pytest.mark.parametrize("command", ["export", "view"])
def test_damaged_reconstruction_is_named_by_export_and_viewer(recon_copy: Path, tmp_path: Path, case, command) -> None:
    bad_file = {**META_DAMAGE, **WINDOW_DAMAGE}[case](recon_copy)
    before = snapshot(tmp_path)
    if command == "export":
        result = invoke("export", recon_copy, "--format", "ply", "--out", tmp_path / "cloud.ply")
    else:
        result = invoke("view", recon_copy, "--no-browser", "--port", "0", "--exit-after", "0")
    assert_refused(result, bad_file.relative_to(recon_copy))
    assert_kept(before, tmp_path)
    assert not (tmp_path / "cloud.ply").exists()


@pytest.mark.parametrize("case", sorted(META_DAMAGE))
def test_resume_on_a_damaged_meta_json_is_refused(template, recon_copy: Path, case: str) -> None:
    bad_file = META_DAMAGE[case](recon_copy)
    before = snapshot(recon_copy)
    assert_refused(invoke("run", template[0], "--out", recon_copy, *RUN, "--resume"), bad_file, "--overwrite")
    assert_kept(before, recon_copy)


@pytest.mark.parametrize("case", sorted(WINDOW_DAMAGE))
def test_resume_recomputes_a_damaged_window_and_never_calls_it_complete(template, recon_copy: Path, case) -> None:
    bad_file = WINDOW_DAMAGE[case](recon_copy)
    window0 = {k: v for k, v in snapshot(recon_copy).items() if k.startswith("windows/00000/")}
    result = invoke("run", template[0], "--out", recon_copy, *RUN, "--resume")
    assert_ok(result)
    assert str(bad_file.relative_to(recon_copy)) in result.output and "computed again" in result.output
    assert_kept(window0, recon_copy)  # the intact window is not touched
    resumed, original = Reconstruction.open(recon_copy), Reconstruction.open(template[1])
    assert resumed.is_complete and len(resumed.windows()) == 2
    for name in original.array_names():
        assert np.array_equal(resumed.load(name), original.load(name)), name


def test_damage_after_a_complete_run_is_not_complete_for_resume(template, recon_copy: Path) -> None:
    """A complete reconstruction with a truncated array: --resume runs the window again instead of stopping."""
    _truncate("windows/00001/depth_conf.zst")(recon_copy)
    assert json.loads((recon_copy / "meta.json").read_text())["status"] == "complete"
    result = invoke("run", template[0], "--out", recon_copy, *RUN, "--resume")
    assert_ok(result)
    assert "resuming" in result.output and "depth_conf.zst" in result.output
    resumed = Reconstruction.open(recon_copy)
    assert resumed.is_complete
    assert np.array_equal(resumed.load("depth_conf"), Reconstruction.open(template[1]).load("depth_conf"))


# ---------------------------------------------------------------------------------------------- output paths
def test_run_out_below_a_file(template, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    result = invoke("run", template[0], "--out", tmp_path / "notes.txt" / "recon", *RUN)
    assert_refused(result, tmp_path / "notes.txt", "--out")
    assert_kept(before, tmp_path)


def test_export_out_below_a_file(template, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    result = invoke("export", template[1], "--format", "ply", "--out", tmp_path / "notes.txt" / "cloud.ply")
    assert_refused(result, tmp_path / "notes.txt", "--out")
    assert_kept(before, tmp_path)


def test_viewer_live_run_out_below_a_file(template, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The viewer's background run reports a bad --out as its message (GUI status and one console line)."""
    from app.capture.preprocess import PreprocessConfig
    from app.viewer.live import LiveRun, LiveRunSpec
    from vggt_t_mv import WeightsSpec

    (tmp_path / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    spec = LiveRunSpec(
        capture=template[0],
        out=tmp_path / "notes.txt" / "recon",
        model=WeightsSpec(config="tiny", random_weights=True),
        pipeline=PipelineConfig(window=3, stride=2, device="cpu", preprocess=PreprocessConfig(size=56)),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = LiveRun(spec, on_ready=lambda path: None).start()
        run.thread.join(timeout=120)
    assert run.state["state"] == "failed" and "notes.txt" in run.state["error"]
    stderr = capsys.readouterr().err
    assert "notes.txt" in stderr and "Traceback" not in stderr
    assert_kept(before, tmp_path)


@pytest.mark.parametrize(
    ("fmt", "name"), [("ply", "cloud.ply"), ("glb", "scene.glb"), ("npz", "pred.npz"), ("mesh", "m.obj")]
)
def test_export_out_that_is_a_folder_for_a_file_format(template, tmp_path: Path, fmt: str, name: str) -> None:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    before = snapshot(tmp_path)
    result = invoke("export", template[1], "--format", fmt, "--out", folder, "--t", "0", "--overwrite")
    assert_refused(result, folder, "is a folder")
    assert_kept(before, tmp_path)


def test_export_colmap_out_that_is_a_file(template, tmp_path: Path) -> None:
    (tmp_path / "model").write_text("mine")
    before = snapshot(tmp_path)
    result = invoke("export", template[1], "--format", "colmap", "--out", tmp_path / "model", "--t", "0", "--overwrite")
    assert_refused(result, tmp_path / "model", "is a file")
    assert_kept(before, tmp_path)


# --------------------------------------------------------------------------------------- full / read-only disk
def _failing_save(monkeypatch: pytest.MonkeyPatch, code: int, when: Callable[[str], bool]) -> None:
    """``np.save`` and the store's compressed writer raise ``OSError(code)`` for the paths ``when`` picks (the disk is
    full / read-only there)."""
    for owner, name in ((np, "save"), (store_module, "save_chunked")):
        real_save = getattr(owner, name)

        def save(file, *args, real_save=real_save, **kwargs):
            if when(str(file)):
                raise OSError(code, os.strerror(code), str(file))
            return real_save(file, *args, **kwargs)

        monkeypatch.setattr(owner, name, save)


@pytest.mark.parametrize(
    ("code", "failing_window", "fix"),
    [(errno.ENOSPC, 1, "free some space"), (errno.EROFS, 1, "writable"), (errno.EACCES, 0, "writable")],
)
def test_full_or_read_only_disk_during_run(template, tmp_path, monkeypatch, code, failing_window, fix) -> None:
    out = tmp_path / "recon"
    _failing_save(monkeypatch, code, lambda path: f".{failing_window:05d}.tmp-" in path and "depth_conf" in path)
    result = invoke("run", template[0], "--out", out, *RUN)
    assert_refused(result, f"{failing_window:05d}", os.strerror(code), fix, "--resume")
    if failing_window:
        assert f"{failing_window} complete window(s) are kept" in result.output
    assert sorted(p.name for p in (out / "windows").iterdir()) == [f"{w:05d}" for w in range(failing_window)]
    done = first_window_arrays(template[1])
    if failing_window:  # what was written before the failure is the same as in an uninterrupted run
        assert_kept(done, out)
    monkeypatch.undo()
    assert_ok(invoke("run", template[0], "--out", out, *RUN, "--resume"))
    resumed, original = Reconstruction.open(out), Reconstruction.open(template[1])
    assert resumed.is_complete
    for name in original.array_names():
        assert np.array_equal(resumed.load(name), original.load(name)), name


def test_full_disk_during_export(template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before, recon_before = snapshot(tmp_path), snapshot(template[1])

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    result = invoke("export", template[1], "--format", "ply", "--out", tmp_path / "cloud.ply", "--merge")
    monkeypatch.undo()
    assert_refused(result, tmp_path / "cloud.ply", "No space left on device", "--out")
    assert_kept(before, tmp_path)
    assert_kept(recon_before, template[1])
    assert not (tmp_path / "cloud.ply").exists()


# ---------------------------------------------------------------------------------------------- weights
def _tiny_state() -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model("tiny", random_weights=True).model.state_dict()


def test_legacy_torch_save_checkpoint_is_read(tmp_path: Path) -> None:
    """A pre-1.6 (non-zip) ``torch.save`` file is a PyTorch checkpoint: read with weights_only=True, not refused."""
    state = _tiny_state()
    torch.save({"model": state}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    result = invoke("weights", "inspect", tmp_path / "legacy.pt")
    assert_ok(result)
    assert "layout ours" in result.output
    loaded = load_model(checkpoint=tmp_path / "legacy.pt", config="tiny")
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in state.items())
    assert loaded.report.summary().endswith("0 unused source tensors, 0 shape mismatches")


@pytest.mark.parametrize(
    "content",
    [
        b"\x00\xff\xfe garbage",
        b"{not json",
        b"[1, 2]",
        b'{"format_version": 1}',
        b'{"format_version": 1, "model": {"bogus_field": 1}}',
        b'{"format_version": 1, "model": {"depth": "deep"}}',
    ],
    ids=["binary", "not_json", "list", "no_model", "unknown_field", "bad_value"],
)
def test_garbage_config_json_in_a_weights_folder(template, tmp_path: Path, content: bytes) -> None:
    folder = save_pretrained(VGGTTMV(ModelConfig.tiny()), tmp_path / "weights")
    (folder / "config.json").write_bytes(content)
    before = snapshot(tmp_path)
    result = invoke("run", template[0], "--out", tmp_path / "out", "--checkpoint", folder, "--device", "cpu")
    assert_refused(result, folder)
    assert "config" in result.output
    assert_kept(before, tmp_path)
    assert not (tmp_path / "out").exists()


def test_eval_on_an_unreadable_model(tmp_path: Path) -> None:
    folder = save_pretrained(VGGTTMV(ModelConfig.tiny()), tmp_path / "model")
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    before = snapshot(tmp_path)
    result = invoke("eval", folder, "--gt", "synthetic:1", "-T", "2", "-N", "2", "--height", "28", "--width", "42")
    assert_refused(result, folder / "model.safetensors")
    assert_kept(before, tmp_path)


def test_non_finite_weights_are_named(template, tmp_path: Path) -> None:
    """Item 4: NaN/Inf in any weight tensor is refused after loading, naming the tensor and the file."""
    model = VGGTTMV(ModelConfig.tiny())
    name = "aggregator.camera_token"
    with torch.no_grad():
        model.state_dict()[name].view(-1)[0] = float("nan")
    folder = save_pretrained(model, tmp_path / "weights")
    before = snapshot(tmp_path)
    result = invoke("run", template[0], "--out", tmp_path / "out", "--checkpoint", folder, *RUN[3:])
    assert_refused(result, name, "NaN or Inf", folder)
    assert_kept(before, tmp_path)
    assert not (tmp_path / "out").exists()


def test_non_finite_window_output_is_refused_before_writing(template, tmp_path, monkeypatch) -> None:
    """Item 4: a window whose outputs hold NaN is not aligned or written; the windows before it are kept."""
    real_forward, calls = VGGTTMV.forward, []

    def forward(self, *args, **kwargs):
        preds = real_forward(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            preds.depth = torch.full_like(preds.depth, float("nan"))
        return preds

    monkeypatch.setattr(VGGTTMV, "forward", forward)
    out = tmp_path / "recon"
    result = invoke("run", template[0], "--out", out, *RUN)
    assert_refused(result, "window 1", "depth", "NaN or Inf", "1 complete window(s) are kept", "--resume")
    assert sorted(p.name for p in (out / "windows").iterdir()) == ["00000"]
    assert_kept(first_window_arrays(template[1]), out)


# ---------------------------------------------------------------------------------------------- pad colour
def test_pad_border_is_white_on_every_channel() -> None:
    """Item 5: ``--mode pad`` pads white (255 on R, G and B), for downscaled and upscaled frames; masks pad 0."""
    for source_hw, side in (((20, 40), 28), ((200, 400), 56), ((40, 20), 112)):
        transform = frame_transform(source_hw, (side, side), "pad")
        padded = preprocess_frame(np.zeros((*source_hw, 3), np.uint8), transform)
        assert padded[0, 0].tolist() == [255, 255, 255] and padded[-1, -1].tolist() == [255, 255, 255]
        assert padded[side // 2, side // 2].tolist() == [0, 0, 0]
        assert preprocess_frame(np.full(source_hw, 255, np.uint8), transform)[0, 0] == 0


def test_run_with_pad_mode_stores_white_borders(template, tmp_path: Path) -> None:
    assert_ok(invoke("run", template[0], "--out", tmp_path / "recon", *RUN, "--mode", "pad"))
    images = Reconstruction.open(tmp_path / "recon").load("images")  # 48x64 frames padded to 56x56: rows pad
    assert images.shape[2:4] == (56, 56)
    assert (images[:, :, 0] == 255).all() and (images[:, :, -1] == 255).all()


# ---------------------------------------------------------------------------------------------- capture
def test_frame_of_another_size_in_a_camera(tmp_path: Path) -> None:
    """Item 6: refused (naming the frame and both sizes) when it is reached; earlier windows are kept."""
    capture = write_solid_rig(tmp_path / "capture", num_cameras=2, num_timesteps=5, fmt="images")
    odd = capture / "cam1" / "000003.png"
    cv2.imwrite(str(odd), np.zeros((30, 40, 3), np.uint8))
    before = snapshot(capture)
    result = invoke("run", capture, "--out", tmp_path / "recon", *RUN)
    assert_refused(result, odd, "40x30", "64x48", "1 complete window(s) are kept")
    assert_kept(before, capture)
    assert Reconstruction.open(tmp_path / "recon").num_timesteps == 3


def test_still_image_beside_camera_videos_is_named(tmp_path: Path) -> None:
    """Item 7: cam3.png next to cam0.mp4 / cam1.mp4 is not a camera; the run says so."""
    capture = write_solid_rig(tmp_path / "capture", num_cameras=2, num_timesteps=3)
    cv2.imwrite(str(capture / "cam3.png"), np.zeros((48, 64, 3), np.uint8))
    result = invoke("run", capture, "--out", tmp_path / "recon", *TINY, "--size", "56", "--window", "3")
    assert_ok(result)
    assert "cam3.png" in result.output and "not cameras" in result.output
    recon = Reconstruction.open(tmp_path / "recon")
    assert recon.camera_names == ["cam0", "cam1"]
    assert any("cam3.png" in w for w in recon.meta["capture"]["warnings"])


def test_folder_of_too_many_images_is_refused(tmp_path: Path) -> None:
    """Item 8: a flat folder of many images would be one window of that many cameras: refused with the fix."""
    capture = tmp_path / "frames"
    capture.mkdir()
    image = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    for k in range(MAX_STATIC_CAMERAS + 1):
        (capture / f"{k:05d}.png").write_bytes(image)
    before = snapshot(tmp_path)
    result = invoke("run", capture, "--out", tmp_path / "recon", *TINY)
    assert_refused(result, capture, f"{MAX_STATIC_CAMERAS + 1} images", "sub-folder")
    assert_kept(before, tmp_path)
    assert not (tmp_path / "recon").exists()


def test_non_utf8_timestamps_csv(tmp_path: Path) -> None:
    capture = write_solid_rig(tmp_path / "capture", num_cameras=2, num_timesteps=3, fmt="images")
    csv_path = tmp_path / "stamps.csv"
    csv_path.write_bytes("cam_id,frame_time,caméra\n0,0.0,x\n1,0.0,y\n".encode("latin-1"))
    before = snapshot(tmp_path)
    result = invoke("run", capture, "--out", tmp_path / "recon", *TINY, "--timestamps", csv_path)
    assert_refused(result, csv_path, "UTF-8")
    assert_kept(before, tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("rig.yaml", "cameras: {}\n", ".toml"),
        ("rig.xml", "<opencv_storage/>", ".json"),
        ("rig.json", "[1, 2]", "cameras"),
        ("rig.json", '{"cameras": {"0": [1, 2]}}', "camera entry"),
        ("rig.toml", "cameras = 3\n", "[cameras]"),
    ],
)
def test_calibration_file_in_an_unsupported_or_malformed_format(tmp_path: Path, name, content, expected) -> None:
    capture = write_solid_rig(tmp_path / "capture", num_cameras=2, num_timesteps=3, fmt="images")
    calibration = tmp_path / name
    calibration.write_text(content)
    before = snapshot(tmp_path)
    result = invoke("run", capture, "--out", tmp_path / "recon", *TINY, "--calibration", calibration)
    assert_refused(result, calibration, expected)
    assert_kept(before, tmp_path)
    assert not (tmp_path / "recon").exists()


# ---------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize("option", ["--window", "--stride"])
def test_zero_window_or_stride_is_an_error_not_the_default(template, tmp_path: Path, option: str) -> None:
    """Item 9: 0 used to mean "the device default" silently."""
    result = invoke("run", template[0], "--out", tmp_path / "recon", *TINY, option, "0")
    assert_refused(result, option)
    assert not (tmp_path / "recon").exists()
    with pytest.raises(PipelineError, match=option):
        plan_run(_capture(template[0]), PipelineConfig(device="cpu", **{option[2:]: 0}))


def _capture(path: Path):
    from app.capture.rig import RigCapture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RigCapture.open(path)


@pytest.mark.parametrize("voxel", ["1e-300", "inf", "nan", "-1"])
def test_voxel_that_cannot_grid_the_cloud(template, tmp_path: Path, voxel: str) -> None:
    """Item 9: a voxel so small that the integer grid overflows used to collapse the cloud to one point."""
    result = invoke("export", template[1], "--format", "ply", "--out", tmp_path / "c.ply", "--voxel", voxel, "--t", "0")
    assert_refused(result, "--voxel")
    assert not (tmp_path / "c.ply").exists()


def test_a_small_voxel_that_fits_the_grid_still_works(template, tmp_path: Path) -> None:
    assert_ok(
        invoke("export", template[1], "--format", "ply", "--out", tmp_path / "c.ply", "--voxel", "1e-9", "--t", "0")
    )


@pytest.mark.parametrize("command", ["run", "eval"])
def test_unknown_device(template, tmp_path: Path, command: str) -> None:
    if command == "run":
        result = invoke("run", template[0], "--out", tmp_path / "recon", *TINY[:3], "--device", "tpu9")
    else:
        folder = save_pretrained(VGGTTMV(ModelConfig.tiny()), tmp_path / "model")
        result = invoke("eval", folder, "--gt", "synthetic:1", "--device", "tpu9")
    assert_refused(result, "--device", "tpu9")
    assert not (tmp_path / "recon").exists()


# ------------------------------------------------------------------------------------------- calibration
def _rig_json(cameras: dict[str, dict], units: str | None = None) -> str:
    body = {"cameras": cameras, **({} if units is None else {"units": units})}
    return json.dumps(body).replace('"NaN"', "NaN")


_K = [[60.0, 0.0, 32.0], [0.0, 60.0, 24.0], [0.0, 0.0, 1.0]]
_GOOD = {"K": _K, "size": [64, 48], "R": np.eye(3).tolist(), "t": [0.0, 0.0, 0.0]}


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("missing.json", _rig_json({"cam0": _GOOD}), ("no entry for camera(s) cam1", "key each camera")),
        (
            "size.json",
            _rig_json({"cam0": {**_GOOD, "size": [128, 96]}, "cam1": {**_GOOD, "t": [0.5, 0, 0]}}),
            ("128x96", "64x48", "calibrate at the capture's resolution"),
        ),
        (
            "aspect.json",
            _rig_json({"cam0": _GOOD, "cam1": {**_GOOD, "size": [64, 64], "t": [0.5, 0, 0]}}),
            ("64x64", "another aspect"),
        ),
        (
            "rotation.json",
            _rig_json({"cam0": _GOOD, "cam1": {**_GOOD, "R": [[2, 0, 0], [0, 1, 0], [0, 0, 1]]}}),
            ("camera 'cam1'", "not a rotation matrix", "orthonormal"),
        ),
        (
            "nan.json",
            _rig_json({"cam0": _GOOD, "cam1": {**_GOOD, "t": ["NaN", 0, 0]}}),
            ("camera 'cam1'", "NaN", "fix or re-export"),
        ),
        (
            "units.json",
            _rig_json({"cam0": _GOOD, "cam1": _GOOD}, units="furlongs"),
            ("furlongs", "--calibration-units"),
        ),
        (
            "calibration.toml",
            '[cam_0]\nname = "cam0"\nsize = [64, 48]\nmatrix = [[60, 0, 32], [0, 60, 24], [0, 0, 1]]\n'
            "rotation = [0, 0, 0]\ntranslation = [0, 0, 0]\n"
            '[cam_1]\nname = "cam1"\nsize = [64, 48]\nmatrix = [[60, 0, 32], [0, 60, 24], [0, 0, 1]]\n'
            "rotation = [0, 0, 0]\ntranslation = [-60, 0, 0]\n",
            ("units are not determinable", "--calibration-units"),
        ),
    ],
)
def test_calibration_that_does_not_fit_the_capture(tmp_path: Path, name: str, content: str, expected) -> None:
    """Issue 23: a calibration missing a camera, of another image size or aspect, with a non-rotation, NaN, or units
    that cannot be told: refused naming the file and the fix, before anything is written."""
    capture = write_solid_rig(tmp_path / "capture", num_cameras=2, num_timesteps=3, fmt="images")
    calibration = tmp_path / name
    calibration.write_text(content)
    before = snapshot(tmp_path)
    result = invoke("run", capture, "--out", tmp_path / "recon", *TINY, "--calibration", calibration)
    assert_refused(result, calibration, *expected)
    assert_kept(before, tmp_path)
    assert not (tmp_path / "recon").exists()
