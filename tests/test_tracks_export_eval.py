"""4D tracks downstream: ``vggt-mv export --format tracks`` (NPZ + CSV) and the track metrics of ``eval`` on a
synthetic rig, with the real tiny model and the demo weights; the metrics themselves on known errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli.main import main
from app.reconstruct.store import Reconstruction
from app.reconstruct.track_eval import TrackTruth, track_metrics
from tests.helpers.shared import REPO_ROOT
from vggt_t_mv.data.synthetic import make_synthetic_rig, write_capture

DEMO_WEIGHTS = REPO_ROOT / "assets" / "demo_weights"


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tracks")
    rig = make_synthetic_rig(num_timesteps=6, num_cameras=3, height=48, width=64, seed=1)
    capture = write_capture(rig, folder / "capture", fmt="images")
    out = folder / "recon"
    args = ["run", str(capture), "--out", str(out), "--checkpoint", str(DEMO_WEIGHTS), "--device", "cpu"]
    result = CliRunner().invoke(
        main, [*args, "--size", "56", "--window", "4", "--stride", "2", "--track-queries", "auto"]
    )
    assert result.exit_code == 0, result.output
    return capture, out


def test_eval_prints_the_track_metrics_on_a_synthetic_rig(tracked) -> None:
    capture, out = tracked
    result = CliRunner().invoke(main, ["eval", str(out), "--gt", str(capture), "--json", str(out.parent / "e.json")])
    assert result.exit_code == 0, result.output
    assert "4D tracks" in result.output and "median 3D error" in result.output and "δ_avg" in result.output
    assert "occlusion accuracy" in result.output
    import json

    report = json.loads((out.parent / "e.json").read_text())
    numbers = next(value for key, value in report.items() if key.endswith("(tracks)"))
    assert numbers["points"] > 0 and 0 <= numbers["delta_avg"] <= 1 and 0 <= numbers["occlusion_accuracy"] <= 1


def test_export_tracks_writes_npz_and_csv(tracked, tmp_path: Path) -> None:
    _, out = tracked
    result = CliRunner().invoke(main, ["export", str(out), "--format", "tracks", "--out", str(tmp_path / "t.npz")])
    assert result.exit_code == 0, result.output
    stored = Reconstruction.open(out).tracks()
    with np.load(tmp_path / "t.npz") as data:
        np.testing.assert_array_equal(data["points"], stored.points)
        np.testing.assert_array_equal(data["visible"], stored.visible)
        assert str(data["query_kind"]) == stored.kind and data["pixels"].shape == stored.pixels.shape
    with open(tmp_path / "t.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == int((6 - stored.queries[:, 0]).sum())
    first = rows[0]
    assert int(first["query"]) == 0 and int(first["t"]) == int(stored.queries[0, 0])
    np.testing.assert_allclose([float(first[k]) for k in "xyz"], stored.points[0, int(first["t"])], rtol=1e-5)


def test_export_tracks_of_a_reconstruction_without_tracks_says_how(tracked, tmp_path: Path) -> None:
    _, out = tracked
    bare = tmp_path / "bare"
    import shutil

    shutil.copytree(out, bare, ignore=shutil.ignore_patterns("tracks"))
    result = CliRunner().invoke(main, ["export", str(bare), "--format", "tracks", "--out", str(tmp_path / "t.npz")])
    assert result.exit_code != 0 and "--track-queries" in result.output
    assert not (tmp_path / "t.npz").exists()


def test_track_metrics_on_known_errors() -> None:
    truth = TrackTruth(np.zeros((2, 3, 3)), np.array([[True, True, False], [True, True, True]]), metric=True)
    predicted = np.zeros((2, 3, 3))
    predicted[0, 1, 0] = 0.03  # 3 cm off
    predicted[1, 2, 0] = 0.5  # 50 cm off
    started = np.array([[True, True, True], [False, True, True]])
    visible = np.array([[True, True, True], [True, True, True]])
    metrics = track_metrics(predicted, visible, truth, started, 0.01)
    assert metrics.num_points == 4  # started and visible in the ground truth
    assert metrics.within == {"1cm": 0.5, "2cm": 0.5, "4cm": 0.75, "8cm": 0.75, "16cm": 0.75}
    assert metrics.median_error == pytest.approx(0.015)
    assert metrics.occlusion_accuracy == pytest.approx(4 / 5)  # (0, 2) is called visible but is not
