"""``vggt-mv eval RECON --gt GT`` on real ground truth: a dataset root with per-frame .npy files (mv_page4d_rig),
``ground_truth.npz`` (folder or file) and the shared real sets; the ground truth goes through the run's own crop;
every bad ``--gt`` is a clear error that names the file and changes nothing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from app.capture.preprocess import FrameTransform
from app.cli.main import main
from app.reconstruct.store import Reconstruction
from tests.helpers.shared import REPO_ROOT, require, shared_dir
from vggt_t_mv import ModelConfig
from vggt_t_mv.eval.metrics import HIGHER_IS_BETTER

SMALL = ["--random-weights", "--device", "cpu", "--size", "42"]


def rig_root() -> Path:
    return require(shared_dir() / "realdata" / "mv_page4d_rig", "mv_page4d_rig")


def cli(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def rig_recon(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny two-stream reconstruction of mv_page4d_rig's first 3 timesteps in 2 windows (it has a dynamic mask)."""
    folder = tmp_path_factory.mktemp("rig")
    dataclasses.replace(ModelConfig.tiny_two_stream()).to_json(folder / "two_stream.json")
    result = cli("run", rig_root(), "--out", folder / "recon", "--config", folder / "two_stream.json", *SMALL,
                 "--max-frames", 3, "--window", 2, "--stride", 1)  # fmt: skip
    assert result.exit_code == 0, result.output
    return folder / "recon"


def table(output: str) -> dict[str, dict[str, float]]:
    """The (first) markdown table of ``eval``: predictor -> metric -> value."""
    lines = output.split("| predictor", 1)[1].split("\n\n", 1)[0].splitlines()
    lines = ["| predictor" + lines[0], *[line for line in lines[1:] if line.startswith("| ")]]
    keys = [cell.strip().split(" ")[0] for cell in lines[0].split("|")[3:-1]]
    rows = {}
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        rows[cells[0]] = {k: float(v) if v != "–" else float("nan") for k, v in zip(keys, cells[2:], strict=True)}
    return rows


def test_eval_on_the_rig_prints_every_metric_with_the_static_moving_split(rig_recon: Path) -> None:
    result = cli("eval", rig_recon, "--gt", rig_root(), "--baselines")
    assert result.exit_code == 0, result.output
    rows = table(result.output)
    model, trivial = rows["reconstruction recon"], rows["trivial: identity cams / const depth / static mask"]
    assert set(model) == set(HIGHER_IS_BETTER) and all(np.isfinite(v) for v in model.values()), model
    assert trivial["mask_iou"] == 0.0 and trivial["abs_rel_static"] > 0
    report = json.loads(cli("eval", rig_recon, "--gt", rig_root(), "--json", "-").output)
    (means,) = [r["means"] for r in report["mv_page4d_rig"].values()]
    assert means["abs_rel"] == pytest.approx(model["abs_rel"], rel=1e-3)


