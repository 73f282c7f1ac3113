"""Building blocks of the VGGT track head's iterative tracker.

Sampling helpers, sin/cos embeddings, the correlation pyramid and the update transformer
(time attention per track, space attention routed through learned virtual tracks).
Parameter names follow the upstream checkpoint layout.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GridPadding = Literal["zeros", "border", "reflection"]  # torch grid_sample's padding modes

# ---------------------------------------------------------------------------
# sampling


def sample_grid_pixels(maps: Tensor, points: Tensor, padding_mode: GridPadding = "border") -> Tensor:
    """Bilinear lookup with pixel-unit (x, y) coordinates, pixel centres at integers.

    maps [N, C, H, W]; points [N, Ho, Wo, 2] as (x, y) in [0, W-1] x [0, H-1].
    Returns [N, C, Ho, Wo].
    """
    height, width = maps.shape[-2:]
    points = points.to(device=maps.device, dtype=maps.dtype)
    # align_corners=True maps pixel index i to -1 + 2 i / (size - 1)
    scale = torch.tensor([2.0 / max(width - 1, 1), 2.0 / max(height - 1, 1)], device=maps.device, dtype=maps.dtype)
    grid = points * scale - 1.0
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def sample_point_features(maps: Tensor, points: Tensor) -> Tensor:
    """Features of a [B, C, H, W] map at points [B, M, 2] (pixel x, y), border padded -> [B, M, C]."""
    sampled = sample_grid_pixels(maps, points.unsqueeze(2))  # [B, C, M, 1]
    return sampled.squeeze(-1).transpose(1, 2)


# ---------------------------------------------------------------------------
# embeddings


def _sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """[L] positions -> [L, dim] = [sin(p w_k), cos(p w_k)], w_k = 10000^(-k / (dim/2)), in float64."""
    half = dim // 2
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / half)
    angles = positions.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_grid_embedding(dim: int, height: int, width: int) -> Tensor:
    """Fixed 2D sin/cos embedding of an integer pixel grid -> [1, dim, height, width] float32.

    The first dim/2 channels encode the column (x), the last dim/2 the row (y).
    """
    if dim % 4 != 0:
        raise ValueError(f"grid embedding needs dim divisible by 4, got {dim}")
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    emb = torch.cat([_sincos_1d(dim // 2, xs.reshape(-1)), _sincos_1d(dim // 2, ys.reshape(-1))], dim=1)
    return emb.to(torch.float32).reshape(height, width, dim).permute(2, 0, 1).unsqueeze(0)


def flow_embedding(flows: Tensor, dim: int) -> Tensor:
    """Sin/cos code of 2D offsets: [..., 2] -> [..., 2 * dim].

    Per axis, channel 2k is sin(v f_k) and 2k+1 is cos(v f_k) with the linear frequencies
    f_k = 2k * 1000 / dim; x channels come first, then y.
    """
    freqs = torch.arange(0, dim, 2, device=flows.device, dtype=flows.dtype) * (1000.0 / dim)
    parts = []
    for axis in range(2):
        angles = flows[..., axis : axis + 1] * freqs
        parts.append(torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2))
    return torch.cat(parts, dim=-1)


# ---------------------------------------------------------------------------
# correlation pyramid


class CorrelationPyramid:
    """Dot-product correlation of track features against an average-pooled feature pyramid.

    Not an nn.Module: it holds no parameters, only the pyramid for one forward pass.
    """

    def __init__(self, fmaps: Tensor, num_levels: int, radius: int) -> None:
        """fmaps [B, S, C, H, W]; level l is 2^l times coarser (avg-pool 2x2, floor)."""
        b, s, c, h, w = fmaps.shape
        self.radius = radius
        self.levels = [fmaps]
        flat = fmaps.reshape(b * s, c, h, w)
        for _ in range(num_levels - 1):
            flat = F.avg_pool2d(flat, kernel_size=2, stride=2)
            self.levels.append(flat.reshape(b, s, c, *flat.shape[-2:]))
        offsets = torch.linspace(-radius, radius, 2 * radius + 1, device=fmaps.device, dtype=fmaps.dtype)
        # Window layout [i, j] -> (x + offsets[i], y + offsets[j]): the slow window axis walks x.
        # Upstream flattens the window in this order, so corr_mlp's input columns depend on it.
        di, dj = torch.meshgrid(offsets, offsets, indexing="ij")
        self.window = torch.stack([di, dj], dim=-1)

    def sample(self, targets: Tensor, coords: Tensor) -> Tensor:
        """targets [B, S, M, C], coords [B, S, M, 2] (level-0 pixels) -> [B, S, M, levels * (2r+1)^2]."""
        b, s, m, c = targets.shape
        size = 2 * self.radius + 1
        window = self.window.to(device=coords.device, dtype=coords.dtype).view(1, size, size, 2)
        out = []
        for level, fmaps in enumerate(self.levels):
            h, w = fmaps.shape[-2:]
            corr = torch.matmul(targets, fmaps.reshape(b, s, c, h * w)) / math.sqrt(c)
            centres = coords.reshape(b * s * m, 1, 1, 2) / (2**level)
            sampled = sample_grid_pixels(corr.reshape(b * s * m, 1, h, w), centres + window, "zeros")
            out.append(sampled.reshape(b, s, m, size * size))
        return torch.cat(out, dim=-1)


# ---------------------------------------------------------------------------
# transformer blocks


class Mlp(nn.Module):
    """Linear -> GELU (erf) -> Linear."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)

    def forward(self, x: Tensor) -> Tensor:
        """x [..., in] -> [..., out]."""
        return self.fc2(self.act(self.fc1(x)))


