"""The inference path stays GPU-friendly: the batched two-stream pass equals the sequential one, and the
aggregator's layer loop never synchronises host and device."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.overrides import TorchFunctionMode

from vggt_t_mv import VGGTTMV, ModelConfig, PageMaskConfig, two_stream_config

TINY_PAGE4D = dataclasses.replace(ModelConfig.tiny(), page4d_mask=PageMaskConfig.fin10(4), external_masks="override")
SYNCING_CALLS = {"item", "cpu", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__", "nonzero"}


class RefuseHostSync(TorchFunctionMode):
    """Fails on any tensor operation that needs the value on the host (and so would block on a GPU)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNCING_CALLS or (
            name == "to" and any(str(a) == "cpu" for a in (*args[1:], *(kwargs or {}).values()))
        ):
            raise AssertionError(f"host-device sync inside the aggregator: {name}")
        return func(*args, **(kwargs or {}))


def test_refuse_host_sync_catches_a_sync() -> None:
    with pytest.raises(AssertionError, match="item"), RefuseHostSync():
        torch.ones(2).sum().item()


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig.tiny(),
        ModelConfig.tiny_two_stream("shared"),
        ModelConfig.tiny_two_stream("branched"),
        TINY_PAGE4D,
        two_stream_config(TINY_PAGE4D, "shared"),
        two_stream_config(TINY_PAGE4D, "branched"),
    ],
    ids=["single", "shared", "branched", "page4d", "page4d-shared", "page4d-branched"],
)
def test_aggregator_layer_loop_never_syncs(cfg: ModelConfig) -> None:
    model = VGGTTMV(cfg).eval()
    images = torch.rand(1, 2, 2, 3, 28, 42)
    masks = torch.rand(1, 4, 28, 42) if cfg.has_dynamic_mask else None
    with torch.no_grad():
        tokens = model.aggregator.embed(images)
        with RefuseHostSync():
            out = model.aggregator.alternate(tokens, (28, 42), external_masks=masks)
    assert out.geo_layers[-1] is not None


@pytest.mark.parametrize(
    "cfg", [ModelConfig.tiny_two_stream("shared"), two_stream_config(TINY_PAGE4D, "shared")], ids=["vggt", "page4d"]
)
def test_batched_shared_streams_equal_running_them_one_after_the_other(cfg: ModelConfig) -> None:
    torch.manual_seed(0)
    model = VGGTTMV(cfg).eval()
    model.aggregator.set_lambdas(2.0, 3.0)
    images = torch.rand(1, 2, 3, 3, 28, 42)
    with torch.no_grad():
        batched = model(images, return_stream_tokens=True)
        model.aggregator.batch_shared_streams = False
        sequential = model(images, return_stream_tokens=True)
    for key in ("pose_enc", "depth", "world_points", "pose_tokens", "geo_tokens", "dynamic_mask"):
        torch.testing.assert_close(batched[key], sequential[key], rtol=1e-5, atol=1e-5, msg=key)
    assert (batched["pose_tokens"] - batched["geo_tokens"]).abs().amax() > 1e-4


@pytest.mark.slow
def test_compiled_blocks_give_the_same_outputs() -> None:
    torch.manual_seed(0)
    model = VGGTTMV(ModelConfig.tiny()).eval()
    images = torch.rand(1, 2, 2, 3, 28, 42)
    with torch.no_grad():
        eager = model(images)
        model.aggregator.compile_blocks()
        compiled = model(images)
    torch.testing.assert_close(compiled["depth"], eager["depth"], rtol=1e-4, atol=1e-4)
