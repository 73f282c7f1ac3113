"""Training and evaluating on a recorded rig in its owner's layout (``../shared/realdata/mv_page4d_rig``: time-major
``images/time_TT/viewV.png``, ``depths/ intrs/ extrs/`` per frame, SegAnyMo masks), read by the capture readers of
``vggt-mv run`` with no conversion step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from app.cli.main import main
from app.train.data import CaptureSequence, TrainDataError, find_captures
from tests.helpers.shared import REPO_ROOT, require, shared_dir
from vggt_t_mv.eval.metrics import HIGHER_IS_BETTER
from vggt_t_mv.train.dataset import WindowConfig, WindowDataset

DEMO_WEIGHTS = REPO_ROOT / "assets" / "demo_weights"
VALIDATION_METRICS = (
    "ate", "rpe_trans", "rpe_rot_deg", "auc30", "abs_rel", "delta1", "abs_rel_static", "delta1_static",
    "abs_rel_moving", "delta1_moving", "mask_iou",
)  # fmt: skip


@pytest.fixture(scope="module")
def rig() -> Path:
    return require(shared_dir() / "realdata" / "mv_page4d_rig", "the mv_page4d_rig dataset root")


def nearest_from_source(source: np.ndarray, scale: float, offset_x: float, offset_y: float, hw: tuple[int, int]):
    """Independent nearest sampling of a source image into a ``hw`` target where target pixel ``(u', v')`` shows
    source pixel ``((u' - offset_x) / scale, (v' - offset_y) / scale)``; also where that source position is not within
    0.02 px of a rounding tie (there two correct implementations may pick different neighbours)."""
    rows, cols = np.mgrid[0 : hw[0], 0 : hw[1]]
    x, y = (cols - offset_x) / scale, (rows - offset_y) / scale
    xi, yi = np.rint(x).astype(int), np.rint(y).astype(int)
    inside = (xi >= 0) & (xi < source.shape[1]) & (yi >= 0) & (yi < source.shape[0])
    clear = (np.abs(np.abs(x - np.floor(x)) - 0.5) > 0.02) & (np.abs(np.abs(y - np.floor(y)) - 0.5) > 0.02) & inside
    return source[np.clip(yi, 0, source.shape[0] - 1), np.clip(xi, 0, source.shape[1] - 1)], clear


def test_a_window_sample_equals_the_datasets_own_arrays_through_the_crop(rig: Path) -> None:
    height, width = 112, 154
    sequence = CaptureSequence(rig)
    assert (sequence.num_timesteps, sequence.num_cameras, sequence.image_hw) == (8, 4, (480, 640))
    assert sequence.truth.has_depth and sequence.truth.has_masks
    windows = WindowDataset([sequence], WindowConfig(2, 3, height, width, window_stride=2, camera_offsets="all"))
    # window (start 4, camera offset 1): timesteps 4, 5 and cameras 1, 2, 3
    (item,) = [i for i, w in enumerate(windows.index) if w.start == 4 and w.camera_offset == 1]
    sample = windows[item]
    scale = max(height / 480, width / 640)  # cover, then centre crop (as vggt-mv run's crop mode)
    offset_x, offset_y = (width - 640 * scale) / 2, (height - 480 * scale) / 2
    for i, t in enumerate((4, 5)):
        for j, view in enumerate((1, 2, 3)):
            extrinsics = np.load(rig / "extrs" / f"time_{t:02d}" / f"view{view}.npy")
            np.testing.assert_array_equal(sample.extrinsics[i, j].numpy(), extrinsics.astype(np.float32))
            k = np.load(rig / "intrs" / f"time_{t:02d}" / f"view{view}.npy").astype(np.float64)
            expected_k = np.array(
                [
                    [k[0, 0] * scale, 0, k[0, 2] * scale + offset_x],
                    [0, k[1, 1] * scale, k[1, 2] * scale + offset_y],
                    [0, 0, 1],
                ]
            )
            np.testing.assert_allclose(sample.intrinsics[i, j].numpy(), expected_k, rtol=1e-6, atol=1e-4)
            depth = np.load(rig / "depths" / f"time_{t:02d}" / f"view{view}.npy")
            expected_depth, clear = nearest_from_source(depth, scale, offset_x, offset_y, (height, width))
            assert clear.mean() > 0.8
            np.testing.assert_array_equal(sample.depth[i, j].numpy()[clear], expected_depth[clear])
            assert np.array_equal(sample.valid[i, j].numpy()[clear], expected_depth[clear] > 0)
            mask_file = rig / "SegAnyMo" / "sam2" / "mask_frames" / f"view_{view}" / f"{t:03d}.png"
            moving = np.asarray(Image.open(mask_file).convert("L")) > 127
            expected_mask, clear = nearest_from_source(moving, scale, offset_x, offset_y, (height, width))
            np.testing.assert_array_equal(sample.dynamic_masks[i, j].numpy()[clear] > 0.5, expected_mask[clear])
            assert expected_mask.any()  # the person is in view: the comparison is not of empty masks
    assert sample.mask_known.all()
    assert tuple(sample.images.shape) == (2, 3, 3, height, width)


def test_one_root_or_a_folder_of_roots_and_a_root_without_ground_truth(rig: Path, tmp_path: Path) -> None:
    assert find_captures(rig) == [rig]
    folder = tmp_path / "sequences"
    folder.mkdir()
    (folder / "seq_b").symlink_to(rig, target_is_directory=True)
    (folder / "seq_a").symlink_to(rig, target_is_directory=True)
    assert [p.name for p in find_captures(folder)] == ["seq_a", "seq_b"]
    bare = tmp_path / "bare"
    shutil.copytree(rig / "images", bare / "images")
    with pytest.raises(
        TrainDataError, match=r"--data .*bare: a dataset root without ground truth .* intrs/ and extrs/"
    ):
        find_captures(bare)


def test_train_on_the_rig_through_the_cli_with_validation_on_held_out_timesteps(rig: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", str(rig), "--checkpoint", str(DEMO_WEIGHTS), "--steps", "2", "--out", str(out)]
    result = CliRunner().invoke(main, [*args, "--val-every", "1", "--set", "run.log_every=1"])
    assert result.exit_code == 0, result.output
    assert "freeze 'streams' (auto:" in result.output  # the demo weights leave nothing new: one line says what trains
    assert "held-out timesteps 6..7 of mv_page4d_rig" in result.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r["split"] == "train"]
    val_records = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in train_records] == [1, 2] and [r["step"] for r in val_records] == [1, 2]
    for record in val_records:
        assert set(VALIDATION_METRICS) <= set(record) <= set(HIGHER_IS_BETTER) | {"step", "split", "windows", "seconds"}
        assert all(isinstance(record[k], float) for k in VALIDATION_METRICS), record
    saved = json.loads((out / "config.json").read_text())
    assert (saved["data"]["window"]["height"], saved["data"]["window"]["width"]) == (112, 154)  # as the weights
    best = json.loads((out / "best" / "best.json").read_text())
    assert best["metric"] == "ate" and best["value"] == min(r["ate"] for r in val_records)
    recon = tmp_path / "recon"
    run = CliRunner().invoke(
        main,
        [
            "run",
            str(rig),
            "--checkpoint",
            str(out / "final"),
            "--out",
            str(recon),
            "--max-frames",
            "2",
            "--window",
            "2",
        ],
    )
    assert run.exit_code == 0, run.output
    assert (recon / "meta.json").is_file()


def test_eval_a_model_on_a_dataset_root_prints_the_table(rig: Path) -> None:
    result = CliRunner().invoke(main, ["eval", str(DEMO_WEIGHTS), "--gt", str(rig), "-T", "2"])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.startswith("| predictor"))
    for metric in VALIDATION_METRICS:
        assert f" {metric} " in header
    (row,) = [line for line in result.output.splitlines() if line.startswith("| model")]
    assert row.split("|")[2].strip() == "4"  # 8 timesteps in windows of 2


def test_the_rig_example_config_runs_as_written_with_the_demo_weights_swapped_in(rig: Path, tmp_path: Path) -> None:
    import os

    out = tmp_path / "rig"
    args = ["train", "configs/finetune_rig.yaml", "--checkpoint", str(DEMO_WEIGHTS), "--out", str(out)]
    if (REPO_ROOT.parent / "shared" / "realdata" / "mv_page4d_rig").resolve() != rig.resolve():
        args += ["--set", f"data.roots=[{rig}]"]  # the shared data is not beside this checkout (VGGT_MV_SHARED)
    cwd = os.getcwd()
    os.chdir(REPO_ROOT)  # the config names its data relative to the checkout: ../shared/realdata/mv_page4d_rig
    try:
        # one step, in this process and on 2-timestep windows: the suite runs on 2 shared cores
        fast = ["--stop-after", "1", "--set", "data.num_workers=0", "--set", "data.window.timesteps=2"]
        result = CliRunner().invoke(main, [*args, *fast])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    assert "4 cameras x 8 timesteps, time-major (images/time_TT/viewV.png), depth + masks" in result.output
    assert "windows of 2 timesteps x 4 cameras at 112x154 px" in result.output
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in records] == ["train", "val"]
