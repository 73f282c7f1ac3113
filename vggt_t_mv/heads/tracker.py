"""Iterative point tracker of the VGGT track head (upstream `BaseTrackerPredictor`).

Given query pixels in frame 0 and per-frame feature maps, it starts every track at its
query position in all frames and refines positions and per-frame track features with a
correlation lookup plus an update transformer, `iters` times.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .tracker_blocks import (
    CorrelationPyramid,
    Mlp,
    UpdateFormer,
    flow_embedding,
    sample_point_features,
    sincos_grid_embedding,
)


class TrackerPredictor(nn.Module):
    """Track refinement network; state_dict keys match upstream `track_head.tracker.*`."""

    def __init__(
        self,
        *,
        latent_dim: int,
        hidden_size: int,
        corr_levels: int,
        corr_radius: int,
        stride: int,
        depth: int,
        num_heads: int,
        num_virtual_tracks: int,
        max_scale: int,
        predict_conf: bool = True,
        mlp_ratio: float = 4.0,
    ) -> None:
        super().__init__()
        if latent_dim % 4 != 0:
            raise ValueError(f"latent_dim must be divisible by 4, got {latent_dim}")
        self.latent_dim = latent_dim
        self.corr_levels = corr_levels
        self.corr_radius = corr_radius
        self.stride = stride
        self.max_scale = max_scale
        self.predict_conf = predict_conf
        # flow code (latent + 4) | correlation code (latent) | track features (latent)
        self.transformer_dim = 3 * latent_dim + 4

        corr_dim = corr_levels * (2 * corr_radius + 1) ** 2
        # Row 0 marks the query frame, row 1 every other frame.
        self.query_ref_token = nn.Parameter(torch.randn(1, 2, self.transformer_dim))
        self.corr_mlp = Mlp(corr_dim, hidden_size, latent_dim)
        self.updateformer = UpdateFormer(
            input_dim=self.transformer_dim,
            hidden_size=hidden_size,
            output_dim=latent_dim + 2,
            time_depth=depth,
            space_depth=depth,
            num_heads=num_heads,
            num_virtual_tracks=num_virtual_tracks,
            mlp_ratio=mlp_ratio,
        )
        self.fmap_norm = nn.LayerNorm(latent_dim)
        self.ffeat_norm = nn.GroupNorm(1, latent_dim)
        self.ffeat_updater = nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.GELU())
        self.vis_predictor = nn.Sequential(nn.Linear(latent_dim, 1))
        if predict_conf:
            self.conf_predictor = nn.Sequential(nn.Linear(latent_dim, 1))

    def _transformer_input(self, coords: Tensor, track_feats: Tensor, corr: Tensor, pos_embed: Tensor) -> Tensor:
        """Assemble the update-transformer tokens.

        coords [B, S, M, 2] (feature pixels), track_feats [B, S, M, latent], corr [B, S, M, corr_dim],
        pos_embed [B, M, transformer_dim] (grid embedding at the query points) -> [B, M, S, transformer_dim].
        """
        num_frames = coords.shape[1]
        flows = (coords - coords[:, :1]).transpose(1, 2)  # [B, M, S, 2]
        flow_code = flow_embedding(flows, self.latent_dim // 2)
        scaled = flows / self.max_scale
        x = torch.cat(
            [flow_code, scaled, scaled, self.corr_mlp(corr.transpose(1, 2)), track_feats.transpose(1, 2)],
            dim=-1,
        )
        x = x + pos_embed.unsqueeze(2)
        frame_token = torch.cat(
            [self.query_ref_token[:, :1], self.query_ref_token[:, 1:2].expand(-1, num_frames - 1, -1)], dim=1
        )
        return x + frame_token.to(dtype=x.dtype)

    def _heads(self, track_feats: Tensor) -> tuple[Tensor, Tensor | None]:
        """track_feats [B, S, M, latent] -> vis [B, S, M], conf [B, S, M] or None (both sigmoid)."""
        vis = torch.sigmoid(self.vis_predictor(track_feats).squeeze(-1))
        if not self.predict_conf:
            return vis, None
        return vis, torch.sigmoid(self.conf_predictor(track_feats).squeeze(-1))

    def forward(
        self, query_points: Tensor, feature_maps: Tensor, iters: int
    ) -> tuple[list[Tensor], Tensor, Tensor | None]:
        """Track the query points through all frames.

        query_points [B, M, 2]: pixel (x, y) in frame 0 of the input image.
        feature_maps [B, S, C, H', W']: track features at 1/stride resolution, C == latent_dim.
        iters: number of refinement steps; each one appends one entry to the returned list
            (there is no entry for the initialisation).

        Returns (coord_preds, vis, conf):
            coord_preds: `iters` tensors [B, S, M, 2], input-image pixels (x, y); frame 0 is the query.
            vis [B, S, M]: visibility probability after the last step.
            conf [B, S, M]: confidence probability after the last step, or None if predict_conf is False.
        """
        b = query_points.shape[0]
        num_frames, height, width = feature_maps.shape[1], feature_maps.shape[-2], feature_maps.shape[-1]
        fmaps = self.fmap_norm(feature_maps.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)

        queries = query_points / float(self.stride)
        coords = queries.unsqueeze(1).repeat(1, num_frames, 1, 1)  # [B, S, M, 2]
        query_feats = sample_point_features(fmaps[:, 0], queries)  # [B, M, latent]
        track_feats = query_feats.unsqueeze(1).repeat(1, num_frames, 1, 1)  # [B, S, M, latent]

        pyramid = CorrelationPyramid(fmaps, self.corr_levels, self.corr_radius)
        grid_embed = sincos_grid_embedding(self.transformer_dim, height, width)
        grid_embed = grid_embed.to(device=query_points.device, dtype=query_points.dtype).expand(b, -1, -1, -1)
        # Frame-0 coordinates never move, so the positional code is the same every step.
        pos_embed = sample_point_features(grid_embed, queries)  # [B, M, transformer_dim]

        coord_preds = []
        for _ in range(iters):
            coords = coords.detach()
            corr = pyramid.sample(track_feats, coords)
            x = self._transformer_input(coords, track_feats, corr, pos_embed)
            delta = self.updateformer(x).transpose(1, 2)  # [B, S, M, latent + 2]
            track_feats = track_feats + self.ffeat_updater(self._norm_feats(delta[..., 2:]))
            coords = coords + delta[..., :2]
            coords = torch.cat([queries.unsqueeze(1), coords[:, 1:]], dim=1)
            coord_preds.append(coords * self.stride)

        vis, conf = self._heads(track_feats)
        return coord_preds, vis, conf

    def _norm_feats(self, feats: Tensor) -> Tensor:
        """GroupNorm(1) over the channel dim of [..., latent] features (per track, per frame)."""
        shape = feats.shape
        return self.ffeat_norm(feats.reshape(-1, shape[-1])).reshape(shape)
