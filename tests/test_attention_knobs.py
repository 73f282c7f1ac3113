"""The efficiency knobs of ModelConfig (``time_window``, ``kv_pool``, ``factorized_layers``): off by default, checked,
round-tripping; at full reach they are the full model; ``time_window = k`` attends exactly the frames within +-k;
pooled keys are the mean logit (+ log count) of their patches, special tokens never pooled; layer pairs outside
``factorized_layers`` run per-frame attention only. The no-L x L check for every knob is in test_page4d.py, the
reference fixtures at full reach in test_vggt_equivalence.py."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from vggt_t_mv import VGGTTMV, ModelConfig, PageMaskConfig, infer_config, load_pretrained, two_stream_config
from vggt_t_mv.layers.block import Attention
from vggt_t_mv.layers.rope import frame_positions, rope_table
from vggt_t_mv.layers.sparse import FramePattern, key_pooling

KNOB_FIELDS = ("time_window", "kv_pool", "kv_pool_kinds", "factorized_layers")


def tiny_models() -> dict[str, ModelConfig]:
    page4d = dataclasses.replace(ModelConfig.tiny(), page4d_mask=PageMaskConfig.fin10(4), external_masks="override")
    return {
        "vggt": ModelConfig.tiny(),
        "two-stream-shared": ModelConfig.tiny_two_stream("shared"),
        "two-streams-around-page4d": two_stream_config(page4d),
    }


# ------------------------------------------------------------------------------------------------ config
def test_knobs_are_off_by_default_and_round_trip_through_json() -> None:
    default = ModelConfig()
    assert (default.time_window, default.kv_pool, default.factorized_layers) == (None, 1, None)
    assert default.describe_efficiency() == "" and default.describe() == "VGGT"
    cfg = dataclasses.replace(
        ModelConfig.tiny(), time_window=2, kv_pool=2, kv_pool_kinds=("time",), factorized_layers=(3, 0)
    )
    data = cfg.to_dict()
    assert (data["time_window"], data["kv_pool"], data["kv_pool_kinds"], data["factorized_layers"]) == (
        2,
        2,
        ["time"],
        [0, 3],
    )
    assert ModelConfig.from_dict(data) == cfg
    assert cfg.describe() == (
        "VGGT; Time-SA within +-2 timesteps; Time-SA keys/values pooled 2x2; time/view attention in layer pairs 0,3 "
        "of 4 (per-frame elsewhere)"
    )


@pytest.mark.parametrize(
    ("field", "value", "fix"),
    [
        ("time_window", -1, "use null/None for full Time-SA"),
        ("time_window", 1.5, "use null/None for full Time-SA"),
        ("kv_pool", 0, r"1: no pooling"),
        ("kv_pool_kinds", (), 'e.g. \\["time"\\]'),
        ("kv_pool_kinds", ("time", "time"), "once each"),
        ("kv_pool_kinds", ("space",), "use one of"),
        ("factorized_layers", (0, 4), r"\[0, depth\) = \[0, 4\)"),
        ("factorized_layers", (1, 1), "distinct"),
    ],
)
def test_bad_knob_values_name_the_option_the_value_and_the_fix(field: str, value: object, fix: str) -> None:
    with pytest.raises(ValueError, match=fix) as error:
        ModelConfig.from_dict({**ModelConfig.tiny().to_dict(), field: value})
    assert field.split("_")[0] in str(error.value) or "attention kind" in str(error.value)


def test_a_time_window_needs_time_sa() -> None:
    with pytest.raises(ValueError, match="time_window=1 needs Time-SA.*drop time_window"):
        dataclasses.replace(ModelConfig.tiny(), aa_order=("view",), time_window=1)


def test_any_checkpoint_loads_with_the_knobs_and_infer_config_never_turns_them_on() -> None:
    knobbed = dataclasses.replace(ModelConfig.tiny(), time_window=1, kv_pool=2, factorized_layers=(0,))
    state = VGGTTMV(ModelConfig.tiny()).state_dict()
    assert VGGTTMV(knobbed).state_dict().keys() == state.keys()  # no new parameters
    report = load_pretrained(VGGTTMV(knobbed), state, strict=True)
    assert report.ok and not report.new, report.table()
    inferred = infer_config(state)
    assert all(getattr(inferred, name) == getattr(ModelConfig(), name) for name in KNOB_FIELDS)


# ---------------------------------------------------------------------------------------- full reach
@pytest.mark.parametrize("name", list(tiny_models()))
def test_knobs_at_full_reach_give_the_full_model(name: str) -> None:
    """time_window >= T - 1 (every window holds every timestep), kv_pool = 1, every layer pair factorized: the same
    outputs as the default model, through the windowed code path."""
    torch.manual_seed(0)
    cfg = tiny_models()[name]
    full = VGGTTMV(cfg).eval()
    if cfg.two_streams and cfg.dynamic_bias:
        full.aggregator.set_lambdas(2.0, 3.0)  # biases big enough to matter
    images = torch.rand(1, 3, 2, 3, 28, 42)
    with torch.no_grad():
        expected = full(images)
        for window in (2, 5):
            knobbed = VGGTTMV(
                dataclasses.replace(cfg, time_window=window, kv_pool=1, factorized_layers=tuple(range(cfg.depth)))
            ).eval()
            knobbed.load_state_dict(full.state_dict())
            ours = knobbed(images)
            for key in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf"):
                torch.testing.assert_close(ours[key], expected[key], rtol=1e-5, atol=1e-5, msg=key)


# ------------------------------------------------------------------------------------- the window
def windowed_block_output(attn: Attention, x: torch.Tensor, bias: torch.Tensor, pattern: FramePattern) -> torch.Tensor:
    """Attention output per frame ``[B, F, P, C]`` for tokens ``x [B, F*P, C]``."""
    out = attn(x, key_bias=bias, pattern=pattern)
    return out.view(x.shape[0], pattern.frames, pattern.per_frame, -1)


@pytest.mark.parametrize("pool", [1, 2])
def test_time_window_attends_exactly_the_timesteps_within_k(pool: int) -> None:
    torch.manual_seed(0)
    frames, special, grid_hw, window = 7, 2, (3, 4), 1
    per_frame = special + grid_hw[0] * grid_hw[1]
    attn = Attention(32, 4, qk_norm=True).eval()
    pooling = key_pooling(grid_hw, pool, special) if pool > 1 else None
    pattern = FramePattern(frames, per_frame, window=window, pooling=pooling)
    x = torch.randn(2, frames * per_frame, 32)
    bias = torch.randn(2, frames * per_frame)
    with torch.no_grad():
        before = windowed_block_output(attn, x, bias, pattern)
        moved_x, moved_bias = x.clone(), bias.clone()
        frame_4 = slice(4 * per_frame, 5 * per_frame)
        moved_x[:, frame_4] += torch.randn_like(moved_x[:, frame_4])
        moved_bias[:, frame_4] += 3.0
        after = windowed_block_output(attn, moved_x, moved_bias, pattern)
    changed = (after - before).abs().amax(dim=(0, 2, 3))  # per query frame
    # Frames 0-2 have windows [0, 1], [0, 2], [1, 3]: frame 4 is outside them; frames 3-5 see it (and 4 is itself).
    assert changed[:3].max() == 0, changed
    assert (changed[3:6] > 1e-3).all(), changed
    assert changed[6] == 0, changed
    only_bias = windowed_block_output(attn, x, moved_bias, pattern)
    changed_by_bias = (only_bias - before).abs().amax(dim=(0, 2, 3))
    assert changed_by_bias[[0, 1, 2, 6]].max() == 0 and (changed_by_bias[3:6] > 1e-4).all(), changed_by_bias


def reference_attention(
    attn: Attention,
    x: torch.Tensor,
    rope,
    bias: torch.Tensor,
    frames: int,
    special: int,
    groups: list[list[int]],
    window,
) -> torch.Tensor:
    """The knobs' definition written out with an explicit L x L logit matrix: a pooled key's logit is the mean of its
    patches' logits (each at its own RoPE position) + the mean bias + log(count), its value the mean value; keys
    outside the query's window of frames are masked."""
    batch, length, dim = x.shape
    per_frame = length // frames
    q, k, v = attn._qkv(x, rope)
    logits = q @ k.transpose(-1, -2) / math.sqrt(attn.head_dim) + bias[:, None, None, :]  # [B, H, L, L]
    columns, values = [], []
    for frame in range(frames):
        start = frame * per_frame
        for token in range(special):
            columns.append(logits[..., start + token])
            values.append(v[:, :, start + token])
        for members in groups:
            ids = [start + special + m for m in members]
            columns.append(logits[..., ids].mean(-1) + math.log(len(ids)))
            values.append(v[:, :, ids].mean(-2))
    pooled_logits, pooled_values = torch.stack(columns, -1), torch.stack(values, -2)  # [B, H, L, F*K], [B, H, F*K, D]
    keys = pooled_logits.shape[-1] // frames
    if window is not None:
        query_frame = torch.arange(length) // per_frame
        key_frame = torch.arange(frames * keys) // keys
        outside = (query_frame[:, None] - key_frame[None, :]).abs() > window
        pooled_logits = pooled_logits.masked_fill(outside, -math.inf)
    out = pooled_logits.softmax(-1) @ pooled_values
    return attn.proj(out.transpose(1, 2).reshape(batch, length, dim))


