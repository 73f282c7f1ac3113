"""2D rotary position embedding (RoPE) as VGGT uses it.

The head dimension is split in two halves: the first half is rotated by the token's row (y), the
second by its column (x). Within a half of size D the "rotate-half" form is used: angles p * w_k with
w_k = freq ** (-2k / D) for k < D/2, duplicated to length D.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class RopeTable:
    """Per-token cosines and sines for a token sequence.

    ``cos`` and ``sin`` are ``[L, head_dim]``: the first ``head_dim/2`` columns hold the y-rotation,
    the last ``head_dim/2`` the x-rotation, each already duplicated for the rotate-half form.
    """

    cos: Tensor
    sin: Tensor

    def repeat(self, times: int) -> RopeTable:
        """The table of ``times`` consecutive frames that share the same positions: ``[times*L, head_dim]``."""
        if times == 1:
            return self
        return RopeTable(self.cos.repeat(times, 1), self.sin.repeat(times, 1))

    def to(self, dtype: torch.dtype) -> RopeTable:
        if self.cos.dtype == dtype:
            return self
        return RopeTable(self.cos.to(dtype), self.sin.to(dtype))


def frame_positions(grid_h: int, grid_w: int, num_special: int, device: torch.device | None = None) -> Tensor:
    """Integer (y, x) RoPE positions of one frame's tokens: ``[num_special + grid_h*grid_w, 2]``.

    Special tokens sit at (0, 0); patch (row, col) gets (row + 1, col + 1) when special tokens exist.
    """
    rows = torch.arange(grid_h, device=device)
    cols = torch.arange(grid_w, device=device)
    patch = torch.stack(torch.meshgrid(rows, cols, indexing="ij"), dim=-1).reshape(-1, 2)
    if num_special == 0:
        return patch
    special = torch.zeros(num_special, 2, dtype=patch.dtype, device=device)
    return torch.cat([special, patch + 1], dim=0)


def rope_table(positions: Tensor, head_dim: int, freq: float, dtype: torch.dtype = torch.float32) -> RopeTable:
    """Cos/sin table for integer positions ``[L, 2]`` (y, x); returns tables ``[L, head_dim]``."""
    half = head_dim // 2
    inv_freq = 1.0 / (freq ** (torch.arange(0, half, 2, device=positions.device).float() / half))
    tables = []
    for axis in range(2):
        angles = positions[:, axis].float()[:, None] * inv_freq[None, :]
        tables.append(torch.cat([angles, angles], dim=-1))
    angles = torch.cat(tables, dim=-1).to(dtype)
    return RopeTable(angles.cos(), angles.sin())


def _rotate_halves(x: Tensor) -> Tensor:
    """Rotate-half within each of the two (y, x) halves of the last dim: (a, b) -> (-b, a)."""
    quarter = x.shape[-1] // 4
    y1, y2, x1, x2 = x.split(quarter, dim=-1)
    return torch.cat([-y2, y1, -x2, x1], dim=-1)


def apply_rope(x: Tensor, table: RopeTable) -> Tensor:
    """Rotate queries or keys ``x [batch, heads, L, head_dim]`` by ``table`` (``[L, head_dim]``)."""
    table = table.to(x.dtype)
    return x * table.cos + _rotate_halves(x) * table.sin
