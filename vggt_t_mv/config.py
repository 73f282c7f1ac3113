"""Model configuration: every size of the network lives here, nothing is hard-coded in the modules."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

AttentionKind = Literal["time", "view"]
ATTENTION_KINDS: tuple[AttentionKind, ...] = ("time", "view")
StreamName = Literal["pose", "geo"]
STREAMS: tuple[StreamName, ...] = ("pose", "geo")
StreamMode = Literal["shared", "branched"]
STREAM_MODES: tuple[StreamMode, ...] = ("shared", "branched")
ExternalMasks = Literal["off", "fuse", "override"]
EXTERNAL_MASK_MODES: tuple[ExternalMasks, ...] = ("off", "fuse", "override")
PageMaskHeadLayout = Literal["fin10", "official"]
PAGE4D_HEAD_LAYOUTS: tuple[PageMaskHeadLayout, ...] = ("fin10", "official")
# Activations of the heads' outputs (vggt_t_mv.heads.dpt and .camera implement them).
ValueActivation = Literal["exp", "inv_log", "norm_exp", "relu", "sigmoid", "linear"]
VALUE_ACTIVATIONS: tuple[ValueActivation, ...] = ("exp", "inv_log", "norm_exp", "relu", "sigmoid", "linear")
ConfActivation = Literal["expp1", "expp0", "sigmoid"]
CONF_ACTIVATIONS: tuple[ConfActivation, ...] = ("expp1", "expp0", "sigmoid")
PoseActivation = Literal["linear", "relu", "exp"]
PoseEncoding = Literal["absT_quaR_FoV"]  # the camera head's encoding: translation, quaternion, field of view
POSE_ACTIVATIONS: tuple[PoseActivation, ...] = ("linear", "relu", "exp")
PAGE4D_ALPHA_MAX = 64.0  # the official variant's camera-row factor before its hold schedule
# Upstream VGGT calls per-frame attention "frame" and all-frame attention "global".
_UPSTREAM_ATTENTION_NAMES: dict[str, AttentionKind] = {
    "frame": "time",
    "global": "view",
    "time": "time",
    "view": "view",
}


@dataclass
class PageMaskConfig:
    """PAGE-4D's mask path (``reference/PAGE4D.md``): a spatial mask head after the time block of layer
    ``mask_layer`` whose per-key value ``c_j`` is added, times ``row_scale``, to the View-SA logits of the
    camera and register query rows in the layers ``biased_view_layers``.

    ``head``: ``"fin10"`` (``vggt_t_mask_mlp_fin10``, the model of ``checkpoint_150.pt``: two depthwise 3x3
    convs, learned alpha/tau, ``c = -0.5 u``) or ``"official"`` (kaichen-z/PAGE4D: depthwise 3x3 then two
    1x1 convs of width ``hidden``, normalised input, ``c = m``). ``row_scale`` is ``r_i`` on the special rows:
    1 for fin10, the official variant's ``alpha`` (64 with inference-time masking, 0 = plain VGGT).
    """

    head: PageMaskHeadLayout = "fin10"
    mask_layer: int = 7
    biased_view_layers: tuple[int, ...] = tuple(range(8, 24))
    row_scale: float = 1.0
    hidden: int = 256  # width of the official head's 1x1 convs (unused by fin10)

    def __post_init__(self) -> None:
        self.biased_view_layers = tuple(sorted(int(i) for i in self.biased_view_layers))
        if self.head not in PAGE4D_HEAD_LAYOUTS:
            raise ValueError(f"PAGE-4D mask head must be one of {PAGE4D_HEAD_LAYOUTS}, got {self.head!r}")
        if self.row_scale < 0:
            raise ValueError(f"PAGE-4D row_scale must be >= 0, got {self.row_scale}")

    @classmethod
    def fin10(cls, depth: int = 24) -> PageMaskConfig:
        """fin10's layers, scaled to ``depth``: mask after time block ``7 * depth // 24`` (7 of 24), bias in
        every later View-SA layer (8-23)."""
        mask_layer = 7 * depth // 24
        return cls(head="fin10", mask_layer=mask_layer, biased_view_layers=tuple(range(mask_layer + 1, depth)))

    @classmethod
    def official(cls, depth: int = 24, masking: bool = True, hidden: int = 256) -> PageMaskConfig:
        """The official PAGE-4D layers, scaled to ``depth``: mask after time block ``9 * depth // 24`` (9 of
        24), bias in View-SA layers up to ``round(20 * depth / 24)`` exclusive (10-19); ``masking`` on gives
        ``alpha = 64`` (the released "inference-time masking" variant), off gives 0 (plain VGGT)."""
        mask_layer = 9 * depth // 24
        biased = tuple(range(mask_layer + 1, max(mask_layer + 2, round(20 * depth / 24))))
        alpha = page4d_alpha(0, hold_start=1, hold_end=1) if masking else 0.0
        return cls(head="official", mask_layer=mask_layer, biased_view_layers=biased, row_scale=alpha, hidden=hidden)


def page4d_alpha(step: int, hold_start: int, hold_end: int, alpha_max: float = PAGE4D_ALPHA_MAX) -> float:
    """The official PAGE-4D camera-row factor at training ``step``: ``alpha_max`` before ``hold_start``, 0 from
    ``hold_end`` on, a half-cosine in between. Checkpoints do not store the step, so a loaded model has step 0."""
    if step < hold_start:
        return alpha_max
    if step >= hold_end:
        return 0.0
    return alpha_max * 0.5 * (1.0 + math.cos(math.pi * (step - hold_start) / (hold_end - hold_start)))


@dataclass
class ModelConfig:
    """Sizes and switches of :class:`vggt_t_mv.VGGTTMV`.

    The defaults are the released VGGT-1B model (``ModelConfig.vggt_1b()``).
    """

    # Input / patching
    img_size: int = 518  # the size DINOv2's position embedding was trained for (37x37 grid)
    patch_size: int = 14

    # DINOv2 patch embedding (ViT-L/14 with registers in the 1B model)
    dino_depth: int = 24
    dino_num_heads: int = 16
    dino_mlp_ratio: float = 4.0
    dino_num_register_tokens: int = 4
    dino_init_values: float = 1.0
    dino_interpolate_antialias: bool = True
    dino_interpolate_offset: float = 0.0

    # Alternating time/view attention
    embed_dim: int = 1024
    depth: int = 24  # number of layer pairs
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    qkv_bias: bool = True
    proj_bias: bool = True
    ffn_bias: bool = True
    qk_norm: bool = True
    rope_freq: float = 100.0  # <= 0 disables 2D RoPE
    init_values: float = 0.01
    block_norm_eps: float = 1e-5  # LayerNorm eps of the time/view blocks (VGGT 1e-5; Pi3's blocks use 1e-6)
    aa_order: tuple[AttentionKind, ...] = ATTENTION_KINDS
    aa_block_size: int = 1

    # Camera head
    camera_head: bool = True
    camera_trunk_depth: int = 4
    camera_num_heads: int = 16
    camera_mlp_ratio: float = 4.0
    camera_init_values: float = 0.01
    camera_iterations: int = 4
    pose_encoding_type: PoseEncoding = "absT_quaR_FoV"
    trans_act: PoseActivation = "linear"
    quat_act: PoseActivation = "linear"
    fl_act: PoseActivation = "relu"

    # DPT heads (depth, points, and the track head's feature extractor)
    depth_head: bool = True
    point_head: bool = True
    dpt_features: int = 256
    dpt_out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    dpt_intermediate_layers: tuple[int, int, int, int] = (4, 11, 17, 23)
    dpt_pos_embed: bool = True
    depth_activation: ValueActivation = "exp"
    point_activation: ValueActivation = "inv_log"
    conf_activation: ConfActivation = "expp1"
    frames_chunk_size: int = 8

    # Track head
    track_head: bool = True
    track_features: int = 128
    track_iters: int = 4
    track_stride: int = 2
    track_corr_levels: int = 7
    track_corr_radius: int = 4
    track_hidden_size: int = 384
    track_predict_conf: bool = True
    tracker_depth: int = 6
    tracker_num_heads: int = 8
    tracker_num_virtual_tracks: int = 64
    tracker_max_scale: int = 518

    # Aggregator layers kept for the heads; None = the layers the enabled heads read.
    cached_layers: tuple[int, ...] | None = field(default=None)

    # Two streams from layer pair `stream_split` (L_mid) on: the pose stream feeds the camera head,
    # the geo stream the depth / point / track heads. None keeps one stream (VGGT).
    stream_split: int | None = None
    stream_mode: StreamMode = "branched"  # "shared": one set of blocks serves both; "branched": a copy per stream
    dynamic_bias: bool = True  # bias attention logits by the dynamic mask: pose -lambda*m, geo +lambda*m
    lambda_init: float = 0.1
    lambda_max: float = 5.0  # lambda = lambda_max * sigmoid(raw), so it stays in (0, lambda_max)
    mask_head_hidden: int = 256  # SpatialMaskHead MLP width (the head exists whenever there are two streams)
    external_masks: ExternalMasks = "fuse"  # "off": ignored; "fuse": learnable gate (starts at 0); "override": replace

    # PAGE-4D's mask head and camera-row attention bias (None: no PAGE-4D mask path). With two streams the
    # PAGE-4D head replaces the SpatialMaskHead and its suppression u is the mask m of the per-stream biases.
    page4d_mask: PageMaskConfig | None = None

    # Efficiency knobs (README "Long windows"; all off by default = the full model). None adds a parameter, so any
    # checkpoint loads with any of them, and infer_config never turns them on.
    time_window: int | None = None  # Time-SA sees the timesteps within +-k of the query's; None: every timestep
    kv_pool: int = 1  # keys/values of the kv_pool_kinds averaged over s x s patches (special tokens kept); 1: off
    kv_pool_kinds: tuple[AttentionKind, ...] = ATTENTION_KINDS
    factorized_layers: tuple[int, ...] | None = None  # layer pairs running Time-SA/View-SA; others per frame; None: all

    def __post_init__(self) -> None:
        if isinstance(self.page4d_mask, dict):
            self.page4d_mask = PageMaskConfig(**self.page4d_mask)
        self.aa_order = tuple(_normalize_attention_name(name) for name in self.aa_order)
        self.dpt_out_channels = cast(tuple[int, int, int, int], tuple(self.dpt_out_channels))
        self.dpt_intermediate_layers = cast(tuple[int, int, int, int], tuple(self.dpt_intermediate_layers))
        if self.cached_layers is not None:
            self.cached_layers = tuple(self.cached_layers)
        self.kv_pool_kinds = tuple(_normalize_attention_name(name) for name in self.kv_pool_kinds)
        if self.factorized_layers is not None:
            self.factorized_layers = tuple(sorted(int(i) for i in self.factorized_layers))
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ``ValueError`` on inconsistent sizes."""
        if not self.aa_order or len(set(self.aa_order)) != len(self.aa_order):
            raise ValueError(f"aa_order must list 'time' and/or 'view' once each, got {self.aa_order}")
        if self.depth % self.aa_block_size != 0:
            raise ValueError(f"depth ({self.depth}) must be divisible by aa_block_size ({self.aa_block_size})")
        if self.embed_dim % self.num_heads != 0:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})")
        if self.embed_dim % self.dino_num_heads != 0:
            raise ValueError(
                f"embed_dim ({self.embed_dim}) must be divisible by dino_num_heads ({self.dino_num_heads})"
            )
        if self.rope_freq > 0 and (self.embed_dim // self.num_heads) % 4 != 0:
            raise ValueError("2D RoPE needs a head dim divisible by 4")
        if len(self.dpt_out_channels) != 4 or len(self.dpt_intermediate_layers) != 4:
            raise ValueError("dpt_out_channels and dpt_intermediate_layers need exactly 4 entries")
        for layer in self.dpt_intermediate_layers + (self.cached_layers or ()):
            if not -self.depth <= layer < self.depth:
                raise ValueError(f"layer index {layer} out of range for depth {self.depth}")
        if self.stream_split is not None:
            if not 1 <= self.stream_split < self.depth:
                raise ValueError(f"stream_split must be in [1, depth) = [1, {self.depth}), got {self.stream_split}")
            if self.stream_split % self.aa_block_size:
                raise ValueError("stream_split must be a multiple of aa_block_size")
        if self.stream_mode not in STREAM_MODES:
            raise ValueError(f"stream_mode must be one of {STREAM_MODES}, got {self.stream_mode!r}")
        if self.external_masks not in EXTERNAL_MASK_MODES:
            raise ValueError(f"external_masks must be one of {EXTERNAL_MASK_MODES}, got {self.external_masks!r}")
        activations: tuple[tuple[str, str, tuple[str, ...]], ...] = (
            ("depth_activation", self.depth_activation, VALUE_ACTIVATIONS),
            ("point_activation", self.point_activation, VALUE_ACTIVATIONS),
            ("conf_activation", self.conf_activation, CONF_ACTIVATIONS),
            ("trans_act", self.trans_act, POSE_ACTIVATIONS),
            ("quat_act", self.quat_act, POSE_ACTIVATIONS),
            ("fl_act", self.fl_act, POSE_ACTIVATIONS),
        )
        for name, value, allowed in activations:
            if value not in allowed:
                raise ValueError(
                    f"{name} {value!r} is not an activation the heads implement; set {name} to one of {allowed} "
                    f"(VGGT's: {name}={getattr(ModelConfig, name)!r})"
                )
        if not 0 < self.lambda_init < self.lambda_max:
            raise ValueError(f"need 0 < lambda_init < lambda_max, got {self.lambda_init} and {self.lambda_max}")
        if self.pose_encoding_type != "absT_quaR_FoV":
            raise ValueError(f"unsupported pose_encoding_type {self.pose_encoding_type!r}")
        if self.page4d_mask is not None:
            page = self.page4d_mask
            if not 0 <= page.mask_layer < self.depth:
                raise ValueError(f"page4d_mask.mask_layer must be in [0, {self.depth}), got {page.mask_layer}")
            bad = [i for i in page.biased_view_layers if not page.mask_layer <= i < self.depth]
            if bad:
                raise ValueError(
                    f"page4d_mask.biased_view_layers {bad} must lie in [mask_layer, depth) = "
                    f"[{page.mask_layer}, {self.depth})"
                )
            if "time" not in self.aa_order:
                raise ValueError("the PAGE-4D mask is computed after a time block: aa_order needs 'time'")
            if self.stream_split is not None and self.stream_split <= page.mask_layer:
                raise ValueError(
                    f"stream_split ({self.stream_split}) must come after page4d_mask.mask_layer ({page.mask_layer}): "
                    "the mask is computed in the shared trunk"
                )

        self._validate_efficiency()

    def _validate_efficiency(self) -> None:
        """The efficiency knobs: each error names the option, the value and the fix."""
        window = self.time_window
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 0):
            raise ValueError(
                f"time_window must be a radius in timesteps >= 0 (0: each frame attends only itself in Time-SA), "
                f"got {window!r}; use null/None for full Time-SA"
            )
        if window is not None and "time" not in self.aa_order:
            raise ValueError(f"time_window={window} needs Time-SA, but aa_order is {self.aa_order}; drop time_window")
        if isinstance(self.kv_pool, bool) or not isinstance(self.kv_pool, int) or self.kv_pool < 1:
            raise ValueError(f"kv_pool must be an integer patch-group side >= 1 (1: no pooling), got {self.kv_pool!r}")
        if not self.kv_pool_kinds or len(set(self.kv_pool_kinds)) != len(self.kv_pool_kinds):
            raise ValueError(
                f"kv_pool_kinds must list 'time' and/or 'view' once each, got {self.kv_pool_kinds}; "
                'e.g. ["time"] to pool only Time-SA\'s keys'
            )
        if self.factorized_layers is not None:
            layers = self.factorized_layers
            bad = [i for i in layers if not 0 <= i < self.depth]
            if bad or len(set(layers)) != len(layers):
                raise ValueError(
                    f"factorized_layers must be distinct layer pairs in [0, depth) = [0, {self.depth}), got "
                    f"{list(layers)}; use null/None to run Time-SA/View-SA in every layer pair"
                )

    @property
    def efficiency_knobs_on(self) -> bool:
        """Whether any efficiency knob changes what attention sees (time_window, kv_pool, factorized_layers)."""
        all_layers = self.factorized_layers is None or len(self.factorized_layers) == self.depth
        return self.time_window is not None or self.kv_pool > 1 or not all_layers

    def describe_efficiency(self) -> str:
        """The active efficiency knobs in words (empty when all are off)."""
        parts = []
        if self.time_window is not None:
            parts.append(f"Time-SA within +-{self.time_window} timesteps")
        if self.kv_pool > 1:
            kinds = "/".join("Time-SA" if kind == "time" else "View-SA" for kind in self.kv_pool_kinds)
            parts.append(f"{kinds} keys/values pooled {self.kv_pool}x{self.kv_pool}")
        if self.factorized_layers is not None and len(self.factorized_layers) < self.depth:
            layers = ",".join(str(i) for i in self.factorized_layers) or "none"
            parts.append(f"time/view attention in layer pairs {layers} of {self.depth} (per-frame elsewhere)")
        return "; ".join(parts)

    # ------------------------------------------------------------ derived sizes
    @property
    def num_special_tokens(self) -> int:
        """Camera token plus register tokens in front of each frame's patch tokens."""
        return 1 + self.num_register_tokens

    @property
    def token_dim(self) -> int:
        """Channel width of one aggregator layer output: one slot of ``embed_dim`` per attention kind."""
        return self.embed_dim * len(self.aa_order)

    @property
    def two_streams(self) -> bool:
        return self.stream_split is not None

    @property
    def has_dynamic_mask(self) -> bool:
        """Whether the model predicts a dynamic mask (two streams, or a PAGE-4D mask head)."""
        return self.two_streams or self.page4d_mask is not None

    @property
    def first_stream_layer(self) -> int:
        """The first layer pair that runs per stream (``depth`` when there is one stream)."""
        return self.depth if self.stream_split is None else self.stream_split

    def describe(self) -> str:
        """The architecture in a few words: ``VGGT``, ``PAGE-4D (fin10)``, ``two streams (branched, from layer
        pair 8) around PAGE-4D (fin10)`` ..."""
        page = self.page4d_mask
        if page is None:
            base = "VGGT"
        elif page.head == "fin10":
            base = "PAGE-4D (fin10)"
        else:
            base = f"PAGE-4D (official, alpha {page.row_scale:g})"
        if self.two_streams:
            base = f"two streams ({self.stream_mode}, from layer pair {self.stream_split}) around {base}"
        efficiency = self.describe_efficiency()
        return f"{base}; {efficiency}" if efficiency else base

    def pose_layers_read(self) -> tuple[int, ...]:
        """Layer numbers the pose-stream heads (camera) read."""
        return (self.depth - 1,) if self.camera_head else ()

    def geo_layers_read(self) -> tuple[int, ...]:
        """Layer numbers the geo-stream heads (depth, points, tracks) read."""
        if self.depth_head or self.point_head or self.track_head:
            return tuple(sorted({i % self.depth for i in self.dpt_intermediate_layers}))
        return ()

    def layers_read_by_heads(self) -> tuple[int, ...]:
        """Aggregator layer numbers (non-negative) that the enabled heads read, either stream."""
        return tuple(sorted(set(self.pose_layers_read()) | set(self.geo_layers_read())))

    # ------------------------------------------------------------------ presets
    @classmethod
    def vggt_1b(cls) -> ModelConfig:
        """The released VGGT-1B sizes (DINOv2 ViT-L/14-reg4, 24 layer pairs of width 1024)."""
        return cls()

    @classmethod
    def tiny(cls) -> ModelConfig:
        """A small model for CPU tests and demos: every code path of the 1B model, ~2M parameters."""
        return cls(**_TINY)

    @classmethod
    def page4d_fin10(cls) -> ModelConfig:
        """PAGE-4D ``vggt_t_mask_mlp_fin10``, the model of ``checkpoint_150.pt``: VGGT-1B plus the fin10 mask
        head after time block 7 and the camera-row bias in View-SA layers 8-23."""
        return cls(page4d_mask=PageMaskConfig.fin10(24), external_masks="override")

    @classmethod
    def page4d(cls, masking: bool = True) -> ModelConfig:
        """The official PAGE-4D (kaichen-z/PAGE4D): VGGT-1B plus its mask head after time block 9 and the
        camera-row bias in View-SA layers 10-19. ``masking``: inference-time masking (alpha 64, the released
        configuration) or training-only masking (alpha 0: the model computes exactly VGGT)."""
        return cls(page4d_mask=PageMaskConfig.official(24, masking=masking), external_masks="override")

    @classmethod
    def vggt_t_mv(cls) -> ModelConfig:
        """The full-size two-stream model of the design: ``two_stream_config(ModelConfig.page4d_fin10())``.

        VGGT-1B sizes with fin10's trained mask head (after time block 7) and camera-row bias (View-SA
        8-23); layer pairs 0-7 are the shared trunk, 8-23 run per stream (the first biased layer: where
        PAGE-4D itself starts to treat moving content differently). Mode ``branched``: the two streams
        pull in opposite directions (ignore vs attend to motion), and with shared weights only the sign
        of the bias could tell them apart; a copy per stream lets each specialise from the same
        pretrained layer. It costs no extra compute over ``shared`` (both run two streams) and +403M
        parameters (16 layer pairs copied twice instead of shared).
        """
        return two_stream_config(cls.page4d_fin10())

    @classmethod
    def tiny_two_stream(cls, stream_mode: StreamMode = "branched") -> ModelConfig:
        """The tiny model with two streams from layer pair 2 of 4."""
        return cls(**_TINY, stream_split=2, stream_mode=stream_mode, mask_head_hidden=32)

    # --------------------------------------------------------------- (de)serial
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {', '.join(unknown)}")
        return cls(**data)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_json(cls, path: str | Path) -> ModelConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def two_stream_config(cfg: ModelConfig, stream_mode: StreamMode = "branched", **overrides: Any) -> ModelConfig:
    """The two-stream model around a single-stream config (VGGT or PAGE-4D): the same sizes and heads.

    Streams start at the first biased View-SA layer of a PAGE-4D config (8 for fin10), which keeps its mask
    head, mask layer and camera-row bias (in both streams); a VGGT config splits in the middle
    (``depth // 2``) and gets a SpatialMaskHead. The per-stream biases (pose ``-lambda_pose * m``, geo
    ``+lambda_geo * m``, m = PAGE-4D's suppression u where there is one) and a fusion gate for external
    masks come on top; ``overrides`` replace any field (e.g. ``dynamic_bias=False``).
    """
    if cfg.two_streams:
        raise ValueError("two_stream_config takes a single-stream config; this one already has stream_split set")
    if cfg.page4d_mask is not None:
        page = cfg.page4d_mask
        split = max(min(page.biased_view_layers, default=cfg.depth // 2), page.mask_layer + 1)
    else:
        split = cfg.depth // 2
    fields: dict[str, Any] = dict(stream_split=split, stream_mode=stream_mode, external_masks="fuse")
    fields.update(overrides)
    return dataclasses.replace(cfg, **fields)


_TINY: dict[str, Any] = dict(
    dino_depth=2,
    dino_num_heads=4,
    embed_dim=64,
    depth=4,
    num_heads=4,
    camera_trunk_depth=2,
    camera_num_heads=4,
    dpt_features=16,
    dpt_out_channels=(16, 32, 64, 64),
    dpt_intermediate_layers=(0, 1, 2, 3),
    track_features=16,
    track_corr_levels=5,
    track_hidden_size=32,
)


def _normalize_attention_name(name: str) -> AttentionKind:
    try:
        return _UPSTREAM_ATTENTION_NAMES[name]
    except KeyError:
        raise ValueError(f"unknown attention kind {name!r}; use one of {ATTENTION_KINDS}") from None
