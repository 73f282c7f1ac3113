"""Training: datasets of ``[T, N]`` windows, losses, freeze policies and the (distributed) training loop.

Entry points: :func:`vggt_t_mv.train.trainer.train` with a :class:`TrainConfig`, or ``vggt-mv train CONFIG``.
"""

from vggt_t_mv.train.config import ConfigError, ModelSection, OptimConfig, RunConfig, TrainConfig, ValConfig
from vggt_t_mv.train.dataset import (
    DataConfig,
    Sample,
    Sequence,
    SequenceSource,
    SyntheticDataConfig,
    TimeRange,
    WindowArrays,
    WindowConfig,
    WindowDataset,
    build_dataset,
    collate,
    recorded_sequences,
    synthetic_sequences,
)
from vggt_t_mv.train.freeze import POLICIES, FreezeSummary, apply_freeze_policy, trainable_names
from vggt_t_mv.train.losses import LossConfig, LossOutput, compute_loss, normalize_targets

__all__ = [
    "POLICIES",
    "ConfigError",
    "SequenceSource",
    "TimeRange",
    "ValConfig",
    "WindowArrays",
    "DataConfig",
    "FreezeSummary",
    "LossConfig",
    "LossOutput",
    "ModelSection",
    "OptimConfig",
    "RunConfig",
    "Sample",
    "Sequence",
    "SyntheticDataConfig",
    "TrainConfig",
    "WindowConfig",
    "WindowDataset",
    "apply_freeze_policy",
    "build_dataset",
    "collate",
    "compute_loss",
    "normalize_targets",
    "recorded_sequences",
    "synthetic_sequences",
    "trainable_names",
]
