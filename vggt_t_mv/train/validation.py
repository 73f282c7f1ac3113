"""Validation while training: which data is held out, its windows, the metrics and the best checkpoint.

The metrics are the evaluation's own (:func:`vggt_t_mv.eval.runner.evaluate`: ATE, RPE, AUC@30, Abs Rel and
δ<1.25 overall / static / moving, point accuracy and completeness, mask IoU, each per window and averaged), so a
number in ``metrics.jsonl`` means what the same name means in ``vggt-mv eval``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from vggt_t_mv.eval.metrics import HIGHER_IS_BETTER
from vggt_t_mv.train.dataset import SequenceSource, TimeRange, WindowConfig, WindowDataset
from vggt_t_mv.weights import save_pretrained

BEST_FOLDER = "best"
BEST_FILE = "best.json"


@dataclass
class Holdout:
    """The training sequences, the held-out ones (empty: no validation) and a one-line description of the split."""

    train: list[SequenceSource]
    val: list[SequenceSource]
    description: str


def split_holdout(
    sequences: Sequence[SequenceSource],
    val_sequences: Sequence[SequenceSource] | None,
    fraction: float,
    window: WindowConfig,
) -> Holdout:
    """Held-out data as :class:`~vggt_t_mv.train.config.ValConfig` says: ``val_sequences`` when given; else the
    last ``fraction`` of several sequences (at least one); else the last ``fraction`` of a single sequence's
    timesteps (at least one window's span, leaving at least one window to train on). Raises ``ValueError`` with
    the fix when a single sequence is too short to split."""
    if val_sequences:
        names = ", ".join(s.name for s in val_sequences[:3]) + (" ..." if len(val_sequences) > 3 else "")
        return Holdout(list(sequences), list(val_sequences), f"held-out sequences {names}")
    if len(sequences) > 1:
        count = min(len(sequences) - 1, max(1, round(fraction * len(sequences))))
        kept_out = sequences[-count:]
        names = ", ".join(s.name for s in kept_out[:3]) + (" ..." if len(kept_out) > 3 else "")
        return Holdout(list(sequences[:-count]), list(kept_out), f"held-out sequences {names} (the last {count})")
    (only,) = sequences
    span = (window.timesteps - 1) * window.time_stride + 1
    held = max(span, math.ceil(fraction * only.num_timesteps))
    kept = only.num_timesteps - held
    if kept < span:
        raise ValueError(
            f"validation on held-out timesteps: {only.name or 'the sequence'} has {only.num_timesteps} timesteps, too "
            f"few to hold out {held} and still train on windows of {span}; give held-out data (--val ROOT, "
            "val.roots), more timesteps, shorter windows (data.window.timesteps), or val.every 0"
        )
    train_part = TimeRange(only, 0, kept)
    val_part = TimeRange(only, kept, only.num_timesteps)
    return Holdout([train_part], [val_part], f"held-out timesteps {kept}..{only.num_timesteps - 1} of {only.name}")


def validation_windows(sequences: list[SequenceSource], window: WindowConfig, max_windows: int) -> WindowDataset:
    """Non-overlapping windows of ``window``'s size over the held-out sequences, cameras ``0..cameras-1``, at most
    ``max_windows`` (spread evenly over all of them)."""
    cameras = min(window.cameras, min(s.num_cameras for s in sequences))
    cfg = WindowConfig(
        timesteps=window.timesteps,
        cameras=cameras,
        height=window.height,
        width=window.width,
        time_stride=window.time_stride,
        window_stride=(window.timesteps - 1) * window.time_stride + 1,
        camera_offsets="first",
    )
    dataset = WindowDataset(sequences, cfg)
    if len(dataset.index) > max_windows:
        step = len(dataset.index) / max_windows
        dataset.index = [dataset.index[int(i * step)] for i in range(max_windows)]
    return dataset


def validate(model: nn.Module, dataset: WindowDataset, step: int) -> dict[str, Any]:
    """The ``metrics.jsonl`` record of one validation: ``step``, ``split: "val"``, ``windows``, ``seconds`` and every
    metric's mean over the windows (``None`` where no window has it, e.g. no depth). Leaves ``model`` in train mode."""
    from vggt_t_mv.eval.runner import evaluate

    tick = time.time()
    result = evaluate(model, dataset, "validation")
    model.train()
    record: dict[str, Any] = {"step": step, "split": "val", "windows": len(result.windows)}
    for key in HIGHER_IS_BETTER:
        value = result.means().get(key)
        record[key] = None if value is None or math.isnan(value) else value
    record["seconds"] = time.time() - tick
    return record


def format_validation(record: dict[str, Any]) -> str:
    shown = " ".join(f"{k}={v:.4g}" for k, v in record.items() if k in HIGHER_IS_BETTER and v is not None)
    return f"step {record['step']:>6} validation ({record['windows']} window(s), {record['seconds']:.1f} s): {shown}"


@dataclass
class BestCheckpoint:
    """Keeps the weights with the best value of ``metric`` in ``out/best/`` (``save_pretrained``), with
    ``best.json`` (``metric``, ``value``, ``step``, ``higher_is_better``) beside them."""

    out: Path
    metric: str
    value: float | None = None
    step: int | None = None
    history: list[tuple[int, float]] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return self.out / BEST_FOLDER

    def better(self, value: float) -> bool:
        if self.value is None:
            return True
        return value > self.value if HIGHER_IS_BETTER[self.metric] else value < self.value

    def restore(self) -> None:
        """Read a resumed run's ``best.json`` so the best so far is not forgotten."""
        path = self.folder / BEST_FILE
        if path.is_file():
            data = json.loads(path.read_text())
            if data.get("metric") == self.metric:
                self.value, self.step = float(data["value"]), int(data["step"])

    def offer(self, record: dict[str, Any], model: nn.Module, input_hw: tuple[int, int]) -> bool:
        """Save ``model`` as the best when ``record``'s metric beats the best so far; returns whether it did."""
        value = record.get(self.metric)
        if value is None or not self.better(float(value)):
            return False
        self.value, self.step = float(value), int(record["step"])
        temporary = self.folder.with_name(BEST_FOLDER + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        save_pretrained(model, temporary, input_hw)
        info = {
            "metric": self.metric,
            "value": self.value,
            "step": self.step,
            "higher_is_better": HIGHER_IS_BETTER[self.metric],
        }
        (temporary / BEST_FILE).write_text(json.dumps(info, indent=2) + "\n")
        shutil.rmtree(self.folder, ignore_errors=True)
        temporary.rename(self.folder)
        return True
