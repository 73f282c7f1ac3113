"""SegAnyMo's mask output reaches the model through ``--masks`` as it is written (root, mask_frames, initial_preds,
auto); what is not a label map is refused with a pointer to mask_frames; bad mask folders are clear errors."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from app.capture.masks import read_mask_image
from app.capture.preprocess import FrameTransform, preprocess_frame
from app.cli.main import main
from app.reconstruct.store import Reconstruction
from tests.helpers.shared import require, shared_dir
from vggt_t_mv import ModelConfig

TIMESTEPS = 2


def rig_root() -> Path:
    return require(shared_dir() / "realdata" / "mv_page4d_rig", "mv_page4d_rig")


@pytest.fixture(scope="module")
def override_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny two-stream model whose external masks replace its own dynamic mask."""
    path = tmp_path_factory.mktemp("config") / "override.json"
    dataclasses.replace(ModelConfig.tiny_two_stream(), external_masks="override").to_json(path)
    return path


def run(capture: Path, out: Path, config: Path, *extra) -> object:
    args = ["run", capture, "--out", out, "--config", config, "--random-weights", "--device", "cpu", "--size", 42]
    args += ["--max-frames", TIMESTEPS, "--window", TIMESTEPS, *extra]
    return CliRunner().invoke(main, [str(a) for a in args])


def expected_masks(recon: Reconstruction, label_folder: Path) -> np.ndarray:
    """The SegAnyMo masks of the run's timesteps, brought to the model pixels by the run's own transforms."""
    out = np.zeros((recon.num_timesteps, recon.num_cameras, *recon.image_hw), bool)
    for n, tf in enumerate(recon.meta["preprocess"]):
        transform = FrameTransform(
            tf["scale"], tf["offset_x"], tf["offset_y"], tuple(tf["source_hw"]), tuple(tf["target_hw"])
        )
        for t in range(recon.num_timesteps):
            mask = read_mask_image(label_folder / f"view_{n}" / f"{t:03d}.png")
            out[t, n] = preprocess_frame(mask, transform, interpolation=cv2.INTER_NEAREST) > 127
    return out


@pytest.mark.parametrize("where", ["auto", "SegAnyMo", "SegAnyMo/sam2/mask_frames", "SegAnyMo/sam2/initial_preds"])
def test_segany_masks_reach_the_stored_dynamic_mask(tmp_path: Path, override_config: Path, where: str) -> None:
    root = rig_root()
    masks = where if where == "auto" else root / where
    result = run(root, tmp_path / "out", override_config, "--masks", masks)
    assert result.exit_code == 0, result.output
    recon = Reconstruction.open(tmp_path / "out")
    stored = recon.load("dynamic_mask").astype(np.float32) > 0.5
    expected = expected_masks(recon, root / "SegAnyMo" / "sam2" / "mask_frames")
    assert expected.any() and (~expected).any()
    if where.endswith("initial_preds"):  # palette ids > 0; equals mask_frames on 99.97 % of the pixels
        assert (stored == expected).mean() > 0.995
    else:
        np.testing.assert_array_equal(stored, expected)


def test_palette_ids_above_zero_are_moving() -> None:
    from PIL import Image

    palette = rig_root() / "SegAnyMo" / "sam2" / "initial_preds" / "view_1" / "004.png"
    ids = np.asarray(Image.open(palette))
    assert Image.open(palette).mode == "P" and set(np.unique(ids)) <= {0, 1, 2}
    np.testing.assert_array_equal(read_mask_image(palette), (ids > 0).astype(np.uint8) * 255)


def assert_refused(result, *fragments: str) -> None:
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


@pytest.mark.parametrize("where", ["SegAnyMo/sam2/final_res", "SegAnyMo/sam2/final_res/view_0/video/mask.mp4"])
def test_final_res_cutout_videos_are_refused_with_a_pointer_to_mask_frames(
    tmp_path: Path, override_config: Path, where: str
) -> None:
    root = rig_root()
    result = run(root, tmp_path / "out", override_config, "--masks", root / where)
    assert_refused(result, "final_res/", "not a label map", str(root / "SegAnyMo" / "sam2" / "mask_frames"))
    assert not (tmp_path / "out").exists()


