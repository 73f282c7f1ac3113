"""Track metrics of a reconstruction against ground truth, as MVTracker reports them: median 3D error, the average
fraction of points within 1, 2, 4, 8, 16 cm (``delta_avg``), and occlusion accuracy, over every query and every
timestep from its own on.

Ground-truth tracks come from a synthetic capture (``ground_truth.npz`` with its rig configuration: the objects move
as rigid bodies, :mod:`vggt_t_mv.data.synthetic_tracks`; metres) or a dataset's ``tracks_3d.npy`` ``[Q, T, 3]`` (the
queries' own rows, optional ``visibility.npy`` ``[Q, T]``; not known to be metric: the thresholds are then
1..16 % of the median camera-to-point distance). Predicted points are brought into the ground truth's frame by the
Sim(3) of the camera centres (:func:`app.reconstruct.evaluate.camera_alignment`; the identity, up to rounding, for a
calibrated run)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.capture.ground_truth import GroundTruth
from app.capture.truth import open_ground_truth
from app.reconstruct.evaluate import camera_alignment
from app.reconstruct.store import Reconstruction
from app.reconstruct.track_store import TrackSet, has_tracks
from vggt_t_mv.data.synthetic import GROUND_TRUTH_FILE, SyntheticRigConfig, scene_motion
from vggt_t_mv.data.synthetic_tracks import exact_depth, ground_truth_tracks, ground_truth_visibility
from vggt_t_mv.npgeometry import Sim3, camera_centers, unproject_pixels

THRESHOLDS_CM = (1, 2, 4, 8, 16)
TRACKS_FILE, VISIBILITY_FILE = "tracks_3d.npy", "visibility.npy"


@dataclass
class TrackTruth:
    """Ground truth of the stored queries: ``points [Q, T, 3]`` and ``visible [Q, T]`` in the ground truth's frame;
    ``metric``: its units are metres."""

    points: np.ndarray
    visible: np.ndarray
    metric: bool


@dataclass
class TrackMetrics:
    median_error: float
    within: dict[str, float]  # threshold label -> fraction of visible points within it
    delta_avg: float
    occlusion_accuracy: float
    num_points: int
    unit: str  # what the thresholds are in

    def to_dict(self) -> dict:
        return {
            "median_3d_error": self.median_error,
            "delta_avg": self.delta_avg,
            **{f"within_{label}": value for label, value in self.within.items()},
            "occlusion_accuracy": self.occlusion_accuracy,
            "points": self.num_points,
            "threshold_unit": self.unit,
        }

    def table(self, title: str) -> str:
        labels = list(self.within)
        head = "| tracks | points | median 3D error ↓ | δ_avg ↑ | " + " | ".join(f"<{x} ↑" for x in labels)
        cells = [f"{self.within[x]:.3f}" for x in labels]
        row = f"| {title} | {self.num_points} | {self.median_error:.4g} | {self.delta_avg:.3f} | " + " | ".join(cells)
        note = f"\nThresholds in {self.unit}; occlusion accuracy {self.occlusion_accuracy:.3f}."
        return f"**{title}: 4D tracks**\n\n{head} |\n|---|---:|---:|---:|" + "---:|" * len(labels) + f"\n{row} |{note}"


def _synthetic_config(gt_path: Path) -> SyntheticRigConfig | None:
    folder = gt_path if gt_path.is_dir() else gt_path.parent
    file = folder / GROUND_TRUTH_FILE
    if not file.is_file():
        return None
    with np.load(file) as data:
        text = str(data["config_json"]) if "config_json" in data.files else ""
    return SyntheticRigConfig.from_dict(json.loads(text)) if text else None


def _gt_cameras(gt: GroundTruth, num_timesteps: int, num_cameras: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    frames = [[gt.frame(t, n) for n in range(num_cameras)] for t in range(num_timesteps)]
    extrinsics = np.array([[f.extrinsics for f in row] for row in frames])
    intrinsics = np.array([[f.intrinsics for f in row] for row in frames])
    return extrinsics, intrinsics, tuple(frames[0][0].image_hw)


def _synthetic_truth(recon: Reconstruction, tracks: TrackSet, gt_path: Path, to_gt: Sim3) -> TrackTruth | None:
    config = _synthetic_config(gt_path)
    if config is None:
        return None
    motion = scene_motion(config)
    num_timesteps, num_cameras = tracks.points.shape[1], recon.num_cameras
    extrinsics, intrinsics, image_hw = _gt_cameras(open_ground_truth(gt_path), num_timesteps, num_cameras)
    starts = []
    for t, a, b, c in tracks.queries:
        t = int(t)
        if tracks.kind == "3d":
            starts.append(to_gt.apply(np.array([a, b, c])))
            continue
        transform = recon.record.preprocess[int(a)]
        pixel = (np.array([[b, c]]) - [transform.offset_x, transform.offset_y]) / transform.scale  # original pixels
        depth, _ = exact_depth(motion, t, extrinsics[t, int(a)], intrinsics[t, int(a)], pixel)
        starts.append(unproject_pixels(pixel, depth, extrinsics[t, int(a)], intrinsics[t, int(a)])[0])
    queries = np.concatenate([tracks.queries[:, :1], np.array(starts)], axis=1)
    points = ground_truth_tracks(motion, queries, num_timesteps)
    visible = np.asarray(ground_truth_visibility(motion, points, extrinsics, intrinsics, image_hw).any(-1))
    return TrackTruth(points, visible, metric=True)


def _dataset_truth(tracks: TrackSet, gt_path: Path) -> TrackTruth | None:
    folder = gt_path if gt_path.is_dir() else gt_path.parent
    if not (folder / TRACKS_FILE).is_file():
        return None
    points = np.load(folder / TRACKS_FILE)
    if points.shape[:1] != tracks.points.shape[:1] or points.shape[1] < tracks.points.shape[1]:
        raise ValueError(
            f"{folder / TRACKS_FILE}: shape {list(points.shape)} does not cover the stored tracks "
            f"{list(tracks.points.shape)}: track the dataset's own query_points.npy (--track-queries auto)"
        )
    num_timesteps = tracks.points.shape[1]
    visible = np.load(folder / VISIBILITY_FILE)[:, :num_timesteps] if (folder / VISIBILITY_FILE).is_file() else None
    points = points[:, :num_timesteps]
    seen: np.ndarray = np.ones(points.shape[:2], bool) if visible is None else np.asarray(visible, bool)
    return TrackTruth(points, seen, False)


def track_metrics(
    predicted: np.ndarray, predicted_visible: np.ndarray, truth: TrackTruth, started: np.ndarray, unit_scale: float
) -> TrackMetrics:
    """``predicted [Q, T, 3]`` (ground truth's frame) and ``predicted_visible [Q, T]`` against ``truth`` over
    ``started [Q, T]``; thresholds ``THRESHOLDS_CM x unit_scale`` (metres per cm: 0.01 for metric ground truth)."""
    scored = started & truth.visible
    error = np.linalg.norm(predicted - truth.points, axis=-1)[scored]
    error = np.where(np.isfinite(error), error, np.inf)
    within = {f"{x}cm": float((error < x * unit_scale).mean()) if len(error) else float("nan") for x in THRESHOLDS_CM}
    occlusion = float((predicted_visible == truth.visible)[started].mean()) if started.any() else float("nan")
    median = float(np.median(error)) if len(error) else float("nan")
    unit = "cm" if truth.metric else f"units of {unit_scale:.4g} (1 % of the median camera distance)"
    return TrackMetrics(median, within, float(np.mean(list(within.values()))), occlusion, int(len(error)), unit)


def evaluate_tracks(recon: Reconstruction, gt_path: str | Path) -> TrackMetrics | None:
    """The track metrics of ``recon`` against ``gt_path``; None when the reconstruction has no tracks or the ground
    truth none to compare with."""
    gt_path = Path(gt_path)
    if not has_tracks(recon.root):
        return None
    tracks = recon.tracks()
    gt = open_ground_truth(gt_path)
    to_gt = camera_alignment(recon, gt)
    truth = _dataset_truth(tracks, gt_path)
    if truth is None:
        truth = _synthetic_truth(recon, tracks, gt_path, to_gt)
    if truth is None:
        return None
    predicted = to_gt.apply(tracks.points.astype(np.float64))
    started = np.arange(tracks.points.shape[1])[None] >= tracks.queries[:, :1].astype(np.int64)
    unit_scale = 0.01
    if not truth.metric:
        extrinsics, _, _ = _gt_cameras(gt, 1, recon.num_cameras)
        centres = camera_centers(extrinsics[0])
        distances = np.linalg.norm(truth.points[:, :1, None] - centres[None, None], axis=-1)
        unit_scale = 0.01 * float(np.median(distances))
    return track_metrics(predicted, tracks.visible, truth, started, unit_scale)
