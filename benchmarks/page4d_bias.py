"""What PAGE-4D's camera-row bias costs: biased vs unbiased View-SA on the same weights.

PAGE-4D adds ``r_i * c_j`` to the View-SA logits of the camera and register query rows (``1 + R`` of the
``P`` tokens per frame). Implementations timed here, all on the same block and input:

* ``no bias``: plain SDPA (what an unbiased layer runs);
* ``PAGE-4D bias (ours)``: SDPA over all rows unbiased, then SDPA over the ``N * (1 + R)`` special rows with a
  ``[B, 1, 1, L]`` key bias, written over those rows (vggt_t_mv.layers.block.RowBias);
* ``appended dimension``: upstream's trick, one extra q/k dimension carrying ``r`` and ``c`` (head dim
  padded to a multiple of 8) so that plain SDPA gives the biased logits for every row;
* ``dense L x L mask``: the explicit ``[B, 1, L, L]`` bias matrix (what vggt_t_mv never builds).

Then the whole aggregator of a PAGE-4D config with its biased layers vs the same config and weights with
no biased layer. Timings interleave the variants (one call of each per round, median of the rounds) and
count the process's CPU time (``time.process_time``), which a machine shared with other jobs disturbs far
less than wall time; with ``--threads 1`` it is the work done.

    python benchmarks/page4d_bias.py --threads 1   # block rows at 3 sizes + aggregators, CPU
    python benchmarks/page4d_bias.py --quick       # tiny only (used by the tests)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from vggt_t_mv import ModelConfig, PageMaskConfig
from vggt_t_mv.aggregator import Aggregator
from vggt_t_mv.layers.block import Block, RowBias
from vggt_t_mv.layers.rope import frame_positions, rope_table


def interleaved_medians(fns: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median CPU seconds per call of each function, calling them in turn ``rounds`` times (after a warm-up call
    that also sets how many calls one sample makes: enough for about 50 ms)."""
    start = time.process_time()
    for fn in fns.values():
        fn()
    calls = max(1, int(0.05 * len(fns) / max(time.process_time() - start, 1e-6)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.process_time()
            for _ in range(calls):
                fn()
            samples[name].append((time.process_time() - start) / calls)
    return {name: statistics.median(values) for name, values in samples.items()}


def appended_dimension_block(block: Block, x: torch.Tensor, rope, r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The block with upstream's appended-dimension bias: q' = [q sqrt(D'/D), r sqrt(D'), 0], k' = [k, c, 0]."""
    attn = block.attn
    batch, length, dim = x.shape
    q, k, v = attn._qkv(block.norm1(x), rope)
    head_dim = attn.head_dim
    padded = 8 * math.ceil((head_dim + 1) / 8)
    extra = padded - head_dim
    q_tail = q.new_zeros(*q.shape[:3], extra)
    q_tail[..., 0] = r[:, None, :] * math.sqrt(padded)
    k_tail = k.new_zeros(*k.shape[:3], extra)
    k_tail[..., 0] = c[:, None, :]
    q2 = torch.cat([q * math.sqrt(padded / head_dim), q_tail], dim=-1)
    k2 = torch.cat([k, k_tail], dim=-1)
    v2 = F.pad(v, (0, extra))
    out = F.scaled_dot_product_attention(q2, k2, v2)[..., :head_dim]
    x = x + block.ls1(attn.proj(out.transpose(1, 2).reshape(batch, length, dim)))
    return x + block.ls2(block.mlp(block.norm2(x)))


def dense_mask_block(block: Block, x: torch.Tensor, rope, r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The block with an explicit [B, 1, L, L] bias matrix r_i c_j."""
    attn = block.attn
    batch, length, dim = x.shape
    q, k, v = attn._qkv(block.norm1(x), rope)
    mask = (r[:, :, None] * c[:, None, :])[:, None]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    x = x + block.ls1(attn.proj(out.transpose(1, 2).reshape(batch, length, dim)))
    return x + block.ls2(block.mlp(block.norm2(x)))


def block_rows(name: str, dim: int, heads: int, grid_hw: tuple[int, int], views: int, rounds: int) -> None:
    torch.manual_seed(0)
    block = Block(dim, heads, init_values=0.01, qk_norm=True).eval()
    special = 5
    per_frame = special + grid_hw[0] * grid_hw[1]
    length = views * per_frame
    x = torch.randn(1, length, dim)
    table = rope_table(frame_positions(*grid_hw, special), dim // heads, 100.0).repeat(views)
    c = torch.zeros(views, per_frame)
    c[:, special:] = -0.5 * torch.rand(views, grid_hw[0] * grid_hw[1])
    c = c.reshape(1, length)
    rows = (torch.arange(views)[:, None] * per_frame + torch.arange(special)).flatten()
    r = torch.zeros(1, length)
    r[:, rows] = 1.0
    row_bias = RowBias(rows, c)
    with torch.inference_mode():
        fns = {
            "no bias": lambda: block(x, rope=table),
            "PAGE-4D bias (ours)": lambda: block(x, rope=table, row_bias=row_bias),
            "appended dimension": lambda: appended_dimension_block(block, x, table, r, c),
            "dense L x L mask": lambda: dense_mask_block(block, x, table, r, c),
        }
        reference = fns["dense L x L mask"]()
        for variant in ("PAGE-4D bias (ours)", "appended dimension"):
            difference = (fns[variant]() - reference).abs().max().item()
            assert difference < 1e-3, (variant, difference)
        seconds = interleaved_medians(fns, rounds)
    base = seconds["no bias"]
    for variant, value in seconds.items():
        print(f"| {name} | L = {length} | {variant} | {value * 1e3:.2f} | {value / base:.3f} |", flush=True)


def aggregator_rows(name: str, cfg: ModelConfig, grid: tuple[int, int], image_hw: tuple[int, int], rounds: int) -> None:
    torch.manual_seed(0)
    biased = Aggregator(cfg).eval()
    page = dataclasses.replace(cfg.page4d_mask, biased_view_layers=())
    unbiased = Aggregator(dataclasses.replace(cfg, page4d_mask=page)).eval()
    unbiased.load_state_dict(biased.state_dict())  # the same weights
    images = torch.rand(1, *grid, 3, *image_hw)
    with torch.inference_mode():
        tokens = biased.embed(images)  # DINOv2 is the same for both: time the layer loop
        seconds = interleaved_medians(
            {
                "no bias": lambda: unbiased.alternate(tokens, image_hw),
                "PAGE-4D bias": lambda: biased.alternate(tokens, image_hw),
            },
            rounds,
        )
    layers = len(cfg.page4d_mask.biased_view_layers)
    base, with_bias = seconds["no bias"], seconds["PAGE-4D bias"]
    # Per biased layer pair: the extra time over the biased pairs' share of the loop.
    per_layer = 1 + (with_bias - base) / (base * layers / cfg.depth)
    for variant, value in seconds.items():
        ratio = value / base
        shown = f"{per_layer:.3f}" if variant == "PAGE-4D bias" else "1.000"
        print(
            f"| {name} | {grid[0]}x{grid[1]}, {image_hw[0]}x{image_hw[1]} px | {variant} | {value:.3f} | "
            f"{ratio:.3f} | {shown} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = 1 if args.quick else args.rounds
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, float32")
    print()
    print("| block | sequence | variant | one View-SA block (CPU ms) | vs no bias |")
    print("|---|---|---|---|---|")
    block_rows("tiny (C=64, 4 heads)", 64, 4, (5, 7), 4, rounds)
    if not args.quick:
        block_rows("small (C=256, 4 heads)", 256, 4, (8, 11), 4, rounds)
        block_rows("1B width (C=1024, 16 heads)", 1024, 16, (21, 37), 4, max(3, rounds // 2))

    print()
    print("| aggregator layer loop | grid, image | variant | CPU seconds | vs no bias | per biased layer pair |")
    print("|---|---|---|---|---|---|")
    tiny = dataclasses.replace(ModelConfig.tiny(), page4d_mask=PageMaskConfig.fin10(4), external_masks="override")
    aggregator_rows("tiny PAGE-4D fin10 (2 of 4 biased)", tiny, (2, 4), (70, 98), rounds)
    if not args.quick:
        small = dataclasses.replace(
            tiny, embed_dim=256, num_heads=4, depth=8, dino_depth=2, page4d_mask=PageMaskConfig.fin10(8)
        )
        aggregator_rows("small PAGE-4D fin10 (6 of 8 biased)", small, (4, 4), (112, 154), rounds)


if __name__ == "__main__":
    main()
