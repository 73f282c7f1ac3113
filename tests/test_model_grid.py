"""The time x view grid: output shapes, and that Time-SA / View-SA group the tokens as designed."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vggt_t_mv import VGGTTMV, ModelConfig

B, T, N, H, W = 1, 3, 2, 42, 56


def tiny_model(**overrides: object) -> VGGTTMV:
    torch.manual_seed(0)
    cfg = dataclasses.replace(ModelConfig.tiny(), **overrides)
    model = VGGTTMV(cfg).eval()
    # Non-trivial special tokens and layer scales, so every path carries signal.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("camera_token", "register_token", "gamma")):
                param.normal_(0.0, 1.0)
    return model


@pytest.fixture(scope="module")
def model() -> VGGTTMV:
    return tiny_model()


def test_grid_input_returns_documented_shapes(model: VGGTTMV) -> None:
    images = torch.rand(B, T, N, 3, H, W)
    queries = torch.tensor([[[10.0, 20.0], [30.0, 5.0]]])
    with torch.no_grad():
        preds = model(images, query_points=queries)
    assert preds["pose_enc"].shape == (B, T, N, 9)
    assert len(preds["pose_enc_list"]) == model.cfg.camera_iterations
    assert all(p.shape == (B, T, N, 9) for p in preds["pose_enc_list"])
    assert preds["depth"].shape == (B, T, N, H, W, 1)
    assert preds["depth_conf"].shape == (B, T, N, H, W)
    assert preds["world_points"].shape == (B, T, N, H, W, 3)
    assert preds["world_points_conf"].shape == (B, T, N, H, W)
    assert preds["track"].shape == (B, T, N, 2, 2)
    assert preds["vis"].shape == (B, T, N, 2)
    assert preds["conf"].shape == (B, T, N, 2)
    assert "dynamic_mask" not in preds.keys()
    for key in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf", "track"):
        assert torch.isfinite(preds[key]).all(), key


def test_tiny_forward_at_112px_runs(model: VGGTTMV) -> None:
    with torch.no_grad():
        preds = model(torch.rand(1, 2, 3, 3, 112, 112))
    assert preds["depth"].shape == (1, 2, 3, 112, 112, 1)


def patch_tokens_per_frame(model: VGGTTMV, images: torch.Tensor) -> torch.Tensor:
    """Last layer's patch tokens as [T, N, hw, C]."""
    with torch.no_grad():
        out = model.aggregator(images, layers="all")
    last = out.layers[-1][0, :, out.patch_start_idx :]
    return last.reshape(images.shape[1], images.shape[2], *last.shape[1:])


GRIDS = st.tuples(st.integers(1, 3), st.integers(2, 3)).flatmap(
    lambda tn: st.tuples(st.just(tn[0]), st.just(tn[1]), st.integers(0, tn[0] - 1), st.integers(0, tn[1] - 1))
)
PROPERTY_SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def time_only() -> VGGTTMV:
    return tiny_model(aa_order=("time",))


@pytest.fixture(scope="module")
def view_only() -> VGGTTMV:
    return tiny_model(aa_order=("view",))


@PROPERTY_SETTINGS
@given(grid=GRIDS)
def test_time_attention_only_mixes_frames_of_the_same_camera(time_only: VGGTTMV, grid: tuple[int, ...]) -> None:
    times, views, t, n = grid
    images = torch.rand(1, times, views, 3, 28, 42)
    changed = images.clone()
    changed[:, t, n] = torch.rand_like(changed[:, t, n])
    before, after = patch_tokens_per_frame(time_only, images), patch_tokens_per_frame(time_only, changed)
    other_cameras = [m for m in range(views) if m != n]
    torch.testing.assert_close(after[:, other_cameras], before[:, other_cameras], rtol=0, atol=0)
    # ... while every frame of camera n sees the change (time attention mixes within the camera).
    assert (after[:, n] - before[:, n]).flatten(1).abs().amax(dim=1).min() > 1e-5


@PROPERTY_SETTINGS
@given(grid=GRIDS.map(lambda g: (g[1], g[0], g[3], g[2])))
def test_view_attention_only_mixes_frames_of_the_same_timestep(view_only: VGGTTMV, grid: tuple[int, ...]) -> None:
    times, views, t, n = grid
    images = torch.rand(1, times, views, 3, 28, 42)
    changed = images.clone()
    changed[:, t, n] = torch.rand_like(changed[:, t, n])
    before, after = patch_tokens_per_frame(view_only, images), patch_tokens_per_frame(view_only, changed)
    other_times = [s for s in range(times) if s != t]
    torch.testing.assert_close(after[other_times], before[other_times], rtol=0, atol=0)
    assert (after[t] - before[t]).flatten(1).abs().amax(dim=1).min() > 1e-5


def test_reference_frame_alone_gets_the_first_camera_token(model: VGGTTMV) -> None:
    special = model.aggregator.special_tokens(batch=2, num_frames=T * N).view(2, T * N, -1, model.cfg.embed_dim)
    first, others = model.aggregator.camera_token[0, 0], model.aggregator.camera_token[0, 1]
    torch.testing.assert_close(special[:, 0, :1], first.expand(2, 1, -1))
    torch.testing.assert_close(special[:, 1:, :1], others.expand(2, T * N - 1, 1, -1))


def test_only_the_layers_the_heads_read_are_kept(model: VGGTTMV) -> None:
    cfg = dataclasses.replace(ModelConfig.tiny(), depth=6, dpt_intermediate_layers=(1, 2, 3, 4))
    small = VGGTTMV(cfg).eval()
    with torch.no_grad():
        out = small.aggregator(torch.rand(1, 2, 2, 3, 28, 28))
        everything = small.aggregator(torch.rand(1, 2, 2, 3, 28, 28), layers="all")
    assert [i for i, t in enumerate(out.layers) if t is not None] == [1, 2, 3, 4, 5]
    assert all(t is not None for t in everything.layers)
    assert out.layers[5].shape == (1, 4, cfg.num_special_tokens + 4, cfg.token_dim)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 3, 28, 28), "got 4-D"),
        ((1, 2, 4, 28, 28), "3 \\(RGB\\) channels"),
        ((1, 2, 3, 30, 28), "multiples of the patch size"),
        ((1, 0, 2, 3, 28, 28), "T is 0"),
        ((1, 2, 0, 3, 28, 28), "N is 0"),
    ],
)
def test_bad_input_gets_a_clear_error(model: VGGTTMV, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model(torch.rand(*shape))


def test_integer_images_are_refused(model: VGGTTMV) -> None:
    with pytest.raises(ValueError, match="divide uint8 by 255"):
        model(torch.zeros(1, 1, 3, 28, 28, dtype=torch.uint8))
