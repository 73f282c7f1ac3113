"""Two streams from L_mid on: the dynamic-mask attention bias, its direction and gradients, the mask
head, external-mask fusion, and equivalence with one stream when the bias is off."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from vggt_t_mv import VGGTTMV, ModelConfig
from vggt_t_mv.aggregator import to_sequences
from vggt_t_mv.layers.block import Attention
from vggt_t_mv.layers.rope import frame_positions, rope_table

B, T, N, GRID_H, GRID_W, SPECIAL, DIM, HEADS = 2, 3, 2, 2, 3, 5, 32, 4
P = SPECIAL + GRID_H * GRID_W


def explicit_sequences(x: torch.Tensor, kind: str) -> list[torch.Tensor]:
    """The attention sequences built by hand: per camera across time, or per timestep across cameras."""
    if kind == "time":
        return [torch.cat([x[b, t, n] for t in range(T)]) for b in range(B) for n in range(N)]
    return [torch.cat([x[b, t, n] for n in range(N)]) for b in range(B) for t in range(T)]


def explicit_attention(attn: Attention, tokens: torch.Tensor, bias: torch.Tensor, rope) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d) + bias) V for one sequence ``tokens [L, C]`` with per-key ``bias [L]``."""
    length, dim = tokens.shape
    head_dim = dim // attn.num_heads
    q, k, v = (tokens @ attn.qkv.weight.T + attn.qkv.bias).view(length, 3, attn.num_heads, head_dim).unbind(1)
    q, k = attn.q_norm(q), attn.k_norm(k)
    if rope is not None:
        half = head_dim // 4

        def rotate(a: torch.Tensor) -> torch.Tensor:
            y1, y2, x1, x2 = a.split(half, dim=-1)
            return torch.cat([-y2, y1, -x2, x1], dim=-1)

        cos, sin = rope.cos[:, None, :], rope.sin[:, None, :]
        q, k = q * cos + rotate(q) * sin, k * cos + rotate(k) * sin
    out = []
    for h in range(attn.num_heads):
        logits = q[:, h] @ k[:, h].T / math.sqrt(head_dim) + bias[None, :]
        out.append(torch.softmax(logits, dim=-1) @ v[:, h])
    return torch.cat(out, dim=-1) @ attn.proj.weight.T + attn.proj.bias


@pytest.mark.parametrize("kind", ["time", "view"])
@pytest.mark.parametrize("sign", [-1.0, 1.0], ids=["pose", "geo"])
@pytest.mark.parametrize("use_rope", [False, True], ids=["no-rope", "rope"])
def test_biased_attention_equals_explicit_softmax(kind: str, sign: float, use_rope: bool) -> None:
    torch.manual_seed(0)
    attn = Attention(DIM, HEADS, qk_norm=True).double()
    x = torch.randn(B, T, N, P, DIM, dtype=torch.float64)
    m = torch.rand(B, T, N, P, dtype=torch.float64)
    m[..., :SPECIAL] = 0
    lam = 1.7
    bias = sign * lam * m
    frame_table = rope_table(frame_positions(GRID_H, GRID_W, SPECIAL), DIM // HEADS, 100.0, torch.float64)
    table = frame_table.repeat(T if kind == "time" else N) if use_rope else None

    ours = attn(to_sequences(x, kind), rope=table, key_bias=to_sequences(bias, kind))
    expected = torch.stack(
        [
            explicit_attention(attn, seq, seq_bias, table)
            for seq, seq_bias in zip(explicit_sequences(x, kind), explicit_sequences(bias, kind), strict=True)
        ]
    )
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-10)


def copy_weights(source: VGGTTMV, target: VGGTTMV) -> None:
    """Load a single-stream model's weights into a two-stream model (branched copies from their layer)."""
    from vggt_t_mv.weights import source_key_for

    state = source.state_dict()
    with torch.no_grad():
        for name, tensor in target.state_dict().items():
            key = source_key_for(name, state)
            if key is not None:
                tensor.copy_(state[key])


def tiny_pair(**two_stream_overrides) -> tuple[VGGTTMV, VGGTTMV]:
    torch.manual_seed(0)
    single = VGGTTMV(ModelConfig.tiny()).eval()
    with torch.no_grad():
        for name, param in single.named_parameters():
            if name.endswith(("camera_token", "register_token", "gamma")):
                param.normal_()
    cfg = dataclasses.replace(ModelConfig.tiny_two_stream(), **two_stream_overrides)
    two = VGGTTMV(cfg).eval()
    copy_weights(single, two)
    return single, two


GEOMETRY_KEYS = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")


@pytest.mark.parametrize("mode", ["shared", "branched"])
def test_two_streams_without_bias_give_exactly_the_single_stream_outputs(mode: str) -> None:
    single, two = tiny_pair(stream_mode=mode, dynamic_bias=False)
    images = torch.rand(1, 2, 3, 3, 28, 42)
    with torch.no_grad():
        expected, got = single(images), two(images)
    for key in GEOMETRY_KEYS:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)
    assert got["dynamic_mask"].shape == (1, 2, 3, 28, 42)


