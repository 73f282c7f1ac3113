"""Cost of 4D tracks (issue 29): per window (one trunk pass + the track features of its T x N frames) and per query
(the iterative tracker, per camera), on the demo weights or any ``--checkpoint``.

python benchmarks/track_cost.py [--checkpoint assets/demo_weights | --preset vggt_1b] [--window 6] [--cameras 4]
    [--size 154x112] [--threads 2] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from vggt_t_mv import load_model
from vggt_t_mv.tracks.head import HeadTracker

REPO = Path(__file__).resolve().parents[1]


def _timed(function, repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(REPO / "assets" / "demo_weights"))
    parser.add_argument("--preset", help="random weights of this preset (e.g. vggt_1b) instead of --checkpoint")
    parser.add_argument("--window", type=int, default=6)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--size", default="154x112", help="model input WxH (multiples of 14)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    width, height = (int(v) for v in args.size.split("x"))
    if args.preset:
        model, weights = load_model(args.preset, random_weights=True).model, f"{args.preset} (random)"
    else:
        model, weights = load_model(checkpoint=args.checkpoint).model, args.checkpoint
    model = model.to(device).eval()
    images = torch.rand(1, args.window, args.cameras, 3, height, width, generator=torch.Generator().manual_seed(0))
    images = images.to(device)
    with torch.inference_mode():
        model(images)  # warm-up
    reconstruct = _timed(lambda: model(images), args.repeats, device)
    tracker = HeadTracker(model, images)
    per_window = _timed(lambda: HeadTracker(model, images), args.repeats, device)
    print(f"{platform.machine()}, {args.device}, {args.threads} torch threads, torch {torch.__version__}")
    print(f"window {args.window} x {args.cameras} cameras at {width}x{height}, weights {weights}\n")
    print("| what | seconds |")
    print("|---|---:|")
    print(f"| reconstruction forward of one window (for comparison) | {reconstruct:.3f} |")
    print(
        f"| tracks, per window: trunk + track features of its {args.window * args.cameras} frames | {per_window:.3f} |"
    )
    rng = np.random.default_rng(0)
    for count in (1, 16, 64, 256):
        pixels = rng.uniform([0, 0], [width - 1, height - 1], size=(count, 2))
        seconds = _timed(lambda p=pixels: tracker.track(0, 0, p), args.repeats, device)
        print(
            f"| tracks, tracker on one camera's {args.window} frames, {count} queries | {seconds:.3f} "
            f"({1000 * seconds / count:.2f} ms per query) |"
        )


if __name__ == "__main__":
    main()
