"""Infer a :class:`ModelConfig` from the tensor shapes of a VGGT-layout (or our own) state dict.

What shapes tell: widths, depths, register counts, which heads exist, DPT widths, the track head's
sizes, branched stream copies. What they cannot tell, with the documented default (override any of
them by keyword):

* attention head counts without a qk-norm to measure them: the DINOv2 encoder and the camera head
  use the aggregator's head count (true of VGGT-1B and the reference tiny model); without qk-norm in
  the aggregator, DINOv2's 64-wide heads are assumed;
* ``dpt_intermediate_layers``: VGGT-1B's (4, 11, 17, 23) scaled to the depth,
  ``round((i + 1) * depth / 24) - 1`` (gives (0, 1, 2, 3) for depth 4);
* the tracker's head count (8), iterations (4), stride (2), correlation radius (4);
* ``stream_split`` in ``shared`` mode (no copies to count), ``camera_iterations`` (4), activations;
* PAGE-4D (``aggregator.spatial_mask_head.*``, layout from :func:`vggt_t_mv.weights.page4d_head_layout`): the
  mask layer and the biased View-SA layers are upstream's at depth 24 (fin10: 7 / 8-23, official: 9 / 10-19)
  and scaled to other depths (:meth:`~vggt_t_mv.PageMaskConfig.fin10`, :meth:`~vggt_t_mv.PageMaskConfig.official`);
  the official variant's alpha is 64 (its released inference-time masking; pass ``page4d_mask=`` to change).
  A mask head that fits neither layout is left out of the config, so loading reports its tensors by name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from vggt_t_mv.config import ModelConfig, PageMaskConfig, two_stream_config
from vggt_t_mv.weights import PAGE4D_MASK_PREFIX, detect_layout, page4d_head_layout, rename_vggt_keys

VGGT_1B_DPT_LAYERS = (4, 11, 17, 23)


def _indices(keys: list[str], prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    return sorted({int(m.group(1)) for k in keys if (m := pattern.match(k))})


def scaled_dpt_layers(depth: int) -> tuple[int, ...]:
    """VGGT-1B's DPT layers (4, 11, 17, 23 of 24) scaled to ``depth`` layer pairs."""
    return tuple(max(0, round((i + 1) * depth / 24) - 1) for i in VGGT_1B_DPT_LAYERS)


