"""vggt_t_mv: VGGT extended from a single camera sequence to a time x view grid of frames."""

from vggt_t_mv.aggregator import Aggregator, AggregatorOutput
from vggt_t_mv.config import ModelConfig
from vggt_t_mv.model import VGGTTMV, Predictions
from vggt_t_mv.weights import CheckpointError, LoadReport, load_pretrained, read_state_dict

__all__ = [
    "Aggregator",
    "AggregatorOutput",
    "CheckpointError",
    "LoadReport",
    "ModelConfig",
    "Predictions",
    "VGGTTMV",
    "load_pretrained",
    "read_state_dict",
]
__version__ = "0.1.0"
