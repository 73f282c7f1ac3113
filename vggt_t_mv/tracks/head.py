"""The model's track head as a :class:`~vggt_t_mv.tracks.Tracker2D`: one trunk pass over a window's ``T x N``
frames, the track features of every frame once, then the tracker per camera and start frame."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vggt_t_mv.model import VGGTTMV
from vggt_t_mv.tracks.chain import View2D


class HeadTracker:
    """2D tracks of one window from ``model``'s track head.

    ``images [1, T, N, 3, H, W]`` in [0, 1] (on the model's device); ``masks`` optional ``[1, T, N, H, W]``
    external dynamic masks, as the model takes them. The trunk and the track features (``[T, N, C, H/s, W/s]``)
    are computed here, once; :meth:`track` runs only the iterative tracker."""

    def __init__(
        self,
        model: VGGTTMV,
        images: Tensor,
        masks: Tensor | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        if model.track_head is None:
            raise ValueError("this model has no track head (config track_head=False): it cannot track points")
        self.model = model
        _, self.num_times, self.num_views = images.shape[:3]
        self.image_hw = (int(images.shape[-2]), int(images.shape[-1]))
        with torch.inference_mode():
            with torch.autocast(images.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                aggregated = model.aggregator(images, layers="heads", external_masks=masks)
            with torch.autocast(images.device.type, enabled=False):
                layers = [None if t is None else t.float() for t in aggregated.geo_layers]
                features = model.track_head.feature_extractor(
                    layers, self.image_hw, aggregated.patch_start_idx, model.cfg.frames_chunk_size
                )  # [1, T*N, C, h, w], frames in (t, n) order
        self.features = features.reshape(1, self.num_times, self.num_views, *features.shape[2:])

    def track(self, camera: int, start: int, pixels: np.ndarray) -> View2D:
        """``pixels [M, 2]`` (x, y) of ``camera`` at window frame ``start`` -> :class:`View2D` over frames
        ``start .. T - 1`` (float64 numpy)."""
        assert self.model.track_head is not None
        features = self.features[:, start:, camera]  # [1, S, C, h, w]
        queries = torch.as_tensor(np.asarray(pixels, np.float32), device=features.device)[None]
        with torch.inference_mode(), torch.autocast(features.device.type, enabled=False):
            tracks, visibility, confidence = self.model.track_head.tracker(
                queries, features, self.model.track_head.iters
            )
        conf = torch.ones_like(visibility) if confidence is None else confidence
        return View2D(
            tracks[-1][0].double().cpu().numpy(), visibility[0].double().cpu().numpy(), conf[0].double().cpu().numpy()
        )
