"""load_pretrained: VGGT-layout checkpoints in every common wrapping, and clear errors for bad files."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vggt_t_mv import VGGTTMV, CheckpointError, ModelConfig, load_pretrained


def upstream_layout_state(model: VGGTTMV) -> dict[str, torch.Tensor]:
    """The model's weights under upstream VGGT names (frame_blocks / global_blocks)."""
    renamed = {}
    for key, value in model.state_dict().items():
        key = key.replace("aggregator.time_blocks.", "aggregator.frame_blocks.")
        key = key.replace("aggregator.view_blocks.", "aggregator.global_blocks.")
        renamed[key] = value.clone()
    return renamed


@pytest.fixture(scope="module")
def source() -> VGGTTMV:
    torch.manual_seed(1)
    return VGGTTMV(ModelConfig.tiny())


def assert_same_weights(a: VGGTTMV, b: VGGTTMV) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: sd,
        lambda sd: {"model": sd, "epoch": 150},
        lambda sd: {"state_dict": sd},
        lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}},
        lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},
    ],
    ids=["bare", "model", "state_dict", "ddp-prefix", "compile-prefix"],
)
def test_pt_checkpoints_load_completely(source: VGGTTMV, tmp_path: Path, wrap) -> None:
    path = tmp_path / "checkpoint_150.pt"
    torch.save(wrap(upstream_layout_state(source)), path)
    target = VGGTTMV(ModelConfig.tiny())
    report = load_pretrained(target, path, strict=True)
    assert report.ok and not report.missing and not report.unexpected
    assert report.loaded["aggregator.time_blocks.0.attn.qkv.weight"] == "aggregator.time_blocks.0.attn.qkv.weight"
    assert_same_weights(source, target)


def test_safetensors_in_half_precision_is_cast(source: VGGTTMV, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in upstream_layout_state(source).items()}, str(path))
    target = VGGTTMV(ModelConfig.tiny())
    load_pretrained(target, path, strict=True)
    weight = target.aggregator.view_blocks[0].attn.qkv.weight
    assert weight.dtype == torch.float32
    torch.testing.assert_close(weight, source.aggregator.view_blocks[0].attn.qkv.weight, rtol=1e-2, atol=1e-2)


def test_missing_unexpected_and_mismatched_tensors_are_reported(source: VGGTTMV, tmp_path: Path) -> None:
    state = upstream_layout_state(source)
    del state["camera_head.empty_pose_tokens"]
    state["extra.weight"] = torch.zeros(2)
    state["aggregator.camera_token"] = torch.zeros(1, 2, 1, 7)
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path))
    target = VGGTTMV(ModelConfig.tiny())
    report = load_pretrained(target, path)
    assert report.missing == ["camera_head.empty_pose_tokens"]
    assert report.unexpected == ["extra.weight"]
    assert report.mismatched == {"aggregator.camera_token": ((1, 2, 1, 64), (1, 2, 1, 7))}
    with pytest.raises(ValueError, match="strict load"):
        load_pretrained(target, path, strict=True)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="nope.pt does not exist"):
        load_pretrained(VGGTTMV(ModelConfig.tiny()), tmp_path / "nope.pt")


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="is a directory"):
        load_pretrained(VGGTTMV(ModelConfig.tiny()), tmp_path)


@pytest.mark.parametrize("name", ["broken.pt", "broken.safetensors"])
def test_truncated_file_is_named(source: VGGTTMV, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.endswith(".pt"):
        torch.save(upstream_layout_state(source), path)
    else:
        save_file(upstream_layout_state(source), str(path))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(CheckpointError, match=name):
        load_pretrained(VGGTTMV(ModelConfig.tiny()), path)


def test_pickled_objects_are_refused_with_a_conversion_hint(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    torch.save({"model": {}, "args": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_pretrained(VGGTTMV(ModelConfig.tiny()), path)
