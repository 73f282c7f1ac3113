"""Freeze policies leave exactly the right parameters trainable."""

from __future__ import annotations

import pytest

from vggt_t_mv import VGGTTMV, ModelConfig, load_pretrained
from vggt_t_mv.train.freeze import apply_freeze_policy


@pytest.fixture(scope="module")
def loaded():
    """A tiny two-stream model filled from a single-stream checkpoint: the new two-stream parameters have no source."""
    source = VGGTTMV(ModelConfig.tiny()).state_dict()
    model = VGGTTMV(ModelConfig.tiny_two_stream())
    report = load_pretrained(model, checkpoint=source, checkpoint_layout="ours")
    return model, report


def trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def test_new_policy_trains_only_parameters_without_a_source(loaded) -> None:
    model, report = loaded
    summary = apply_freeze_policy(model, "new", report.new)
    names = trainable(model)
    assert names == set(report.new)
    assert names >= {"aggregator.lambda_pose_raw", "aggregator.lambda_geo_raw", "aggregator.mask_fusion.gate"}
    assert any(n.startswith("aggregator.mask_head.") for n in names)
    assert summary.num_trainable == sum(p.numel() for n, p in model.named_parameters() if n in names)
    assert "new" in summary.table() and "trainable" in summary.table()


def test_streams_policy_adds_everything_from_l_mid_on(loaded) -> None:
    model, report = loaded
    apply_freeze_policy(model, "streams", report.new)
    names = trainable(model)
    split = model.cfg.stream_split
    assert set(report.new) <= names
    for name, _ in model.named_parameters():
        stream_block = any(
            name.startswith(f"aggregator.{s}_{k}_blocks.") for s in ("pose", "geo") for k in ("time", "view")
        )
        head = name.split(".")[0] in ("camera_head", "depth_head", "point_head")
        if stream_block or head:
            assert name in names, name
        elif name.startswith(("aggregator.time_blocks.", "aggregator.view_blocks.")):
            assert (int(name.split(".")[2]) >= split) == (name in names), name
        elif name.startswith(("aggregator.patch_embed.", "track_head.")):
            assert name not in names, name


def test_all_policy_trains_everything_but_the_unused_track_head(loaded) -> None:
    model, _ = loaded
    summary = apply_freeze_policy(model, "all", None)
    names = trainable(model)
    expected = {n for n, _ in model.named_parameters() if not n.startswith("track_head.")}
    assert names == expected
    assert summary.num_total == sum(p.numel() for p in model.parameters())


def test_new_policy_with_nothing_loaded_trains_everything(loaded) -> None:
    model, _ = loaded
    apply_freeze_policy(model, "new", None)
    assert trainable(model) == {n for n, _ in model.named_parameters() if not n.startswith("track_head.")}


def test_unknown_policy_is_an_error(loaded) -> None:
    with pytest.raises(ValueError, match="freeze policy"):
        apply_freeze_policy(loaded[0], "half", None)