def independent_ground_truth(recon: Reconstruction, t: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """GT depth and SegAnyMo mask at the model pixels, by plain index arithmetic: model pixel (u, v) samples the
    nearest source pixel ((u - offset_x) / scale, (v - offset_y) / scale)."""
    tf = recon.meta["preprocess"][n]
    f = recon.meta["capture"]["frame_index"][t][n]
    depth = np.load(rig_root() / "depths" / f"time_{f:02d}" / f"view{n}.npy")
    mask = cv2.imread(str(rig_root() / "SegAnyMo/sam2/mask_frames" / f"view_{n}" / f"{f:03d}.png"), 0) > 127
    height, width = recon.image_hw
    v, u = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    su = np.floor((u - tf["offset_x"]) / tf["scale"] + 0.5).astype(int)
    sv = np.floor((v - tf["offset_y"]) / tf["scale"] + 0.5).astype(int)
    inside = (su >= 0) & (su < depth.shape[1]) & (sv >= 0) & (sv < depth.shape[0])
    su, sv = np.clip(su, 0, depth.shape[1] - 1), np.clip(sv, 0, depth.shape[0] - 1)
    return np.where(inside, depth[sv, su], 0.0), inside & mask[sv, su]


def test_abs_rel_on_static_pixels_matches_an_independent_computation(rig_recon: Path) -> None:
    recon = Reconstruction.open(rig_recon)
    per_window = []
    for record in recon.windows():
        times = range(*record.span)
        pred = recon.load("depth", times).astype(np.float64)
        gt = np.zeros_like(pred)
        moving = np.zeros(pred.shape, bool)
        for i, t in enumerate(times):
            for n in range(recon.num_cameras):
                gt[i, n], moving[i, n] = independent_ground_truth(recon, t, n)
        valid = gt > 0
        scale = np.median(gt[valid]) / np.median(np.clip(pred[valid], 0, None))  # one scale over all valid pixels
        static = valid & ~moving
        per_window.append(np.mean(np.abs(scale * np.clip(pred[static], 0, None) - gt[static]) / gt[static]))
    result = cli("eval", rig_recon, "--gt", rig_root())
    assert result.exit_code == 0, result.output
    measured = table(result.output)["reconstruction recon"]["abs_rel_static"]
    assert measured == pytest.approx(float(np.mean(per_window)), rel=2e-3)


def test_ground_truth_intrinsics_follow_the_crop() -> None:
    transform = FrameTransform(0.25, 3.0, -7.5, (480, 640), (112, 154))
    k = np.array([[615.0, 0.0, 321.5], [0.0, 617.0, 240.25], [0.0, 0.0, 1.0]])
    target = transform.intrinsics_to_target(k)
    np.testing.assert_allclose(transform.intrinsics_to_source(target), k)
    point = np.array([0.3, -0.2, 5.0])  # the same camera point lands at scale * pixel + offset
    source_pixel = (k @ point)[:2] / point[2]
    np.testing.assert_allclose((target @ point)[:2] / point[2], 0.25 * source_pixel + [3.0, -7.5])


# ------------------------------------------------------------------------------------------------- bad ground truth
def link_tree(source: Path, target: Path) -> Path:
    """``target`` mirrors ``source``: the same folders, every file a symbolic link (cheap to copy and to break)."""
    for path in source.rglob("*"):
        if path.is_file():
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (target / path.relative_to(source)).symlink_to(path)
    return target


def replace(path: Path, array: np.ndarray | None = None, text: str | None = None) -> Path:
    path.unlink()
    if array is not None:
        np.save(path, array)
    elif text is not None:
        path.write_text(text)
    return path


def break_depth_shape(root: Path) -> Path:
    return replace(root / "depths/time_01/view1.npy", np.ones((10, 10), np.float32))


def break_intrinsics_shape(root: Path) -> Path:
    return replace(root / "intrs/time_00/view2.npy", np.eye(3)[:2])


def drop_a_timestep(root: Path) -> Path:
    return replace(root / "depths/time_02/view0.npy")


def drop_a_camera(root: Path) -> Path:
    for t in range(8):
        replace(root / f"extrs/time_{t:02d}/view3.npy")
    return root / "extrs/time_00/view3.npy"


def corrupt_a_file(root: Path) -> Path:
    return replace(root / "extrs/time_01/view0.npy", text="not an array")


@pytest.mark.parametrize(
    ("breaks", "says"),
    [
        (break_depth_shape, "depth is 10x10"),
        (break_intrinsics_shape, "intrinsics must be 3x3"),
        (drop_a_timestep, "is missing"),
        (drop_a_camera, "is missing"),
        (corrupt_a_file, "cannot be read"),
    ],
)
def test_bad_dataset_ground_truth_is_an_error_naming_the_file(rig_recon: Path, tmp_path: Path, breaks, says) -> None:
    root = link_tree(rig_root(), tmp_path / "rig")
    named = breaks(root)
    before = {p: p.stat().st_mtime_ns for p in rig_recon.rglob("*")}
    (tmp_path / "eval.json").write_text("earlier numbers")
    result = cli("eval", rig_recon, "--gt", root, "--json", tmp_path / "eval.json")
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert str(named) in result.output and says in result.output, result.output
    assert {p: p.stat().st_mtime_ns for p in rig_recon.rglob("*")} == before
    assert (tmp_path / "eval.json").read_text() == "earlier numbers"


@pytest.mark.parametrize(
    ("gt", "says"),
    [
        ("missing", "does not exist"),
        ("not_gt.txt", "not a ground_truth.npz"),
        ("empty", "no ground truth in"),
        ("pi3_room", "has 8 cameras, the reconstruction"),
    ],
)
def test_other_bad_gt_paths_are_clear_errors(rig_recon: Path, tmp_path: Path, gt: str, says: str) -> None:
    (tmp_path / "not_gt.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    path = require(shared_dir() / "realdata" / "pi3_room", "pi3_room") if gt == "pi3_room" else tmp_path / gt
    result = cli("eval", rig_recon, "--gt", path)
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert str(path) in result.output and says in result.output, result.output


# ---------------------------------------------------------------------------------- the other ground-truth forms
def test_a_recorded_capture_evaluates_from_its_folder_and_from_its_ground_truth_npz(tmp_path: Path) -> None:
    demo = REPO_ROOT / "assets" / "demo_rig"
    result = cli("run", demo, "--out", tmp_path / "recon", "--config", "tiny", *SMALL, "--max-frames", 3,
                 "--window", 3)  # fmt: skip
    assert result.exit_code == 0, result.output
    for gt in (demo, demo / "ground_truth.npz"):
        result = cli("eval", tmp_path / "recon", "--gt", gt)
        assert result.exit_code == 0, result.output
        assert np.isfinite(table(result.output)["reconstruction recon"]["abs_rel"])


def test_a_shared_real_set_evaluates_a_reconstruction_of_it(tmp_path: Path) -> None:
    room = require(shared_dir() / "realdata" / "pi3_room", "pi3_room")
    result = cli("run", room, "--out", tmp_path / "recon", "--config", "tiny", *SMALL)
    assert result.exit_code == 0, result.output
    result = cli("eval", tmp_path / "recon", "--gt", room)
    assert result.exit_code == 0, result.output
    row = table(result.output)["reconstruction recon"]
    assert np.isfinite(row["abs_rel"]) and np.isfinite(row["ate"]) and "abs_rel_static" not in row
