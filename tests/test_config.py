"""ModelConfig: presets, JSON round trip, validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vggt_t_mv import VGGTTMV, ModelConfig, load_pretrained


def test_vggt_1b_preset_has_the_released_sizes() -> None:
    cfg = ModelConfig.vggt_1b()
    assert (cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.num_register_tokens) == (1024, 24, 16, 4)
    assert (cfg.dino_depth, cfg.dino_num_heads, cfg.patch_size, cfg.img_size) == (24, 16, 14, 518)
    assert cfg.dpt_features == 256
    assert cfg.dpt_out_channels == (256, 512, 1024, 1024)
    assert cfg.dpt_intermediate_layers == (4, 11, 17, 23)
    assert cfg.camera_trunk_depth == 4
    assert cfg.aa_order == ("time", "view")
    assert cfg.layers_read_by_heads() == (4, 11, 17, 23)


@pytest.mark.parametrize("preset", [ModelConfig.vggt_1b, ModelConfig.tiny])
def test_json_round_trip(preset, tmp_path: Path) -> None:
    cfg = preset()
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    cfg.to_json(tmp_path / "config.json")
    assert ModelConfig.from_json(tmp_path / "config.json") == cfg


def test_upstream_attention_names_are_accepted() -> None:
    assert ModelConfig(aa_order=["frame", "global"]).aa_order == ("time", "view")
    assert ModelConfig(aa_order=["global", "frame"]).aa_order == ("view", "time")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"aa_order": ("time", "time")}, "aa_order"),
        ({"aa_order": ("space",)}, "unknown attention kind"),
        ({"depth": 24, "aa_block_size": 5}, "divisible by aa_block_size"),
        ({"embed_dim": 100}, "divisible by num_heads"),
        ({"dpt_intermediate_layers": (4, 11, 17, 30)}, "out of range"),
    ],
)
def test_inconsistent_sizes_are_refused(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelConfig(**overrides)


@pytest.mark.parametrize(
    ("field", "value", "fix"),
    [
        ("depth_activation", "expo", "'exp', 'inv_log'"),
        ("point_activation", "log", "'exp', 'inv_log'"),
        ("conf_activation", "exp", "'expp1', 'expp0', 'sigmoid'"),
        ("fl_act", "softplus", "'linear', 'relu', 'exp'"),
    ],
)
def test_an_activation_the_heads_lack_is_refused_with_the_fix(field: str, value: str, fix: str) -> None:
    with pytest.raises(ValueError) as refused:
        ModelConfig.from_dict({field: value})
    assert f"{field} {value!r}" in str(refused.value) and fix in str(refused.value)


def test_unknown_fields_are_named() -> None:
    with pytest.raises(ValueError, match="embed_dimm"):
        ModelConfig.from_dict({"embed_dimm": 3})


def test_tiny_preset_has_the_layout_of_the_reference_tiny_vggt(reference_dir: Path) -> None:
    model = VGGTTMV(ModelConfig.tiny())
    report = load_pretrained(model, reference_dir / "vggt_tiny" / "weights.safetensors", strict=True)
    assert report.ok
    assert len(report.loaded) == len(model.state_dict())
