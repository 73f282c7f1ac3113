"""End-to-end throughput and peak memory of `vggt-mv run` for captures of several lengths.

Each length runs in a fresh child process (tiny model, random weights, CPU, float32) on a synthetic rig
written as videos; the child reports its own peak RSS (``VmHWM``), so the numbers do not mix. Peak
memory should stay flat as the capture grows: frames are streamed and each window goes to disk.

    python benchmarks/pipeline.py                 # 24 and 96 timesteps, 4 cameras, --size 112
    python benchmarks/pipeline.py --lengths 24 96 192 --size 224
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_capture(folder: Path, num_timesteps: int, num_cameras: int, height: int, width: int) -> None:
    from vggt_t_mv.data.synthetic import SyntheticRigConfig, make_synthetic_rig, write_capture

    rig = make_synthetic_rig(
        SyntheticRigConfig(num_timesteps=num_timesteps, num_cameras=num_cameras, height=height, width=width, seed=0)
    )
    write_capture(rig, folder, fmt="video")


def peak_rss_mb() -> float:
    """This process's peak resident memory. ``VmHWM`` (Linux) is per process image, unlike ``ru_maxrss``,
    which survives ``exec`` and would report the parent's peak (the parent renders the captures)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """Run the pipeline once in this process and print one JSON line."""
    import torch

    from app.capture.preprocess import PreprocessConfig
    from app.reconstruct.pipeline import PipelineConfig
    from app.reconstruct.run import prepare_reconstruction
    from vggt_t_mv import WeightsSpec

    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    config = PipelineConfig(
        window=args.window, stride=args.stride, device="cpu", preprocess=PreprocessConfig(size=args.size)
    )
    prepared = prepare_reconstruction(
        args.capture, args.out, WeightsSpec(config="tiny", random_weights=True), config, overwrite=True
    )
    capture, plan, recon = prepared.capture, prepared.plan, prepared.recon
    tic = time.perf_counter()
    result = prepared.run()
    seconds = time.perf_counter() - tic
    model_seconds = sum(entry.model_seconds or 0.0 for entry in recon.record.alignment)
    disk = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())
    print(
        json.dumps(
            {
                "timesteps": capture.num_timesteps,
                "cameras": capture.num_cameras,
                "image_hw": list(plan.image_hw),
                "windows": len(plan.spans),
                "seconds": seconds,
                "frames_per_s": capture.num_timesteps * capture.num_cameras / seconds,
                "model_seconds": model_seconds,
                "peak_rss_mb": peak_rss_mb(),
                "disk_mb": disk / 2**20,
                "windows_run": result.windows_run,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[24, 96])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--height", type=int, default=120)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--window", type=int, default=6)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--capture", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for length in args.lengths:
            capture = Path(tmp) / f"capture_{length}"
            make_capture(capture, length, args.cameras, args.height, args.width)
            command = [
                sys.executable,
                __file__,
                "--child",
                "--capture",
                str(capture),
                "--out",
                str(Path(tmp) / f"recon_{length}"),
                "--size",
                str(args.size),
                "--window",
                str(args.window),
                "--stride",
                str(args.stride),
                "--threads",
                str(args.threads),
            ]
            output = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
    print(
        f"tiny model, random weights, CPU float32, {args.threads} threads; capture {args.cameras} cameras "
        f"{args.width}x{args.height} mp4v; window {args.window} stride {args.stride}\n"
    )
    print(
        "| timesteps | cameras | model input | windows | total (s) | model (s) | frames/s | peak RSS (MB) "
        "| on disk (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        height, width = row["image_hw"]
        print(
            f"| {row['timesteps']} | {row['cameras']} | {width}x{height} | {row['windows']} | {row['seconds']:.2f} | "
            f"{row['model_seconds']:.2f} | {row['frames_per_s']:.1f} | {row['peak_rss_mb']:.0f} "
            f"| {row['disk_mb']:.1f} |"
        )
    if len(rows) > 1:
        growth = rows[-1]["peak_rss_mb"] - rows[0]["peak_rss_mb"]
        print(
            f"\npeak RSS growth from {rows[0]['timesteps']} to {rows[-1]['timesteps']} timesteps: {growth:+.0f} MB "
            f"(reconstruction on disk grew by {rows[-1]['disk_mb'] - rows[0]['disk_mb']:.1f} MB)"
        )


if __name__ == "__main__":
    main()
