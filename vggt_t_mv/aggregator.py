"""The time x view aggregator: DINOv2 patch tokens, special tokens, alternating Time-SA / View-SA,
PAGE-4D's camera-row bias from its spatial mask head where configured, and from layer pair
``stream_split`` on a pose stream and a geo stream biased by a dynamic mask."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from vggt_t_mv.config import ATTENTION_KINDS, STREAMS, AttentionKind, ModelConfig, StreamName
from vggt_t_mv.heads.mask import MaskFusion, SpatialMaskHead, pool_to_patches
from vggt_t_mv.heads.page4d_mask import PageMask, build_page_mask_head, upsample_patches
from vggt_t_mv.layers.block import Block, RowBias
from vggt_t_mv.layers.dinov2 import DinoVisionTransformer
from vggt_t_mv.layers.rope import RopeTable, frame_positions, rope_table
from vggt_t_mv.layers.sparse import FramePattern, KeyPooling, key_pooling

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

LayerSelection = Literal["heads", "all"] | Iterable[int]
# How a block groups the [B, T, N, P] tokens into sequences: across time (one camera's frames), across views (one
# timestep's frames), or per frame (the layer pairs outside ModelConfig.factorized_layers).
Grouping = Literal["time", "view", "frame"]


@dataclass
class AggregatorOutput:
    """Aggregator result.

    ``pose_layers[i]`` / ``geo_layers[i]`` are layer pair i's outputs ``[B, T*N, P, token_dim]``
    (frames in (t, n) order, the attention kinds' outputs concatenated on channels in the order time,
    view), or None for layers that were not kept. Before the stream split both lists hold the same
    shared-trunk tensors; with one stream they are the same list. ``P = patch_start_idx + h*w``.
    """

    pose_layers: list[Tensor | None]
    geo_layers: list[Tensor | None]
    patch_start_idx: int
    num_times: int
    num_views: int
    dynamic_logits: Tensor | None = None  # [B, T*N, H, W] predicted per-pixel logits (two streams, PAGE-4D)
    dynamic_mask: Tensor | None = None  # [B, T*N, H, W] probability after fusion with external masks
    page_mask: PageMask | None = None  # PAGE-4D's mask head output (per patch), before external masks

    @property
    def layers(self) -> list[Tensor | None]:
        """The geo stream's layers (all layers when there is one stream)."""
        return self.geo_layers


@dataclass
class MaskState:
    """What the layer loop knows about the dynamic mask so far (filled once the mask layer has run).

    ``row_key_bias``: PAGE-4D's ``r * c_j`` per key token ``[B, T, N, P]`` for the camera and register query
    rows of the biased View-SA layers (None: no row bias); ``patch_mask``: the mask ``m`` per patch
    ``[B, T*N, h*w]`` the per-stream biases use (PAGE-4D: ``u`` after fusion with external masks). ``pooling``
    rides along because every block of the loop needs it, like the mask.
    """

    image_hw: tuple[int, int]
    external_masks: Tensor | None = None
    page_mask: PageMask | None = None
    dynamic_mask: Tensor | None = None
    dynamic_logits: Tensor | None = None
    patch_mask: Tensor | None = None
    row_key_bias: Tensor | None = None
    special_rows: dict[tuple[int, int], Tensor] = field(default_factory=dict)
    pooling: KeyPooling | None = None  # cfg.kv_pool's key/value pooling at this image size (None: off)

    def view_rows(self, views: int, per_frame: int, special: int, device: torch.device) -> Tensor:
        """Indices of the camera and register tokens in a View-SA sequence of ``views`` frames ``[views*special]``."""
        key = (views, per_frame)
        if key not in self.special_rows:
            starts = torch.arange(views, device=device)[:, None] * per_frame
            self.special_rows[key] = (starts + torch.arange(special, device=device)).flatten()
        return self.special_rows[key]


def to_sequences(x: Tensor, kind: Grouping) -> Tensor:
    """Grid-ordered ``[B, T, N, P, *rest]`` -> attention sequences.

    ``time``: ``[B*N, T*P, *rest]`` (one sequence per camera); ``view``: ``[B*T, N*P, *rest]`` (one per timestep);
    ``frame``: ``[B*T*N, P, *rest]`` (one per frame).
    """
    batch, times, views, per_frame = x.shape[:4]
    rest = x.shape[4:]
    if kind == "time":
        return x.transpose(1, 2).reshape(batch * views, times * per_frame, *rest)
    if kind == "frame":
        return x.reshape(batch * times * views, per_frame, *rest)
    return x.reshape(batch * times, views * per_frame, *rest)


