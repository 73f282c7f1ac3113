"""The training configuration: nested dataclasses read from YAML or JSON (unknown keys are an error).

Every problem with a configuration is a :class:`ConfigError` (a ``ValueError``) naming the file or key, the value
and the fix: YAML that does not parse (line and column), YAML tags (only plain data is read), keys that do not exist,
values of the wrong type or out of range (:meth:`TrainConfig.validate`).
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from vggt_t_mv.train.dataset import DATA_KINDS, DataConfig
from vggt_t_mv.train.freeze import FreezePolicy
from vggt_t_mv.train.losses import LossConfig

DEFAULT_PRESET = "tiny_two_stream"  # the model of a training config that names no config and no weights


class ConfigError(ValueError):
    """A training configuration that cannot be used; the message names the file or key, the value and the fix."""


@dataclass
class ModelSection:
    """The model and where its weights come from.

    The same rule as every command (:func:`vggt_t_mv.load_model`): ``pretrained``: a
    :func:`~vggt_t_mv.save_pretrained` folder to fine-tune from, with its own config; otherwise ``config_file`` (a
    JSON of ``ModelConfig.to_dict()``) or ``preset`` (``tiny_two_stream``, ``vggt_t_mv``, ``tiny``, ``vggt_1b``), or,
    with neither, the config inferred from ``checkpoint`` (VGGT family) as ``vggt-mv run`` does; with no weights at
    all the model starts random as :data:`DEFAULT_PRESET`. ``overrides`` replace fields of whichever config.
    ``freeze``: ``auto`` / ``new`` / ``streams`` / ``all`` (:mod:`vggt_t_mv.train.freeze`; ``auto`` trains what is
    new, or the streams and heads when nothing is).
    """

    preset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    config_file: str | None = None
    pretrained: str | None = None
    checkpoint: str | None = None
    pi3: str | None = None
    freeze: FreezePolicy = "auto"
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


AmpMode = Literal["auto", "bf16", "off"]  # bf16 autocast: on CUDA only, always, never
AMP_MODES: tuple[AmpMode, ...] = get_args(AmpMode)


@dataclass
class RunConfig:
    """Output, logging and devices. ``amp``: ``auto`` (bf16 autocast on CUDA, off on CPU), ``bf16`` or ``off``."""

    out: str = "runs/train"
    log_every: int = 10
    save_every: int = 200
    keep_last: int = 2
    seed: int = 0
    device: str = "auto"
    amp: AmpMode = "auto"
    threads: int | None = None


@dataclass
class ValConfig:
    """Validation while training: every ``every`` steps (0: never) and after the last step, the evaluation metrics
    (:func:`vggt_t_mv.eval.runner.window_metrics`) over held-out windows go into ``metrics.jsonl`` (``"split":
    "val"``) and the loss-curve figure, and the weights with the best ``metric`` so far are kept in ``best/``.

    Held-out data: ``roots`` (dataset roots, read by the app: ``vggt-mv train --val ROOT``) when given; otherwise,
    with several training sequences, the last ``fraction`` of them (at least one); with a single sequence, its last
    ``fraction`` of timesteps (at least one window). Windows: ``data.window``'s size, cameras ``0..cameras-1``, not
    overlapping, at most ``max_windows``.
    """

    every: int = 0
    roots: list[str] = field(default_factory=list)
    fraction: float = 0.25
    metric: str = "ate"
    max_windows: int = 8


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    run: RunConfig = field(default_factory=RunConfig)
    val: ValConfig = field(default_factory=ValConfig)

    def validate(self) -> TrainConfig:
        """Check the values (types are checked when read); raises :class:`ConfigError` naming the key and the fix."""
        from vggt_t_mv.eval.metrics import HIGHER_IS_BETTER
        from vggt_t_mv.train.freeze import POLICIES

        positive = {
            "data.batch_size": self.data.batch_size,
            "data.window.timesteps": self.data.window.timesteps,
            "data.window.cameras": self.data.window.cameras,
            "data.window.time_stride": self.data.window.time_stride,
            "data.window.window_stride": self.data.window.window_stride,
            "optim.max_steps": self.optim.max_steps,
            "run.log_every": self.run.log_every,
            "run.save_every": self.run.save_every,
            "val.max_windows": self.val.max_windows,
        }
        for key, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be a positive whole number, got {value!r}; set it to 1 or more")
        for key, value in {"optim.warmup_steps": self.optim.warmup_steps, "val.every": self.val.every}.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{key} must be a whole number >= 0, got {value!r} (0 turns it off)")
        for key, size in {
            "data.window.height": self.data.window.height,
            "data.window.width": self.data.window.width,
        }.items():
            if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 14 or size % 14):
                raise ConfigError(f"{key} must be a positive multiple of 14 (e.g. 518, 294, 154), got {size!r}")
        if not (isinstance(self.optim.lr, int | float) and self.optim.lr > 0):
            raise ConfigError(f"optim.lr must be a positive number, got {self.optim.lr!r}")
        if not 0 < self.val.fraction < 1:
            raise ConfigError(f"val.fraction must be between 0 and 1 (the held-out share), got {self.val.fraction!r}")
        if self.val.metric not in HIGHER_IS_BETTER:
            raise ConfigError(
                f"val.metric {self.val.metric!r} is not a metric; choose one of {', '.join(HIGHER_IS_BETTER)}"
            )
        if self.model.freeze not in POLICIES:
            raise ConfigError(f"model.freeze must be one of {', '.join(POLICIES)}, got {self.model.freeze!r}")
        if self.run.amp not in AMP_MODES:
            raise ConfigError(f"run.amp must be one of {', '.join(AMP_MODES)}, got {self.run.amp!r}")
        if self.data.kind not in DATA_KINDS:
            raise ConfigError(f"data.kind must be one of {', '.join(DATA_KINDS)}, got {self.data.kind!r}")
        if self.data.kind == "roots" and not self.data.roots:
            raise ConfigError(
                "data.kind 'roots' needs data.roots: the dataset roots to train on (vggt-mv train --data ROOT)"
            )
        if self.data.kind == "folder" and not self.data.folder:
            raise ConfigError("data.kind 'folder' needs data.folder: a folder of recorded samples (ground_truth.npz)")
        if self.loss.rig < 0:
            raise ConfigError(f"loss.rig must be >= 0 (0 turns the rig-consistency loss off), got {self.loss.rig!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The config of a nested mapping, checked (:meth:`validate`); :class:`ConfigError` names the bad key."""
        try:
            cfg = _build(cls, data, "")
        except TypeError as error:
            raise ConfigError(f"config: {error}") from error
        return cfg.validate()

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a ``.yaml`` / ``.yml`` (needs PyYAML) or ``.json`` file."""
        return cls.from_dict(read_config_dict(path))


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Instantiate dataclass ``cls`` from ``data``, recursing into dataclass-typed fields."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"config section {where.rstrip('.') or '<root>'} must be a mapping (key: value lines), got "
            f"{type(data).__name__} {data!r}"
        )
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown config keys in {where.rstrip('.') or '<root>'}: {', '.join(unknown)}; the keys there are "
            f"{', '.join(sorted(names))}"
        )
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
                raise ConfigError(f"config key {where}{name} must be a number, got {value!r}") from None
        else:
            values[name] = value
    return cls(**values)


def _members(hint: Any) -> tuple:
    """The types of a (possibly union) type hint."""
    return typing.get_args(hint) if typing.get_args(hint) and typing.get_origin(hint) is not tuple else (hint,)


def read_config_dict(path: str | Path) -> dict[str, Any]:
    """The mapping in a ``.yaml`` / ``.yml`` (needs PyYAML) or ``.json`` config file; :class:`ConfigError` names the
    file, the line and the fix when it does not parse or holds a YAML tag (only plain data is read)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} cannot be read as a UTF-8 text file ({error})") from error
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.constructor.ConstructorError as error:
            raise ConfigError(
                f"{path}{_yaml_where(error)}: {error.problem}; a training config holds plain values only (numbers, "
                "strings, lists, mappings): remove the tag (the '!...' word)"
            ) from None
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or str(error)
            raise ConfigError(
                f"{path}{_yaml_where(error)} is not valid YAML ({problem}); fix that line (indentation, a missing "
                "':' or an unclosed quote or bracket), or start from configs/finetune_rig.yaml"
            ) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"{path}: line {error.lineno}, column {error.colno} is not valid JSON ({error.msg})"
            ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the config must be a mapping of sections (model:, data:, ...), got {type(data).__name__}"
        )
    return data


def _yaml_where(error: Any) -> str:
    mark = getattr(error, "problem_mark", None)
    return "" if mark is None else f", line {mark.line + 1}, column {mark.column + 1}"


def apply_overrides(data: dict[str, Any], assignments: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``a.b.c=value`` assignments (value parsed as YAML, or JSON without PyYAML) into the nested config ``data``."""
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"--set {assignment!r} is not KEY=VALUE (e.g. --set optim.lr=1e-4)")
        key, raw = assignment.split("=", 1)
        try:
            import yaml

            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError as error:
                raise ConfigError(f"--set {assignment!r}: the value is not valid YAML ({error}); quote it") from None
        except ImportError:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                value = raw
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {assignment!r}: {part} is a value, not a section")
        node[parts[-1]] = value
    return data
