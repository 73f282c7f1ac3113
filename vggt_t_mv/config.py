"""Model configuration: every size of the network lives here, nothing is hard-coded in the modules."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ATTENTION_KINDS = ("time", "view")
STREAMS = ("pose", "geo")
STREAM_MODES = ("shared", "branched")
EXTERNAL_MASK_MODES = ("off", "fuse", "override")
# Upstream VGGT calls per-frame attention "frame" and all-frame attention "global".
_UPSTREAM_ATTENTION_NAMES = {"frame": "time", "global": "view", "time": "time", "view": "view"}


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
    aa_order: tuple[str, ...] = ("time", "view")
    aa_block_size: int = 1

    # Camera head
    camera_head: bool = True
    camera_trunk_depth: int = 4
    camera_num_heads: int = 16
    camera_mlp_ratio: float = 4.0
    camera_init_values: float = 0.01
    camera_iterations: int = 4
    pose_encoding_type: str = "absT_quaR_FoV"
    trans_act: str = "linear"
    quat_act: str = "linear"
    fl_act: str = "relu"

    # DPT heads (depth, points, and the track head's feature extractor)
    depth_head: bool = True
    point_head: bool = True
    dpt_features: int = 256
    dpt_out_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    dpt_intermediate_layers: tuple[int, int, int, int] = (4, 11, 17, 23)
    dpt_pos_embed: bool = True
    depth_activation: str = "exp"
    point_activation: str = "inv_log"
    conf_activation: str = "expp1"
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
    stream_mode: str = "branched"  # "shared": one set of blocks serves both; "branched": a copy per stream
    dynamic_bias: bool = True  # bias attention logits by the dynamic mask: pose -lambda*m, geo +lambda*m
    lambda_init: float = 0.1
    lambda_max: float = 5.0  # lambda = lambda_max * sigmoid(raw), so it stays in (0, lambda_max)
    mask_head_hidden: int = 256  # SpatialMaskHead MLP width (the head exists whenever there are two streams)
    external_masks: str = "fuse"  # "off": ignored; "fuse": learnable gate (starts at 0); "override": replace

    def __post_init__(self) -> None:
        self.aa_order = tuple(_normalize_attention_name(name) for name in self.aa_order)
        self.dpt_out_channels = tuple(self.dpt_out_channels)
        self.dpt_intermediate_layers = tuple(self.dpt_intermediate_layers)
        if self.cached_layers is not None:
            self.cached_layers = tuple(self.cached_layers)
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
        if not 0 < self.lambda_init < self.lambda_max:
            raise ValueError(f"need 0 < lambda_init < lambda_max, got {self.lambda_init} and {self.lambda_max}")
        if self.pose_encoding_type != "absT_quaR_FoV":
            raise ValueError(f"unsupported pose_encoding_type {self.pose_encoding_type!r}")

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
    def first_stream_layer(self) -> int:
        """The first layer pair that runs per stream (``depth`` when there is one stream)."""
        return self.depth if self.stream_split is None else self.stream_split

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
    def vggt_t_mv(cls) -> ModelConfig:
        """The full-size two-stream model of the design.

        VGGT-1B sizes; layer pairs 0-11 are the shared trunk, 12-23 run per stream (L_mid = 12, the
        middle: the trunk has settled low-level matching, half the depth is left to specialise). Mode
        ``branched``: the two streams pull in opposite directions (ignore vs attend to motion), and
        with shared weights only the sign of the bias could tell them apart; a copy per stream lets
        each specialise from the same pretrained layer. It costs no extra compute over ``shared``
        (both run two streams) and +302M parameters (+24 %, 0.6 GB in bf16).
        """
        return cls(stream_split=12, stream_mode="branched")

    @classmethod
    def tiny_two_stream(cls, stream_mode: str = "branched") -> ModelConfig:
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

    @classmethod
    def from_upstream_modules(cls, modules: dict[str, dict[str, Any]]) -> ModelConfig:
        """Build a config from upstream VGGT constructor arguments.

        ``modules`` maps upstream module names (``aggregator``, ``aggregator.patch_embed``,
        ``camera_head``, ``depth_head``, ``point_head``, ``track_head``,
        ``track_head.feature_extractor``, and the tracker) to the keyword arguments they were
        built with, as in the ``modules`` entry of a reference fixture's ``config.json``.
        """
        agg = modules["aggregator"]
        dino = modules.get("aggregator.patch_embed", {})
        kwargs: dict[str, Any] = dict(
            img_size=agg.get("img_size", 518),
            patch_size=agg.get("patch_size", 14),
            embed_dim=agg["embed_dim"],
            depth=agg["depth"],
            num_heads=agg["num_heads"],
            mlp_ratio=agg.get("mlp_ratio", 4.0),
            num_register_tokens=agg.get("num_register_tokens", 4),
            qkv_bias=agg.get("qkv_bias", True),
            proj_bias=agg.get("proj_bias", True),
            ffn_bias=agg.get("ffn_bias", True),
            qk_norm=agg.get("qk_norm", True),
            rope_freq=agg.get("rope_freq", 100),
            init_values=agg.get("init_values", 0.01),
            aa_order=tuple(agg.get("aa_order", ("frame", "global"))),
            aa_block_size=agg.get("aa_block_size", 1),
        )
        if dino:
            kwargs.update(
                dino_depth=dino["depth"],
                dino_num_heads=dino["num_heads"],
                dino_mlp_ratio=dino.get("mlp_ratio", 4.0),
                dino_num_register_tokens=dino.get("num_register_tokens", 4),
                dino_init_values=dino.get("init_values", 1.0),
                dino_interpolate_antialias=dino.get("interpolate_antialias", True),
                dino_interpolate_offset=dino.get("interpolate_offset", 0.0),
            )
            if dino.get("embed_dim", agg["embed_dim"]) != agg["embed_dim"]:
                raise ValueError("the DINOv2 width must equal the aggregator width")
        cam = modules.get("camera_head")
        kwargs["camera_head"] = cam is not None
        if cam:
            kwargs.update(
                camera_trunk_depth=cam.get("trunk_depth", 4),
                camera_num_heads=cam.get("num_heads", 16),
                camera_mlp_ratio=cam.get("mlp_ratio", 4.0),
                camera_init_values=cam.get("init_values", 0.01),
                camera_iterations=cam.get("forward.num_iterations", 4),
                pose_encoding_type=cam.get("pose_encoding_type", "absT_quaR_FoV"),
                trans_act=cam.get("trans_act", "linear"),
                quat_act=cam.get("quat_act", "linear"),
                fl_act=cam.get("fl_act", "relu"),
            )
        depth_head = modules.get("depth_head")
        point_head = modules.get("point_head")
        kwargs["depth_head"] = depth_head is not None
        kwargs["point_head"] = point_head is not None
        dpt = depth_head or point_head
        if dpt:
            for other in (depth_head, point_head):
                if other and (
                    other.get("out_channels") != dpt.get("out_channels")
                    or other.get("intermediate_layer_idx") != dpt.get("intermediate_layer_idx")
                    or other.get("features") != dpt.get("features")
                ):
                    raise ValueError("depth and point heads must share DPT sizes")
            kwargs.update(
                dpt_features=dpt.get("features", 256),
                dpt_out_channels=tuple(dpt.get("out_channels", (256, 512, 1024, 1024))),
                dpt_intermediate_layers=tuple(dpt.get("intermediate_layer_idx", (4, 11, 17, 23))),
                dpt_pos_embed=dpt.get("pos_embed", True),
                conf_activation=dpt.get("conf_activation", "expp1"),
                frames_chunk_size=dpt.get("forward.frames_chunk_size", 8),
            )
            if depth_head:
                kwargs["depth_activation"] = depth_head.get("activation", "exp")
            if point_head:
                kwargs["point_activation"] = point_head.get("activation", "inv_log")
        track = modules.get("track_head")
        kwargs["track_head"] = track is not None
        if track:
            extractor = modules.get("track_head.feature_extractor", {})
            if extractor and (
                tuple(extractor.get("out_channels", ())) != kwargs.get("dpt_out_channels")
                or tuple(extractor.get("intermediate_layer_idx", ())) != kwargs.get("dpt_intermediate_layers")
            ):
                raise ValueError("the track feature extractor must share the DPT heads' layers and channels")
            tracker = next((v for k, v in modules.items() if k.startswith("track_head.tracker")), {})
            former = tracker.get("updateformer", {})
            kwargs.update(
                track_features=track.get("features", 128),
                track_iters=track.get("iters", 4),
                track_stride=track.get("stride", 2),
                track_corr_levels=track.get("corr_levels", 7),
                track_corr_radius=track.get("corr_radius", 4),
                track_hidden_size=track.get("hidden_size", 384),
                track_predict_conf=track.get("predict_conf", True),
                tracker_depth=tracker.get("depth", 6),
                tracker_num_heads=former.get("num_heads", 8),
                tracker_num_virtual_tracks=former.get("num_virtual_tracks", 64),
                tracker_max_scale=tracker.get("max_scale", 518),
            )
        cached = agg.get("cached_layer_indices")
        if cached is not None:
            kwargs["cached_layers"] = tuple(cached)
        return cls(**kwargs)


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


def _normalize_attention_name(name: str) -> str:
    try:
        return _UPSTREAM_ATTENTION_NAMES[name]
    except KeyError:
        raise ValueError(f"unknown attention kind {name!r}; use one of {ATTENTION_KINDS}") from None
