"""Does training-data loading keep up? Windows per second cut from a dataset root at 518 px (the capture readers of
``vggt-mv run``, the run's crop, ground truth through the same transform) by ``data.num_workers`` loader processes,
against the time of one training step (forward, backward, AdamW) of the tiny two-stream model on the same windows
on CPU.

python benchmarks/train_loading.py [--root ../shared/realdata/mv_page4d_rig] [--width 518] [--workers 0 2 4]
                                   [--samples 16] [--steps 3] [--threads 2]

The loader keeps up when ``windows/s x step seconds >= batch size`` (a step never waits for its batch). On a GPU a
step of the full-size model takes a fraction of a second, so the loader has to deliver several windows per second:
raise ``data.num_workers`` until the printed rate does (each worker is one process with one torch thread).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from app.train.data import CaptureSequence
from vggt_t_mv.loading import load_model
from vggt_t_mv.train.dataset import DataConfig, WindowConfig, WindowDataset, collate, resolve_window_size
from vggt_t_mv.train.losses import LossConfig, compute_loss

REPO_ROOT = Path(__file__).resolve().parents[1]


def loading_rate(dataset: WindowDataset, workers: int, samples: int) -> float:
    """Windows per second over ``samples`` windows after the first (which pays for starting the workers)."""
    order = [i % len(dataset) for i in range(samples + 1)]
    loader = DataLoader(dataset, batch_size=1, sampler=order, num_workers=workers, collate_fn=collate)
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    for _ in range(samples):
        next(iterator)
    return samples / (time.perf_counter() - start)


def step_seconds(dataset: WindowDataset, steps: int) -> float:
    """Median seconds of one training step of the tiny two-stream model on one window (after one warm-up step)."""
    model = load_model("tiny_two_stream", random_weights=True).model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = collate([dataset[0]])
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = compute_loss(model(batch.images), batch, LossConfig())
        optimizer.zero_grad()
        loss.total.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=REPO_ROOT.parent / "shared" / "realdata" / "mv_page4d_rig")
    parser.add_argument("--width", type=int, default=518)
    parser.add_argument("--timesteps", type=int, default=2)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, DataConfig().num_workers])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sequence = CaptureSequence(args.root)
    window = resolve_window_size(
        WindowConfig(args.timesteps, args.cameras, None, args.width, camera_offsets="first"), sequence.image_hw, None
    )
    dataset = WindowDataset([sequence], window)
    shape = f"{window.timesteps}x{window.cameras} frames at {window.height}x{window.width}"
    print(f"machine: {platform.machine()}, {args.threads} torch threads, torch {torch.__version__}")
    print(f"data: {sequence.describe()}; windows of {shape}")
    rates = {}
    for workers in args.workers:
        rates[workers] = loading_rate(dataset, workers, args.samples)
        print(f"loading with {workers} workers: {rates[workers]:.2f} windows/s", flush=True)
    step = step_seconds(dataset, args.steps)
    print(f"one training step of the tiny two-stream model: {step:.3f} s", flush=True)
    print("| loader | windows/s | s per window | tiny-model step (s) | windows per step | keeps up (batch 1) |")
    print("|---|---:|---:|---:|---:|---|")
    for workers, rate in rates.items():
        default = " (default)" if workers == DataConfig().num_workers else ""
        keeps = "yes" if rate * step >= 1 else "no"
        print(
            f"| {workers} workers{default} | {rate:.2f} | {1 / rate:.3f} | {step:.3f} | {rate * step:.1f} | {keeps} |"
        )


if __name__ == "__main__":
    main()