@pytest.mark.parametrize(("pool", "window"), [(2, None), (2, 1), (3, 0), (1, 2)])
def test_pooled_and_windowed_attention_follow_their_definition(pool: int, window: int | None) -> None:
    torch.manual_seed(0)
    frames, special, grid_hw = 5, 3, (3, 5)  # 3 x 5 patches: groups at the right and bottom edges are smaller
    per_frame = special + grid_hw[0] * grid_hw[1]
    attn = Attention(32, 4, qk_norm=True).double().eval()
    rope = rope_table(frame_positions(*grid_hw, special), 8, 100.0, torch.float64).repeat(frames)
    x = torch.randn(2, frames * per_frame, 32, dtype=torch.float64)
    bias = torch.randn(2, frames * per_frame, dtype=torch.float64)
    groups: list[list[int]] = [
        [
            r * grid_hw[1] + c
            for r in range(gr, min(gr + pool, grid_hw[0]))
            for c in range(gc, min(gc + pool, grid_hw[1]))
        ]
        for gr in range(0, grid_hw[0], pool)
        for gc in range(0, grid_hw[1], pool)
    ]
    pooling = key_pooling(grid_hw, pool, special) if pool > 1 else None
    pattern = FramePattern(frames, per_frame, window=window, pooling=pooling)
    with torch.no_grad():
        ours = attn(x, rope=rope, key_bias=bias, pattern=pattern)
        expected = reference_attention(attn, x, rope, bias, frames, special, groups, window)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)


