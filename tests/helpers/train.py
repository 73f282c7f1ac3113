"""A training configuration small enough for a unit test (2 synthetic rigs, 28x42 px, a few steps)."""

from __future__ import annotations

from pathlib import Path

from vggt_t_mv.train.config import TrainConfig


def tiny_config(out: Path, cache: Path, max_steps: int = 4) -> TrainConfig:
    return TrainConfig.from_dict(
        {
            "data": {
                "synthetic": {"seeds": "5-6", "num_timesteps": 3, "height": 28, "width": 42, "cache_dir": str(cache)},
                "window": {"timesteps": 2, "cameras": 2, "height": 28, "width": 42},
                "external_mask_prob": 0.5,
            },
            "optim": {"lr": 1e-3, "warmup_steps": 1, "max_steps": max_steps},
            "run": {"out": str(out), "log_every": 1, "save_every": 2, "threads": 2},
        }
    )