@pytest.mark.parametrize("mode", ["shared", "branched"])
def test_zero_lambda_without_external_masks_matches_the_single_stream(mode: str) -> None:
    single, two = tiny_pair(stream_mode=mode)
    two.aggregator.set_lambdas(0.0, 0.0)
    images = torch.rand(1, 2, 3, 3, 28, 42)
    with torch.no_grad():
        expected, got = single(images), two(images)
    for key in GEOMETRY_KEYS:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-5, msg=key)


def test_streams_differ_once_the_bias_is_on() -> None:
    _, two = tiny_pair(stream_mode="shared", lambda_max=5.0)
    two.aggregator.set_lambdas(3.0, 3.0)
    with torch.no_grad():
        preds = two(torch.rand(1, 2, 2, 3, 28, 42), return_stream_tokens=True)
    assert (preds["pose_tokens"] - preds["geo_tokens"]).abs().amax() > 1e-3


def dynamic_key_mass(model: VGGTTMV, stream_bias: torch.Tensor, tokens: torch.Tensor, kind: str) -> float:
    """Mean attention mass (over heads and queries) that the first view block puts on dynamic keys."""
    block = model.aggregator.view_blocks[0]
    sequences = to_sequences(tokens, kind)
    bias = None if stream_bias is None else to_sequences(stream_bias, kind)
    rope = model.aggregator.rope_for((28, 42), tokens.device).repeat(tokens.shape[2])
    probs = block.attn.attention_probs(block.norm1(sequences), rope, bias)  # [batch, heads, L, L]
    dynamic_keys = to_sequences(DYNAMIC_TOKENS, kind)[:, None, None, :]
    return (probs * dynamic_keys).sum(-1).mean().item()


DYNAMIC_TOKENS = torch.zeros(1, 2, 2, 5 + 6)
DYNAMIC_TOKENS[..., 5 + 1] = 1.0  # patch (0, 1) of every frame moves
DYNAMIC_TOKENS[..., 5 + 4] = 1.0  # patch (1, 1)


def test_pose_stream_looks_away_from_dynamic_keys_and_geo_stream_towards_them() -> None:
    _, two = tiny_pair(stream_mode="shared", lambda_max=10.0)
    agg = two.aggregator
    agg.set_lambdas(6.0, 6.0)
    patch_mask = DYNAMIC_TOKENS[..., 5:].reshape(1, 4, 6)  # [1, F, h*w]
    with torch.no_grad():
        pose_bias, geo_bias = agg._stream_key_bias(patch_mask, (1, 2, 2, 11))
        torch.testing.assert_close(pose_bias, -6.0 * DYNAMIC_TOKENS)
        torch.testing.assert_close(geo_bias, 6.0 * DYNAMIC_TOKENS)
        tokens = agg.embed(torch.rand(1, 2, 2, 3, 28, 42))
        for kind in ("time", "view"):
            neutral = dynamic_key_mass(two, None, tokens, kind)
            pose = dynamic_key_mass(two, pose_bias, tokens, kind)
            geo = dynamic_key_mass(two, geo_bias, tokens, kind)
            assert pose < 0.1 * neutral, (kind, pose, neutral)
            assert geo > neutral and geo > 0.5, (kind, geo, neutral)


def test_gradients_reach_lambdas_mask_head_and_fusion_gate() -> None:
    torch.manual_seed(0)
    model = VGGTTMV(ModelConfig.tiny_two_stream("branched")).train()
    images = torch.rand(1, 2, 2, 3, 28, 42)
    masks = (torch.rand(1, 2, 2, 28, 42) > 0.5).float()
    preds = model(images, masks=masks)
    loss = preds["pose_enc"].square().sum() + preds["depth"].sum() + preds["dynamic_mask"].sum()
    loss.backward()
    agg = model.aggregator
    named = dict(model.named_parameters())
    for name in ("aggregator.lambda_pose_raw", "aggregator.lambda_geo_raw", "aggregator.mask_fusion.gate"):
        assert named[name].grad is not None and named[name].grad.abs() > 0, name
    for name, param in agg.mask_head.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name

    optimizer = torch.optim.SGD([agg.lambda_pose_raw, agg.lambda_geo_raw], lr=1e6)
    agg.lambda_pose_raw.grad.fill_(-1.0)  # push lambda_pose up, far beyond lambda_max
    agg.lambda_geo_raw.grad.fill_(1.0)  # push lambda_geo down, far below 0
    optimizer.step()
    lambda_pose, lambda_geo = agg.lambdas()
    assert 0 <= lambda_geo.item() <= lambda_pose.item() <= model.cfg.lambda_max


