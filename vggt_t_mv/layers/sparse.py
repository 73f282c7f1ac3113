"""Attention over a sequence of frames with fewer keys: keys/values pooled over s x s patches, and queries that see
only the frames within +-k of their own (the efficiency knobs of :class:`~vggt_t_mv.ModelConfig`).

A sequence here is ``frames`` frames of ``per_frame`` tokens each, frame-major (a Time-SA sequence is one camera's
T frames, a View-SA sequence one timestep's N frames); each frame is ``special`` camera/register tokens then its
``h*w`` patch tokens. Nothing here builds an ``L x L`` matrix: the windowed path runs one dense attention call per
group of query frames over the keys of their window (no mask but the per-key bias), so a fused kernel (flash on
GPU when there is no bias) runs every block.

RoPE and pooling: keys are pooled *after* the RoPE rotation. The logit of a query against a pooled key is then
exactly the mean of its logits against the group's patches, each at its own position (the logit is linear in the
key), so no group position has to be invented. A pooled key also gets ``+log(count)`` on its logit, so a group of
``count`` patches keeps (to first order) the attention mass of its patches relative to the special tokens, which
are never pooled. The per-key biases (dynamic bias, PAGE-4D's row bias) are averaged over a group like the logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class KeyPooling:
    """Average pooling of each frame's patch keys/values over ``size x size`` patches (the last row/column of groups
    may be smaller); the ``special`` tokens in front of the patches are kept as they are.

    ``weights [G, h*w]``: row g holds ``1/count_g`` on the patches of group g (row-major groups over the patch grid);
    ``log_counts [G]``: ``log(count_g)``, added to the pooled keys' logits.
    """

    size: int
    special: int
    weights: Tensor
    log_counts: Tensor

    @property
    def keys_per_frame(self) -> int:
        """Keys of one frame after pooling: special tokens plus one per group."""
        return self.special + self.weights.shape[0]


def key_pooling(grid_hw: tuple[int, int], size: int, special: int, device: torch.device | None = None) -> KeyPooling:
    """The :class:`KeyPooling` of a ``grid_hw`` patch grid in groups of ``size x size`` patches."""
    if size < 1:
        raise ValueError(f"key pooling size must be >= 1, got {size}")
    grid_h, grid_w = grid_hw
    groups_w = math.ceil(grid_w / size)
    rows = torch.arange(grid_h, device=device)[:, None] // size
    cols = torch.arange(grid_w, device=device)[None, :] // size
    group = (rows * groups_w + cols).flatten()  # [h*w] group of each patch
    num_groups = math.ceil(grid_h / size) * groups_w
    members = F.one_hot(group, num_groups).T.double()  # [G, h*w]; float64 so that 1/count is exact to any dtype
    counts = members.sum(dim=1)
    return KeyPooling(size, special, members / counts[:, None], counts.log())


@dataclass(frozen=True)
class FramePattern:
    """Which keys the queries of a sequence of ``frames`` frames of ``per_frame`` tokens see.

    ``window``: None = every frame; ``k`` = the frames within +-k of the query's frame (clipped at the ends).
    ``pooling``: None, or the :class:`KeyPooling` applied to every frame's keys and values.
    """

    frames: int
    per_frame: int
    window: int | None = None
    pooling: KeyPooling | None = None


def pool_frames(x: Tensor, pooling: KeyPooling) -> Tensor:
    """Tokens per frame ``[..., F, P, D]`` -> ``[..., F, special + G, D]`` (special tokens kept, patches averaged)."""
    special, patches = x[..., : pooling.special, :], x[..., pooling.special :, :]
    return torch.cat([special, torch.matmul(pooling.weights.to(x.dtype), patches)], dim=-2)


def pool_key_bias(bias: Tensor | None, pooling: KeyPooling, with_counts: bool, lead: tuple[int, int]) -> Tensor | None:
    """A per-key bias ``[B, F, P]`` (or None = 0) -> ``[B, F, special + G]``: averaged over each group, plus
    ``log(count)`` on the groups when ``with_counts``. ``lead`` is (B, F), used when ``bias`` is None."""
    if bias is None and not with_counts:
        return None
    weights, log_counts = pooling.weights, pooling.log_counts
    if bias is None:
        dtype, device = weights.dtype, weights.device
        special = torch.zeros(*lead, pooling.special, dtype=dtype, device=device)
        groups = log_counts.expand(*lead, -1)
        return torch.cat([special, groups], dim=-1)
    groups = bias[..., pooling.special :] @ weights.to(bias.dtype).T
    if with_counts:
        groups = groups + log_counts.to(bias.dtype)
    return torch.cat([bias[..., : pooling.special], groups], dim=-1)


def _as_sdpa_bias(bias: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """A per-key bias ``[batch, keys]`` as SDPA's ``[batch, 1, 1, keys]`` (broadcast over heads and queries)."""
    return None if bias is None else bias[:, None, None, :].to(dtype)


