"""What the second stream costs: single-stream vs two-stream (shared / branched) aggregators.

For each configuration it prints the aggregator's wall time on a ``[1, T, N]`` grid (median after a
warm-up), the parameter count, and, at full size, the parameter counts from the meta device (no
memory needed). Two streams run the layers from ``stream_split`` on twice, so the expected time is
``(split + 2 * (depth - split)) / depth`` of the single stream for the alternating layers; ``shared``
runs both streams in one batched call per layer, ``branched`` in two calls with their own weights.

    python benchmarks/stream_cost.py            # tiny + small configs on CPU, 8x4 grid
    python benchmarks/stream_cost.py --quick    # tiny only, 2x2 grid (used by the tests)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import platform
import statistics
import time

import torch

from vggt_t_mv import VGGTTMV, ModelConfig
from vggt_t_mv.aggregator import Aggregator


def variants(base: ModelConfig) -> dict[str, ModelConfig]:
    split = base.depth // 2
    return {
        "single stream": base,
        "two streams, shared, bias off": dataclasses.replace(
            base, stream_split=split, stream_mode="shared", dynamic_bias=False
        ),
        "two streams, shared": dataclasses.replace(base, stream_split=split, stream_mode="shared"),
        "two streams, branched": dataclasses.replace(base, stream_split=split, stream_mode="branched"),
    }


def bases() -> dict[str, ModelConfig]:
    tiny = ModelConfig.tiny()
    small = dataclasses.replace(tiny, embed_dim=256, num_heads=4, depth=6, dino_depth=2, dino_num_heads=4)
    return {"tiny (C=64, 4 pairs)": tiny, "small (C=256, 6 pairs)": small}


def median_seconds(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--times", type=int, default=8)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--height", type=int, default=112)
    parser.add_argument("--width", type=int, default=154)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.times, args.views, args.repeats = 2, 2, 1
    chosen = dict(list(bases().items())[:1]) if args.quick else bases()
    image_hw = (args.height, args.width)

    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"float32, grid {args.times}x{args.views}, {args.height}x{args.width} px"
    )
    print("| config | variant | aggregator (s) | vs single | expected (layers only) | parameters | vs single |")
    print("|---|---|---|---|---|---|---|")
    for base_name, base in chosen.items():
        reference_time = reference_params = None
        for variant, cfg in variants(base).items():
            torch.manual_seed(0)
            aggregator = Aggregator(cfg).eval()
            images = torch.rand(1, args.times, args.views, 3, *image_hw)
            with torch.inference_mode():
                seconds = median_seconds(functools.partial(aggregator, images), args.repeats)
            params = count(aggregator)
            reference_time = reference_time or seconds
            reference_params = reference_params or params
            split = cfg.first_stream_layer
            doubled = 1 if cfg.two_streams and (cfg.stream_mode == "branched" or cfg.dynamic_bias) else 0
            expected = (split + (1 + doubled) * (cfg.depth - split)) / cfg.depth
            print(
                f"| {base_name} | {variant} | {seconds:.3f} | {seconds / reference_time:.2f} | {expected:.2f} "
                f"| {params:,} | {params / reference_params:.3f} |",
                flush=True,
            )

    if not args.quick:
        print()
        print("| full size (meta device) | parameters | vs VGGT-1B |")
        print("|---|---|---|")
        with torch.device("meta"):
            full = {
                "vggt_1b()": VGGTTMV(ModelConfig.vggt_1b()),
                "vggt_t_mv() shared": VGGTTMV(dataclasses.replace(ModelConfig.vggt_t_mv(), stream_mode="shared")),
                "vggt_t_mv() branched": VGGTTMV(ModelConfig.vggt_t_mv()),
            }
        reference = count(full["vggt_1b()"])
        for name, model in full.items():
            print(f"| {name} | {count(model):,} | {count(model) / reference:.3f} |")


if __name__ == "__main__":
    main()
