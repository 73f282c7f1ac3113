"""Generate the bundled demo capture ``assets/demo_rig/``: 4 cameras x 24 frames of 224x160 mp4v video plus
``ground_truth.npz`` (depth in whole millimetres, to keep the asset small) and a README.

The settings are :func:`vggt_t_mv.data.synthetic.demo_rig_config`; rendering is deterministic, so running this
again reproduces the ground truth (``tests/test_synthetic.py`` checks the committed asset against it).

    python scripts/make_demo_rig.py [--output assets/demo_rig] [--fmt video|images]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vggt_t_mv.data.synthetic import demo_rig_config, make_synthetic_rig, write_capture

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "assets" / "demo_rig"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="capture folder (replaced if present)")
    parser.add_argument("--fmt", choices=("video", "images"), default="video", help="mp4v videos or PNG folders")
    args = parser.parse_args()

    config = demo_rig_config()
    start = time.perf_counter()
    rig = make_synthetic_rig(config)
    render_s = time.perf_counter() - start
    folder = write_capture(rig, args.output, fmt=args.fmt, overwrite=True, depth_dtype="uint16")
    size_mb = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 1e6
    print(
        f"rendered {rig.num_timesteps} x {rig.num_cameras} frames of {rig.image_hw[1]}x{rig.image_hw[0]} "
        f"in {render_s:.2f} s; wrote {folder} ({size_mb:.2f} MB)"
    )


if __name__ == "__main__":
    main()
