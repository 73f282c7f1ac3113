"""What the efficiency knobs of ModelConfig cost and save (issue 30): ``time_window``, ``kv_pool``,
``factorized_layers``, each alone and combined.

Part 1, cost at the 1B width (C = 1024, 16 heads, MLP 4096, 24 layer pairs) for T x N in {16x4, 32x4, 64x4}:

* a FLOP model of the aggregator's 24 layer pairs, at 294x518 (the issue's size) and at the timed size;
* CPU time of the 24 layer pairs at the timed size, composed from measured parts (stated in the output): the
  knob-independent per-token work of a block (LayerNorms, qkv with qk-norm and RoPE, proj, MLP) timed on a chunk of
  frames and scaled by the token count (it is exactly proportional), plus the attention core -- the code the knobs
  change (``F.scaled_dot_product_attention`` or :func:`vggt_t_mv.layers.sparse.pattern_attention`, pooling and
  gathering included) -- timed on one camera's Time-SA sequence (x N cameras), one chunk of View-SA sequences
  (x T / chunk) and one chunk of per-frame sequences, on this machine's CPU. A composition check times one real
  layer pair (two C = 1024 blocks through the aggregator's code) at a small grid against the composed estimate.

Part 2, accuracy on the same weights (differences vs the full model, max and mean of |a - b|):

* a random 1B-width model (C = 1024; reduced depth, stated) on a held-out synthetic window;
* the demo weights (assets/demo_weights, tiny two-stream) on the held-out synthetic rigs (seeds 1000-1005), with their
  camera / depth / mask metrics for each knob (the point metrics are left out: their nearest-neighbour search takes
  minutes per setting on this CPU, and the points' difference is in the table above), before and after a short
  fine-tune through the training command (``python -m app.cli train configs/demo_tiny.yaml`` with the knob as a
  model override, from the demo weights, on rigs 100-105; steps stated) for the settings of ``--finetune``.

    python benchmarks/attention_efficiency.py                     # everything (minutes on 2 cores)
    python benchmarks/attention_efficiency.py --part cost --grids 16x4
    python benchmarks/attention_efficiency.py --finetune-steps 0  # no fine-tune
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from vggt_t_mv import VGGTTMV, ModelConfig
from vggt_t_mv.aggregator import Aggregator
from vggt_t_mv.layers.block import Block
from vggt_t_mv.layers.rope import frame_positions, rope_table
from vggt_t_mv.layers.sparse import FramePattern, KeyPooling, key_pooling, pattern_attention

REPO = Path(__file__).resolve().parents[1]
DEMO_WEIGHTS = REPO / "assets" / "demo_weights"
ISSUE_HW = (294, 518)
DEPTH_1B = 24

# name -> ModelConfig overrides. factorized_layers=None here means "every other layer pair" of the model at hand.
EVERY_OTHER = "every other"
SETTINGS: dict[str, dict[str, Any]] = {
    "full": {},
    "time_window=1": {"time_window": 1},
    "time_window=2": {"time_window": 2},
    "kv_pool=2": {"kv_pool": 2},
    "kv_pool=2 (Time-SA only)": {"kv_pool": 2, "kv_pool_kinds": ("time",)},
    "factorized every other pair": {"factorized_layers": EVERY_OTHER},
    "combined: time_window=2 + kv_pool=2 (Time-SA)": {"time_window": 2, "kv_pool": 2, "kv_pool_kinds": ("time",)},
}


def overrides_for(setting: dict[str, Any], depth: int) -> dict[str, Any]:
    """The ModelConfig overrides of a setting for a model of ``depth`` layer pairs."""
    out = dict(setting)
    if out.get("factorized_layers") == EVERY_OTHER:
        out["factorized_layers"] = tuple(range(1, depth, 2))
    return out


def with_setting(cfg: ModelConfig, setting: dict[str, Any]) -> ModelConfig:
    return dataclasses.replace(cfg, **overrides_for(setting, cfg.depth))


# ------------------------------------------------------------------------------------------------- FLOP model
def window_keys_per_query(times: int, window: int | None) -> float:
    """Mean number of frames a Time-SA query sees."""
    if window is None:
        return float(times)
    return sum(min(times, t + window + 1) - max(0, t - window) for t in range(times)) / times


def pair_flops(cfg: ModelConfig, times: int, views: int, image_hw: tuple[int, int], factorized: bool) -> float:
    """FLOPs of one layer pair (time block + view block) on a [1, T, N] grid.

    Per block and token: qkv 3C^2 + proj C^2 + MLP 2*4C^2 multiply-adds = 24 C^2 FLOPs; attention 4 * keys * C per
    query (QK^T and AV). Pooling adds 2 * 2 * G * h*w * C per frame for keys and values."""
    c = cfg.embed_dim
    grid_h, grid_w = image_hw[0] // cfg.patch_size, image_hw[1] // cfg.patch_size
    special = cfg.num_special_tokens
    per_frame = special + grid_h * grid_w
    frames = times * views
    tokens = frames * per_frame
    linear = 2 * 24 * c * c * tokens
    if not factorized:
        return linear + 2 * 4 * per_frame * c * tokens
    pooled = special + math.ceil(grid_h / cfg.kv_pool) * math.ceil(grid_w / cfg.kv_pool)
    pool_cost = 2 * 2 * (pooled - special) * grid_h * grid_w * c * frames if cfg.kv_pool > 1 else 0
    time_keys = pooled if "time" in cfg.kv_pool_kinds and cfg.kv_pool > 1 else per_frame
    view_keys = pooled if "view" in cfg.kv_pool_kinds and cfg.kv_pool > 1 else per_frame
    time_attn = 4 * window_keys_per_query(times, cfg.time_window) * time_keys * c * tokens
    view_attn = 4 * views * view_keys * c * tokens
    pools = sum(kind in cfg.kv_pool_kinds for kind in ("time", "view")) * pool_cost
    return linear + time_attn + view_attn + pools


def aggregator_flops(cfg: ModelConfig, times: int, views: int, image_hw: tuple[int, int]) -> float:
    """FLOPs of all layer pairs of the aggregator (DINOv2 and heads excluded: the knobs do not change them)."""
    layers = cfg.factorized_layers
    return sum(pair_flops(cfg, times, views, image_hw, layers is None or index in layers) for index in range(cfg.depth))


# ------------------------------------------------------------------------------------------------- CPU time
def timed(fn: Callable[[], Any], repeats: int = 1, warmup: bool = False) -> float:
    """Median wall time (s) of ``fn()``."""
    if warmup:
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def width_1b(depth: int) -> ModelConfig:
    """The 1B sizes with ``depth`` layer pairs (cost model and random-model accuracy)."""
    layers = tuple(min(i, depth - 1) for i in (0, 1, 2, 3))
    return dataclasses.replace(ModelConfig.vggt_1b(), depth=depth, dpt_intermediate_layers=layers)


@dataclasses.dataclass
class CostParts:
    """Measured seconds of one grid at the timed size (all for the whole [1, T, N] grid, one layer pair)."""

    per_token_work: float  # both blocks' knob-independent work
    time_core: dict[str, float]  # Time-SA attention core per (window, pooled) setting key
    view_core: dict[str, float]  # View-SA attention core per pooled setting key
    frame_core: float  # both blocks' attention core in per-frame mode


def attention_core(
    sequences: int, frames: int, per_frame: int, heads: int, head_dim: int, pattern: FramePattern | None
) -> float:
    """Seconds of the attention core on ``sequences`` sequences of ``frames * per_frame`` tokens."""
    gen = torch.Generator().manual_seed(0)
    shape = (sequences, heads, frames * per_frame, head_dim)
    q, k, v = (torch.randn(shape, generator=gen) for _ in range(3))
    if pattern is None:
        return timed(lambda: F.scaled_dot_product_attention(q, k, v))
    return timed(lambda: pattern_attention(q, k, v, pattern))


def measure_cost(cfg: ModelConfig, times: int, views: int, image_hw: tuple[int, int], chunk_frames: int) -> CostParts:
    grid_h, grid_w = image_hw[0] // cfg.patch_size, image_hw[1] // cfg.patch_size
    special = cfg.num_special_tokens
    per_frame = special + grid_h * grid_w
    heads, head_dim = cfg.num_heads, cfg.embed_dim // cfg.num_heads
    frames = times * views
    pooling: KeyPooling = key_pooling((grid_h, grid_w), 2, special)

    # Knob-independent work of both blocks on `chunk_frames` frames, scaled to all frames.
    torch.manual_seed(0)
    block = Block(cfg.embed_dim, heads, cfg.mlp_ratio, qk_norm=True, init_values=0.01).eval()
    rope = rope_table(frame_positions(grid_h, grid_w, special), head_dim, cfg.rope_freq).repeat(chunk_frames)
    x = torch.randn(1, chunk_frames * per_frame, cfg.embed_dim)

    def work() -> None:
        y = block.norm1(x)
        q, k, v = block.attn._qkv(y, rope)
        out = x + block.ls1(block.attn.proj(v.transpose(1, 2).reshape(x.shape)))
        out + block.ls2(block.mlp(block.norm2(out)))

    per_token_work = 2 * timed(work) * frames / chunk_frames

    time_core = {}
    for window in (None, 1, 2):
        for pool in (None, pooling):
            pattern = None if window is None and pool is None else FramePattern(times, per_frame, window, pool)
            time_core[f"{window}/{pool is not None}"] = views * attention_core(
                1, times, per_frame, heads, head_dim, pattern
            )
    view_core = {}
    view_chunk = max(1, min(times, chunk_frames // views))
    for pool in (None, pooling):
        pattern = None if pool is None else FramePattern(views, per_frame, None, pool)
        view_core[str(pool is not None)] = (times / view_chunk) * attention_core(
            view_chunk, views, per_frame, heads, head_dim, pattern
        )
    frame_core = 2 * (frames / chunk_frames) * attention_core(chunk_frames, 1, per_frame, heads, head_dim, None)
    return CostParts(per_token_work, time_core, view_core, frame_core)


def composed_seconds(parts: CostParts, cfg: ModelConfig) -> float:
    """Seconds of all layer pairs of ``cfg`` from the measured parts."""
    pooled_time = cfg.kv_pool > 1 and "time" in cfg.kv_pool_kinds
    pooled_view = cfg.kv_pool > 1 and "view" in cfg.kv_pool_kinds
    factorized_pair = (
        parts.per_token_work + parts.time_core[f"{cfg.time_window}/{pooled_time}"] + parts.view_core[str(pooled_view)]
    )
    frame_pair = parts.per_token_work + parts.frame_core
    layers = cfg.factorized_layers
    return sum(factorized_pair if layers is None or i in layers else frame_pair for i in range(cfg.depth))


def composition_check(cfg: ModelConfig, image_hw: tuple[int, int], times: int, views: int) -> tuple[float, float]:
    """(measured, composed) seconds of one real layer pair through the aggregator's code at a small grid."""
    one_pair = dataclasses.replace(cfg, depth=1, dpt_intermediate_layers=(0, 0, 0, 0), dino_depth=1)
    torch.manual_seed(0)
    agg = Aggregator(one_pair).eval()
    with torch.inference_mode():
        tokens = agg.embed(torch.rand(1, times, views, 3, *image_hw))
        measured = timed(lambda: agg.alternate(tokens, image_hw, layers=[]), repeats=2, warmup=True)
    parts = measure_cost(one_pair, times, views, image_hw, chunk_frames=times * views)
    return measured, composed_seconds(parts, one_pair)


