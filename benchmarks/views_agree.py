"""Does the multi-view agreement filter help? Point accuracy vs completeness at equal kept fractions, and its cost.

Each capture is reconstructed with the same weights (default ``assets/demo_weights``) twice: ``--cameras predicted``
(the model's own cameras; its points are compared with the ground truth after the Sim(3) that fits the reconstructed
camera centres onto the true ones: *aligned and scaled*) and ``--cameras calibrated`` (the calibration's cameras and
units: compared as stored, *absolute*). Points: the pose stream (the depth unprojected with the stored cameras, what
the agreement checks). For each kept fraction ``f`` of a timestep's valid pixels:

* **confidence**: the ``f`` most confident pixels;
* **confidence + agreement**: the ``f`` most confident among the pixels ``--min-views 1`` keeps (at least one other
  camera agrees, or none sees the point); "n/a" when fewer than ``f`` pass it.

accuracy = mean distance of the kept points to the true cloud (all valid true pixels of that timestep, every camera),
completeness = mean distance of the true points to the kept points (lower is better for both; 4000-point samples per
timestep, every timestep, averaged).

The cost: **the pipeline's** ``agreement`` stage (the window writer's thread computes each stored timestep's
agreement from the depth and cameras it stores: :meth:`Reconstruction.complete_window`), its seconds over the run's
camera images, next to the ``model`` stage of the same run; then ``views_agree`` alone on the synthetic rig's exact
depth at 518x392 (the full model's resolution; median of 3). The machine's load average is printed with them.

Captures: ``mv_page4d_rig`` (../shared/realdata; 8 timesteps, 4 cameras) and a synthetic rig with moving objects
(``--timesteps``, 4 cameras, exact ground truth).

    python benchmarks/views_agree.py [--weights assets/demo_weights] [--timesteps 8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from app.capture.preprocess import PreprocessConfig
from app.capture.truth import open_ground_truth
from app.reconstruct.evaluate import camera_alignment, ground_truth_sample
from app.reconstruct.pipeline import PipelineConfig, RunResult
from app.reconstruct.run import reconstruct
from app.reconstruct.store import Reconstruction, derive_world_points
from vggt_t_mv import WeightsSpec
from vggt_t_mv.agreement import passes_min_views, views_agree
from vggt_t_mv.data.synthetic import SyntheticRigConfig, make_synthetic_rig, write_dataset_root
from vggt_t_mv.eval.metrics import nearest_distances

REPO = Path(__file__).resolve().parents[1]
FRACTIONS = (0.9, 0.7, 0.5, 0.3)
SAMPLE = 4000


def kept_top(conf: np.ndarray, candidates: np.ndarray, count: int) -> np.ndarray | None:
    """The ``count`` most confident of ``candidates`` (bool mask), or None when there are fewer."""
    if candidates.sum() < count:
        return None
    index = np.flatnonzero(candidates)
    chosen = index[np.argsort(-conf.ravel()[index], kind="stable")[:count]]
    keep = np.zeros(conf.size, bool)
    keep[chosen] = True
    return keep.reshape(conf.shape)


def distances(points: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """(accuracy, completeness) of ``points`` against ``truth`` (``[K, 3]`` each), on samples."""
    pick = points[rng.choice(len(points), min(SAMPLE, len(points)), replace=False)]
    true = truth[rng.choice(len(truth), min(SAMPLE, len(truth)), replace=False)]
    return float(nearest_distances(pick, true).mean()), float(nearest_distances(true, pick).mean())


def evaluate(recon: Reconstruction, gt_root: Path, aligned: bool) -> dict:
    truth_source = open_ground_truth(gt_root)
    sim3 = camera_alignment(recon, truth_source) if aligned else None
    rng = np.random.default_rng(0)
    results: dict = {("conf", f): [] for f in FRACTIONS} | {("agree", f): [] for f in FRACTIONS}
    passing = []
    for t in range(recon.num_timesteps):
        sample = ground_truth_sample(recon, truth_source, range(t, t + 1))
        gt_depth = sample.depth.numpy()[0].astype(np.float32)
        gt_valid = sample.valid.numpy()[0] & (gt_depth > 0)
        gt_points = derive_world_points(
            gt_depth, sample.extrinsics.numpy()[0].astype(np.float32), sample.intrinsics.numpy()[0].astype(np.float32)
        )[gt_valid]
        depth = np.asarray(recon.get("depth", t), np.float32)
        extrinsics, intrinsics = np.asarray(recon.get("extrinsics", t)), np.asarray(recon.get("intrinsics", t))
        counts = recon.views_agree(t)  # as the pipeline stored it
        conf = np.asarray(recon.get("depth_conf", t), np.float32)
        points = derive_world_points(depth, extrinsics, intrinsics)
        if sim3 is not None:
            points = sim3.apply(points.astype(np.float64))
        valid = np.isfinite(points).all(-1) & (depth > 0) & np.isfinite(conf)
        agree = valid & passes_min_views(counts, 1)
        passing.append(agree.sum() / max(valid.sum(), 1))
        for fraction in FRACTIONS:
            count = int(round(fraction * valid.sum()))
            for kind, candidates in (("conf", valid), ("agree", agree)):
                keep = kept_top(conf, candidates, count)
                if keep is not None:
                    results[(kind, fraction)].append(distances(points[keep], gt_points, rng))
    table = {key: tuple(np.mean(values, axis=0)) if values else None for key, values in results.items()}
    return {"table": table, "passing": float(np.mean(passing))}


def run(capture: Path, out: Path, weights: Path, mode: str, window: int, stride: int) -> RunResult:
    config = PipelineConfig(window=window, stride=stride, device="cpu", cameras=mode)  # type: ignore[arg-type]
    config.preprocess = PreprocessConfig(size=154)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = reconstruct(capture, out, WeightsSpec(checkpoint=weights), config)
    assert result is not None
    return result


def stage_ms_per_image(result: RunResult, stage: str) -> float:
    """The pipeline stage's seconds over the run's camera images (each stored timestep x camera once), in ms."""
    recon = result.reconstruction
    return 1000 * result.stage_seconds[stage] / (recon.num_timesteps * recon.num_cameras)


def exact_cost(repeats: int = 3) -> float:
    """ms per camera image of ``views_agree`` at 518x392 on exact depth (4 cameras), median of ``repeats``."""
    rig = make_synthetic_rig(SyntheticRigConfig(num_timesteps=1, num_cameras=4, height=392, width=518, seed=7))
    seconds = []
    for _ in range(repeats):
        tic = time.perf_counter()
        views_agree(rig.depth[0], rig.extrinsics[0], rig.intrinsics[0])
        seconds.append(time.perf_counter() - tic)
    return 1000 * float(np.median(seconds)) / 4


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min), {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=REPO / "assets" / "demo_weights")
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--stride", type=int, default=3)
    parser.add_argument("--shared", type=Path, default=REPO / ".." / "shared")
    args = parser.parse_args()
    print(f"start: {load_average()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = SyntheticRigConfig(num_timesteps=args.timesteps, num_cameras=4, height=112, width=154, seed=7)
        captures = {
            "mv_page4d_rig": args.shared / "realdata" / "mv_page4d_rig",
            f"synthetic rig ({args.timesteps} timesteps, moving objects)": write_dataset_root(
                make_synthetic_rig(synthetic), Path(tmp) / "rig"
            ),
        }
        header = " | ".join(f"kept {f:.0%}: acc / compl" for f in FRACTIONS)
        print(f"| capture | cameras (comparison) | filter | {header} |")
        print("|---|---|---|" + "---|" * len(FRACTIONS))
        costs = []
        for name, capture in captures.items():
            for mode in ("predicted", "calibrated"):
                ran = run(capture, Path(tmp) / f"{name[:9]}_{mode}", args.weights, mode, args.window, args.stride)
                result = evaluate(ran.reconstruction, capture, aligned=mode == "predicted")
                comparison = "aligned + scaled" if mode == "predicted" else "absolute"
                for kind, label in (("conf", "confidence"), ("agree", "confidence + agreement")):
                    cells = []
                    for fraction in FRACTIONS:
                        value = result["table"][(kind, fraction)]
                        cells.append("n/a" if value is None else f"{value[0]:.3f} / {value[1]:.3f}")
                    print(f"| {name} | {mode} ({comparison}) | {label} | {' | '.join(cells)} |")
                agreement, model = stage_ms_per_image(ran, "agreement"), stage_ms_per_image(ran, "model")
                costs.append((name, mode, result["passing"], agreement, model))
        print()
        print(
            "| capture | cameras | pixels passing --min-views 1 | pipeline agreement ms per camera image (112x154) "
            "| model ms per camera image (same run) |"
        )
        print("|---|---|---|---|---|")
        for name, mode, share, agreement, model in costs:
            print(f"| {name} | {mode} | {share:.1%} | {agreement:.2f} | {model:.1f} |")
    print(f"\nviews_agree at 518x392 on exact depth (4 cameras): {exact_cost():.1f} ms per camera image")
    print(f"end: {load_average()}")


if __name__ == "__main__":
    main()
