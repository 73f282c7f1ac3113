"""VGGTTMV: the time x view model (aggregator plus VGGT's heads)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vggt_t_mv.aggregator import Aggregator, AggregatorOutput, LayerSelection
from vggt_t_mv.config import ModelConfig, ValueActivation
from vggt_t_mv.heads.camera import CameraHead
from vggt_t_mv.heads.dpt import DPTHead
from vggt_t_mv.heads.track import TrackHead


@dataclass
class Predictions:
    """Model outputs. Leading dims ``L`` are ``[B, T, N]`` for 6-D input and ``[B, S]`` for 5-D input.

    Dict-style access (``preds["depth"]``, ``keys()``, ``items()``) is supported for VGGT tooling;
    fields that were not computed are None and left out of ``keys()``.
    """

    pose_enc: Tensor | None = None  # [*L, 9], last refinement iteration
    pose_enc_list: list[Tensor] | None = None  # camera_iterations x [*L, 9]
    depth: Tensor | None = None  # [*L, H, W, 1]
    depth_conf: Tensor | None = None  # [*L, H, W]
    world_points: Tensor | None = None  # [*L, H, W, 3]
    world_points_conf: Tensor | None = None  # [*L, H, W]
    # [*L, H, W] dynamic probability, fused with external masks. Two streams: the SpatialMaskHead's; PAGE-4D:
    # its "suppression" u (1 = moving, the camera rows look away), constant over each patch.
    dynamic_mask: Tensor | None = None
    dynamic_mask_logits: Tensor | None = None  # [*L, H, W] logit of the predicted mask, before fusion (training)
    track: Tensor | None = None  # [*L, M, 2] pixels, last iteration (when query points are given)
    track_list: list[Tensor] | None = None  # track_iters x [*L, M, 2]
    vis: Tensor | None = None  # [*L, M]
    conf: Tensor | None = None  # [*L, M] track confidence
    pose_tokens: Tensor | None = None  # [*L, P, token_dim] pose stream's last layer (on request)
    geo_tokens: Tensor | None = None  # [*L, P, token_dim] geo stream's last layer (on request)
    images: Tensor | None = None  # the input, [*L, 3, H, W]

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def keys(self) -> list[str]:
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def items(self) -> list[tuple[str, Any]]:
        return [(key, getattr(self, key)) for key in self.keys()]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.items())


def as_time_view_grid(images: Tensor, patch_size: int) -> tuple[Tensor, tuple[int, ...]]:
    """Validate input images and return them as ``[B, T, N, 3, H, W]`` plus the caller's leading dims.

    5-D ``[B, S, 3, H, W]`` becomes ``T = 1, N = S`` (VGGT compatibility).
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() not in (5, 6):
        raise ValueError(
            f"images must be [B, T, N, 3, H, W] or [B, S, 3, H, W]; got {images.dim()}-D shape {tuple(images.shape)}"
        )
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1], got {images.dtype}; divide uint8 by 255")
    leading = tuple(images.shape[:-3])
    channels, height, width = images.shape[-3:]
    if channels != 3:
        raise ValueError(f"images must have 3 (RGB) channels at dim -3, got {channels} in {tuple(images.shape)}")
    if height == 0 or width == 0 or height % patch_size or width % patch_size:
        raise ValueError(
            f"image height and width must be positive multiples of the patch size {patch_size}, got {height}x{width}; "
            "resize or crop the frames (e.g. width 518, height a multiple of 14)"
        )
    if any(size == 0 for size in leading):
        names = ("B", "T", "N") if images.dim() == 6 else ("B", "S")
        empty = [name for name, size in zip(names, leading, strict=True) if size == 0]
        raise ValueError(f"images have no frames: {', '.join(empty)} is 0 in shape {tuple(images.shape)}")
    if images.dim() == 5:
        images = images.unsqueeze(1)
    return images, leading


