"""Track head: DPT features at half resolution plus the iterative point tracker."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from vggt_t_mv.heads.dpt import DPTHead
from vggt_t_mv.heads.tracker import TrackerPredictor


class TrackHead(nn.Module):
    """VGGT's track head (state-dict layout ``feature_extractor.*``, ``tracker.*``)."""

    def __init__(
        self,
        *,
        dim_in: int,
        patch_size: int,
        features: int,
        out_channels: Sequence[int],
        intermediate_layers: Sequence[int],
        iters: int,
        stride: int,
        corr_levels: int,
        corr_radius: int,
        hidden_size: int,
        predict_conf: bool,
        tracker_depth: int,
        tracker_num_heads: int,
        num_virtual_tracks: int,
        max_scale: int,
    ) -> None:
        super().__init__()
        self.iters = iters
        self.feature_extractor = DPTHead(
            dim_in=dim_in,
            patch_size=patch_size,
            features=features,
            out_channels=out_channels,
            intermediate_layers=intermediate_layers,
            feature_only=True,
            down_ratio=stride,
            pos_embed=False,
        )
        self.tracker = TrackerPredictor(
            latent_dim=features,
            hidden_size=hidden_size,
            corr_levels=corr_levels,
            corr_radius=corr_radius,
            stride=stride,
            depth=tracker_depth,
            num_heads=tracker_num_heads,
            num_virtual_tracks=num_virtual_tracks,
            max_scale=max_scale,
            predict_conf=predict_conf,
        )

    def forward(
        self,
        layers: Sequence[Tensor | None],
        image_hw: tuple[int, int],
        patch_start_idx: int,
        query_points: Tensor,
        frames_chunk_size: int | None = 8,
        iters: int | None = None,
    ) -> tuple[list[Tensor], Tensor, Tensor | None]:
        """
        Args:
            layers: aggregator outputs by layer number, ``[B, S, P, dim_in]``.
            image_hw: input image size (H, W).
            patch_start_idx: first patch token index.
            query_points: ``[B, M, 2]`` pixel (x, y) in frame 0.
        Returns:
            tracks per iteration (each ``[B, S, M, 2]`` pixels), visibility ``[B, S, M]``,
            confidence ``[B, S, M]`` or None.
        """
        feature_maps = self.feature_extractor(layers, image_hw, patch_start_idx, frames_chunk_size)
        return self.tracker(query_points, feature_maps, self.iters if iters is None else iters)
