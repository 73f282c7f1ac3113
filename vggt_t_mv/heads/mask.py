"""SpatialMaskHead and external-mask fusion: where in each frame things move."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggt_t_mv.config import ExternalMasks


class SpatialMaskHead(nn.Module):
    """Per-pixel dynamic logits from the shared trunk's tokens at the stream split.

    Each patch token goes through LayerNorm -> Linear -> GELU -> Linear to ``patch_size**2`` logits,
    which a pixel shuffle lays out as the patch's pixels. The per-patch mask that biases attention is
    the mean probability over the patch's pixels (:func:`pool_to_patches`), so the full-resolution mask
    and the bias always agree.
    """

    def __init__(self, *, dim_in: int, hidden: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.norm = nn.LayerNorm(dim_in)
        self.fc1 = nn.Linear(dim_in, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, patch_size * patch_size)
        nn.init.normal_(self.fc2.weight, std=0.02)
        nn.init.constant_(self.fc2.bias, -2.0)  # starts at p ~ 0.12: most of a scene is static

    def forward(self, tokens: Tensor, patch_start_idx: int, grid_hw: tuple[int, int]) -> Tensor:
        """
        Args:
            tokens: a layer output ``[B, F, P, dim_in]`` (F frames, P = patch_start_idx + h*w).
            patch_start_idx: index of the first patch token.
            grid_hw: patch grid (h, w).
        Returns:
            dynamic logits ``[B, F, h*patch, w*patch]``.
        """
        batch, frames = tokens.shape[:2]
        grid_h, grid_w = grid_hw
        x = self.fc2(self.act(self.fc1(self.norm(tokens[:, :, patch_start_idx:]))))  # [B, F, h*w, p*p]
        x = x.transpose(-1, -2).reshape(batch * frames, self.patch_size**2, grid_h, grid_w)
        return F.pixel_shuffle(x, self.patch_size).view(batch, frames, grid_h * self.patch_size, -1)


def pool_to_patches(mask: Tensor, patch_size: int) -> Tensor:
    """Mean of a per-pixel mask over each patch: ``[B, F, H, W]`` -> ``[B, F, (H/p)*(W/p)]`` (row-major)."""
    batch, frames, height, width = mask.shape
    pooled = F.avg_pool2d(mask.reshape(batch * frames, 1, height, width), patch_size)
    return pooled.view(batch, frames, -1)


class MaskFusion(nn.Module):
    """Fuse the predicted dynamic probability with an external mask.

    ``fused = p + alpha * (external - p)`` with ``alpha = clamp(gate, 0, 1)``; ``gate`` is a learnable
    scalar that starts at 0, so an untrained model ignores external masks (fused = predicted) and
    training decides how much to trust them. Mode ``override`` fixes alpha = 1 (fused = external).
    Both inputs are in [0, 1], so the result is too.
    """

    def __init__(self, mode: ExternalMasks) -> None:
        super().__init__()
        self.mode = mode
        if mode == "fuse":
            self.gate = nn.Parameter(torch.zeros(()))

    def alpha(self) -> Tensor | float:
        return self.gate.clamp(0.0, 1.0) if self.mode == "fuse" else 1.0

    def forward(self, predicted: Tensor, external: Tensor | None) -> Tensor:
        """``predicted``, ``external``: probabilities ``[B, F, H, W]`` -> fused ``[B, F, H, W]``."""
        if external is None or self.mode == "off":
            return predicted
        return predicted + self.alpha() * (external.to(predicted.dtype) - predicted)
