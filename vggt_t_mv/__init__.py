"""vggt_t_mv: VGGT extended from a single camera sequence to a time x view grid of frames."""

from vggt_t_mv.aggregator import Aggregator, AggregatorOutput
from vggt_t_mv.config import ModelConfig, PageMaskConfig, two_stream_config
from vggt_t_mv.infer_config import infer_config
from vggt_t_mv.loading import LoadedModel, ModelLoadError, WeightsSpec, load_model
from vggt_t_mv.model import VGGTTMV, Predictions
from vggt_t_mv.weights import (
    CheckpointError,
    LoadReport,
    detect_layout,
    load_pretrained,
    read_state_dict,
    save_pretrained,
)

__all__ = [
    "Aggregator",
    "AggregatorOutput",
    "CheckpointError",
    "LoadReport",
    "LoadedModel",
    "ModelLoadError",
    "ModelConfig",
    "PageMaskConfig",
    "Predictions",
    "VGGTTMV",
    "detect_layout",
    "infer_config",
    "load_model",
    "load_pretrained",
    "read_state_dict",
    "save_pretrained",
    "two_stream_config",
    "WeightsSpec",
]
__version__ = "0.1.0"
