"""load_pretrained: VGGT-layout checkpoints in every common wrapping, and clear errors for bad files."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vggt_t_mv import VGGTTMV, CheckpointError, ModelConfig, load_pretrained, save_pretrained
from vggt_t_mv.weights import Mismatch


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
    assert report.ok and not report.new and not report.unexpected
    assert report.layouts == {"checkpoint": "vggt"}
    qkv = report.sources["aggregator.time_blocks.0.attn.qkv.weight"]
    assert qkv == "checkpoint:aggregator.frame_blocks.0.attn.qkv.weight"
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
    assert report.new == ["aggregator.camera_token", "camera_head.empty_pose_tokens"]
    assert report.unused == {"checkpoint": ["aggregator.camera_token", "extra.weight"]}
    assert report.mismatches == [
        Mismatch("aggregator.camera_token", "checkpoint", "aggregator.camera_token", (1, 2, 1, 64), (1, 2, 1, 7))
    ]
    assert "shape mismatch: aggregator.camera_token expects [1, 2, 1, 64]" in report.table()
    with pytest.raises(CheckpointError, match="strict load failed"):
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


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    marker = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickled_objects_are_refused_without_running_them(tmp_path: Path) -> None:
    path = tmp_path / "pickled.pt"
    payload = _Payload()
    payload.marker = str(tmp_path / "code-ran")
    torch.save({"model": {}, "args": argparse.Namespace(lr=1e-4), "payload": payload}, path)
    with pytest.raises(CheckpointError, match="never loaded"):
        load_pretrained(VGGTTMV(ModelConfig.tiny()), path)
    assert not (tmp_path / "code-ran").exists()


def test_a_file_that_is_no_checkpoint_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights")
    with pytest.raises(CheckpointError, match="notes.pth could not be read"):
        load_pretrained(VGGTTMV(ModelConfig.tiny()), path)


def test_save_and_from_pretrained_round_trip_exactly(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = VGGTTMV(ModelConfig.tiny_two_stream())
    folder = save_pretrained(model, tmp_path / "run")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    again = VGGTTMV.from_pretrained(folder)
    assert again.cfg == model.cfg
    assert_same_weights(model, again)
    report = load_pretrained(VGGTTMV(model.cfg), folder)
    assert report.layouts == {"checkpoint": "ours"} and report.ok and not report.new


def test_saved_folder_with_another_format_version_is_refused(tmp_path: Path) -> None:
    folder = save_pretrained(VGGTTMV(ModelConfig.tiny()), tmp_path / "run")
    (folder / "config.json").write_text('{"format_version": 99, "model": {}}')
    with pytest.raises(CheckpointError, match="format_version 99"):
        VGGTTMV.from_pretrained(folder)
