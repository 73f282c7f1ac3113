"""DINOv2 vision transformer with register tokens, used as VGGT's patch embedding."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggt_t_mv.layers.block import Block


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` convolution: ``[B, 3, H, W]`` -> ``[B, (H/p)*(W/p), dim]``."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoVisionTransformer(nn.Module):
    """DINOv2 ViT with registers; :meth:`forward` returns the normalised patch tokens.

    Token order inside: class token, register tokens, patch tokens (row-major). The position
    embedding covers class + patch tokens of an ``img_size`` square image and is resized for other
    grids; registers get no position embedding.
    """

    def __init__(
        self,
        *,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        num_register_tokens: int,
        init_values: float,
        interpolate_antialias: bool,
        interpolate_offset: float,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.interpolate_antialias = interpolate_antialias
        self.interpolate_offset = interpolate_offset
        grid = img_size // patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))
        self.register_tokens = nn.Parameter(torch.zeros(1, num_register_tokens, embed_dim))
        # Present in DINOv2 checkpoints (masked-image pretraining) but never used at inference.
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim), requires_grad=False)
        self.patch_embed = PatchEmbed(patch_size, 3, embed_dim)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, init_values=init_values, norm_eps=1e-6) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        nn.init.normal_(self.register_tokens, std=1e-6)

    def interpolate_pos_encoding(self, grid_h: int, grid_w: int, dtype: torch.dtype) -> Tensor:
        """Position embedding for a ``grid_h x grid_w`` patch grid: ``[1, 1 + grid_h*grid_w, dim]``.

        Bicubic resize of the square training grid (computed in float32, optional antialias), the
        class row kept as is. The training grid itself is returned unchanged.
        """
        stored = self.pos_embed.shape[1] - 1
        side = int(math.sqrt(stored))
        if grid_h == side and grid_w == side:
            return self.pos_embed.to(dtype)
        pos_embed = self.pos_embed.float()
        class_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
        dim = pos_embed.shape[-1]
        patch_pos = patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2)
        if self.interpolate_offset:
            scale = ((grid_h + self.interpolate_offset) / side, (grid_w + self.interpolate_offset) / side)
            resized = F.interpolate(patch_pos, scale_factor=scale, mode="bicubic", antialias=self.interpolate_antialias)
        else:
            resized = F.interpolate(
                patch_pos, size=(grid_h, grid_w), mode="bicubic", antialias=self.interpolate_antialias
            )
        if resized.shape[-2:] != (grid_h, grid_w):
            raise RuntimeError(
                f"position embedding resized to {tuple(resized.shape[-2:])}, expected {(grid_h, grid_w)}"
            )
        resized = resized.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, dim)
        return torch.cat([class_pos, resized], dim=1).to(dtype)

    def forward(self, images: Tensor) -> Tensor:
        """``images [B, 3, H, W]`` (ImageNet-normalised) -> patch tokens ``[B, (H/p)*(W/p), dim]``."""
        batch, _, height, width = images.shape
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(batch, -1, -1), x], dim=1)
        x = x + self.interpolate_pos_encoding(height // self.patch_size, width // self.patch_size, x.dtype)
        x = torch.cat([x[:, :1], self.register_tokens.expand(batch, -1, -1), x[:, 1:]], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return x[:, 1 + self.num_register_tokens :]
