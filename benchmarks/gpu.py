"""GPU speed and memory of the aggregator and the whole model at VGGT-1B size.

Self-contained: imports only vggt_t_mv, torch and numpy, so it runs with ``PYTHONPATH=.`` on a GPU
machine that has torch but not the app's dependencies. Random weights (speed does not depend on them).

Workloads at 336x518 (P = 24x37 patches + 5 special = 893 tokens per frame):

* ``10x5`` (50 frames) and ``25x8`` (200 frames) as 6-D ``[1, T, N]`` grids, for ``vggt_1b()``
  (factorized time/view attention) and ``vggt_t_mv()`` (two streams, branched);
* the same frames flattened to VGGT's ``[1, S]`` input (global attention over all frames), for
  ``vggt_1b()``: this is VGGT's own computation.

For each: aggregator time, whole-model time (camera, depth and point heads), peak GPU memory, the FLOP
model's count and the achieved TFLOP/s. Timing: CUDA events, warm-up, median of ``--repeats`` runs;
bf16 autocast where supported (heads in fp32, as upstream). ``--smoke`` runs a tiny version on CPU.

    PYTHONPATH=. python benchmarks/gpu.py               # the GPU table (< 6 minutes on one H100)
    PYTHONPATH=. python benchmarks/gpu.py --smoke       # tiny, CPU, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import statistics
import time
from collections.abc import Callable

import torch

from vggt_t_mv import VGGTTMV, ModelConfig

# VGGT-1B, H100, 336x518, FlashAttention 3 (the VGGT paper / README).
VGGT_PUBLISHED = {50: (1.04, 11.4), 200: (8.75, 40.6)}


@dataclasses.dataclass
class Workload:
    name: str
    model: str  # key of models()
    times: int
    views: int
    flatten: bool  # give the frames as VGGT's [1, S] input

    @property
    def frames(self) -> int:
        return self.times * self.views


def models(smoke: bool) -> dict[str, ModelConfig]:
    if smoke:
        return {"vggt_1b": ModelConfig.tiny(), "vggt_t_mv": ModelConfig.tiny_two_stream()}
    return {"vggt_1b": ModelConfig.vggt_1b(), "vggt_t_mv": ModelConfig.vggt_t_mv()}


def workloads(smoke: bool) -> list[Workload]:
    grids = [(2, 2), (3, 2)] if smoke else [(10, 5), (25, 8)]
    out = []
    for times, views in grids:
        frames = times * views
        out.append(Workload(f"{frames} frames, {times}x{views} grid", "vggt_1b", times, views, False))
        out.append(Workload(f"{frames} frames, {times}x{views} grid", "vggt_t_mv", times, views, False))
        out.append(Workload(f"{frames} frames, flat [1, {frames}] (VGGT)", "vggt_1b", times, views, True))
    return out


def aggregator_flops(cfg: ModelConfig, times: int, views: int, flatten: bool, image_hw: tuple[int, int]) -> float:
    """FLOPs of one aggregator forward: DINOv2 plus the alternating layers (2 FLOPs per multiply-add).

    Per token and layer pair: linear layers 48 C^2 (two blocks of qkv 3C^2, proj C^2, MLP 8C^2) plus
    attention 4 C L per block for a sequence of length L (QK^T and AV). Layers after the stream split
    run twice.
    """
    c = cfg.embed_dim
    patches = (image_hw[0] // cfg.patch_size) * (image_hw[1] // cfg.patch_size)
    per_frame = patches + cfg.num_special_tokens
    frames = times * views
    dino_tokens = patches + 1 + cfg.dino_num_register_tokens
    dino = frames * dino_tokens * cfg.dino_depth * (24 * c * c + 4 * c * dino_tokens)
    lengths = (per_frame, frames * per_frame) if flatten else (times * per_frame, views * per_frame)
    per_token = 48 * c * c + 4 * c * sum(lengths)
    layer_pairs = cfg.depth + (cfg.depth - cfg.first_stream_layer)
    return dino + frames * per_frame * layer_pairs * per_token


def forward(module: torch.nn.Module, images: torch.Tensor, use_bf16: bool) -> object:
    with torch.inference_mode(), torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        return module(images)


def measure(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of ``fn()`` after one warm-up; CUDA events on GPU, perf_counter on CPU."""
    fn()
    samples = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end) / 1000)
        else:
            begin = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - begin)
    return statistics.median(samples)


def print_flop_model() -> None:
    """The FLOP model of the full-size workloads (no device needed)."""
    configs = models(smoke=False)
    print("| model | workload | aggregator TFLOP (model) | flattened / grid |")
    print("|---|---|---|---|")
    for load in workloads(smoke=False):
        cfg = configs[load.model]
        flops = aggregator_flops(cfg, load.times, load.views, load.flatten, (336, 518))
        grid = aggregator_flops(cfg, load.times, load.views, False, (336, 518))
        print(f"| {load.model} | {load.name} | {flops / 1e12:.1f} | {flops / grid:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny models and images on CPU")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile the time/view blocks")
    parser.add_argument("--only", choices=["vggt_1b", "vggt_t_mv"], help="run one model's workloads")
    parser.add_argument(
        "--flops-only", action="store_true", help="print the FLOP model of the GPU workloads, run nothing"
    )
    args = parser.parse_args()
    if args.flops_only:
        print_flop_model()
        return

    device = torch.device("cpu" if args.smoke or not torch.cuda.is_available() else "cuda")
    if device.type == "cpu" and not args.smoke:
        raise SystemExit("no CUDA device: run with --smoke for the CPU check")
    image_hw = (28, 42) if args.smoke else (336, 518)
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    repeats = 1 if args.smoke else args.repeats
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"device: {name}, torch {torch.__version__}, {'bf16 autocast' if use_bf16 else 'float32'}, "
        f"{image_hw[0]}x{image_hw[1]} px, median of {repeats}"
    )
    print(
        "| model | workload | aggregator (s) | whole model (s) | peak memory (GB) | aggregator TFLOP (model) "
        "| achieved TFLOP/s | VGGT published (s / GB) |"
    )
    print("|---|---|---|---|---|---|---|---|")

    configs = models(args.smoke)
    for model_name, cfg in configs.items():
        if args.only and model_name != args.only:
            continue
        torch.manual_seed(0)
        model = VGGTTMV(dataclasses.replace(cfg, track_head=False)).eval().to(device)
        if args.compile:
            model.aggregator.compile_blocks()
        for load in workloads(args.smoke):
            if load.model != model_name:
                continue
            shape = (1, 1, load.frames) if load.flatten else (1, load.times, load.views)
            images = torch.rand(*shape, 3, *image_hw, device=device)
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            aggregator_s = measure(functools.partial(forward, model.aggregator, images, use_bf16), repeats, device)
            model_s = measure(functools.partial(forward, model, images, use_bf16), repeats, device)
            peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else float("nan")
            flops = aggregator_flops(cfg, load.times, load.views, load.flatten, image_hw)
            published = VGGT_PUBLISHED.get(load.frames) if not args.smoke else None
            reference = f"{published[0]} / {published[1]}" if published and load.model == "vggt_1b" else "-"
            print(
                f"| {model_name} | {load.name} | {aggregator_s:.3f} | {model_s:.3f} | {peak:.1f} "
                f"| {flops / 1e12:.3g} | {flops / aggregator_s / 1e12:.3g} | {reference} |",
                flush=True,
            )
            del images
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