class VGGTTMV(nn.Module):
    """VGGT extended to a time x view grid of frames.

    Submodules (state-dict prefixes): ``aggregator`` (``patch_embed``, ``time_blocks``, ``view_blocks``,
    tokens), ``camera_head``, ``depth_head``, ``point_head``, ``track_head``.
    """

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig.vggt_1b()
        self.aggregator = Aggregator(cfg)
        dim_in = cfg.token_dim
        self.camera_head = (
            CameraHead(
                dim_in=dim_in,
                trunk_depth=cfg.camera_trunk_depth,
                num_heads=cfg.camera_num_heads,
                mlp_ratio=cfg.camera_mlp_ratio,
                init_values=cfg.camera_init_values,
                trans_act=cfg.trans_act,
                quat_act=cfg.quat_act,
                fl_act=cfg.fl_act,
            )
            if cfg.camera_head
            else None
        )
        self.depth_head = self._dense_head(output_dim=2, activation=cfg.depth_activation) if cfg.depth_head else None
        self.point_head = self._dense_head(output_dim=4, activation=cfg.point_activation) if cfg.point_head else None
        self.track_head = (
            TrackHead(
                dim_in=dim_in,
                patch_size=cfg.patch_size,
                features=cfg.track_features,
                out_channels=cfg.dpt_out_channels,
                intermediate_layers=cfg.dpt_intermediate_layers,
                iters=cfg.track_iters,
                stride=cfg.track_stride,
                corr_levels=cfg.track_corr_levels,
                corr_radius=cfg.track_corr_radius,
                hidden_size=cfg.track_hidden_size,
                predict_conf=cfg.track_predict_conf,
                tracker_depth=cfg.tracker_depth,
                tracker_num_heads=cfg.tracker_num_heads,
                num_virtual_tracks=cfg.tracker_num_virtual_tracks,
                max_scale=cfg.tracker_max_scale,
            )
            if cfg.track_head
            else None
        )

    def _dense_head(self, output_dim: int, activation: ValueActivation) -> DPTHead:
        """A DPT head over the aggregator's layers: ``output_dim - 1`` value channels plus a confidence."""
        cfg = self.cfg
        return DPTHead(
            dim_in=cfg.token_dim,
            patch_size=cfg.patch_size,
            features=cfg.dpt_features,
            out_channels=cfg.dpt_out_channels,
            intermediate_layers=cfg.dpt_intermediate_layers,
            output_dim=output_dim,
            activation=activation,
            conf_activation=cfg.conf_activation,
            pos_embed=cfg.dpt_pos_embed,
        )

    @classmethod
    def from_pretrained(cls, folder: str | Path, map_location: str | torch.device = "cpu") -> VGGTTMV:
        """Rebuild a model written by :func:`vggt_t_mv.save_pretrained` (config.json + model.safetensors)."""
        from vggt_t_mv.weights import load_pretrained, read_saved_config

        model = cls(ModelConfig.from_dict(read_saved_config(folder)))
        load_pretrained(model, folder, strict=True, checkpoint_layout="ours")
        return model.to(map_location)

    def save_pretrained(self, folder: str | Path, input_hw: tuple[int, int] | None = None) -> Path:
        """Write ``folder/model.safetensors`` and ``folder/config.json`` (see :func:`vggt_t_mv.save_pretrained`)."""
        from vggt_t_mv.weights import save_pretrained

        return save_pretrained(self, folder, input_hw)

    def forward(
        self,
        images: Tensor,
        masks: Tensor | None = None,
        query_points: Tensor | None = None,
        return_stream_tokens: bool = False,
    ) -> Predictions:
        """
        Args:
            images: ``[B, T, N, 3, H, W]`` or ``[B, S, 3, H, W]`` (run as ``T = 1, N = S``), RGB in [0, 1],
                H and W multiples of the patch size. Frame (t=0, n=0) is the reference: all outputs are
                in its camera frame.
            masks: optional external dynamic masks in [0, 1], ``[B, T, N, H, W]`` (or ``[B, S, H, W]`` with
                5-D images), e.g. from a motion segmenter; fused with the predicted mask as
                ``cfg.external_masks`` says (models with a mask head: two streams or PAGE-4D, where
                ``override`` replaces the suppression u that drives the camera-row bias).
            query_points: optional ``[B, M, 2]`` (or ``[M, 2]``) pixel (x, y) in the reference frame to track.
            return_stream_tokens: also return both streams' final-layer tokens (``pose_tokens``, ``geo_tokens``).
        Returns:
            :class:`Predictions` with leading dims of the input.
        """
        grid, leading = as_time_view_grid(images, self.cfg.patch_size)
        masks = self._check_masks(masks, grid, leading)
        height, width = grid.shape[-2:]
        layers: LayerSelection = "heads"
        if return_stream_tokens:
            layers = set(self.cfg.layers_read_by_heads()) | {self.cfg.depth - 1}
        aggregated = self.aggregator(grid, layers=layers, external_masks=masks)
        preds = self.run_heads(aggregated, (height, width), query_points)
        if return_stream_tokens:
            preds.pose_tokens = aggregated.pose_layers[-1]
            preds.geo_tokens = aggregated.geo_layers[-1]
        preds.images = images
        return _restore_leading_dims(preds, leading)

    def _check_masks(self, masks: Tensor | None, grid: Tensor, leading: tuple[int, ...]) -> Tensor | None:
        """Validate external masks; returns them as ``[B, T, N, H, W]`` float, or None when unused."""
        if masks is None:
            return None
        expected = (*leading, *grid.shape[-2:])
        if not isinstance(masks, Tensor) or tuple(masks.shape) != expected:
            got = tuple(masks.shape) if isinstance(masks, Tensor) else type(masks).__name__
            raise ValueError(f"masks must have shape {expected} (the images' leading dims and H, W), got {got}")
        if not self.cfg.has_dynamic_mask:
            raise ValueError(
                "external masks need a model with a mask head (a two-stream or PAGE-4D model); call with masks=None"
            )
        masks = masks.to(grid.dtype) if masks.dtype == torch.bool else masks
        if not masks.is_floating_point():
            raise ValueError(f"masks must be float in [0, 1] or bool, got {masks.dtype}")
        low, high = masks.min().item(), masks.max().item()
        if low < 0 or high > 1 or math.isnan(low) or math.isnan(high):
            raise ValueError(
                f"masks must lie in [0, 1], got values in [{low:.3g}, {high:.3g}]; scale 0/255 masks by 1/255"
            )
        if self.cfg.external_masks == "off":
            warnings.warn("external masks are ignored: this model's config has external_masks='off'", stacklevel=3)
            return None
        return masks.reshape(grid.shape[:3] + grid.shape[-2:])

    def run_heads(
        self, aggregated: AggregatorOutput, image_hw: tuple[int, int], query_points: Tensor | None = None
    ) -> Predictions:
        """Apply the enabled heads to aggregator output; results have leading dims ``[B, S]``, S = T*N.

        The camera head reads the pose stream, the depth / point / track heads the geo stream.
        """
        pose_layers, geo_layers = aggregated.pose_layers, aggregated.geo_layers
        start = aggregated.patch_start_idx
        preds = Predictions(dynamic_mask=aggregated.dynamic_mask, dynamic_mask_logits=aggregated.dynamic_logits)
        device_type = next(t for t in geo_layers + pose_layers if t is not None).device.type
        chunk = self.cfg.frames_chunk_size
        # As upstream: the geometry heads run in float32 even under the caller's autocast.
        with torch.autocast(device_type=device_type, enabled=False):
            if self.camera_head is not None:
                last = pose_layers[-1]
                if last is None:
                    raise ValueError("the camera head reads the last layer: aggregate with layers='heads' or 'all'")
                camera_tokens = last[:, :, 0].float()
                preds.pose_enc_list = self.camera_head(camera_tokens, self.cfg.camera_iterations)
                preds.pose_enc = preds.pose_enc_list[-1]
            if self.depth_head is not None:
                preds.depth, preds.depth_conf = self.depth_head(_float(geo_layers), image_hw, start, chunk)
            if self.point_head is not None:
                preds.world_points, preds.world_points_conf = self.point_head(
                    _float(geo_layers), image_hw, start, chunk
                )
        layers = geo_layers
        if self.track_head is not None and query_points is not None:
            if query_points.dim() == 2:
                query_points = query_points.unsqueeze(0)
            track_list, preds.vis, preds.conf = self.track_head(layers, image_hw, start, query_points, chunk)
            preds.track_list, preds.track = track_list, track_list[-1]
        return preds


def _float(layers: list[Tensor | None]) -> list[Tensor | None]:
    return [None if t is None else t.float() for t in layers]


def _restore_leading_dims(preds: Predictions, leading: tuple[int, ...]) -> Predictions:
    """Reshape every ``[B, S, ...]`` output to ``[*leading, ...]`` (``leading`` is (B, S) or (B, T, N))."""
    if len(leading) == 2:
        return preds

    def reshape(t: Tensor) -> Tensor:
        return t.reshape(*leading, *t.shape[2:])

    for field in fields(preds):
        value = getattr(preds, field.name)
        if field.name == "images" or value is None:
            continue
        if isinstance(value, list):
            setattr(preds, field.name, [reshape(t) for t in value])
        else:
            setattr(preds, field.name, reshape(value))
    return preds
