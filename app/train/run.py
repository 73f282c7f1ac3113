"""``vggt-mv train`` without click: a training config from a file and/or options, and a run on recorded captures.

:func:`training_config` merges, in this order, a YAML/JSON config file (optional), the command's options (``--data``,
``--val``, the weights options, ``--steps``, ``--out``, ``--val-every``, ...) and ``--set`` overrides into one checked
:class:`~vggt_t_mv.train.config.TrainConfig`. :func:`train_captures` reads the config's dataset roots with the app's
capture readers (:mod:`app.train.data`) and hands the sequences to the library trainer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.train.data import open_captures
from vggt_t_mv.loading import PRESETS
from vggt_t_mv.train.config import ConfigError, TrainConfig, apply_overrides, read_config_dict
from vggt_t_mv.train.freeze import FreezePolicy
from vggt_t_mv.train.trainer import TrainingData, TrainResult, train

DEFAULT_WARMUP = 100  # warmup steps of a run whose config file does not say: 10 % of --steps, at most this


@dataclass
class TrainOptions:
    """What the command line says, on top of the config file (``None`` / empty: keep the file's value)."""

    config_file: Path | None = None
    data: list[Path] = field(default_factory=list)
    val: list[Path] = field(default_factory=list)
    checkpoint: Path | None = None
    pi3: Path | None = None
    model_config: str | None = None
    steps: int | None = None
    out: Path | None = None
    val_every: int | None = None
    best_metric: str | None = None
    freeze: FreezePolicy | None = None
    assignments: tuple[str, ...] = ()


def training_config(options: TrainOptions) -> TrainConfig:
    """The checked config of ``options`` (module docstring); :class:`~vggt_t_mv.train.config.ConfigError` names the
    file or key and the fix."""
    data: dict[str, Any] = read_config_dict(options.config_file) if options.config_file is not None else {}
    model = section(data, "model")
    if options.checkpoint is not None:  # the command's weights replace the file's, and its model config with them
        model["checkpoint"] = str(options.checkpoint)
        for key in ("pretrained", "preset", "config_file", "pi3"):
            model.pop(key, None)
    if options.pi3 is not None:
        model["pi3"] = str(options.pi3)
    if options.model_config is not None:
        if options.model_config in PRESETS:
            model["preset"], model["config_file"] = options.model_config, None
        else:
            model["config_file"], model["preset"] = options.model_config, None
    if options.freeze is not None:
        model["freeze"] = options.freeze
    if options.data:
        section(data, "data").update(kind="roots", roots=[str(p) for p in options.data])
    if options.val:
        section(data, "val")["roots"] = [str(p) for p in options.val]
    if options.val_every is not None:
        section(data, "val")["every"] = options.val_every
    if options.best_metric is not None:
        section(data, "val")["metric"] = options.best_metric
    if options.steps is not None:
        optim = section(data, "optim")
        optim["max_steps"] = options.steps
        optim.setdefault("warmup_steps", min(DEFAULT_WARMUP, options.steps // 10))
    if options.out is not None:
        section(data, "run")["out"] = str(options.out)
    apply_overrides(data, options.assignments)
    return TrainConfig.from_dict(data)


def section(data: dict[str, Any], name: str) -> dict[str, Any]:
    """The mapping ``data[name]`` (created when absent or empty); :class:`ConfigError` when it is something else."""
    value = data.get(name)
    if value is None:
        value = data[name] = {}
    if not isinstance(value, dict):
        raise ConfigError(f"config section {name} must be a mapping (key: value lines), got {value!r}")
    return value


def training_data(cfg: TrainConfig) -> TrainingData | None:
    """The recorded captures of ``cfg`` (``data.roots`` and ``val.roots``) read by the app; None when the config's
    data is the library's own (synthetic rigs, recorded samples) and no held-out capture is given."""
    val = open_captures(cfg.val.roots, "--val") if cfg.val.roots else None
    if cfg.data.kind != "roots":
        if val is None:
            return None
        from vggt_t_mv.train.dataset import build_sequences

        return TrainingData(build_sequences(cfg.data), val, "")
    captures = open_captures(cfg.data.roots, "--data")
    lines = [c.describe() for c in captures[:4]] + ([f"... {len(captures) - 4} more"] if len(captures) > 4 else [])
    notes = sorted({note for c in captures for note in c.notes})
    text = f"{len(captures)} recorded capture(s): " + "; ".join(lines)
    if notes:
        text += "\n" + "\n".join(f"  note: {n}" for n in notes[:5])
    return TrainingData(list(captures), val, text)


def train_captures(
    cfg: TrainConfig,
    resume: bool = False,
    stop_after: int | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train as ``cfg`` says, reading its dataset roots with the app's capture readers."""
    return train(cfg, resume=resume, stop_after=stop_after, log=log, data=training_data(cfg))