def test_the_window_holds_in_the_time_blocks_of_a_two_stream_model_with_its_dynamic_bias() -> None:
    """Aggregator level: a Time-SA block with the per-stream key bias; moving timestep 3 of camera 0 (tokens and
    dynamic mask) leaves the Time-SA outputs at timesteps 0, 1 and 5 unchanged and changes timesteps 2-4."""
    torch.manual_seed(0)
    cfg = dataclasses.replace(ModelConfig.tiny_two_stream("shared"), time_window=1)
    agg = VGGTTMV(cfg).eval().aggregator
    agg.set_lambdas(2.0, 2.0)
    times, views = 6, 2
    with torch.no_grad():
        tokens = agg.embed(torch.rand(1, times, views, 3, 28, 42))
        grid = tuple(tokens.shape[:4])
        mask = torch.rand(1, times * views, 6)
        pose_bias, _ = agg._stream_key_bias(mask, grid)
        rope = agg.rope_for((28, 42), tokens.device)
        pattern = agg._pattern("time", times, views, grid[3], None)
        assert pattern is not None and pattern.window == 1
        block = agg.time_blocks[cfg.stream_split]
        before = agg._run_block(block, "time", tokens, rope, pose_bias, None, pattern)
        moved_tokens, moved_mask = tokens.clone(), mask.clone()
        moved_tokens[:, 3, 0] += torch.randn_like(moved_tokens[:, 3, 0])
        moved_mask[:, 3 * views + 0] = 1.0 - moved_mask[:, 3 * views + 0]
        moved_bias, _ = agg._stream_key_bias(moved_mask, grid)
        after = agg._run_block(block, "time", moved_tokens, rope, moved_bias, None, pattern)
    changed = (after - before).abs().amax(dim=(0, 3, 4))  # [T, N]
    assert changed[0:2, 0].max() == 0 and changed[5, 0] == 0, changed
    assert (changed[2:5, 0] > 1e-4).all(), changed
    assert changed[:, 1].max() == 0, changed  # Time-SA never mixes cameras


# ---------------------------------------------------------------------------------- factorized layers
def test_layer_pairs_outside_factorized_layers_attend_within_each_frame_only() -> None:
    torch.manual_seed(0)
    cfg = dataclasses.replace(tiny_models()["two-streams-around-page4d"], factorized_layers=(2,))
    agg = VGGTTMV(cfg).eval().aggregator
    images = torch.rand(1, 2, 2, 3, 28, 42)
    moved = images.clone()
    moved[:, 1, 1] = torch.rand_like(moved[:, 1, 1])  # frame (t=1, n=1) only
    with torch.no_grad():
        before, after = agg(images, layers="all"), agg(moved, layers="all")
    for index in range(cfg.depth):
        for stream_before, stream_after in (
            (before.pose_layers, after.pose_layers),
            (before.geo_layers, after.geo_layers),
        ):
            frame_0 = (stream_after[index][:, 0] - stream_before[index][:, 0]).abs().max().item()
            if index < 2:  # per-frame attention (PAGE-4D's mask and camera-row bias too): frame (0, 0) untouched
                assert frame_0 == 0, (index, frame_0)
            else:  # layer pair 2 runs View-SA/Time-SA: from there on, every frame sees the change
                assert frame_0 > 1e-6, (index, frame_0)


def test_the_knobs_train_through_gradient_checkpointing() -> None:
    torch.manual_seed(0)
    cfg = dataclasses.replace(
        ModelConfig.tiny_two_stream("branched"), time_window=1, kv_pool=2, factorized_layers=(0, 2, 3)
    )
    model = VGGTTMV(cfg).train()
    preds = model(torch.rand(1, 3, 2, 3, 28, 42))
    (preds["depth"].mean() + preds["pose_enc"].square().mean()).backward()
    grads = [p.grad for p in model.aggregator.time_blocks.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
