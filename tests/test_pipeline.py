"""End to end: `vggt-mv run` with the tiny model (random weights) into a Reconstruction."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from app.capture.preprocess import PreprocessConfig
from app.capture.rig import CaptureOptions, RigCapture
from app.capture.sources import CaptureWarning
from app.cli.main import main
from app.reconstruct.pipeline import PipelineConfig, PipelineError, plan_run
from app.reconstruct.run import reconstruct
from app.reconstruct.store import ARRAY_NAMES, Reconstruction
from app.viewer.data import CloudSettings, filter_timestep
from tests.helpers.capture import solid_color, write_solid_rig
from tests.helpers.shared import REPO_ROOT, require, shared_dir
from vggt_t_mv import WeightsSpec

TINY = ["--config", "tiny", "--random-weights", "--device", "cpu"]


def run_cli(*args: str, expect_ok: bool = True):
    result = CliRunner().invoke(main, ["run", *map(str, args)], catch_exceptions=False)
    if expect_ok:
        assert result.exit_code == 0, result.output
    return result


def assert_finite_and_shaped(recon: Reconstruction, num_timesteps: int, num_cameras: int) -> None:
    height, width = recon.image_hw
    expected = {
        "images": (height, width, 3),
        "depth": (height, width),
        "depth_conf": (height, width),
        "world_points": (height, width, 3),
        "world_points_conf": (height, width),
        "world_points_from_depth": (height, width, 3),
        "extrinsics": (3, 4),
        "intrinsics": (3, 3),
    }
    assert recon.num_timesteps == num_timesteps and recon.num_cameras == num_cameras
    for name, trailing in expected.items():
        array = recon.load(name)
        assert array.shape == (num_timesteps, num_cameras, *trailing), name
        assert np.isfinite(array.astype(np.float64)).all(), name


def test_solid_colour_capture_lands_at_t_k(tmp_path: Path) -> None:
    """Camera k showing colour c(t, k) at timestep t lands at [t, k], through overlapping windows."""
    capture = write_solid_rig(tmp_path / "cap", num_cameras=3, num_timesteps=10, fmt="images")
    result = run_cli(capture, "--out", tmp_path / "out", *TINY, "--size", 56, "--window", 4, "--stride", 3)
    assert "meaningless" in result.output and "frames/s" in result.output
    recon = Reconstruction.open(tmp_path / "out")
    assert recon.is_complete and recon.spans == [(0, 4), (3, 7), (6, 10)]
    assert_finite_and_shaped(recon, 10, 3)
    images = recon.load("images")
    for t in range(10):
        for k in range(3):
            assert images[t, k, 5, 5].tolist() == list(solid_color(t, k)), (t, k)
    alignment = recon.meta["alignment"]
    assert [a["alignment"]["kind"] for a in alignment] == ["reference", "sim3", "sim3"]
    assert recon.meta["capture"]["frame_index"] == [[t] * 3 for t in range(10)]


def test_video_capture_order_with_natural_names(tmp_path: Path) -> None:
    capture = write_solid_rig(tmp_path / "cap", names=["cam10", "cam2"], num_timesteps=5)
    run_cli(capture, "--out", tmp_path / "out", *TINY, "--size", 56, "--window", 3, "--stride", 2)
    recon = Reconstruction.open(tmp_path / "out")
    assert recon.camera_names == ["cam2", "cam10"]
    images = recon.load("images").astype(int)
    for t in range(5):  # cam2 was written as k=1, cam10 as k=0
        assert np.abs(images[t, 0, 10, 10] - solid_color(t, 1)).max() <= 6
        assert np.abs(images[t, 1, 10, 10] - solid_color(t, 0)).max() <= 6


def _interrupted_then_resumed(capture_path: Path, out: Path) -> None:
    config = PipelineConfig(window=4, stride=2, device="cpu", preprocess=PreprocessConfig(size=56))

    def stop_after_second(index: int) -> None:
        if index == 1:
            raise KeyboardInterrupt

    with warnings.catch_warnings(), pytest.raises(KeyboardInterrupt):
        warnings.simplefilter("ignore")
        reconstruct(capture_path, out, WeightsSpec("tiny", random_weights=True), config, on_window=stop_after_second)
    partial = Reconstruction.open(out)
    # windows [0, 4) and [2, 6) are complete; format 3 stores each timestep once, window 1 the timesteps 3 and 4
    assert len(partial.windows()) == 2 and partial.num_timesteps == 5 and not partial.is_complete


def test_interrupted_run_resumes_to_the_same_arrays(tmp_path: Path) -> None:
    capture = write_solid_rig(tmp_path / "cap", num_cameras=2, num_timesteps=11, fmt="images")
    args = [*TINY, "--size", 56, "--window", 4, "--stride", 2]
    run_cli(capture, "--out", tmp_path / "full", *args)
    _interrupted_then_resumed(capture, tmp_path / "part")
    result = run_cli(capture, "--out", tmp_path / "part", *args, "--resume")
    # 2 windows were complete: the console and the summary count them, not a 1-based index of the next one
    assert "2 of 5 windows already on disk" in result.output
    assert "3 windows" in result.output and "(resumed: 2 windows already on disk)" in result.output
    full, resumed = Reconstruction.open(tmp_path / "full"), Reconstruction.open(tmp_path / "part")
    assert resumed.is_complete and resumed.spans == full.spans
    for name in full.array_names():
        assert np.array_equal(full.load(name), resumed.load(name)), name
    assert [a["alignment"] for a in full.meta["alignment"]] == [a["alignment"] for a in resumed.meta["alignment"]]


def test_output_folder_with_another_reconstruction(tmp_path: Path) -> None:
    capture = write_solid_rig(tmp_path / "cap", num_cameras=2, num_timesteps=4, fmt="images")
    run_cli(capture, "--out", tmp_path / "out", *TINY, "--size", 56, "--window", 3, "--stride", 2)
    again = run_cli(capture, "--out", tmp_path / "out", *TINY, "--size", 42, expect_ok=False)
    assert again.exit_code != 0 and "already holds a reconstruction" in again.output and "--overwrite" in again.output
    resumed = run_cli(capture, "--out", tmp_path / "out", *TINY, "--size", 42, "--resume", expect_ok=False)
    assert resumed.exit_code != 0 and "different run" in resumed.output and "settings" in resumed.output
    run_cli(capture, "--out", tmp_path / "out", *TINY, "--size", 42, "--overwrite")
    assert Reconstruction.open(tmp_path / "out").image_hw == (28, 42)


def test_refuses_without_weights_and_help_documents_every_option(tmp_path: Path) -> None:
    capture = write_solid_rig(tmp_path / "cap", num_cameras=1, num_timesteps=2, fmt="images")
    result = run_cli(capture, "--out", tmp_path / "out", expect_ok=False)
    assert result.exit_code != 0
    assert all(option in result.output for option in ("--checkpoint", "--pi3", "--random-weights"))
    assert not (tmp_path / "out").exists()
    from app.cli.run import run_command

    undocumented = [p.name for p in run_command.params if p.param_type_name == "option" and not p.help]
    assert undocumented == []
    help_text = CliRunner().invoke(main, ["run", "--help"]).output
    assert all(opt in help_text for p in run_command.params if p.param_type_name == "option" for opt in p.opts)


@pytest.mark.parametrize("case", ["empty", "corrupt"])
def test_bad_capture_is_a_clear_cli_error(tmp_path: Path, case: str) -> None:
    capture = tmp_path / "cap"
    capture.mkdir()
    if case == "corrupt":
        write_solid_rig(capture, num_cameras=2, num_timesteps=3)
        (capture / "cam1.mp4").write_bytes(b"junk")
    result = run_cli(capture, "--out", tmp_path / "out", *TINY, expect_ok=False)
    assert result.exit_code != 0
    assert ("holds no camera" if case == "empty" else "cam1.mp4") in result.output
    assert not (tmp_path / "out").exists()


def test_external_masks_reach_the_model(tmp_path: Path) -> None:
    capture = write_solid_rig(tmp_path / "cap", num_cameras=2, num_timesteps=3, fmt="images")
    masks = write_solid_rig(tmp_path / "masks", num_cameras=1, num_timesteps=3, fmt="images")
    missing = run_cli(capture, "--out", tmp_path / "o1", *TINY, "--size", 56, "--masks", masks, expect_ok=False)
    assert "no masks for camera(s) cam1" in missing.output
    write_solid_rig(tmp_path / "masks", num_cameras=2, num_timesteps=3, fmt="images")
    # the single-stream tiny model has no external-mask input: the model's refusal is passed on clearly
    refused = run_cli(capture, "--out", tmp_path / "o2", *TINY, "--size", 56, "--masks", masks, expect_ok=False)
    assert refused.exit_code != 0 and "--masks" in refused.output and "mask" in refused.output


def test_external_masks_land_in_the_reconstruction(tmp_path: Path) -> None:
    """A two-stream model whose config lets external masks override its own: the stored dynamic mask is the
    external one (left half moving, right half static), per camera and timestep, after preprocessing."""
    import cv2

    from vggt_t_mv import ModelConfig

    capture = write_solid_rig(tmp_path / "cap", num_cameras=2, num_timesteps=3, fmt="images")
    for k in range(2):
        (tmp_path / "masks" / f"cam{k}").mkdir(parents=True)
        for t in range(3):
            mask = np.zeros((48, 64), np.uint8)
            mask[:, : 32 if k == 0 else 16] = 255
            cv2.imwrite(str(tmp_path / "masks" / f"cam{k}" / f"{t:06d}.png"), mask)
    config = dataclasses.replace(ModelConfig.tiny_two_stream(), external_masks="override")
    config.to_json(tmp_path / "override.json")
    args = ["--config", tmp_path / "override.json", "--random-weights", "--device", "cpu", "--size", 56]
    run_cli(capture, "--out", tmp_path / "out", *args, "--masks", tmp_path / "masks")
    dynamic = Reconstruction.open(tmp_path / "out").load("dynamic_mask").astype(np.float32)  # [T, N, H, W]
    width = dynamic.shape[-1]
    np.testing.assert_array_equal(dynamic[:, 0, :, : width // 2 - 1], 1.0)
    np.testing.assert_array_equal(dynamic[:, 0, :, width // 2 + 1 :], 0.0)
    np.testing.assert_array_equal(dynamic[:, 1, :, : width // 4 - 1], 1.0)
    np.testing.assert_array_equal(dynamic[:, 1, :, width // 4 + 1 :], 0.0)


def test_page4d_checkpoint_without_config_runs_page4d_and_stores_its_mask(tmp_path: Path) -> None:
    """``vggt-mv run CAPTURE --checkpoint <PAGE-4D file>``: the PAGE-4D model is inferred from the file, its
    suppression u lands in dynamic_mask.zst per window, and the summary names the layout."""
    weights = require(shared_dir() / "reference" / "page4d_tiny" / "weights.safetensors", "page4d_tiny weights")
    capture = write_solid_rig(tmp_path / "cap", num_cameras=2, num_timesteps=5, fmt="images")
    args = ["--checkpoint", weights, "--device", "cpu", "--size", 56, "--window", 3, "--stride", 2]
    result = run_cli(capture, "--out", tmp_path / "out", *args)
    assert "model     PAGE-4D (fin10); checkpoint layout page4d_fin10 [PAGE-4D (fin10)]" in result.output
    recon = Reconstruction.open(tmp_path / "out")
    assert recon.meta["model"]["config"]["page4d_mask"]["head"] == "fin10"
    windows = sorted((tmp_path / "out").rglob("dynamic_mask.zst"))
    assert len(windows) == len(recon.spans) == 2
    dynamic = recon.load("dynamic_mask").astype(np.float32)
    assert dynamic.shape == (5, 2, *recon.image_hw) and 0 <= dynamic.min() and dynamic.max() <= 1
    # The viewer splits the points by this mask as it does for a two-stream model's.
    threshold = float(np.median(dynamic[0]))
    cloud = filter_timestep(recon, 0, "geo", CloudSettings(conf_percentile=0.0, dynamic_threshold=threshold))
    moving = sum(len(c.dynamic_points) for c in cloud.cameras)
    assert 0 < moving < cloud.num_kept


def test_demo_rig_end_to_end(tmp_path: Path) -> None:
    demo = REPO_ROOT / "assets" / "demo_rig"
    if not (demo / "cam0.mp4").exists():
        pytest.fail(f"the bundled demo rig is missing at {demo}")
    run_cli(demo, "--out", tmp_path / "out", *TINY, "--size", 112, "--max-frames", 10, "--window", 4, "--stride", 3)
    recon = Reconstruction.open(tmp_path / "out")
    assert recon.camera_names == ["cam0", "cam1", "cam2", "cam3"] and recon.image_hw == (84, 112)
    assert_finite_and_shaped(recon, 10, 4)


def test_caliscope_real_capture_with_calibration_and_rigid_rig(tmp_path: Path) -> None:
    folder = require(shared_dir() / "realdata" / "caliscope_4cam_charuco", "caliscope capture")
    result = run_cli(
        folder / "calibration" / "extrinsic",
        "--out",
        tmp_path / "out",
        *TINY,
        "--size",
        112,
        "--max-frames",
        12,
        "--calibration",
        folder / "camera_array.toml",
        "--rigid-rig",
        "--cameras",
        "predicted",  # the model's cameras, scaled to metres and compared with the calibration
    )
    recon = Reconstruction.open(tmp_path / "out")
    assert recon.camera_names == ["cam_0", "cam_1", "cam_2", "cam_3"]
    assert_finite_and_shaped(recon, 12, 4)
    assert recon.meta["capture"]["sync"] == "timestamps"
    assert "vs calib" in result.output and "metric" in result.output
    rig = recon.meta["rig"]
    assert len(rig["calibration"]["rig"]) == 3 and rig["rigid"]
    spread = [c["rotation_spread_max_deg"] for c in rig["diagnostics_after_rigid"]["cameras"][1:]]
    assert max(spread) < 1e-3  # the rig is rigid after averaging
    json.dumps(recon.meta)  # meta stays JSON


def test_pipeline_rejects_non_overlapping_windows(tmp_path: Path) -> None:
    capture_path = write_solid_rig(tmp_path / "cap", num_cameras=1, num_timesteps=8, fmt="images")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CaptureWarning)
        capture = RigCapture.open(capture_path, CaptureOptions())
    with pytest.raises(PipelineError, match="stride"):
        plan_run(capture, PipelineConfig(window=3, stride=3, device="cpu"))
    assert ARRAY_NAMES[0] == "images"


def test_attention_knobs_from_the_command_line_and_the_config_file_are_named_in_the_summary(tmp_path: Path) -> None:
    """``--time-window`` / ``--kv-pool`` override the config (here a file that chooses the factorized layers); the
    model runs with them, the run summary and meta.json name them."""
    from vggt_t_mv import ModelConfig

    capture = write_solid_rig(tmp_path / "cap", num_cameras=2, num_timesteps=4, fmt="images")
    config = dataclasses.replace(ModelConfig.tiny(), factorized_layers=(1, 3))
    config.to_json(tmp_path / "knobs.json")
    args = ["--config", tmp_path / "knobs.json", "--random-weights", "--device", "cpu", "--size", 56, "--window", 4]
    result = run_cli(capture, "--out", tmp_path / "out", *args, "--time-window", 1, "--kv-pool", 2)
    assert (
        "Time-SA within +-1 timesteps; Time-SA/View-SA keys/values pooled 2x2; time/view attention in layer pairs "
        "1,3 of 4 (per-frame elsewhere)" in result.output
    )
    stored = Reconstruction.open(tmp_path / "out").meta["model"]["config"]
    assert (stored["time_window"], stored["kv_pool"], stored["factorized_layers"]) == (1, 2, [1, 3])
    assert_finite_and_shaped(Reconstruction.open(tmp_path / "out"), 4, 2)
    refused = run_cli(capture, "--out", tmp_path / "o2", *TINY, "--kv-pool", 0, expect_ok=False)
    assert refused.exit_code != 0 and "--kv-pool" in refused.output