def window_groups(frames: int, window: int) -> list[tuple[Tensor, Tensor]]:
    """The query frames grouped by window length: ``(query_frames [n], key_frames [n, w])`` per group, where
    ``key_frames[i]`` are the ``w`` frames within +-``window`` of ``query_frames[i]`` (clipped at the ends)."""
    by_length: dict[int, list[tuple[int, int]]] = {}
    for frame in range(frames):
        start, stop = max(0, frame - window), min(frames, frame + window + 1)
        by_length.setdefault(stop - start, []).append((frame, start))
    groups = []
    for length, members in sorted(by_length.items()):
        queries = torch.tensor([frame for frame, _ in members])
        starts = torch.tensor([start for _, start in members])
        groups.append((queries, starts[:, None] + torch.arange(length)))
    return groups


def windowed_attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None, window: int) -> Tensor:
    """Attention of each query frame over the frames within +-``window`` of it.

    Args:
        q: queries ``[B, H, F, P, D]``.
        k, v: keys and values ``[B, H, F, K, D]`` (``K`` = keys per frame, pooled or not).
        bias: optional per-key logit bias ``[B, F, K]``.
    Returns:
        ``[B, H, F, P, D]``. Query frames are batched by window length, and in chunks whose gathered keys hold
        at most about one copy of ``k``, so memory stays that of full attention's keys.
    """
    batch, heads, frames, per_frame, head_dim = q.shape
    keys_per_frame = k.shape[3]
    out = torch.empty_like(q)
    for queries, key_frames in window_groups(frames, window):
        queries, key_frames = queries.to(q.device), key_frames.to(q.device)
        length = key_frames.shape[1]
        chunk = max(1, frames // length)
        for first in range(0, len(queries), chunk):
            query_ids, key_ids = queries[first : first + chunk], key_frames[first : first + chunk]
            count = len(query_ids)
            q_part = q[:, :, query_ids].transpose(1, 2).reshape(batch * count, heads, per_frame, head_dim)
            k_part = k[:, :, key_ids].transpose(1, 2).reshape(batch * count, heads, length * keys_per_frame, head_dim)
            v_part = v[:, :, key_ids].transpose(1, 2).reshape(batch * count, heads, length * keys_per_frame, head_dim)
            mask = None
            if bias is not None:
                mask = _as_sdpa_bias(bias[:, key_ids].reshape(batch * count, length * keys_per_frame), q.dtype)
            part = F.scaled_dot_product_attention(q_part, k_part, v_part, attn_mask=mask)
            out[:, :, query_ids] = part.view(batch, count, heads, per_frame, head_dim).transpose(1, 2)
    return out


def pattern_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    pattern: FramePattern,
    key_bias: Tensor | None = None,
    row_rows: Tensor | None = None,
    row_key_bias: Tensor | None = None,
) -> Tensor:
    """Attention of ``q`` over ``k, v`` (all ``[B, H, L, D]``, RoPE applied, ``L = frames * per_frame``) with the
    keys of ``pattern``.

    ``key_bias``: optional logit bias per key ``[B, L]``; ``row_rows [R]`` / ``row_key_bias [B, L]``: an extra per-key
    bias for the query rows ``row_rows`` only (PAGE-4D's camera rows; not with a window). Returns ``[B, H, L, D]``.
    """
    batch, heads, length, head_dim = q.shape
    frames, per_frame = pattern.frames, pattern.per_frame
    if frames * per_frame != length:
        raise ValueError(f"pattern of {frames} frames x {per_frame} tokens does not fit a sequence of {length}")
    k = k.view(batch, heads, frames, per_frame, head_dim)
    v = v.view(batch, heads, frames, per_frame, head_dim)
    bias = None if key_bias is None else key_bias.view(batch, frames, per_frame)
    row_bias = None if row_key_bias is None else row_key_bias.view(batch, frames, per_frame)
    pooling = pattern.pooling
    if pooling is not None:
        k, v = pool_frames(k, pooling), pool_frames(v, pooling)
        bias = pool_key_bias(bias, pooling, with_counts=True, lead=(batch, frames))
        row_bias = pool_key_bias(row_bias, pooling, with_counts=False, lead=(batch, frames))
    keys = k.shape[3]
    if pattern.window is not None:
        if row_rows is not None:
            raise ValueError("a row bias cannot be combined with a time window (row biases are View-SA only)")
        queries = q.view(batch, heads, frames, per_frame, head_dim)
        return windowed_attention(queries, k, v, bias, pattern.window).view(batch, heads, length, head_dim)
    k, v = k.reshape(batch, heads, frames * keys, head_dim), v.reshape(batch, heads, frames * keys, head_dim)
    flat_bias = None if bias is None else bias.reshape(batch, frames * keys)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=_as_sdpa_bias(flat_bias, q.dtype))
    if row_rows is not None and row_bias is not None:
        flat_row = row_bias.reshape(batch, frames * keys)
        extra = flat_row if flat_bias is None else flat_bias + flat_row
        special = F.scaled_dot_product_attention(
            q.index_select(2, row_rows), k, v, attn_mask=_as_sdpa_bias(extra, q.dtype)
        )
        out = out.index_copy(2, row_rows, special)
    return out
