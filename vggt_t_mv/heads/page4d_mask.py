"""PAGE-4D's spatial mask heads (``reference/PAGE4D.md``): per-patch suppression ``u`` of moving content and
the per-key logit value ``c`` that biases the camera and register query rows of later View-SA layers.

Two trained layouts exist, both under ``aggregator.spatial_mask_head.``:

* ``fin10`` (``vggt_t_mask_mlp_fin10``, ``checkpoint_150.pt``): ``head0`` = depthwise 3x3 -> GELU ->
  depthwise 3x3 -> GELU -> 1x1 to one channel, plus scalars ``alpha_logit`` and ``tau_logit``;
  ``u = clamp(alpha * sigmoid(-logit / tau), 0, 1)``, ``c = -0.5 u``.
* ``official`` (kaichen-z/PAGE4D): per-frame, per-channel normalised input; ``head0`` = depthwise 3x3 ->
  GELU -> 1x1 to ``hidden`` -> GELU -> 1x1 to one channel; ``m = sigmoid(logit + channel mean of the
  normalised input) - 0.5``, ``c = m``. Its suppression is ``u = 0.5 - m`` in (0, 1), so that in both
  layouts 1 means "moving: camera rows look away".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggt_t_mv.config import PageMaskConfig


@dataclass
class PageMask:
    """One forward of a PAGE-4D mask head over F frames of an ``h x w`` patch grid.

    ``logits``: ``head0``'s output ``[B, F, h, w]``; ``suppression``: ``u`` per patch ``[B, F, h*w]`` in [0, 1]
    (row-major patches); ``key_bias``: ``c`` per patch ``[B, F, h*w]``; ``row_scale``: ``r`` of the camera and
    register query rows (0 on patch rows).
    """

    logits: Tensor
    suppression: Tensor
    key_bias: Tensor
    row_scale: float

    def token_key_bias(self, patch_start_idx: int) -> Tensor:
        """``c_j`` per token ``[B, F, P]``: 0 on the camera and register tokens."""
        return F.pad(self.key_bias, (patch_start_idx, 0))

    def token_row_factor(self, patch_start_idx: int) -> Tensor:
        """``r_i`` per token ``[B, F, P]``: ``row_scale`` on the camera and register tokens, 0 on patches."""
        batch, frames, patches = self.key_bias.shape
        factor = self.key_bias.new_zeros(batch, frames, patch_start_idx + patches)
        factor[..., :patch_start_idx] = self.row_scale
        return factor


def patch_maps(tokens: Tensor, patch_start_idx: int, grid_hw: tuple[int, int]) -> Tensor:
    """Tokens ``[B, F, P, C]`` -> the patch tokens as per-frame maps ``[B*F, C, h, w]`` (row-major patches)."""
    batch, frames, _, channels = tokens.shape
    patches = tokens[:, :, patch_start_idx:]
    return patches.reshape(batch * frames, *grid_hw, channels).permute(0, 3, 1, 2)


class Fin10MaskHead(nn.Module):
    """The fin10 head (``SpatialMaskHead_IMP`` of ``vggt_t_mask_mlp_fin10``), key names as upstream."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.head0 = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim),
            nn.GELU(),
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim),
            nn.GELU(),
            nn.Conv2d(dim, 1, 1),
        )
        self.alpha_logit = nn.Parameter(torch.zeros(()))  # log 1.0
        self.tau_logit = nn.Parameter(torch.tensor(2.0).log())

    def key_bias_from_suppression(self, suppression: Tensor) -> Tensor:
        """``c = -0.5 u``: camera rows look away from suppressed (moving) keys."""
        return -0.5 * suppression

    def forward(self, tokens: Tensor, patch_start_idx: int, grid_hw: tuple[int, int]) -> PageMask:
        """Tokens ``[B, F, P, C]`` leaving the mask layer's time block -> :class:`PageMask` (row scale 1)."""
        batch, frames = tokens.shape[:2]
        logits = self.head0(patch_maps(tokens, patch_start_idx, grid_hw))  # [B*F, 1, h, w]
        tau = (F.softplus(self.tau_logit) + 1e-6).clamp_min(1e-3)
        alpha = F.softplus(self.alpha_logit) + 1e-6
        per_patch = logits.reshape(batch, frames, -1)
        suppression = (alpha * torch.sigmoid(-per_patch / tau)).clamp(0.0, 1.0)
        return PageMask(
            logits=logits.view(batch, frames, *grid_hw),
            suppression=suppression,
            key_bias=self.key_bias_from_suppression(suppression),
            row_scale=1.0,
        )


class OfficialMaskHead(nn.Module):
    """The official PAGE-4D head (``SpatialMaskHead_IMP`` of kaichen-z/PAGE4D ``model/page``)."""

    def __init__(self, dim: int, hidden: int, row_scale: float) -> None:
        super().__init__()
        self.head0 = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim),
            nn.GELU(),
            nn.Conv2d(dim, hidden, 1),
            nn.GELU(),
            nn.Conv2d(hidden, 1, 1),
        )
        self.row_scale = float(row_scale)

    def key_bias_from_suppression(self, suppression: Tensor) -> Tensor:
        """``c = m = 0.5 - u``."""
        return 0.5 - suppression

    def forward(self, tokens: Tensor, patch_start_idx: int, grid_hw: tuple[int, int]) -> PageMask:
        """Tokens ``[B, F, P, C]`` leaving the mask layer's time block -> :class:`PageMask` (row scale alpha)."""
        batch, frames = tokens.shape[:2]
        maps = patch_maps(tokens, patch_start_idx, grid_hw)  # [B*F, C, h, w]
        mean = maps.mean(dim=(2, 3), keepdim=True)
        std = maps.std(dim=(2, 3), keepdim=True).clamp_min(1e-6)
        normalised = (maps - mean) / std
        logits = self.head0(normalised)  # [B*F, 1, h, w]
        centred = torch.sigmoid(logits + normalised.mean(dim=1, keepdim=True)) - 0.5
        key_bias = centred.reshape(batch, frames, -1)
        return PageMask(
            logits=logits.view(batch, frames, *grid_hw),
            suppression=0.5 - key_bias,
            key_bias=key_bias,
            row_scale=self.row_scale,
        )


PageMaskHead = Fin10MaskHead | OfficialMaskHead


def build_page_mask_head(page: PageMaskConfig, dim: int) -> PageMaskHead:
    """The mask head of ``page.head`` for tokens of width ``dim``."""
    if page.head == "fin10":
        return Fin10MaskHead(dim)
    return OfficialMaskHead(dim, page.hidden, page.row_scale)


def upsample_patches(per_patch: Tensor, grid_hw: tuple[int, int], patch_size: int) -> Tensor:
    """Per-patch values ``[B, F, h*w]`` -> per-pixel ``[B, F, h*p, w*p]``, constant over each patch, so that
    :func:`vggt_t_mv.heads.mask.pool_to_patches` gives the per-patch values back."""
    batch, frames, _ = per_patch.shape
    grid = per_patch.reshape(batch, frames, *grid_hw)
    return grid.repeat_interleave(patch_size, dim=2).repeat_interleave(patch_size, dim=3)