def cost_section(grids: list[tuple[int, int]], image_hw: tuple[int, int], chunk_frames: int) -> None:
    cfg = width_1b(DEPTH_1B)
    per_frame = cfg.num_special_tokens + (image_hw[0] // 14) * (image_hw[1] // 14)
    issue_tokens = cfg.num_special_tokens + (ISSUE_HW[0] // 14) * (ISSUE_HW[1] // 14)
    print(
        f"\n## Cost: aggregator layer pairs at C=1024 (16 heads, MLP 4096), {cfg.depth} pairs, float32\n\n"
        f"FLOPs: the model in pair_flops() over all {cfg.depth} pairs (DINOv2 and heads excluded, the knobs do not "
        f"change them), at {ISSUE_HW[0]}x{ISSUE_HW[1]} ({issue_tokens} tokens/frame) and at the timed "
        f"{image_hw[0]}x{image_hw[1]} ({per_frame} tokens/frame). CPU s: {cfg.depth} pairs composed from measured "
        f"parts at {image_hw[0]}x{image_hw[1]} (per-token block work timed on {chunk_frames} frames x frames; "
        "attention core timed on one camera's Time-SA sequence x N, View-SA and per-frame sequences in chunks). "
        f"{ISSUE_HW[0]}x{ISSUE_HW[1]} itself does not fit minutes on this CPU (one full Time-SA pass over a 64-frame "
        "camera there is ~1e13 FLOPs).\n"
    )
    with torch.inference_mode():
        measured, composed = composition_check(cfg, image_hw, 4, 2)
    print(
        f"composition check, one real layer pair at 4x2, {image_hw[0]}x{image_hw[1]}: measured {measured:.2f} s, "
        f"composed {composed:.2f} s\n"
    )
    header = (
        f"| setting | T x N | TFLOP {ISSUE_HW[0]}x{ISSUE_HW[1]} | x less | TFLOP {image_hw[0]}x{image_hw[1]} "
        "| CPU s (composed) | x faster |"
    )
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|")
    for times, views in grids:
        with torch.inference_mode():
            parts = measure_cost(cfg, times, views, image_hw, chunk_frames)
        base_issue = aggregator_flops(cfg, times, views, ISSUE_HW)
        base_seconds = composed_seconds(parts, cfg)
        for name, setting in SETTINGS.items():
            knobbed = with_setting(cfg, setting)
            flops_issue = aggregator_flops(knobbed, times, views, ISSUE_HW)
            flops_timed = aggregator_flops(knobbed, times, views, image_hw)
            seconds = composed_seconds(parts, knobbed)
            print(
                f"| {name} | {times}x{views} | {flops_issue / 1e12:.1f} | {base_issue / flops_issue:.2f} "
                f"| {flops_timed / 1e12:.2f} | {seconds:.1f} | {base_seconds / seconds:.2f} |",
                flush=True,
            )


# --------------------------------------------------------------------------------------------- accuracy
OUTPUT_KEYS = ("depth", "world_points", "pose_enc")


def differences(model: VGGTTMV, base: ModelConfig, windows: list[torch.Tensor]) -> dict[str, dict[str, float]]:
    """Per setting and output: (max, mean) |knobbed - full| over ``windows`` (each ``[1, T, N, 3, H, W]``)."""
    full_outputs = []
    with torch.inference_mode():
        model.cfg = model.aggregator.cfg = base
        for images in windows:
            preds = model(images)
            full_outputs.append({key: preds[key] for key in OUTPUT_KEYS})
        results = {}
        for name, setting in SETTINGS.items():
            if name == "full":
                continue
            cfg = with_setting(base, setting)
            model.cfg = model.aggregator.cfg = cfg
            worst = {key: 0.0 for key in OUTPUT_KEYS}
            total = {key: 0.0 for key in OUTPUT_KEYS}
            for images, full in zip(windows, full_outputs, strict=True):
                preds = model(images)
                for key in OUTPUT_KEYS:
                    diff = (preds[key] - full[key]).abs()
                    worst[key] = max(worst[key], diff.max().item())
                    total[key] += diff.mean().item() / len(windows)
            results[name] = {key: (worst[key], total[key]) for key in OUTPUT_KEYS}
        model.cfg = model.aggregator.cfg = base
    return results


def print_differences(results: dict[str, dict[str, Any]], scale: dict[str, float]) -> None:
    print("| setting | depth max | depth mean | points max | points mean | pose_enc max | pose_enc mean |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, per_key in results.items():
        cells = " | ".join(f"{per_key[k][0]:.3g} | {per_key[k][1]:.3g}" for k in OUTPUT_KEYS)
        print(f"| {name} | {cells} |")
    print(
        "\nscale of the full model's outputs (mean |value|): "
        + ", ".join(f"{key} {value:.3g}" for key, value in scale.items())
    )


def synthetic_windows(seeds: str, times: int, views: int, image_hw: tuple[int, int]):
    from vggt_t_mv.eval.runner import eval_windows
    from vggt_t_mv.train.dataset import SyntheticDataConfig, synthetic_sequences

    data = SyntheticDataConfig(seeds=seeds, num_timesteps=8, height=image_hw[0], width=image_hw[1])
    return eval_windows(synthetic_sequences(data), times, views, *image_hw)


def output_scale(model: VGGTTMV, images: torch.Tensor) -> dict[str, float]:
    with torch.inference_mode():
        preds = model(images)
    return {key: preds[key].abs().mean().item() for key in OUTPUT_KEYS}


def random_1b_section(depth: int, times: int, views: int, image_hw: tuple[int, int]) -> None:
    cfg = dataclasses.replace(width_1b(depth), dino_depth=2, camera_trunk_depth=1, track_head=False)
    print(
        f"\n## Accuracy cost, random 1B-width model (C=1024, 16 heads; {depth} layer pairs, DINOv2 depth 2, camera "
        f"trunk depth 1, seed 0, VGGT's init: layer scale 0.01) on held-out synthetic seed 1000, one {times}x{views} "
        f"window at {image_hw[0]}x{image_hw[1]}\n"
    )
    torch.manual_seed(0)
    model = VGGTTMV(cfg).eval()
    window = synthetic_windows("1000", times, views, image_hw)[0].images[None]
    start = time.perf_counter()
    results = differences(model, cfg, [window])
    print_differences(results, output_scale(model, window))
    print(f"\n({time.perf_counter() - start:.0f} s)")


def finetune(setting: dict[str, Any], steps: int, times: int, out: Path) -> Path:
    """Fine-tune the demo weights with ``setting`` through the training command; returns the final folder."""
    overrides = overrides_for(setting, ModelConfig.tiny_two_stream().depth)
    overrides = {key: list(value) if isinstance(value, tuple) else value for key, value in overrides.items()}
    command = [
        sys.executable,
        "-m",
        "app.cli",
        "train",
        str(REPO / "configs" / "demo_tiny.yaml"),
        "--set",
        "model.preset=null",
        "--set",
        f"model.pretrained={DEMO_WEIGHTS}",
        "--set",
        f"model.overrides={json.dumps(overrides)}",
        "--set",
        "data.synthetic.seeds=100-105",
        "--set",
        f"data.synthetic.cache_dir={REPO / 'outputs' / 'cache'}",
        "--set",
        f"data.window.timesteps={times}",
        "--set",
        f"optim.max_steps={steps}",
        "--set",
        "optim.warmup_steps=0",
        "--set",
        "optim.lr=0.0001",
        "--set",
        f"run.save_every={steps}",
        "--set",
        "run.log_every=1000",
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True, cwd=REPO, capture_output=True, text=True)
    return out / "final"


def without_points(model: VGGTTMV) -> Callable[[Any], Any]:
    """A predictor for :func:`~vggt_t_mv.eval.runner.evaluate` that drops the points (no point metrics)."""
    from vggt_t_mv.eval.runner import predict_window

    return lambda sample: dataclasses.replace(predict_window(model, sample), world_points=None)


def demo_section(times: int, views: int, finetune_steps: int, finetuned: list[str]) -> None:
    from vggt_t_mv.eval import metrics as M
    from vggt_t_mv.eval.runner import evaluate

    image_hw = (112, 154)
    print(
        f"\n## Accuracy cost, demo weights (tiny two-stream, trained on 2x3 windows) on held-out synthetic seeds "
        f"1000-1005, {times}x{views} windows at {image_hw[0]}x{image_hw[1]}\n"
    )
    model = VGGTTMV.from_pretrained(DEMO_WEIGHTS).eval()
    base = model.cfg
    dataset = synthetic_windows("1000-1005", times, views, image_hw)
    windows = [dataset[i].images[None] for i in range(len(dataset))]
    print(f"{len(windows)} windows\n")
    print_differences(differences(model, base, windows), output_scale(model, windows[0]))

    keys = ["ate", "auc30", "abs_rel", "delta1", "mask_iou"]
    tuned_note = f"; 'tuned': after {finetune_steps} fine-tune steps with the knob on" if finetune_steps else ""
    print(f"\nmetrics (mean over windows), as loaded{tuned_note}\n")
    header = ["setting"] + [f"{key} {'↑' if M.HIGHER_IS_BETTER[key] else '↓'}" for key in keys]
    if finetune_steps:
        header += [f"{key} tuned" for key in keys]
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * (len(header) - 1))
    with tempfile.TemporaryDirectory() as tmp:
        for index, (name, setting) in enumerate(SETTINGS.items()):
            cfg = with_setting(base, setting)
            model.cfg = model.aggregator.cfg = cfg
            means = evaluate(without_points(model), dataset, name).means()
            cells = [f"{means.get(key, float('nan')):.4g}" for key in keys]
            if finetune_steps and name in finetuned:
                tuned_folder = finetune(setting, finetune_steps, times, Path(tmp) / f"setting_{index}")
                tuned = VGGTTMV.from_pretrained(tuned_folder).eval()
                assert tuned.cfg == cfg, (tuned.cfg, cfg)
                tuned_means = evaluate(without_points(tuned), dataset, name).means()
                cells += [f"{tuned_means.get(key, float('nan')):.4g}" for key in keys]
            elif finetune_steps:
                cells += ["not run"] * len(keys)
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    model.cfg = model.aggregator.cfg = base


def parse_grid(text: str) -> tuple[int, int]:
    times, views = text.lower().split("x")
    return int(times), int(views)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["all", "cost", "accuracy", "demo"], default="all")
    parser.add_argument("--grids", nargs="+", type=parse_grid, default=[(16, 4), (32, 4), (64, 4)])
    parser.add_argument("--timed-size", type=parse_grid, default=(140, 252), help="HxW of the CPU timing")
    parser.add_argument("--chunk-frames", type=int, default=8, help="frames of the per-token work timing")
    parser.add_argument("--random-depth", type=int, default=2, help="layer pairs of the random 1B-width model")
    parser.add_argument("--finetune-steps", type=int, default=20, help="0: no fine-tune")
    parser.add_argument(
        "--finetune",
        nargs="+",
        default=["full", "time_window=2", "kv_pool=2", "combined: time_window=2 + kv_pool=2 (Time-SA)"],
        help="settings to fine-tune (names as printed; 'full' is the control: the same steps without a knob)",
    )
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch "
        f"{torch.__version__}, CPU; settings: "
        + "; ".join(f"{name} = {overrides_for(s, DEPTH_1B) or 'all off'}" for name, s in SETTINGS.items())
    )
    start = time.perf_counter()
    if args.part in ("all", "cost"):
        cost_section(args.grids, args.timed_size, args.chunk_frames)
    if args.part in ("all", "accuracy", "demo"):
        if args.part != "demo":
            random_1b_section(args.random_depth, 4, 2, (112, 154))
        demo_section(8, 3, args.finetune_steps, args.finetune)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
