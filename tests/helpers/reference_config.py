"""The reference fixtures' model description -> :class:`~vggt_t_mv.config.ModelConfig`: a fixture folder's
``config.json`` holds upstream VGGT's constructor arguments per module (``modules``) and, for PAGE-4D fixtures, a
``mask`` section (``reference/PAGE4D.md``). Only the equivalence tests read that format, so it lives here and not
in the library."""

from __future__ import annotations

import dataclasses
from typing import Any

from vggt_t_mv.config import ModelConfig, PageMaskConfig, PageMaskHeadLayout, page4d_alpha


def page_mask_from_reference(mask: dict[str, Any]) -> PageMaskConfig:
    """From the ``mask`` section of a reference fixture's config.json (``reference/PAGE4D.md``)."""
    head_class = str(mask.get("head_class", ""))
    official = "mask_hold_start" in mask or "mask_hold_end" in mask or head_class.startswith("page.")
    if "fin10" in head_class:
        head: PageMaskHeadLayout = "fin10"
    elif official:
        head = "official"
    else:
        raise ValueError(
            f"unknown PAGE-4D mask head {head_class!r}: expected a vggt_t_mask_mlp_fin10 or page (official) class"
        )
    row_scale = 1.0
    if head == "official":
        row_scale = page4d_alpha(0, int(mask.get("mask_hold_start", 0)), int(mask.get("mask_hold_end", 0)))
    return PageMaskConfig(
        head=head,
        mask_layer=int(mask["mask_layer"]),
        biased_view_layers=tuple(mask["biased_global_layers"]),
        row_scale=row_scale,
    )


def config_from_reference(config: dict[str, Any]) -> ModelConfig:
    """The model a reference fixture folder's ``config.json`` describes: its ``modules`` and, for
    PAGE-4D fixtures, its ``mask`` section."""
    cfg = config_from_upstream_modules(config["modules"])
    if "mask" in config:
        page = page_mask_from_reference(config["mask"])
        cfg = dataclasses.replace(cfg, page4d_mask=page, external_masks="override")
    return cfg


def config_from_upstream_modules(modules: dict[str, dict[str, Any]]) -> ModelConfig:
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
    return ModelConfig(**kwargs)
