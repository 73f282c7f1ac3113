"""``vggt-mv eval``: a model folder against held-out synthetic rigs (with baselines), a reconstruction folder against
its capture's ground truth, and the loaders of the shared real ground-truth sets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from app.cli.train import eval_command
from tests.helpers.shared import require, shared_dir
from vggt_t_mv import VGGTTMV, ModelConfig, save_pretrained
from vggt_t_mv.data.realdata import load_caliscope, load_middlebury, load_pi3_room
from vggt_t_mv.data.synthetic import load_ground_truth, make_synthetic_rig, write_capture
from vggt_t_mv.eval.metrics import HIGHER_IS_BETTER


def test_eval_model_folder_on_synthetic_rigs_with_baselines(tmp_path: Path) -> None:
    save_pretrained(VGGTTMV(ModelConfig.tiny_two_stream()), tmp_path / "model")
    args = [str(tmp_path / "model"), "--gt", "synthetic:7", "-T", "2", "-N", "2", "--height", "28", "--width", "42"]
    result = CliRunner().invoke(eval_command, [*args, "--baselines", "--json", str(tmp_path / "eval.json")])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| ") and "predictor" not in line]
    assert [row.split("|")[1].strip().split(" ")[0] for row in rows] == ["model", "untrained", "trivial:"]
    report = json.loads((tmp_path / "eval.json").read_text())
    (set_name,) = report
    assert "windows 2x2 at 28x42" in set_name
    trivial = report[set_name]["trivial: identity cams / const depth / static mask"]
    assert set(trivial["means"]) == set(HIGHER_IS_BETTER)
    assert len(trivial["windows"]) == 4  # 8 timesteps / 2 per window
    assert trivial["means"]["mask_iou"] == 0.0 and trivial["means"]["auc30"] < 0.1


def test_eval_reconstruction_folder_is_perfect_when_it_holds_the_ground_truth(tmp_path: Path) -> None:
    from app.reconstruct.store import Reconstruction
    from tests.helpers.formats import exact_run

    rig = make_synthetic_rig(num_timesteps=3, num_cameras=2, height=56, width=84, seed=9)
    write_capture(rig, tmp_path / "capture", fmt="images")
    exact_run(tmp_path / "capture", tmp_path / "recon", size=84, window=2, stride=1)  # format 2: stored exactly
    recon = Reconstruction.open(tmp_path / "recon")
    truth = load_ground_truth(tmp_path / "capture")
    for record in recon.windows():
        times = slice(*record.span)
        recon.replace_arrays(
            record.index,
            {
                "extrinsics": truth.extrinsics[times],
                "depth": truth.depth[times],
                "world_points": truth.world_points[times],
                "dynamic_mask": truth.dynamic_masks[times].astype(np.float16),
            },
        )
    result = CliRunner().invoke(eval_command, [str(tmp_path / "recon"), "--gt", str(tmp_path / "capture")])
    assert result.exit_code == 0, result.output
    header, _, row = [line for line in result.output.splitlines() if line.startswith("|")][:3]
    values = dict(zip(header.split("|")[3:-1], row.split("|")[3:-1], strict=True))
    values = {key.strip().split(" ")[0]: float(value) for key, value in values.items()}
    assert values["ate"] < 1e-4 and values["rpe_rot_deg"] < 0.05 and values["auc30"] == 1.0
    assert values["abs_rel"] < 1e-6 and values["delta1"] == 1.0 and values["accuracy"] < 1e-4
    if "mask_iou" in values:
        assert values["mask_iou"] == 1.0


def test_eval_rejects_a_folder_that_is_neither(tmp_path: Path) -> None:
    result = CliRunner().invoke(eval_command, [str(tmp_path), "--gt", "synthetic:1"])
    assert result.exit_code != 0 and "neither a model folder" in result.output


def _project(points: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    camera = points @ extrinsics[:3, :3].T + extrinsics[:3, 3]
    pixels = camera @ intrinsics.T
    return pixels[:, :2] / pixels[:, 2:], camera[:, 2]


def test_pi3_room_depth_reprojects_between_views() -> None:
    folder = require(shared_dir() / "realdata" / "pi3_room", "pi3_room ground truth")
    seq = load_pi3_room(folder)
    assert seq.images.shape[:2] == (1, 8) and seq.valid.mean() > 0.9 and not seq.mask_known
    from vggt_t_mv.data.synthetic import _unproject_timestep

    points = _unproject_timestep(seq.depth[0], seq.extrinsics[0], seq.intrinsics[0])
    sample = points[0].reshape(-1, 3)[::97]
    pixels, depth = _project(sample, seq.extrinsics[0, 1].astype(np.float64), seq.intrinsics[0, 1].astype(np.float64))
    height, width = seq.depth.shape[2:]
    u, v = np.rint(pixels).astype(int).T
    inside = (depth > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    assert inside.sum() > 50
    relative = np.abs(seq.depth[0, 1][v[inside], u[inside]] - depth[inside]) / depth[inside]
    assert np.median(relative) < 0.02


def test_middlebury_and_caliscope_cameras() -> None:
    temple = load_middlebury(require(shared_dir() / "realdata" / "middlebury_templeSparseRing", "middlebury set"))
    assert temple.images.shape[:2] == (1, 16) and not temple.valid.any()
    np.testing.assert_allclose(temple.extrinsics[0, 0], temple.extrinsics[0, 10])  # views 0001 and 0011
    centre = np.array([-0.0224, 0.1018, 0.0251])  # the README's bounding-box centre
    for n in range(16):
        (pixel,), (depth,) = _project(centre[None], temple.extrinsics[0, n], temple.intrinsics[0, n])
        assert depth > 0 and 0 < pixel[0] < 640 and 0 < pixel[1] < 480
    rig = load_caliscope(require(shared_dir() / "realdata" / "caliscope_4cam_charuco", "caliscope set"), 10, 2)
    assert rig.images.shape == (2, 4, 720, 1280, 3)
    np.testing.assert_allclose(rig.extrinsics[0], rig.extrinsics[1])
    rotations = rig.extrinsics[0, :, :3, :3].astype(np.float64)
    np.testing.assert_allclose(
        rotations @ rotations.transpose(0, 2, 1), np.broadcast_to(np.eye(3), (4, 3, 3)), atol=1e-5
    )


def test_eval_model_on_pi3_room(tmp_path: Path) -> None:
    folder = require(shared_dir() / "realdata" / "pi3_room", "pi3_room ground truth")
    save_pretrained(VGGTTMV(ModelConfig.tiny_two_stream()), tmp_path / "model")
    result = CliRunner().invoke(eval_command, [str(tmp_path / "model"), "--gt", str(folder), "--width", "56"])
    assert result.exit_code == 0, result.output
    assert "pi3_room (windows 1x8 at 42x56)" in result.output and "abs_rel" in result.output
