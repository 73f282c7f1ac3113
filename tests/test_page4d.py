"""PAGE-4D, the model family of checkpoint_150.pt: full-size layouts of both variants, the camera-row bias
(exact math, never an L x L tensor), two streams around PAGE-4D, external masks on a PAGE-4D model, and
checkpoints with a partial or unknown mask head. The upstream numerics are in test_vggt_equivalence.py."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.torch_modes import NoSequenceSquares
from tests.test_state_dict_layout import read_manifest
from vggt_t_mv import (
    VGGTTMV,
    CheckpointError,
    ModelConfig,
    PageMaskConfig,
    detect_layout,
    infer_config,
    load_pretrained,
    read_state_dict,
    two_stream_config,
)
from vggt_t_mv.aggregator import to_sequences
from vggt_t_mv.heads.mask import pool_to_patches
from vggt_t_mv.layers.block import Attention, RowBias
from vggt_t_mv.weights import rename_vggt_keys

MASK = "aggregator.spatial_mask_head."
FULL_SIZE = [
    ("page4d_fin10_1b.keys.tsv", "page4d_fin10", ModelConfig.page4d_fin10, 1805, 1_256_559_023),
    ("page4d_official_1b.keys.tsv", "page4d_official", ModelConfig.page4d, 1803, 1_256_810_413),
]


def meta_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    return {name: torch.empty(shape, device="meta") for name, shape in shapes.items()}


@pytest.mark.parametrize(("manifest", "layout", "preset", "tensors", "parameters"), FULL_SIZE)
def test_full_size_layouts_are_exactly_the_upstream_key_lists(
    reference_dir: Path, manifest: str, layout: str, preset, tensors: int, parameters: int
) -> None:
    upstream = read_manifest(reference_dir / manifest)
    state = meta_state(upstream)
    assert detect_layout(state) == layout
    cfg = infer_config(state)
    assert cfg == preset()
    renamed = rename_vggt_keys(state)
    expected = {name: tuple(t.shape) for name, t in renamed.items()}
    with torch.device("meta"):
        model = VGGTTMV(cfg)
    ours = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert sorted(set(expected) ^ set(ours)) == []
    assert {k: (v, expected[k]) for k, v in ours.items() if expected[k] != v} == {}
    assert len(ours) == tensors
    scalars = sorted(name for name, shape in expected.items() if shape == ())
    assert scalars == ([f"{MASK}alpha_logit", f"{MASK}tau_logit"] if layout == "page4d_fin10" else [])
    assert sum(p.numel() for p in model.parameters()) == parameters
    report = load_pretrained(model, state, strict=True)
    assert report.layouts == {"checkpoint": layout} and not report.new
    assert all(report.sources[n] == f"checkpoint:{n}" for n in ours if n.startswith(MASK))


def test_presets_name_the_upstream_layers() -> None:
    fin10, official = ModelConfig.page4d_fin10().page4d_mask, ModelConfig.page4d().page4d_mask
    assert (fin10.head, fin10.mask_layer, fin10.biased_view_layers, fin10.row_scale) == (
        "fin10",
        7,
        tuple(range(8, 24)),
        1.0,
    )
    assert (official.head, official.mask_layer, official.biased_view_layers) == ("official", 9, tuple(range(10, 20)))
    assert official.row_scale == 64.0 and ModelConfig.page4d(masking=False).page4d_mask.row_scale == 0.0
    cfg = ModelConfig.vggt_t_mv()
    assert cfg == two_stream_config(ModelConfig.page4d_fin10())
    assert (cfg.stream_split, cfg.stream_mode, cfg.page4d_mask) == (8, "branched", fin10)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


# ------------------------------------------------------------------------------------ the row bias
def test_row_bias_equals_an_explicit_rank_one_logit_bias() -> None:
    torch.manual_seed(0)
    attn = Attention(32, 4, qk_norm=True).double()
    batch, length = 3, 22
    x = torch.randn(batch, length, 32, dtype=torch.float64)
    key_bias = torch.randn(batch, length, dtype=torch.float64)
    rows = torch.tensor([0, 1, 11, 12])
    c = torch.randn(batch, length, dtype=torch.float64)
    ours = attn(x, key_bias=key_bias, row_bias=RowBias(rows, c))
    q, k, v = attn._qkv(x, None)
    r = torch.zeros(length, dtype=torch.float64)
    r[rows] = 1.0
    logits = q @ k.transpose(-1, -2) / math.sqrt(8) + key_bias[:, None, None, :] + r[:, None] * c[:, None, None, :]
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, 32)
    torch.testing.assert_close(ours, attn.proj(out), rtol=1e-10, atol=1e-10)


def tiny_page4d(head: str = "fin10", **overrides) -> ModelConfig:
    page = PageMaskConfig.fin10(4) if head == "fin10" else PageMaskConfig.official(4)
    fields = {"page4d_mask": page, "external_masks": "override", **overrides}
    return dataclasses.replace(ModelConfig.tiny(), **fields)


# The efficiency knobs (ModelConfig.time_window, kv_pool, factorized_layers) change which keys attention sees: none
# of them may build an L x L matrix either.
KNOBS = {
    "full": {},
    "time-window": {"time_window": 1},
    "kv-pool": {"kv_pool": 2},
    "factorized": {"factorized_layers": (1, 3)},
    "all-knobs": {"time_window": 0, "kv_pool": 2, "factorized_layers": (0, 2)},
}


@pytest.mark.parametrize(
    ("head", "knobs"), [("fin10", knobs) for knobs in KNOBS] + [("official", "full"), ("official", "all-knobs")]
)
@pytest.mark.parametrize("streams", ["one", "two-shared", "two-branched"])
def test_biased_layers_never_allocate_a_sequence_by_sequence_tensor(head: str, streams: str, knobs: str) -> None:
    torch.manual_seed(0)
    cfg = tiny_page4d(head, **KNOBS[knobs])
    if streams != "one":
        cfg = two_stream_config(cfg, stream_mode=streams.split("-")[1])
    model = VGGTTMV(cfg).eval()
    times, views, per_frame = 3, 2, cfg.num_special_tokens + 2 * 3
    images = torch.rand(1, times, views, 3, 28, 42)
    detector = NoSequenceSquares({times * per_frame, views * per_frame, per_frame})
    with torch.no_grad():
        tokens = model.aggregator.embed(images)
        with detector:
            out = model.aggregator.alternate(tokens, (28, 42))
        assert out.page_mask is not None and detector.calls > 100
        with pytest.raises(AssertionError, match="allocated"), detector:  # the detector does see L x L tensors
            block = model.aggregator.view_blocks[0]
            block.attn.attention_probs(to_sequences(tokens, "view"))


# --------------------------------------------------------------------------------- two streams
@pytest.fixture(scope="module")
def page4d_tiny(reference_dir: Path) -> Path:
    return reference_dir / "page4d_tiny"


def test_two_streams_around_the_checkpoint_reproduce_it_with_their_biases_off(page4d_tiny: Path) -> None:
    state = load_file(str(page4d_tiny / "weights.safetensors"))
    cfg = two_stream_config(infer_config(state), dynamic_bias=False)
    model = VGGTTMV(cfg).eval()
    report = load_pretrained(model, state)
    assert report.ok and report.unused == {"checkpoint": []}, report.table()
    mask_head = [name for name in report.sources if name.startswith(MASK)]
    assert len(mask_head) == 8 and all(report.sources[n] == f"checkpoint:{n}" for n in mask_head)
    assert report.new == ["aggregator.mask_fusion.gate"]
    stored = load_file(str(page4d_tiny / "io.safetensors"))
    with torch.no_grad():
        preds = model(stored["images"], query_points=stored["query_points"], return_stream_tokens=True)
    last = stored["aggregated_tokens"][-1]
    pairs = {"pose_tokens": last, "geo_tokens": last}
    pairs.update({key: stored[key] for key in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")})
    for key, expected in pairs.items():
        torch.testing.assert_close(preds[key], expected, rtol=1e-4, atol=1e-4, msg=key)


def key_mass(block, tokens: torch.Tensor, moving: torch.Tensor, key_bias, row_bias) -> float:
    """Mean attention mass (heads, queries) of a View-SA block on the moving keys."""
    probs = block.attn.attention_probs(block.norm1(tokens), None, key_bias, row_bias)
    return (probs * moving[:, None, None, :]).sum(-1).mean().item()


def test_pose_stream_still_looks_away_from_moving_keys_on_top_of_the_page4d_bias() -> None:
    torch.manual_seed(0)
    model = VGGTTMV(two_stream_config(tiny_page4d(), stream_mode="shared", lambda_max=10.0)).eval()
    agg = model.aggregator
    agg.set_lambdas(6.0, 6.0)
    grid, special = (1, 2, 2, 11), 5
    u = torch.zeros(1, 4, 6)
    u[..., [1, 4]] = 1.0  # two patches of every frame move
    moving = to_sequences(torch.nn.functional.pad(u, (special, 0)).view(grid), "view")
    with torch.no_grad():
        pose_bias, geo_bias = (to_sequences(b, "view") for b in agg._stream_key_bias(u, grid))
        page_bias = torch.nn.functional.pad(agg.spatial_mask_head.key_bias_from_suppression(u), (special, 0))
        rows = torch.tensor([0, 1, 2, 3, 4, 11, 12, 13, 14, 15])
        row_bias = RowBias(rows, to_sequences(page_bias.view(grid), "view"))
        tokens = to_sequences(agg.embed(torch.rand(1, 2, 2, 3, 28, 42)), "view")
        block = agg.view_blocks[model.cfg.stream_split]
        neutral = key_mass(block, tokens, moving, None, row_bias)
        pose = key_mass(block, tokens, moving, pose_bias, row_bias)
        geo = key_mass(block, tokens, moving, geo_bias, row_bias)
    assert pose < 0.1 * neutral, (pose, neutral)
    assert geo > neutral and geo > 0.5, (geo, neutral)
    assert key_mass(block, tokens, moving, None, None) > neutral  # PAGE-4D's own bias also looks away


def test_page4d_mask_is_the_suppression_and_drives_the_stream_biases() -> None:
    torch.manual_seed(0)
    model = VGGTTMV(two_stream_config(tiny_page4d(), stream_mode="shared")).eval()
    model.aggregator.set_lambdas(3.0, 3.0)
    images = torch.rand(1, 2, 2, 3, 28, 42)
    with torch.no_grad():
        preds = model(images, return_stream_tokens=True)
        out = model.aggregator(images)
    u = out.page_mask.suppression  # [1, 4, 6]
    assert preds["dynamic_mask"].shape == (1, 2, 2, 28, 42)
    torch.testing.assert_close(pool_to_patches(preds["dynamic_mask"].flatten(1, 2), 14), u)
    torch.testing.assert_close(torch.sigmoid(preds["dynamic_mask_logits"]), preds["dynamic_mask"])
    assert (preds["pose_tokens"] - preds["geo_tokens"]).abs().amax() > 1e-3


# ---------------------------------------------------------------------------- external masks
@pytest.mark.parametrize("head", ["fin10", "official"])
def test_override_replaces_the_suppression_that_biases_the_camera_rows(head: str) -> None:
    torch.manual_seed(0)
    model = VGGTTMV(tiny_page4d(head)).eval()
    images = torch.rand(1, 2, 2, 3, 28, 42)
    with torch.no_grad():
        plain = model(images)
        same = model(images, masks=plain["dynamic_mask"])
        moving = torch.zeros(1, 2, 2, 28, 42)
        moving[..., :14, :] = 1.0
        other = model(images, masks=moving)
    # u -> pixels -> patches -> c is a float round trip (times alpha = 64 in the official head)
    torch.testing.assert_close(same["pose_enc"], plain["pose_enc"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(other["dynamic_mask"], moving)
    assert (other["pose_enc"] - plain["pose_enc"]).abs().max() > 1e-3


def test_fuse_on_a_page4d_model_blends_with_the_gate() -> None:
    torch.manual_seed(0)
    model = VGGTTMV(tiny_page4d(external_masks="fuse")).eval()
    images, masks = torch.rand(1, 2, 2, 3, 28, 42), torch.ones(1, 2, 2, 28, 42)
    with torch.no_grad():
        plain, closed = model(images), model(images, masks=masks)
        model.aggregator.mask_fusion.gate.fill_(0.5)
        half = model(images, masks=masks)
    torch.testing.assert_close(closed["pose_enc"], plain["pose_enc"], rtol=1e-5, atol=1e-5)  # untrained gate: ignored
    torch.testing.assert_close(half["dynamic_mask"], 0.5 * plain["dynamic_mask"] + 0.5)
    assert (half["pose_enc"] - plain["pose_enc"]).abs().max() > 1e-5


# ------------------------------------------------------------------------------- bad checkpoints
@pytest.fixture(scope="module")
def fin10_state(page4d_tiny: Path) -> dict[str, torch.Tensor]:
    return load_file(str(page4d_tiny / "weights.safetensors"))


def test_a_partial_mask_head_is_named_and_refused_under_strict(fin10_state: dict[str, torch.Tensor]) -> None:
    partial = {k: v for k, v in fin10_state.items() if k not in (f"{MASK}tau_logit", f"{MASK}head0.4.bias")}
    model = VGGTTMV(infer_config(partial))
    report = load_pretrained(model, partial)
    assert not report.ok and len(report.problems) == 1
    assert f"{MASK}tau_logit" in report.problems[0] and f"{MASK}head0.4.bias" in report.problems[0]
    assert "problem:" in report.table()
    with pytest.raises(CheckpointError, match="spatial_mask_head is incomplete"):
        load_pretrained(VGGTTMV(infer_config(partial)), partial, strict=True)


def test_a_mask_head_of_unknown_shape_is_named_and_refused_under_strict(fin10_state: dict[str, torch.Tensor]) -> None:
    odd = dict(fin10_state)
    odd[f"{MASK}head0.2.weight"] = torch.zeros(64, 2, 3, 3)
    assert detect_layout(odd) == "vggt"
    model = VGGTTMV(infer_config(odd))
    report = load_pretrained(model, odd)
    assert not report.ok and "no known PAGE-4D head layout" in report.problems[0]
    assert f"{MASK}head0.2.weight" in report.problems[0] and f"{MASK}head0.2.weight" in report.unused["checkpoint"]
    with pytest.raises(CheckpointError, match="no known PAGE-4D head layout"):
        load_pretrained(VGGTTMV(infer_config(odd)), odd, strict=True)


def test_the_other_variants_head_does_not_load_silently(fin10_state: dict[str, torch.Tensor]) -> None:
    report = load_pretrained(VGGTTMV(tiny_page4d("official")), fin10_state)
    assert not report.ok and report.mismatches and "spatial_mask_head" in report.problems[0]


def test_trainer_checkpoint_reads_weights_only_and_ignores_the_other_entries(
    fin10_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([param])
    param.sum().backward()
    optimizer.step()
    path = tmp_path / "checkpoint_150.pt"
    torch.save({"model": fin10_state, "optimizer": optimizer.state_dict(), "prev_epoch": 150, "steps": 9000}, path)
    state = read_state_dict(path)
    assert sorted(state) == sorted(fin10_state)
    report = load_pretrained(VGGTTMV(infer_config(state)), path, strict=True)
    assert report.layouts == {"checkpoint": "page4d_fin10"} and not report.new
    torch.save({"model": fin10_state, "args": argparse.Namespace(lr=1e-4)}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="pickled"):
        read_state_dict(tmp_path / "pickled.pt")