def test_moseg_is_refused(tmp_path: Path, override_config: Path) -> None:
    (tmp_path / "SegAnyMo" / "moseg" / "view_0").mkdir(parents=True)
    result = run(rig_root(), tmp_path / "out", override_config, "--masks", tmp_path / "SegAnyMo" / "moseg")
    assert_refused(result, "moseg/", "mask_frames")


def copy_masks(tmp_path: Path, frames: int, views: int = 4) -> Path:
    source = rig_root() / "SegAnyMo" / "sam2" / "mask_frames"
    for view in range(views):
        (tmp_path / "masks" / f"view_{view}").mkdir(parents=True)
        for f in range(frames):
            shutil.copy(source / f"view_{view}" / f"{f:03d}.png", tmp_path / "masks" / f"view_{view}")
    return tmp_path / "masks"


def test_fewer_mask_frames_than_the_capture_is_an_error_naming_the_camera(
    tmp_path: Path, override_config: Path
) -> None:
    masks = copy_masks(tmp_path, frames=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = run(rig_root(), tmp_path / "out", override_config, "--masks", masks)
    assert_refused(result, "masks for camera view0", "cover 1 frames, the capture uses 2")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_a_camera_without_masks_and_masks_of_another_size_are_errors(tmp_path: Path, override_config: Path) -> None:
    masks = copy_masks(tmp_path, frames=2, views=3)
    assert_refused(run(rig_root(), tmp_path / "o1", override_config, "--masks", masks), "no masks for camera(s) view3")
    (tmp_path / "masks" / "view_3").mkdir()
    for f in range(2):
        cv2.imwrite(str(tmp_path / "masks" / "view_3" / f"{f:03d}.png"), np.zeros((10, 12), np.uint8))
    result = run(rig_root(), tmp_path / "o2", override_config, "--masks", masks)
    assert_refused(result, str(tmp_path / "masks" / "view_3" / "000.png"), "is 12x10", "640x480")


def test_masks_auto_without_segany_is_an_error(tmp_path: Path, override_config: Path) -> None:
    shutil.copytree(rig_root() / "images", tmp_path / "rig" / "images")
    result = run(tmp_path / "rig", tmp_path / "out", override_config, "--masks", "auto")
    assert_refused(result, "--masks auto: no SegAnyMo/ folder", str(tmp_path / "rig"))
    assert_refused(
        run(tmp_path / "rig", tmp_path / "out", override_config, "--masks", tmp_path / "nowhere"), "does not exist"
    )


def test_per_camera_mask_videos_named_view_k_map_to_the_cameras_in_order(tmp_path: Path) -> None:
    from app.capture.masks import open_masks
    from app.capture.rig import RigCapture
    from tests.helpers.capture import write_video

    for t in range(3):
        (tmp_path / "cap" / f"t{t:04d}").mkdir(parents=True)
        for name in ("left", "right"):
            cv2.imwrite(str(tmp_path / "cap" / f"t{t:04d}" / f"{name}.png"), np.full((32, 48, 3), 90, np.uint8))
    (tmp_path / "masks").mkdir()
    for k in range(2):  # camera k: the left (k + 1) * 12 columns move
        frames = [np.zeros((32, 48, 3), np.uint8) for _ in range(4)]
        for frame in frames:
            frame[:, : (k + 1) * 12] = 255
        write_video(tmp_path / "masks" / f"view_{k}.mp4", frames)
    capture = RigCapture.open(tmp_path / "cap")
    sources = open_masks(tmp_path / "masks", capture)
    assert [s.camera for s in sources] == ["left", "right"] and all(s.files is None for s in sources)
    for k, source in enumerate(sources):
        mask = source.read(2)
        assert (mask[:, : (k + 1) * 12 - 2] == 255).all() and (mask[:, (k + 1) * 12 + 2 :] == 0).all()
