"""vggt_t_mv: VGGT extended from a single camera sequence to a time x view grid of frames.

The public names below are loaded on first use (PEP 562), so ``import vggt_t_mv.npgeometry`` or
``import vggt_t_mv.data.recorded`` does not load the model, torch's network modules or the weight readers."""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vggt_t_mv.aggregator import Aggregator, AggregatorOutput
    from vggt_t_mv.config import ModelConfig, PageMaskConfig, two_stream_config
    from vggt_t_mv.infer_config import infer_config
    from vggt_t_mv.loading import LoadedModel, ModelLoadError, WeightsSpec, load_model
    from vggt_t_mv.model import VGGTTMV, Predictions
    from vggt_t_mv.provenance import Provenance
    from vggt_t_mv.weights import (
        CheckpointError,
        LoadReport,
        detect_layout,
        load_pretrained,
        read_state_dict,
        save_pretrained,
    )

# public name -> the module that defines it
_HOMES = {
    "Aggregator": "aggregator",
    "AggregatorOutput": "aggregator",
    "ModelConfig": "config",
    "PageMaskConfig": "config",
    "two_stream_config": "config",
    "infer_config": "infer_config",
    "LoadedModel": "loading",
    "ModelLoadError": "loading",
    "Provenance": "provenance",
    "WeightsSpec": "loading",
    "load_model": "loading",
    "VGGTTMV": "model",
    "Predictions": "model",
    "CheckpointError": "weights",
    "LoadReport": "weights",
    "detect_layout": "weights",
    "load_pretrained": "weights",
    "read_state_dict": "weights",
    "save_pretrained": "weights",
}

__all__ = [
    "Aggregator",
    "AggregatorOutput",
    "CheckpointError",
    "LoadReport",
    "LoadedModel",
    "ModelConfig",
    "ModelLoadError",
    "PageMaskConfig",
    "Predictions",
    "Provenance",
    "VGGTTMV",
    "WeightsSpec",
    "detect_layout",
    "infer_config",
    "load_model",
    "load_pretrained",
    "read_state_dict",
    "save_pretrained",
    "two_stream_config",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'vggt_t_mv' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"vggt_t_mv.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


class _Package(types.ModuleType):
    """The package object: when a submodule named like the public function it defines is imported
    (``vggt_t_mv.infer_config``), the package attribute stays that function, as an eager import would leave it."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _HOMES and hasattr(value, name):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
