"""Compatibility mode reproduces upstream VGGT: a 5-D input [B, S, ...] runs as T=1, N=S and matches
the stored outputs of the upstream model, tensor by tensor. The same holds through a two-stream model
(shared or branched blocks) when the dynamic bias is off: both streams then compute VGGT's layers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import fixture_config
from vggt_t_mv import VGGTTMV, load_pretrained
from vggt_t_mv.geometry import pose_encoding_to_extri_intri
from vggt_t_mv.layers.rope import frame_positions

ATOL = 1e-4
INPUT_KEYS = {"images", "query_points"}


NEW_IN_TWO_STREAMS = ("aggregator.mask_head.", "aggregator.mask_fusion.")


@pytest.fixture(scope="module", params=["single-stream", "two-stream-shared", "two-stream-branched"])
def model(request: pytest.FixtureRequest, vggt_fixture_dir: Path) -> VGGTTMV:
    cfg = fixture_config(vggt_fixture_dir)
    if request.param != "single-stream":
        mode = request.param.rsplit("-", 1)[1]
        cfg = dataclasses.replace(cfg, stream_split=cfg.depth // 2, stream_mode=mode, dynamic_bias=False)
    model = VGGTTMV(cfg).eval()
    strict = request.param == "single-stream"
    report = load_pretrained(model, vggt_fixture_dir / "weights.safetensors", strict=strict)
    assert not report.unexpected and not report.mismatched, report.summary()
    assert all(name.startswith(NEW_IN_TWO_STREAMS) for name in report.missing), report.missing
    return model


def our_tensors(model: VGGTTMV, images: torch.Tensor, query_points: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every quantity the fixtures store, computed by our model from a 5-D input."""
    batch, frames, _, height, width = images.shape
    agg_module = model.aggregator
    grid_h, grid_w = height // model.cfg.patch_size, width // model.cfg.patch_size
    with torch.no_grad():
        preds = model(images, query_points=query_points)
        aggregated = agg_module(images.unsqueeze(1), layers="all")
        for pose_layer, geo_layer in zip(aggregated.pose_layers, aggregated.geo_layers, strict=True):
            torch.testing.assert_close(pose_layer, geo_layer, rtol=0, atol=0)
        tokens_in = agg_module.embed(images.unsqueeze(1)).flatten(0, 2)
        patch_tokens = tokens_in[:, agg_module.patch_start_idx :]
        positions = frame_positions(grid_h, grid_w, agg_module.patch_start_idx)
        track_features = model.track_head.feature_extractor(
            aggregated.layers, (height, width), aggregated.patch_start_idx
        )
    extrinsic, intrinsic = pose_encoding_to_extri_intri(preds["pose_enc"], (height, width))
    ours = {key: value for key, value in preds.items() if isinstance(value, torch.Tensor)}
    ours.update(
        pose_enc_list=torch.stack(preds["pose_enc_list"]),
        track_list=torch.stack(preds["track_list"]),
        aggregated_tokens=torch.stack(aggregated.layers),
        patch_start_idx=torch.tensor(aggregated.patch_start_idx),
        patch_tokens=patch_tokens,
        dino_pos_embed=agg_module.patch_embed.interpolate_pos_encoding(grid_h, grid_w, torch.float32),
        tokens_in=tokens_in,
        pos=positions.expand(batch * frames, -1, -1),
        track_feature_maps=track_features,
        extrinsic=extrinsic,
        intrinsic=intrinsic,
    )
    return ours


@pytest.mark.parametrize("io_name", ["io.safetensors", "io_s1.safetensors"])
def test_every_stored_tensor_matches_upstream(model: VGGTTMV, vggt_fixture_dir: Path, io_name: str) -> None:
    stored = load_file(str(vggt_fixture_dir / io_name))
    ours = our_tensors(model, stored["images"], stored["query_points"])
    unknown = sorted(set(stored) - INPUT_KEYS - set(ours))
    assert not unknown, f"fixture tensors this test does not know how to compute: {unknown}"
    report = {}
    for key in sorted(set(stored) - INPUT_KEYS):
        expected, actual = stored[key], ours[key]
        assert tuple(actual.shape) == tuple(expected.shape), (
            f"{key}: shape {tuple(actual.shape)} vs {tuple(expected.shape)}"
        )
        if not expected.is_floating_point():
            assert torch.equal(actual.to(expected.dtype), expected), key
            continue
        report[key] = (actual - expected).abs().max().item()
    failing = {key: diff for key, diff in report.items() if not diff <= ATOL}
    print(f"{io_name} max abs diff:", {key: f"{diff:.1e}" for key, diff in report.items()})
    assert not failing, f"max abs diff above {ATOL}: {failing}"


def test_6d_input_with_one_timestep_equals_5d(model: VGGTTMV, vggt_fixture_dir: Path) -> None:
    stored = load_file(str(vggt_fixture_dir / "io.safetensors"))
    images, queries = stored["images"], stored["query_points"]
    with torch.no_grad():
        flat = model(images, query_points=queries)
        grid = model(images.unsqueeze(1), query_points=queries)
    for key in flat.keys():
        if key in ("pose_enc_list", "track_list"):
            for a, b in zip(flat[key], grid[key], strict=True):
                torch.testing.assert_close(b.squeeze(1), a, rtol=0, atol=0)
        elif key == "images":
            continue
        else:
            assert grid[key].shape[:3] == (1, 1, images.shape[1]), key
            torch.testing.assert_close(grid[key].squeeze(1), flat[key], rtol=0, atol=0)
