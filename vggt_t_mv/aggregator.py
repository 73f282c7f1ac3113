"""The time x view aggregator: DINOv2 patch tokens, special tokens, alternating Time-SA / View-SA."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vggt_t_mv.config import ATTENTION_KINDS, ModelConfig
from vggt_t_mv.layers.block import Block
from vggt_t_mv.layers.dinov2 import DinoVisionTransformer
from vggt_t_mv.layers.rope import RopeTable, frame_positions, rope_table

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

LayerSelection = Literal["heads", "all"] | Iterable[int]


@dataclass
class AggregatorOutput:
    """Aggregator result.

    ``layers[i]`` is layer pair i's output ``[B, T*N, P, token_dim]`` (frames in (t, n) order, the
    attention kinds' outputs concatenated on channels in the order time, view), or None for layers
    that were not kept. ``P = patch_start_idx + grid_h * grid_w``.
    """

    layers: list[Tensor | None]
    patch_start_idx: int
    num_times: int
    num_views: int


class Aggregator(nn.Module):
    """Alternating attention over a ``[B, T, N]`` grid of frames.

    * Time-SA (``time_blocks``): for each camera n, all tokens of its T frames attend to each other,
      sequences ``[B*N, T*P, C]``.
    * View-SA (``view_blocks``): for each timestep t, all tokens of its N frames attend to each other,
      sequences ``[B*T, N*P, C]``.

    With ``T = 1`` these are exactly VGGT's frame and global attention over ``S = N`` frames.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.camera_token = nn.Parameter(torch.randn(1, 2, 1, dim))
        self.register_token = nn.Parameter(torch.randn(1, 2, cfg.num_register_tokens, dim))
        nn.init.normal_(self.camera_token, std=1e-6)
        nn.init.normal_(self.register_token, std=1e-6)
        self.patch_embed = DinoVisionTransformer(
            img_size=cfg.img_size,
            patch_size=cfg.patch_size,
            embed_dim=dim,
            depth=cfg.dino_depth,
            num_heads=cfg.dino_num_heads,
            mlp_ratio=cfg.dino_mlp_ratio,
            num_register_tokens=cfg.dino_num_register_tokens,
            init_values=cfg.dino_init_values,
            interpolate_antialias=cfg.dino_interpolate_antialias,
            interpolate_offset=cfg.dino_interpolate_offset,
        )
        for kind in ATTENTION_KINDS:
            if kind in cfg.aa_order:
                setattr(self, f"{kind}_blocks", nn.ModuleList(self._make_block() for _ in range(cfg.depth)))
        self.register_buffer("_image_mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("_image_std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)
        self.gradient_checkpointing = True  # only active in training mode, as upstream

    def _make_block(self) -> Block:
        cfg = self.cfg
        return Block(
            cfg.embed_dim,
            cfg.num_heads,
            cfg.mlp_ratio,
            qkv_bias=cfg.qkv_bias,
            proj_bias=cfg.proj_bias,
            ffn_bias=cfg.ffn_bias,
            init_values=cfg.init_values,
            qk_norm=cfg.qk_norm,
        )

    @property
    def patch_start_idx(self) -> int:
        return self.cfg.num_special_tokens

    def _layers_to_keep(self, layers: LayerSelection) -> set[int]:
        depth = self.cfg.depth
        if layers == "all":
            return set(range(depth))
        if layers == "heads":
            if self.cfg.cached_layers is not None:
                return {i % depth for i in self.cfg.cached_layers}
            return set(self.cfg.layers_read_by_heads())
        return {int(i) % depth for i in layers}

    def special_tokens(self, batch: int, num_frames: int) -> Tensor:
        """Camera + register tokens per frame, ``[B*F, 1+R, C]``.

        Variant 0 goes to the reference frame (t=0, n=0, the first of the F frames), variant 1 to all others.
        """
        tokens = torch.cat([self.camera_token, self.register_token], dim=2)[0]  # [2, 1+R, C]
        variant = torch.ones(num_frames, dtype=torch.long, device=tokens.device)
        variant[0] = 0
        per_frame = tokens[variant]  # [F, 1+R, C]
        return per_frame.unsqueeze(0).expand(batch, -1, -1, -1).reshape(batch * num_frames, *tokens.shape[1:])

    def forward(self, images: Tensor, layers: LayerSelection = "heads") -> AggregatorOutput:
        """
        Args:
            images: ``[B, T, N, 3, H, W]`` in [0, 1]; H, W multiples of the patch size.
            layers: which layer outputs to keep: ``"heads"`` (those the heads read), ``"all"``, or
                layer numbers. Others are returned as None to save memory.
        Returns:
            :class:`AggregatorOutput` with layers ``[B, T*N, P, token_dim]``.
        """
        tokens = self.embed(images)
        rope = self.rope_for(images.shape[-2:], images.device)
        return self.alternate(tokens, rope, layers)

    def embed(self, images: Tensor) -> Tensor:
        """Images ``[B, T, N, 3, H, W]`` in [0, 1] -> input tokens ``[B, T, N, P, C]`` (special tokens, patches)."""
        batch, times, views, channels, height, width = images.shape
        num_frames = times * views
        frames = images.reshape(batch * num_frames, channels, height, width)
        patch_tokens = self.patch_embed((frames - self._image_mean) / self._image_std)  # [B*F, h*w, C]
        special = self.special_tokens(batch, num_frames).to(patch_tokens.dtype)
        tokens = torch.cat([special, patch_tokens], dim=1)
        return tokens.view(batch, times, views, *tokens.shape[1:])

    def rope_for(self, image_hw: tuple[int, int], device: torch.device) -> RopeTable | None:
        """RoPE table of one frame's tokens, ``[P, head_dim]``, or None when RoPE is off."""
        if self.cfg.rope_freq <= 0:
            return None
        grid_h, grid_w = image_hw[0] // self.cfg.patch_size, image_hw[1] // self.cfg.patch_size
        positions = frame_positions(grid_h, grid_w, self.patch_start_idx, device=device)
        return rope_table(positions, self.cfg.embed_dim // self.cfg.num_heads, self.cfg.rope_freq)

    def alternate(self, x: Tensor, rope: RopeTable | None, layers: LayerSelection = "heads") -> AggregatorOutput:
        """Run the alternating time/view layers on tokens ``x [B, T, N, P, C]``."""
        batch, times, views, tokens_per_frame, _ = x.shape
        keep = self._layers_to_keep(layers)
        outputs: list[Tensor | None] = [None] * self.cfg.depth
        block_size = self.cfg.aa_block_size
        for first in range(0, self.cfg.depth, block_size):
            per_kind: dict[str, list[Tensor]] = {}
            for kind in self.cfg.aa_order:
                per_kind[kind] = []
                for index in range(first, first + block_size):
                    x = self._run_block(kind, index, x, rope)
                    per_kind[kind].append(x)
            for offset, index in enumerate(range(first, first + block_size)):
                if index in keep:
                    parts = [per_kind[kind][offset] for kind in ATTENTION_KINDS if kind in per_kind]
                    outputs[index] = torch.cat(parts, dim=-1).view(batch, times * views, tokens_per_frame, -1)
            del per_kind
        return AggregatorOutput(outputs, self.patch_start_idx, times, views)

    def _run_block(self, kind: str, index: int, x: Tensor, rope: RopeTable | None) -> Tensor:
        """Run ``{kind}_blocks[index]`` on tokens ``x [B, T, N, P, C]`` (any strides); returns the same dims."""
        batch, times, views, tokens_per_frame, dim = x.shape
        block = getattr(self, f"{kind}_blocks")[index]
        if kind == "time":
            sequences = x.transpose(1, 2).reshape(batch * views, times * tokens_per_frame, dim)
            table = rope.repeat(times) if rope is not None else None
        else:
            sequences = x.reshape(batch * times, views * tokens_per_frame, dim)
            table = rope.repeat(views) if rope is not None else None
        if self.training and self.gradient_checkpointing and torch.is_grad_enabled():
            out = checkpoint(block, sequences, table, use_reentrant=False)
        else:
            out = block(sequences, rope=table)
        if kind == "time":
            return out.view(batch, views, times, tokens_per_frame, dim).transpose(1, 2)
        return out.view(batch, times, views, tokens_per_frame, dim)