def test_lambdas_start_at_lambda_init() -> None:
    model = VGGTTMV(ModelConfig.tiny_two_stream())
    for value in model.aggregator.lambdas():
        assert value.item() == pytest.approx(model.cfg.lambda_init)


@pytest.mark.parametrize(
    ("mode", "gate", "changes"),
    [("fuse", 0.5, True), ("fuse", 0.0, False), ("override", None, True), ("off", None, False)],
)
def test_external_masks_change_the_outputs_only_when_fused(mode: str, gate: float | None, changes: bool) -> None:
    torch.manual_seed(0)
    model = VGGTTMV(dataclasses.replace(ModelConfig.tiny_two_stream("shared"), external_masks=mode)).eval()
    if gate is not None:
        with torch.no_grad():
            model.aggregator.mask_fusion.gate.fill_(gate)
    images = torch.rand(1, 2, 2, 3, 28, 42)
    masks = torch.zeros(1, 2, 2, 28, 42)
    masks[..., :14, :] = 1.0
    with torch.no_grad(), pytest.warns(UserWarning, match="ignored") if mode == "off" else _no_warning():
        plain, with_masks = model(images), model(images, masks=masks)
    difference = max((with_masks[k] - plain[k]).abs().max().item() for k in (*GEOMETRY_KEYS, "dynamic_mask"))
    assert (difference > 1e-6) == changes, difference
    if mode == "override":
        torch.testing.assert_close(with_masks["dynamic_mask"], masks)


class _no_warning:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_5d_input_takes_5d_masks() -> None:
    model = VGGTTMV(dataclasses.replace(ModelConfig.tiny_two_stream(), external_masks="override")).eval()
    masks = torch.rand(1, 3, 28, 42)
    with torch.no_grad():
        preds = model(torch.rand(1, 3, 3, 28, 42), masks=masks)
    torch.testing.assert_close(preds["dynamic_mask"], masks)


@pytest.mark.parametrize(
    ("masks", "message"),
    [
        (torch.rand(1, 2, 2, 28, 40), "must have shape"),
        (torch.rand(1, 4, 28, 42), "must have shape"),
        (torch.rand(1, 2, 2, 28, 42) * 255, "in \\[0, 1\\]"),
        (-torch.rand(1, 2, 2, 28, 42), "in \\[0, 1\\]"),
        (torch.full((1, 2, 2, 28, 42), float("nan")), "in \\[0, 1\\]"),
    ],
)
def test_bad_external_masks_are_refused(masks: torch.Tensor, message: str) -> None:
    model = VGGTTMV(ModelConfig.tiny_two_stream())
    with pytest.raises(ValueError, match=message):
        model(torch.rand(1, 2, 2, 3, 28, 42), masks=masks)


def test_single_stream_model_refuses_external_masks() -> None:
    with pytest.raises(ValueError, match="two-stream"):
        VGGTTMV(ModelConfig.tiny())(torch.rand(1, 1, 1, 3, 28, 28), masks=torch.zeros(1, 1, 1, 28, 28))


def test_dynamic_mask_is_a_full_resolution_probability() -> None:
    model = VGGTTMV(ModelConfig.tiny_two_stream()).eval()
    with torch.no_grad():
        preds = model(torch.rand(2, 2, 3, 3, 28, 42))
    assert preds["dynamic_mask"].shape == (2, 2, 3, 28, 42)
    assert preds["dynamic_mask_logits"].shape == (2, 2, 3, 28, 42)
    assert 0 <= preds["dynamic_mask"].min() and preds["dynamic_mask"].max() <= 1
    torch.testing.assert_close(preds["dynamic_mask"], torch.sigmoid(preds["dynamic_mask_logits"]))


def test_full_size_two_stream_model_layout() -> None:
    with torch.device("meta"):
        single = VGGTTMV(ModelConfig.vggt_1b())
        branched = VGGTTMV(ModelConfig.vggt_t_mv())
        shared = VGGTTMV(dataclasses.replace(ModelConfig.vggt_t_mv(), stream_mode="shared"))
    keys = branched.state_dict().keys()
    assert "aggregator.pose_time_blocks.8.attn.qkv.weight" in keys
    assert "aggregator.geo_view_blocks.23.mlp.fc2.bias" in keys
    assert "aggregator.time_blocks.7.norm1.weight" in keys and "aggregator.time_blocks.8.norm1.weight" not in keys
    assert "aggregator.spatial_mask_head.tau_logit" in keys and "aggregator.mask_head.fc1.weight" not in keys
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    block_pair = sum(p.numel() for p in single.aggregator.time_blocks[0].parameters()) * 2
    new_parts = ("aggregator.mask", "aggregator.lambda", "aggregator.spatial_mask_head")
    new = sum(p.numel() for n, p in shared.named_parameters() if n.startswith(new_parts))
    assert count(shared) == count(single) + new
    assert count(branched) == count(single) + new + 16 * block_pair
