"""The model input a run uses when the user says nothing: the size the weights were trained at (recorded by
``save_pretrained``), and a mode that keeps a portrait frame whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.capture.preprocess import CROP_TOLERANCE, PreprocessConfig, crop_fraction, resolve_preprocess
from app.cli.main import main
from app.reconstruct.store import Reconstruction
from tests.helpers.capture import write_solid_rig
from tests.helpers.shared import REPO_ROOT
from vggt_t_mv import VGGTTMV, ModelConfig, save_pretrained
from vggt_t_mv.weights import read_saved_input_hw


def run_cli(*args) -> str:
    result = CliRunner().invoke(main, ["run", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    """A save_pretrained folder of the tiny model that says it was trained on 42x56 images."""
    return save_pretrained(VGGTTMV(ModelConfig.tiny()), tmp_path / "weights", input_hw=(42, 56))


# ---------------------------------------------------------------------------------------------- weights size
def test_save_pretrained_records_the_training_input_size(tmp_path: Path, tiny_weights: Path) -> None:
    assert read_saved_input_hw(tiny_weights) == (42, 56)
    assert json.loads((tiny_weights / "config.json").read_text())["input_hw"] == [42, 56]
    assert read_saved_input_hw(save_pretrained(VGGTTMV(ModelConfig.tiny()), tmp_path / "unsized")) is None
    assert VGGTTMV.from_pretrained(tiny_weights).cfg == ModelConfig.tiny()  # the extra key does not disturb loading


def test_the_bundled_demo_weights_say_they_were_trained_at_154_px() -> None:
    folder = REPO_ROOT / "assets" / "demo_weights"
    trained = json.loads((folder / "train_config.json").read_text())["data"]["window"]
    assert read_saved_input_hw(folder) == (trained["height"], trained["width"]) == (112, 154)


def test_run_defaults_to_the_weights_size_and_says_so(tmp_path: Path, tiny_weights: Path) -> None:
    capture = write_solid_rig(tmp_path / "cap", num_cameras=2, num_timesteps=3, fmt="images")  # 48x64 frames
    output = run_cli(capture, "--out", tmp_path / "a", "--checkpoint", tiny_weights, "--device", "cpu")
    assert Reconstruction.open(tmp_path / "a").image_hw == (42, 56)
    assert "model input 56x42 px (crop; size 56: the size" in output and "trained at (56x42)" in output
    assert "--size overrides" in output
    output = run_cli(capture, "--out", tmp_path / "b", "--checkpoint", tiny_weights, "--device", "cpu", "--size", 42)
    assert Reconstruction.open(tmp_path / "b").image_hw == (28, 42) and "--size 42" in output


def test_without_a_recorded_size_the_default_is_518_and_printed(tmp_path: Path) -> None:
    capture = write_solid_rig(tmp_path / "cap", num_cameras=1, num_timesteps=1, fmt="images")
    output = run_cli(capture, "--out", tmp_path / "r", "--config", "tiny", "--random-weights", "--device", "cpu")
    assert "model input 518x392 px (crop; size 518, the default; --size overrides)" in output


def test_the_viewer_plans_the_demo_at_the_demo_weights_size() -> None:
    from app.reconstruct.pipeline import PipelineConfig
    from app.viewer.launch import plan_view
    from vggt_t_mv.loading import WeightsSpec

    plan = plan_view(None, WeightsSpec(), PipelineConfig(device="cpu"))
    assert any("input size 154 px" in message and "demo_weights" in message for message in plan.messages)
    assert plan.live.pipeline.preprocess.size is None  # resolved by the run from the same folder


# ---------------------------------------------------------------------------------------------- portrait
PORTRAIT, LANDSCAPE = (1920, 1080), (1080, 1920)  # (height, width)


def test_auto_pads_a_portrait_frame_instead_of_cutting_44_percent() -> None:
    config, notes = resolve_preprocess(PreprocessConfig(518), [PORTRAIT, PORTRAIT], ["cam0", "cam1"])
    assert config.mode == "pad" and config.size == 518
    assert crop_fraction(PORTRAIT, (518, 518)) == pytest.approx(1 - 1080 / 1920)
    assert len(notes) == 1 and "44 % of cam0's 1080x1920 frame" in notes[0] and "--mode crop" in notes[0]


def test_auto_crops_landscape_frames_silently_even_at_small_sizes() -> None:
    for size in (518, 154, 56, 42):  # rounding the height to 14 px trims a few rows: not a reason to pad
        config, notes = resolve_preprocess(PreprocessConfig(size), [LANDSCAPE, (720, 1280)], ["cam0", "cam1"])
        assert (config.mode, notes) == ("crop", []), size


def test_auto_pads_when_another_camera_would_lose_much_of_its_frame() -> None:
    config, notes = resolve_preprocess(PreprocessConfig(154), [LANDSCAPE, PORTRAIT], ["front", "phone"])
    assert config.mode == "pad" and "phone" in notes[0]
    assert crop_fraction(PORTRAIT, (84, 154)) > CROP_TOLERANCE


def test_an_explicit_crop_is_kept_with_the_fraction_lost() -> None:
    config, notes = resolve_preprocess(PreprocessConfig(518, "crop"), [PORTRAIT], ["cam0"])
    assert config.mode == "crop" and len(notes) == 1 and "removes 44 %" in notes[0] and "--mode pad" in notes[0]
    assert resolve_preprocess(PreprocessConfig(518, "pad"), [PORTRAIT], ["cam0"]) == (PreprocessConfig(518, "pad"), [])


def test_a_portrait_capture_runs_padded_by_default(tmp_path: Path) -> None:
    capture = write_solid_rig(tmp_path / "cap", num_cameras=2, num_timesteps=2, fmt="images", sizes=[(64, 36)] * 2)
    output = run_cli(capture, "--out", tmp_path / "r", "--config", "tiny", "--random-weights", "--size", 56)
    recon = Reconstruction.open(tmp_path / "r")
    assert recon.meta["settings"]["mode"] == "pad" and recon.image_hw == (56, 56)
    assert "would remove 44 % of cam0's 36x64 frame" in output and "keeping the whole frame" in output
    assert "(pad)" in output  # the summary's timesteps line
