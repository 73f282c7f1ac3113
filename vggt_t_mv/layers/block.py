"""Transformer building blocks: attention with optional qk-norm and 2D RoPE, MLP, layer scale, block."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vggt_t_mv.layers.rope import RopeTable, apply_rope
from vggt_t_mv.layers.sparse import FramePattern, pattern_attention


@dataclass
class RowBias:
    """An extra additive logit bias for a few query rows: rows ``rows`` ``[R]`` (indices into the sequence)
    get ``key_bias [batch, L]`` added to their logits for every head, on top of any bias all rows get.

    This is PAGE-4D's rank-1 bias ``r_i * c_j`` (``r`` nonzero only on the camera and register rows) without
    an ``L x L`` matrix: the other rows run plain attention.
    """

    rows: Tensor
    key_bias: Tensor


def _sdpa_key_bias(key_bias: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """A per-key bias ``[batch, L]`` as SDPA's ``[batch, 1, 1, L]`` float mask (broadcast over heads and rows)."""
    return None if key_bias is None else key_bias[:, None, None, :].to(dtype)


class Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention``.

    ``qk_norm`` adds a LayerNorm (eps 1e-5) over the head dim of queries and keys, applied before RoPE.
    """

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, proj_bias: bool = True, qk_norm: bool = False
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.q_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=proj_bias)

    def _qkv(self, x: Tensor, rope: RopeTable | None) -> tuple[Tensor, Tensor, Tensor]:
        batch, length, _ = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, rope), apply_rope(k, rope)
        return q, k, v

    def forward(
        self,
        x: Tensor,
        rope: RopeTable | None = None,
        key_bias: Tensor | None = None,
        row_bias: RowBias | None = None,
        pattern: FramePattern | None = None,
    ) -> Tensor:
        """
        Args:
            x: tokens ``[batch, L, dim]``.
            rope: cos/sin table ``[L, head_dim]`` or None for no RoPE.
            key_bias: optional additive logit bias per key token ``[batch, L]``, the same for every
                head and query (passed to SDPA as a ``[batch, 1, 1, L]`` float mask, never as ``[L, L]``).
            row_bias: optional extra key bias for a few query rows (:class:`RowBias`): those rows are
                recomputed by a second SDPA call over their ``R`` queries only, with the summed ``[batch, 1, 1, L]``
                bias, and written over the first call's rows; the first call (all rows) keeps its kernel.
            pattern: optional :class:`~vggt_t_mv.layers.sparse.FramePattern` (pooled keys, a window of frames):
                the queries see fewer keys (:func:`~vggt_t_mv.layers.sparse.pattern_attention`); None: every key.
        Returns:
            ``[batch, L, dim]``.
        """
        batch, length, dim = x.shape
        q, k, v = self._qkv(x, rope)
        if pattern is not None:
            rows = None if row_bias is None else row_bias.rows
            row_keys = None if row_bias is None else row_bias.key_bias
            out = pattern_attention(q, k, v, pattern, key_bias, rows, row_keys)
            return self.proj(out.transpose(1, 2).reshape(batch, length, dim))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=_sdpa_key_bias(key_bias, q.dtype))
        if row_bias is not None:
            extra = row_bias.key_bias if key_bias is None else key_bias + row_bias.key_bias
            rows = row_bias.rows
            special = F.scaled_dot_product_attention(
                q.index_select(2, rows), k, v, attn_mask=_sdpa_key_bias(extra, q.dtype)
            )
            out = out.index_copy(2, rows, special)
        return self.proj(out.transpose(1, 2).reshape(batch, length, dim))

    def attention_probs(
        self,
        x: Tensor,
        rope: RopeTable | None = None,
        key_bias: Tensor | None = None,
        row_bias: RowBias | None = None,
    ) -> Tensor:
        """The attention weights ``[batch, heads, L, L]`` that :meth:`forward` uses (for analysis and tests;
        this one does build the ``L x L`` matrix)."""
        q, k, _ = self._qkv(x, rope)
        logits = (q @ k.transpose(-1, -2)) * self.head_dim**-0.5
        if key_bias is not None:
            logits = logits + key_bias[:, None, None, :]
        if row_bias is not None:
            rows = torch.zeros(logits.shape[-2], dtype=logits.dtype, device=logits.device)
            rows[row_bias.rows] = 1.0
            logits = logits + rows[None, None, :, None] * row_bias.key_bias[:, None, None, :]
        return logits.softmax(dim=-1)


class Mlp(nn.Module):
    """Linear -> GELU (exact) -> Linear."""

    def __init__(
        self, in_features: int, hidden_features: int, out_features: int | None = None, bias: bool = True
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel learnable scale ``gamma`` (initialised to ``init_values``)."""

    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: ``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        ffn_bias: bool = True,
        init_values: float | None = None,
        qk_norm: bool = False,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias, qk_norm=qk_norm)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), bias=ffn_bias)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(
        self,
        x: Tensor,
        rope: RopeTable | None = None,
        key_bias: Tensor | None = None,
        row_bias: RowBias | None = None,
        pattern: FramePattern | None = None,
    ) -> Tensor:
        """``x [batch, L, dim]`` -> same shape; ``rope``, ``key_bias``, ``row_bias``, ``pattern`` as in
        :class:`Attention`."""
        attended = self.attn(self.norm1(x), rope=rope, key_bias=key_bias, row_bias=row_bias, pattern=pattern)
        x = x + self.ls1(attended)
        return x + self.ls2(self.mlp(self.norm2(x)))
