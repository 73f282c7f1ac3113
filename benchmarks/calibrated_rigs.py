"""Calibrated vs predicted cameras on the same weights: camera drift across windows and unscaled depth error.

Two captures, each reconstructed twice with the same weights (default ``assets/demo_weights``) and the same windows:
``--cameras predicted`` (the model's cameras, windows chained by Sim(3) on their overlaps, scaled to the calibration
by the rig baselines of window 0) and ``--cameras calibrated`` (every window moved into the calibration's frame by its
own Sim(3)). Evaluated with :func:`app.reconstruct.frame_metrics.frame_report` against the capture's ground truth, no
alignment and no median scaling:

* ``mv_page4d_rig`` (../shared/realdata; 8 timesteps, 4 cameras, DexYCB units);
* a synthetic static rig (``--timesteps`` timesteps, default 48, 4 cameras, metres), windows of ``--window`` (6).

    python benchmarks/calibrated_rigs.py [--weights assets/demo_weights] [--timesteps 48] [--window 6 --stride 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

from app.capture.preprocess import PreprocessConfig
from app.capture.truth import open_ground_truth
from app.reconstruct.frame_metrics import frame_report, reconstruction_frame
from app.reconstruct.pipeline import PipelineConfig
from app.reconstruct.run import reconstruct
from app.reconstruct.store import Reconstruction
from vggt_t_mv import WeightsSpec
from vggt_t_mv.data.synthetic import SyntheticRigConfig, make_synthetic_rig, write_dataset_root

REPO = Path(__file__).resolve().parents[1]


def measure(capture: Path, out: Path, weights: Path, mode: str, window: int, stride: int) -> dict:
    config = PipelineConfig(window=window, stride=stride, device="cpu", cameras=mode)  # type: ignore[arg-type]
    config.preprocess = PreprocessConfig(size=154)
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reconstruct(capture, out, WeightsSpec(checkpoint=weights), config)
    seconds = time.perf_counter() - tic
    recon = Reconstruction.open(out)
    calibrated, units = reconstruction_frame(recon)
    report = frame_report(recon, open_ground_truth(capture), calibrated, units)
    return {
        "windows": len(recon.windows()),
        "drift": max(d.center_drift for d in report.drift),
        "rotation_drift": max(d.rotation_drift_deg for d in report.drift),
        "abs_rel": report.sequence.get("abs_rel", float("nan")),
        "delta1": report.sequence.get("delta1", float("nan")),
        "accuracy": report.sequence.get("accuracy", float("nan")),
        "units": units,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=REPO / "assets" / "demo_weights")
    parser.add_argument("--timesteps", type=int, default=48)
    parser.add_argument("--window", type=int, default=6)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--shared", type=Path, default=REPO / ".." / "shared")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = SyntheticRigConfig(
            num_timesteps=args.timesteps, num_cameras=4, height=112, width=154, seed=7, rig_motion=False
        )
        captures = {
            "mv_page4d_rig": args.shared / "realdata" / "mv_page4d_rig",
            f"synthetic static rig ({args.timesteps} timesteps)": write_dataset_root(
                make_synthetic_rig(synthetic), Path(tmp) / "static_rig"
            ),
        }
        print(
            "| capture | cameras | windows | max camera drift | max rotation drift (deg) | depth Abs Rel (unscaled) "
            "| δ<1.25 (unscaled) | point accuracy (unaligned) | units | seconds |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, capture in captures.items():
            for mode in ("predicted", "calibrated"):
                row = measure(capture, Path(tmp) / f"{name[:8]}_{mode}", args.weights, mode, args.window, args.stride)
                print(
                    f"| {name} | {mode} | {row['windows']} | {row['drift']:.4g} | {row['rotation_drift']:.3g} | "
                    f"{row['abs_rel']:.3f} | {row['delta1']:.3f} | {row['accuracy']:.3g} | {row['units']} | "
                    f"{row['seconds']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
