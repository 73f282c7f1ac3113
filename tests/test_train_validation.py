"""What validation holds out, and which weights it keeps as the best."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vggt_t_mv import VGGTTMV, ModelConfig
from vggt_t_mv.train.dataset import Sequence, TimeRange, WindowConfig
from vggt_t_mv.train.validation import BestCheckpoint, split_holdout, validation_windows


def sequence(name: str, timesteps: int, cameras: int = 3) -> Sequence:
    shape = (timesteps, cameras, 28, 42)
    extrinsics = np.tile(np.eye(3, 4, dtype=np.float32), (timesteps, cameras, 1, 1))
    intrinsics = np.tile(np.array([[40, 0, 21], [0, 40, 14], [0, 0, 1]], np.float32), (timesteps, cameras, 1, 1))
    images = np.zeros((*shape, 3), np.uint8)
    images[:] = np.arange(timesteps, dtype=np.uint8)[:, None, None, None, None]  # each timestep its own grey
    depth = np.ones(shape, np.float32)
    return Sequence(images, depth, depth > 0, extrinsics, intrinsics, np.zeros(shape, bool), name=name)


WINDOW = WindowConfig(timesteps=2, cameras=2, height=28, width=42)


def test_several_sequences_hold_out_the_last_ones() -> None:
    sequences = [sequence(f"seq{i}", 4) for i in range(8)]
    holdout = split_holdout(sequences, None, 0.25, WINDOW)
    assert [s.name for s in holdout.train] == [f"seq{i}" for i in range(6)]
    assert [s.name for s in holdout.val] == ["seq6", "seq7"]
    given = [sequence("other", 4)]
    assert split_holdout(sequences, given, 0.25, WINDOW).val == given
    assert len(split_holdout(sequences, given, 0.25, WINDOW).train) == 8


def test_one_sequence_holds_out_its_last_timesteps_with_no_overlap() -> None:
    holdout = split_holdout([sequence("rig", 8)], None, 0.25, WINDOW)
    (train,), (val,) = holdout.train, holdout.val
    assert isinstance(train, TimeRange) and (train.start, train.stop) == (0, 6)
    assert isinstance(val, TimeRange) and (val.start, val.stop) == (6, 8)
    assert "held-out timesteps 6..7 of rig" in holdout.description
    windows = validation_windows(holdout.val, WINDOW, max_windows=8)
    seen = {int(windows[i].images[t, 0, 0, 0, 0] * 255 + 0.5) for i in range(len(windows)) for t in range(2)}
    assert seen == {6, 7}  # the held-out window shows timesteps 6 and 7, never a training one


def test_a_sequence_too_short_to_split_names_the_fix() -> None:
    with pytest.raises(ValueError, match=r"too few to hold out 2 .*\(--val ROOT"):
        split_holdout([sequence("short", 3)], None, 0.25, WINDOW)


@pytest.mark.parametrize(("metric", "values", "best"), [("ate", [0.5, 0.3, 0.4], 0.3), ("auc30", [0.2, 0.1, 0.6], 0.6)])
def test_the_best_checkpoint_follows_the_metrics_direction(tmp_path: Path, metric, values, best) -> None:
    model = VGGTTMV(ModelConfig.tiny())
    keeper = BestCheckpoint(tmp_path, metric)
    kept = [keeper.offer({"step": step, metric: value}, model, (28, 42)) for step, value in enumerate(values, 1)]
    assert kept[0] and keeper.value == best
    assert keeper.offer({"step": 9, metric: None}, model, (28, 42)) is False  # a missing metric never replaces
    saved = json.loads((tmp_path / "best" / "best.json").read_text())
    assert saved["metric"] == metric and saved["value"] == best and saved["step"] == values.index(best) + 1
    assert (tmp_path / "best" / "model.safetensors").is_file()
    resumed = BestCheckpoint(tmp_path, metric)
    resumed.restore()
    assert resumed.value == best