def from_sequences(sequences: Tensor, kind: Grouping, grid: tuple[int, int, int, int]) -> Tensor:
    """Inverse of :func:`to_sequences`; ``grid`` is (B, T, N, P). Returns ``[B, T, N, P, *rest]`` (maybe strided)."""
    batch, times, views, per_frame = grid
    rest = sequences.shape[2:]
    if kind == "time":
        return sequences.view(batch, views, times, per_frame, *rest).transpose(1, 2)
    return sequences.view(batch, times, views, per_frame, *rest)


def frames_per_sequence(kind: Grouping, times: int, views: int) -> int:
    """How many frames one sequence of grouping ``kind`` holds."""
    return times if kind == "time" else views if kind == "view" else 1


class Aggregator(nn.Module):
    """Alternating attention over a ``[B, T, N]`` grid of frames.

    * Time-SA (``time_blocks``): for each camera n, all tokens of its T frames attend to each other,
      sequences ``[B*N, T*P, C]``.
    * View-SA (``view_blocks``): for each timestep t, all tokens of its N frames attend to each other,
      sequences ``[B*T, N*P, C]``.

    With ``T = 1`` these are exactly VGGT's frame and global attention over ``S = N`` frames.
    """

    _image_mean: Tensor  # buffers [3, 1, 1], registered in __init__
    _image_std: Tensor

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
        branched = cfg.two_streams and cfg.stream_mode == "branched"
        trunk_depth = cfg.first_stream_layer if branched else cfg.depth
        for kind in cfg.aa_order:
            setattr(self, f"{kind}_blocks", nn.ModuleList(self._make_block() for _ in range(trunk_depth)))
        if branched:
            # Keyed by layer number, so pose_time_blocks.12 is the copy of time_blocks.12.
            for stream in STREAMS:
                for kind in cfg.aa_order:
                    copies = nn.ModuleDict({str(i): self._make_block() for i in range(trunk_depth, cfg.depth)})
                    setattr(self, f"{stream}_{kind}_blocks", copies)
        if cfg.page4d_mask is not None:
            self.spatial_mask_head = build_page_mask_head(cfg.page4d_mask, dim)
        elif cfg.two_streams:
            self.mask_head = SpatialMaskHead(
                dim_in=cfg.token_dim, hidden=cfg.mask_head_hidden, patch_size=cfg.patch_size
            )
        if cfg.has_dynamic_mask:
            self.mask_fusion = MaskFusion(cfg.external_masks)
        if cfg.two_streams:
            if cfg.dynamic_bias:
                raw = math.log(cfg.lambda_init / (cfg.lambda_max - cfg.lambda_init))
                self.lambda_pose_raw = nn.Parameter(torch.tensor(raw))
                self.lambda_geo_raw = nn.Parameter(torch.tensor(raw))
        self.register_buffer("_image_mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("_image_std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)
        self.gradient_checkpointing = True  # only active in training mode, as upstream
        # Shared mode with a bias: run both streams as one batched call per layer (False: one after the other).
        self.batch_shared_streams = True

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
            norm_eps=cfg.block_norm_eps,
        )

    @property
    def patch_start_idx(self) -> int:
        return self.cfg.num_special_tokens

    def blocks(self) -> list[Block]:
        """Every time/view block (trunk and stream copies)."""
        dino = set(self.patch_embed.modules())
        return [m for m in self.modules() if isinstance(m, Block) and m not in dino]

    def compile_blocks(self, **compile_kwargs) -> None:
        """``torch.compile`` every time/view block in place (e.g. ``mode="max-autotune"``); the layer loop,
        reshapes and heads stay eager, so changing T, N or the image size recompiles only the blocks."""
        for block in self.blocks():
            block.compile(**compile_kwargs)

    def lambdas(self) -> tuple[Tensor, Tensor]:
        """(lambda_pose, lambda_geo) = lambda_max * sigmoid(raw): always within (0, lambda_max), never stuck."""
        scale = self.cfg.lambda_max
        return scale * torch.sigmoid(self.lambda_pose_raw), scale * torch.sigmoid(self.lambda_geo_raw)

    @torch.no_grad()
    def set_lambdas(self, pose: float, geo: float) -> None:
        """Set the effective lambdas (0 allowed: raw = -inf) for experiments and tests."""
        for param, value in ((self.lambda_pose_raw, pose), (self.lambda_geo_raw, geo)):
            if not 0 <= value < self.cfg.lambda_max:
                raise ValueError(f"lambda must be in [0, {self.cfg.lambda_max}), got {value}")
            param.fill_(-math.inf if value == 0 else math.log(value / (self.cfg.lambda_max - value)))

    def _layers_to_keep(self, layers: LayerSelection) -> tuple[set[int], set[int]]:
        """Layer numbers to keep for the (pose, geo) streams."""
        depth = self.cfg.depth
        if layers == "all":
            everything = set(range(depth))
            return everything, everything
        if layers == "heads":
            if self.cfg.cached_layers is not None:
                cached = {i % depth for i in self.cfg.cached_layers}
                return cached, cached
            return set(self.cfg.pose_layers_read()), set(self.cfg.geo_layers_read())
        chosen = {int(i) % depth for i in layers}
        return chosen, chosen

    def special_tokens(self, batch: int, num_frames: int) -> Tensor:
        """Camera + register tokens per frame, ``[B*F, 1+R, C]``.

        Variant 0 goes to the reference frame (t=0, n=0, the first of the F frames), variant 1 to all others.
        """
        tokens = torch.cat([self.camera_token, self.register_token], dim=2)[0]  # [2, 1+R, C]
        variant = torch.ones(num_frames, dtype=torch.long, device=tokens.device)
        variant[0] = 0
        per_frame = tokens[variant]  # [F, 1+R, C]
        return per_frame.unsqueeze(0).expand(batch, -1, -1, -1).reshape(batch * num_frames, *tokens.shape[1:])

    def forward(
        self, images: Tensor, layers: LayerSelection = "heads", external_masks: Tensor | None = None
    ) -> AggregatorOutput:
        """
        Args:
            images: ``[B, T, N, 3, H, W]`` in [0, 1]; H, W multiples of the patch size.
            layers: which layer outputs to keep: ``"heads"`` (those the heads read), ``"all"``, or
                layer numbers. Others are returned as None to save memory.
            external_masks: optional dynamic masks ``[B, T, N, H, W]`` in [0, 1] (models with a mask head).
        Returns:
            :class:`AggregatorOutput` with layers ``[B, T*N, P, token_dim]``.
        """
        tokens = self.embed(images)
        if external_masks is not None:
            external_masks = external_masks.flatten(1, 2)
        return self.alternate(tokens, (images.shape[-2], images.shape[-1]), layers, external_masks)

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

    def key_pooling_for(self, image_hw: tuple[int, int], device: torch.device) -> KeyPooling | None:
        """The key/value pooling of ``cfg.kv_pool`` for images of size ``image_hw``, or None when it is off."""
        if self.cfg.kv_pool <= 1:
            return None
        grid_hw = (image_hw[0] // self.cfg.patch_size, image_hw[1] // self.cfg.patch_size)
        return key_pooling(grid_hw, self.cfg.kv_pool, self.patch_start_idx, device)

    def alternate(
        self,
        x: Tensor,
        image_hw: tuple[int, int],
        layers: LayerSelection = "heads",
        external_masks: Tensor | None = None,
    ) -> AggregatorOutput:
        """Run the alternating time/view layers on tokens ``x [B, T, N, P, C]`` of images of size ``image_hw``.

        ``external_masks``: optional ``[B, T*N, H, W]`` in [0, 1], fused with the predicted mask.
        """
        cfg = self.cfg
        rope = self.rope_for(image_hw, x.device)
        pooling = self.key_pooling_for(image_hw, x.device)
        batch, times, views, per_frame, _ = x.shape
        keep_pose, keep_geo = self._layers_to_keep(layers)
        split = cfg.first_stream_layer
        trunk_keep = {i for i in keep_pose | keep_geo if i < split}
        spatial_head = cfg.two_streams and cfg.page4d_mask is None
        if spatial_head:
            trunk_keep.add(split - 1)  # the mask head reads it
        trunk: list[Tensor | None] = [None] * cfg.depth
        state = MaskState(image_hw, external_masks, pooling=pooling)
        x = self._run_layers(x, rope, range(0, split), trunk_keep, trunk, stream=None, key_bias=None, state=state)
        out = AggregatorOutput(trunk, trunk, self.patch_start_idx, times, views)
        out.page_mask, out.dynamic_mask, out.dynamic_logits = state.page_mask, state.dynamic_mask, state.dynamic_logits
        if not cfg.two_streams:
            return out

        if spatial_head:
            grid_hw = (image_hw[0] // cfg.patch_size, image_hw[1] // cfg.patch_size)
            out.dynamic_logits = self.mask_head(trunk[split - 1], self.patch_start_idx, grid_hw)
            out.dynamic_mask = self.mask_fusion(torch.sigmoid(out.dynamic_logits), external_masks)
            state.patch_mask = pool_to_patches(out.dynamic_mask, cfg.patch_size)
            if split - 1 not in keep_pose | keep_geo:
                trunk[split - 1] = None
        out.pose_layers, out.geo_layers = list(trunk), list(trunk)
        pose_bias, geo_bias = self._stream_key_bias(state.patch_mask, (batch, times, views, per_frame))
        stream_layers = range(split, cfg.depth)
        run = functools.partial(self._run_layers, rope=rope, layer_range=stream_layers, state=state)
        if cfg.stream_mode == "branched":
            run(x, keep=keep_pose, outputs=out.pose_layers, stream="pose", key_bias=pose_bias)
            run(x, keep=keep_geo, outputs=out.geo_layers, stream="geo", key_bias=geo_bias)
        elif pose_bias is None or geo_bias is None:  # both or neither (_stream_key_bias)
            # Same weights, no bias: the two streams are identical, compute them once.
            shared: list[Tensor | None] = [None] * cfg.depth
            run(x, keep=keep_pose | keep_geo, outputs=shared, stream=None, key_bias=None)
            for i in stream_layers:
                out.pose_layers[i] = shared[i] if i in keep_pose else None
                out.geo_layers[i] = shared[i] if i in keep_geo else None
        elif not self.batch_shared_streams:
            run(x, keep=keep_pose, outputs=out.pose_layers, stream=None, key_bias=pose_bias)
            run(x, keep=keep_geo, outputs=out.geo_layers, stream=None, key_bias=geo_bias)
        else:
            # Same weights, different biases: both streams in one batched call per layer.
            both: list[Tensor | None] = [None] * cfg.depth
            if state.row_key_bias is not None:
                state.row_key_bias = torch.cat([state.row_key_bias, state.row_key_bias])
            run(
                torch.cat([x, x]),
                keep=keep_pose | keep_geo,
                outputs=both,
                stream=None,
                key_bias=torch.cat([pose_bias, geo_bias]),
            )
            for i in stream_layers:
                layer = both[i]
                if layer is not None:
                    out.pose_layers[i] = layer[:batch] if i in keep_pose else None
                    out.geo_layers[i] = layer[batch:] if i in keep_geo else None
        return out

    def _stream_key_bias(
        self, per_patch: Tensor | None, grid: tuple[int, int, int, int]
    ) -> tuple[Tensor | None, Tensor | None]:
        """Per-key logit biases ``[B, T, N, P]`` of the pose (``-lambda_pose * m``) and geo (``+lambda_geo * m``)
        streams from a per-patch mask ``[B, T*N, h*w]``; special tokens get m = 0."""
        if not self.cfg.dynamic_bias or per_patch is None:
            return None, None
        per_token = F.pad(per_patch, (self.patch_start_idx, 0)).view(grid)
        lambda_pose, lambda_geo = self.lambdas()
        return -lambda_pose * per_token, lambda_geo * per_token

    def _block(self, kind: AttentionKind, index: int, stream: StreamName | None) -> Block:
        if stream is None or self.cfg.stream_mode == "shared":
            return getattr(self, f"{kind}_blocks")[index]
        return getattr(self, f"{stream}_{kind}_blocks")[str(index)]

    def page_mask_from_tokens(self, x: Tensor, state: MaskState) -> None:
        """PAGE-4D's mask from the tokens ``x [B, T, N, P, C]`` leaving the mask layer's time block (detached, as
        upstream): fills ``state`` with the mask head output, the per-pixel mask (``u`` fused with external
        masks), the per-patch ``m`` for the stream biases and the camera-row key bias ``r * c``."""
        cfg, start = self.cfg, self.patch_start_idx
        if cfg.page4d_mask is None:
            raise ValueError("page_mask_from_tokens needs a model with a PAGE-4D mask (ModelConfig.page4d_mask)")
        batch, times, views, per_frame, _ = x.shape
        grid_hw = (state.image_hw[0] // cfg.patch_size, state.image_hw[1] // cfg.patch_size)
        page = self.spatial_mask_head(x.detach().reshape(batch, times * views, per_frame, -1), start, grid_hw)
        state.page_mask = page
        suppression_px = upsample_patches(page.suppression, grid_hw, cfg.patch_size)
        state.dynamic_logits = torch.logit(suppression_px, eps=1e-6)
        state.dynamic_mask = self.mask_fusion(suppression_px, state.external_masks)
        key_bias = page.key_bias
        state.patch_mask = page.suppression
        if state.dynamic_mask is not suppression_px:
            state.patch_mask = pool_to_patches(state.dynamic_mask, cfg.patch_size)
            key_bias = self.spatial_mask_head.key_bias_from_suppression(state.patch_mask)
        if page.row_scale != 0 and cfg.page4d_mask.biased_view_layers:
            token_bias = F.pad(key_bias, (start, 0)) * page.row_scale
            state.row_key_bias = token_bias.view(batch, times, views, per_frame)

    def _run_layers(
        self,
        x: Tensor,
        rope: RopeTable | None,
        layer_range: range,
        keep: set[int],
        outputs: list[Tensor | None],
        stream: StreamName | None,
        key_bias: Tensor | None,
        state: MaskState,
    ) -> Tensor:
        """Run layer pairs ``layer_range`` on ``x [B', T, N, P, C]``; store kept outputs in ``outputs``.

        PAGE-4D: after the time block of ``page4d_mask.mask_layer`` the mask head fills ``state``; the View-SA blocks
        of ``page4d_mask.biased_view_layers`` then get its camera-row bias."""
        batch, times, views, per_frame, _ = x.shape
        block_size = self.cfg.aa_block_size
        page = self.cfg.page4d_mask
        for first in range(layer_range.start, layer_range.stop, block_size):
            per_kind: dict[str, list[Tensor]] = {}
            for kind in self.cfg.aa_order:
                per_kind[kind] = []
                for index in range(first, first + block_size):
                    grouping = self._grouping(kind, index)
                    row_bias = None
                    if kind == "view" and page is not None and index in page.biased_view_layers:
                        row_bias = self._view_row_bias(state, grouping, views, per_frame, x.device)
                    pattern = self._pattern(grouping, times, views, per_frame, state.pooling)
                    block = self._block(kind, index, stream)
                    x = self._run_block(block, grouping, x, rope, key_bias, row_bias, pattern)
                    if kind == "time" and page is not None and index == page.mask_layer:
                        self.page_mask_from_tokens(x, state)
                    per_kind[kind].append(x)
            for offset, index in enumerate(range(first, first + block_size)):
                if index in keep:
                    parts = [per_kind[kind][offset] for kind in ATTENTION_KINDS if kind in per_kind]
                    outputs[index] = torch.cat(parts, dim=-1).view(batch, times * views, per_frame, -1)
            del per_kind
        return x

    def _grouping(self, kind: AttentionKind, index: int) -> Grouping:
        """How the ``kind`` block of layer pair ``index`` groups its tokens: per frame outside
        ``cfg.factorized_layers``."""
        layers = self.cfg.factorized_layers
        return kind if layers is None or index in layers else "frame"

    def _pattern(
        self, grouping: Grouping, times: int, views: int, per_frame: int, pooling: KeyPooling | None
    ) -> FramePattern | None:
        """The keys a ``grouping`` block's queries see under ``cfg.time_window`` / ``cfg.kv_pool`` (None: all, the
        full model's path; per-frame blocks are never windowed nor pooled)."""
        if grouping == "frame":
            return None
        window = self.cfg.time_window if grouping == "time" else None
        if grouping not in self.cfg.kv_pool_kinds:
            pooling = None
        if window is None and pooling is None:
            return None
        return FramePattern(frames_per_sequence(grouping, times, views), per_frame, window, pooling)

    def _view_row_bias(
        self, state: MaskState, grouping: Grouping, views: int, per_frame: int, device: torch.device
    ) -> RowBias | None:
        """The camera-row bias of a biased View-SA layer: rows = each frame's special tokens; keys ``[B'*T, N*P]``
        (or ``[B'*T*N, P]`` when the layer runs per frame)."""
        if state.row_key_bias is None:
            return None
        frames = views if grouping == "view" else 1
        rows = state.view_rows(frames, per_frame, self.patch_start_idx, device)
        return RowBias(rows, to_sequences(state.row_key_bias, grouping))

    def _run_block(
        self,
        block: Block,
        kind: Grouping,
        x: Tensor,
        rope: RopeTable | None,
        key_bias: Tensor | None,
        row_bias: RowBias | None = None,
        pattern: FramePattern | None = None,
    ) -> Tensor:
        """One block on tokens ``x [B, T, N, P, C]`` (any strides) grouped by ``kind``; returns the same dims.
        ``row_bias`` (View-SA only) is already in sequence layout; ``pattern``: which keys the queries see."""
        grid = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        sequences = to_sequences(x, kind)
        bias = None if key_bias is None else to_sequences(key_bias, kind)
        table = None if rope is None else rope.repeat(frames_per_sequence(kind, grid[1], grid[2]))
        if self.training and self.gradient_checkpointing and torch.is_grad_enabled():
            out = checkpoint(block, sequences, table, bias, row_bias, pattern, use_reentrant=False)
        else:
            out = block(sequences, rope=table, key_bias=bias, row_bias=row_bias, pattern=pattern)
        return from_sequences(out, kind, grid)
