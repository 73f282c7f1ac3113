"""Factorized time x view attention vs VGGT's global attention, on the same weights and frames.

The same T*N frames run through the aggregator twice:

* as 6-D ``[1, T, N]``: Time-SA over ``T*P`` tokens per camera, View-SA over ``N*P`` tokens per timestep;
* as 5-D ``[1, T*N]`` (run as ``T=1, N=T*N``): VGGT's frame attention over ``P`` tokens and global
  attention over all ``T*N*P`` tokens.

It prints the wall time of the alternating layers (the part whose cost differs) and of the whole
aggregator (DINOv2 included, identical in both runs), their ratios, and the ratio expected for the
attention part alone, ``TN / (T + N)``, next to a FLOP model of the whole layer pair that also counts
the linear layers (which cost the same in both layouts and so pull the measured ratio towards 1).

    python benchmarks/attention_cost.py            # tiny + small configs, CPU
    python benchmarks/attention_cost.py --quick    # smallest grid only (used by the tests)
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time

import torch

from vggt_t_mv import ModelConfig
from vggt_t_mv.aggregator import Aggregator

GRIDS = ((4, 2), (8, 4), (16, 4))


def configs() -> dict[str, ModelConfig]:
    tiny = ModelConfig.tiny()
    # The largest that runs the 16x4 global case in reasonable time on a 2-core CPU.
    small = dataclasses.replace(tiny, embed_dim=256, num_heads=4, depth=6, dino_depth=2, dino_num_heads=4)
    return {"tiny (C=64, 4 pairs)": tiny, "small (C=256, 6 pairs)": small}


def flop_model_ratio(cfg: ModelConfig, times: int, views: int, tokens_per_frame: int) -> float:
    """Predicted (global / factorized) cost of one layer pair, per token.

    Linear layers cost ``2 * 24 C^2`` FLOPs per token for the two blocks (qkv 3C^2, proj C^2, MLP 8C^2,
    2 FLOPs per multiply-add); attention costs ``4 L C`` per token for a sequence of length L.
    """
    c, p = cfg.embed_dim, tokens_per_frame
    linear = 48 * c * c
    factorized = linear + 4 * c * p * (times + views)
    global_ = linear + 4 * c * p * (1 + times * views)
    return global_ / factorized


def timed(fn, repeats: int) -> float:
    """Median wall time in seconds of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(cfg: ModelConfig, times: int, views: int, image_hw: tuple[int, int], repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    aggregator = Aggregator(cfg).eval()
    images = torch.rand(1, times, views, 3, *image_hw)
    flat = images.reshape(1, 1, times * views, 3, *image_hw)
    with torch.inference_mode():
        tokens_grid = aggregator.embed(images)
        tokens_flat = tokens_grid.reshape(1, 1, times * views, *tokens_grid.shape[3:])
        layers_grid = timed(lambda: aggregator.alternate(tokens_grid, image_hw), repeats)
        layers_flat = timed(lambda: aggregator.alternate(tokens_flat, image_hw), repeats)
        whole_grid = timed(lambda: aggregator(images), repeats)
        whole_flat = timed(lambda: aggregator(flat), repeats)
    return {
        "layers_grid": layers_grid,
        "layers_flat": layers_flat,
        "whole_grid": whole_grid,
        "whole_flat": whole_flat,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=112)
    parser.add_argument("--width", type=int, default=154)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="tiny config, 4x2 grid, one repeat")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    grids = GRIDS[:1] if args.quick else GRIDS
    chosen = dict(list(configs().items())[:1]) if args.quick else configs()
    repeats = 1 if args.quick else args.repeats
    image_hw = (args.height, args.width)
    tokens = (args.height // 14) * (args.width // 14) + ModelConfig.tiny().num_special_tokens
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, float32, {args.height}x{args.width} px = {tokens} tokens/frame"
    )
    header = (
        "| config | T x N | layers 6-D (s) | layers 5-D (s) | ratio | whole 6-D (s) | whole 5-D (s) | ratio "
        "| FLOP-model ratio | expected attention ratio TN/(T+N) |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for name, cfg in chosen.items():
        for times, views in grids:
            r = measure(cfg, times, views, image_hw, repeats)
            print(
                f"| {name} | {times}x{views} | {r['layers_grid']:.3f} | {r['layers_flat']:.3f} "
                f"| {r['layers_flat'] / r['layers_grid']:.2f} | {r['whole_grid']:.3f} | {r['whole_flat']:.3f} "
                f"| {r['whole_flat'] / r['whole_grid']:.2f} | {flop_model_ratio(cfg, times, views, tokens):.2f} "
                f"| {times * views / (times + views):.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
