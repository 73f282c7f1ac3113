"""The viewer server's resident memory against the number of timesteps, with and without the memory bound.

Each (length, bound) runs in a fresh child process: it writes a synthetic reconstruction (random geometry, 4
cameras), starts the viewer on it (no browser), waits until every held timestep is loaded, scrubs the slider to
the last timestep and back to the middle, and reports its own resident memory (``VmRSS``) after that, minus its
RSS just before the viewer started (the baseline of torch, viser and the arrays it wrote). "bound" is
:attr:`app.viewer.scene.SceneLimits.max_loaded_timesteps` (default 48); "none" holds every timestep (the
behaviour before the bound).

    python benchmarks/viewer_memory.py                      # 24, 96, 192 timesteps
    python benchmarks/viewer_memory.py --lengths 48 384 --hw 168 224
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS (Linux only)")


def write_reconstruction(root: Path, num_timesteps: int, num_cameras: int, hw: tuple[int, int]) -> None:
    """Cameras on a line looking at a noisy wall; random colours, confidences and masks (float32 as the store)."""
    import numpy as np

    from app.reconstruct.stitching import window_spans
    from app.reconstruct.store import Reconstruction

    height, width = hw
    spans = window_spans(num_timesteps, 8, 6)
    recon = Reconstruction.create(
        root,
        {"camera_names": [f"cam{n}" for n in range(num_cameras)], "image_hw": [height, width],
         "spans": [list(s) for s in spans], "num_timesteps_planned": num_timesteps},
    )  # fmt: skip
    rng = np.random.default_rng(0)
    fx = 0.8 * width
    k = np.array([[fx, 0, width / 2], [0, fx, height / 2], [0, 0, 1]], np.float32)
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    for index, (begin, end) in enumerate(spans):
        length = end - begin
        shape = (length, num_cameras, height, width)
        depth = 2.0 + 0.05 * rng.standard_normal(shape).astype(np.float32)
        extrinsics = np.zeros((length, num_cameras, 3, 4), np.float32)
        extrinsics[..., :3, :3] = np.eye(3)
        for n in range(num_cameras):
            extrinsics[:, n, 0, 3] = -0.3 * n
        x = (u - width / 2) / fx * depth - extrinsics[..., 0, 3][..., None, None]
        y = (v - height / 2) / fx * depth
        points = np.stack([x, y, depth], -1).astype(np.float32)
        arrays = {
            "images": rng.integers(0, 255, (*shape, 3), dtype=np.uint8),
            "depth": depth,
            "depth_conf": rng.random(shape, dtype=np.float32) + 1,
            "world_points": points,
            "world_points_conf": rng.random(shape, dtype=np.float32) + 1,
            "world_points_from_depth": points,
            "extrinsics": extrinsics,
            "intrinsics": np.broadcast_to(k, (length, num_cameras, 3, 3)).copy(),
            "dynamic_mask": rng.random(shape, dtype=np.float32),
        }
        recon.write_window(index, arrays, {"alignment": {"kind": "reference" if index == 0 else "sim3"}})
    recon.record.status = "complete"
    recon.save_record()


def child(num_timesteps: int, bound: int | None, hw: tuple[int, int], num_cameras: int) -> dict:
    from app.viewer.scene import SceneLimits
    from app.viewer.server import Viewer, ViewerConfig

    with tempfile.TemporaryDirectory(prefix="vggt-mv-viewer-memory-") as tmp:
        write_reconstruction(Path(tmp) / "recon", num_timesteps, num_cameras, hw)
        gc.collect()
        baseline = rss_mb()
        tic = time.perf_counter()
        viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1)).start()
        viewer.open(Path(tmp) / "recon")
        viewer.scene.limits = SceneLimits(max_loaded_timesteps=bound or num_timesteps)
        for t in (0, num_timesteps - 1, num_timesteps // 2):
            viewer.set_timestep(t)
            if not viewer.wait_until(viewer.idle, 3600, 0.2):
                raise RuntimeError("the viewer did not finish loading")
        seconds = time.perf_counter() - tic
        gc.collect()
        held = len(viewer.scene.timesteps)
        used = rss_mb() - baseline
        viewer.stop()
    return {"timesteps": num_timesteps, "bound": bound, "held": held, "rss_mb": used, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[24, 96, 192])
    parser.add_argument("--hw", type=int, nargs=2, default=[112, 154])
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--bound", type=int, default=48, help="max_loaded_timesteps of the bounded runs")
    parser.add_argument("--child", type=str, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        warnings.simplefilter("ignore")
        length, bound = json.loads(args.child)
        print(json.dumps(child(length, bound, tuple(args.hw), args.cameras)))
        return
    rows = []
    for length in args.lengths:
        for bound in (None, args.bound):
            command = [sys.executable, __file__, "--child", json.dumps([length, bound]), "--hw", *map(str, args.hw)]
            command += ["--cameras", str(args.cameras)]
            done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            row = rows[-1]
            print(f"  {length} timesteps, bound {bound or 'none'}: {row['rss_mb']:.0f} MB", file=sys.stderr)
    height, width = args.hw
    print(f"\n{args.cameras} cameras, {height}x{width} px, default point budget; RSS above the pre-viewer baseline\n")
    print("| timesteps | bound | timesteps held | server RSS (MB) | MB per timestep | load + scrub (s) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        per = row["rss_mb"] / row["timesteps"]
        bound = row["bound"] or "none"
        print(
            f"| {row['timesteps']} | {bound} | {row['held']} | {row['rss_mb']:.0f} | {per:.2f} | {row['seconds']:.0f} |"
        )


if __name__ == "__main__":
    main()
