"""A checkpoint's ``training_state.pt``: optimizer, schedule, step, RNG states and the TrainConfig, stored as plain
containers (dict, list, tuple, str, int, float, bool, None) and tensors only, so that it loads with
``torch.load(weights_only=True)``: reading a run folder someone sent you never executes code from it.

numpy's RNG state (a tuple holding an ``ndarray``) is stored as a dict with the key array as an int64 tensor.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


class TrainingStateError(ValueError):
    """A ``training_state.pt`` that cannot be read safely; the message names the file and what to do."""


def rng_states() -> dict[str, Any]:
    """The torch, numpy and Python RNG states as plain containers and tensors."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`rng_states`."""
    torch.set_rng_state(states["torch"])
    saved = states["numpy"]
    keys = saved["keys"].numpy().astype(np.uint32)
    np.random.set_state((saved["name"], keys, saved["pos"], saved["has_gauss"], saved["cached_gaussian"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def write_training_state(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` of ``state`` (plain containers and tensors only; checked by reading it back safely)."""
    torch.save(state, path)
    read_training_state(path)


def read_training_state(path: Path) -> dict[str, Any]:
    """Load ``path`` with ``weights_only=True``. Anything else than tensors and plain containers (a crafted file,
    or one written by an older version that pickled numpy objects) is refused with a
    :class:`TrainingStateError`, never unpickled."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, TypeError) as error:
        if isinstance(error, EOFError) or "zip archive" in str(error) or "central directory" in str(error):
            raise TrainingStateError(
                f"{path}: this training state is damaged or cut short ({path.stat().st_size} bytes; a copy that did "
                f"not finish, or a disk that filled up). Resume from an earlier checkpoint: delete {path.parent} and "
                "run again with --resume"
            ) from error
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrainingStateError(
            f"{path}: refusing to load this training state: it is not plain tensors and containers "
            f"({first_line}). Loading it could run code from the file. If you wrote it yourself with an older "
            f"version, restart from its weights instead: --set model.pretrained={path.parent} without --resume; "
            f"otherwise delete {path.parent}."
        ) from error
    if not isinstance(state, dict) or not {"step", "optimizer", "scheduler", "rng"} <= set(state):
        raise TrainingStateError(
            f"{path}: not a training state (expected a dict with step, optimizer, scheduler and rng); "
            f"delete {path.parent} or start without --resume"
        )
    return state