class SelfAttnBlock(nn.Module):
    """Pre-norm self-attention block whose residual starts from the *normalised* input (upstream quirk)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        """x [N, L, D] -> [N, L, D]."""
        x = self.norm1(x)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class CrossAttnBlock(nn.Module):
    """Like SelfAttnBlock, but queries come from x and keys/values from a normalised context."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """x [N, Lq, D], context [N, Lk, D] -> [N, Lq, D]."""
        x = self.norm1(x)
        context = self.norm_context(context)
        x = x + self.cross_attn(x, context, context, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class UpdateFormer(nn.Module):
    """Transformer predicting per-track, per-frame coordinate and feature updates.

    Each layer attends over time within every track (virtual tracks included); on space
    layers the real tracks exchange information only through `num_virtual_tracks` learned
    tokens: virtual <- points, virtual <-> virtual, points <- virtual.
    """

    def __init__(
        self,
        *,
        input_dim: int,
        hidden_size: int,
        output_dim: int,
        time_depth: int,
        space_depth: int,
        num_heads: int,
        num_virtual_tracks: int,
        mlp_ratio: float,
    ) -> None:
        super().__init__()
        if space_depth < 1 or space_depth > time_depth:
            raise ValueError("need 1 <= space_depth <= time_depth")
        self.num_virtual_tracks = num_virtual_tracks
        self.space_every = time_depth // space_depth
        self.input_norm = nn.LayerNorm(input_dim)
        self.input_transform = nn.Linear(input_dim, hidden_size)
        self.output_norm = nn.LayerNorm(hidden_size)
        self.flow_head = nn.Linear(hidden_size, output_dim)
        # "virual" (sic) is the upstream checkpoint name.
        self.virual_tracks = nn.Parameter(torch.randn(1, num_virtual_tracks, 1, hidden_size))

        def self_blocks(n: int) -> nn.ModuleList:
            return nn.ModuleList(SelfAttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(n))

        def cross_blocks(n: int) -> nn.ModuleList:
            return nn.ModuleList(CrossAttnBlock(hidden_size, num_heads, mlp_ratio) for _ in range(n))

        self.time_blocks = self_blocks(time_depth)
        self.space_virtual_blocks = self_blocks(space_depth)
        self.space_point2virtual_blocks = cross_blocks(space_depth)
        self.space_virtual2point_blocks = cross_blocks(space_depth)

    def _space_step(self, tokens: Tensor, j: int) -> Tensor:
        """tokens [B, M + V, T, D] -> same shape, after one point/virtual exchange."""
        b, n, t, d = tokens.shape
        space = tokens.permute(0, 2, 1, 3).reshape(b * t, n, d)
        points, virtual = space[:, : n - self.num_virtual_tracks], space[:, n - self.num_virtual_tracks :]
        virtual = self.space_virtual2point_blocks[j](virtual, points)
        virtual = self.space_virtual_blocks[j](virtual)
        points = self.space_point2virtual_blocks[j](points, virtual)
        space = torch.cat([points, virtual], dim=1)
        return space.reshape(b, t, n, d).permute(0, 2, 1, 3)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, M, T, input_dim] -> [B, M, T, output_dim]."""
        init_tokens = self.input_transform(self.input_norm(x))
        b, m, t, d = init_tokens.shape
        tokens = torch.cat([init_tokens, self.virual_tracks.repeat(b, 1, t, 1)], dim=1)
        n = tokens.shape[1]
        j = 0
        for i, block in enumerate(self.time_blocks):
            tokens = block(tokens.reshape(b * n, t, d)).reshape(b, n, t, d)
            if i % self.space_every == 0 and j < len(self.space_virtual_blocks):
                tokens = self._space_step(tokens, j)
                j += 1
        tokens = tokens[:, :m] + init_tokens
        return self.flow_head(self.output_norm(tokens))
