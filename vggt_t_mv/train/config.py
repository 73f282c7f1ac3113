"""The training configuration: nested dataclasses read from YAML or JSON (unknown keys are an error)."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vggt_t_mv.train.dataset import DataConfig
from vggt_t_mv.train.losses import LossConfig

DEFAULT_PRESET = "tiny_two_stream"  # the model of a training config that names no config and no weights


@dataclass
class ModelSection:
    """The model and where its weights come from.

    The same rule as every command (:func:`vggt_t_mv.load_model`): ``pretrained``: a
    :func:`~vggt_t_mv.save_pretrained` folder to fine-tune from, with its own config; otherwise ``config_file`` (a
    JSON of ``ModelConfig.to_dict()``) or ``preset`` (``tiny_two_stream``, ``vggt_t_mv``, ``tiny``, ``vggt_1b``), or,
    with neither, the config inferred from ``checkpoint`` (VGGT family) as ``vggt-mv run`` does; with no weights at
    all the model starts random as :data:`DEFAULT_PRESET`. ``overrides`` replace fields of whichever config.
    ``freeze``: ``new`` / ``streams`` / ``all`` (:mod:`vggt_t_mv.train.freeze`).
    """

    preset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    config_file: str | None = None
    pretrained: str | None = None
    checkpoint: str | None = None
    pi3: str | None = None
    freeze: str = "all"
    gradient_checkpointing: bool = False


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay to ``min_lr_ratio * lr``; gradient-norm clipping."""

    lr: float = 1e-4
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 100
    max_steps: int = 1000
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0


@dataclass
class RunConfig:
    """Output, logging and devices. ``amp``: ``auto`` (bf16 autocast on CUDA, off on CPU), ``bf16`` or ``off``."""

    out: str = "runs/train"
    log_every: int = 10
    save_every: int = 200
    keep_last: int = 2
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    threads: int | None = None


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return _build(cls, data, "")

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a ``.yaml`` / ``.yml`` (needs PyYAML) or ``.json`` file."""
        return cls.from_dict(read_config_dict(path))


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Instantiate dataclass ``cls`` from ``data``, recursing into dataclass-typed fields."""
    if not isinstance(data, dict):
        raise ValueError(f"config section {where or '<root>'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown config keys in {where or '<root>'}: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            values[name] = _build(hint, value or {}, f"{where}{name}.")
        elif isinstance(value, list) and typing.get_origin(hint) is tuple:
            values[name] = tuple(value)
        elif isinstance(value, str) and float in _members(hint) and str not in _members(hint):
            try:  # YAML 1.1 reads "1e-4" (no dot) as a string
                values[name] = float(value)
            except ValueError:
                raise ValueError(f"config key {where}{name} must be a number, got {value!r}") from None
        else:
            values[name] = value
    return cls(**values)


def _members(hint: Any) -> tuple:
    """The types of a (possibly union) type hint."""
    return typing.get_args(hint) if typing.get_args(hint) and typing.get_origin(hint) is not tuple else (hint,)


def read_config_dict(path: str | Path) -> dict[str, Any]:
    """The mapping in a ``.yaml`` / ``.yml`` (needs PyYAML) or ``.json`` config file."""
    path = Path(path)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the config must be a mapping, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], assignments: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``a.b.c=value`` assignments (value parsed as YAML, or JSON without PyYAML) into the nested config ``data``."""
    for assignment in assignments:
        if "=" not in assignment:
            raise ValueError(f"--set {assignment!r} is not KEY=VALUE")
        key, raw = assignment.split("=", 1)
        try:
            import yaml

            value = yaml.safe_load(raw)
        except ImportError:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return data