def infer_config(state_dict: Mapping[str, Tensor], **overrides: Any) -> ModelConfig:
    """A config whose model has exactly the shapes of ``state_dict`` (VGGT or our layout); ``overrides``
    set fields the shapes cannot tell (module docstring) or replace inferred ones."""
    layout = detect_layout(state_dict)
    if layout == "pi3":
        raise ValueError("infer_config reads VGGT-layout checkpoints; a Pi3 file has no VGGT heads to size")
    sd = dict(state_dict) if layout == "ours" else rename_vggt_keys(state_dict)
    keys = list(sd)
    shape = {k: tuple(v.shape) for k, v in sd.items()}
    inferred: dict[str, Any] = {}

    dim = shape["aggregator.camera_token"][-1]
    inferred["embed_dim"] = dim
    inferred["num_register_tokens"] = shape["aggregator.register_token"][2]
    patch = shape["aggregator.patch_embed.patch_embed.proj.weight"][-1]
    inferred["patch_size"] = patch
    inferred["img_size"] = math.isqrt(shape["aggregator.patch_embed.pos_embed"][1] - 1) * patch
    inferred["dino_depth"] = len(_indices(keys, "aggregator.patch_embed.blocks"))
    inferred["dino_num_register_tokens"] = shape.get("aggregator.patch_embed.register_tokens", (1, 0))[1]
    dino_hidden = shape["aggregator.patch_embed.blocks.0.mlp.fc1.weight"][0]
    inferred["dino_mlp_ratio"] = dino_hidden / dim

    kinds = [kind for kind in ("time", "view") if f"aggregator.{kind}_blocks.0.norm1.weight" in shape]
    inferred["aa_order"] = tuple(kinds)
    first = kinds[0]
    trunk = _indices(keys, f"aggregator.{first}_blocks")
    copies = _indices(keys, f"aggregator.pose_{first}_blocks")
    inferred["depth"] = max(trunk + copies) + 1
    if copies:
        inferred.update(stream_split=min(copies), stream_mode="branched")
    elif "aggregator.mask_head.fc1.weight" in shape:
        inferred["stream_mode"] = "shared"
    block = f"aggregator.{first}_blocks.0"
    inferred["mlp_ratio"] = shape[f"{block}.mlp.fc1.weight"][0] / dim
    inferred["qkv_bias"] = f"{block}.attn.qkv.bias" in shape
    inferred["proj_bias"] = f"{block}.attn.proj.bias" in shape
    inferred["ffn_bias"] = f"{block}.mlp.fc1.bias" in shape
    qk_norm = f"{block}.attn.q_norm.weight" in shape
    inferred["qk_norm"] = qk_norm
    heads = dim // shape[f"{block}.attn.q_norm.weight"][0] if qk_norm else max(1, dim // 64)
    inferred.update(num_heads=heads, dino_num_heads=heads)
    if "aggregator.mask_head.fc1.weight" in shape:
        inferred["mask_head_hidden"] = shape["aggregator.mask_head.fc1.weight"][0]
    page_layout = page4d_head_layout(sd)
    if page_layout == "fin10":
        inferred["page4d_mask"] = PageMaskConfig.fin10(inferred["depth"])
    elif page_layout == "official":
        hidden = shape[f"{PAGE4D_MASK_PREFIX}head0.2.weight"][0]
        inferred["page4d_mask"] = PageMaskConfig.official(inferred["depth"], hidden=hidden)
    lambdas = "aggregator.lambda_pose_raw" in shape
    if "aggregator.mask_head.fc1.weight" in shape or page_layout:
        inferred["external_masks"] = "fuse" if "aggregator.mask_fusion.gate" in shape else "override"
    if "aggregator.mask_head.fc1.weight" in shape or (page_layout and (copies or lambdas)):
        inferred["dynamic_bias"] = lambdas
    if page_layout and not copies and lambdas:
        # Two shared streams around PAGE-4D: no copies to count, the split is two_stream_config's.
        single = ModelConfig(depth=inferred["depth"], page4d_mask=inferred["page4d_mask"])
        inferred.update(stream_split=two_stream_config(single).stream_split, stream_mode="shared")

    inferred["camera_head"] = "camera_head.trunk_norm.weight" in shape
    if inferred["camera_head"]:
        inferred["camera_trunk_depth"] = len(_indices(keys, "camera_head.trunk"))
        inferred["camera_num_heads"] = heads
        inferred["camera_mlp_ratio"] = shape["camera_head.trunk.0.mlp.fc1.weight"][0] / (2 * dim)

    inferred["depth_head"] = "depth_head.norm.weight" in shape
    inferred["point_head"] = "point_head.norm.weight" in shape
    dpt = "depth_head" if inferred["depth_head"] else "point_head" if inferred["point_head"] else None
    extractor = "track_head.feature_extractor" if "track_head.feature_extractor.norm.weight" in shape else None
    sized = dpt or extractor
    if sized:
        inferred["dpt_out_channels"] = tuple(shape[f"{sized}.projects.{i}.weight"][0] for i in range(4))
        inferred["dpt_intermediate_layers"] = scaled_dpt_layers(inferred["depth"])
    if dpt:
        inferred["dpt_features"] = shape[f"{dpt}.scratch.layer1_rn.weight"][0]

    inferred["track_head"] = extractor is not None
    if extractor:
        tracker = "track_head.tracker"
        inferred["track_features"] = shape[f"{extractor}.scratch.layer1_rn.weight"][0]
        inferred["track_hidden_size"] = shape[f"{tracker}.updateformer.input_transform.weight"][0]
        radius = overrides.get("track_corr_radius", 4)
        inferred["track_corr_levels"] = shape[f"{tracker}.corr_mlp.fc1.weight"][1] // (2 * radius + 1) ** 2
        inferred["tracker_depth"] = len(_indices(keys, f"{tracker}.updateformer.time_blocks"))
        inferred["tracker_num_virtual_tracks"] = shape[f"{tracker}.updateformer.virual_tracks"][1]
        inferred["track_predict_conf"] = f"{tracker}.conf_predictor.0.weight" in shape

    inferred.update(overrides)
    return ModelConfig(**inferred)
