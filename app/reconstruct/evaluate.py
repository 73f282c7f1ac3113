"""A reconstruction folder against its capture's ground truth (``vggt-mv eval RECON --gt GT``).

The ground truth (:func:`app.capture.ground_truth.open_ground_truth`) is brought to the model's pixels through the
very transform the run applied to the images (meta.json ``preprocess``, :func:`app.capture.preprocess.preprocess_frame`
with nearest sampling for depth and masks; intrinsics by :meth:`FrameTransform.intrinsics_to_target`), so prediction
and ground truth describe the same pixels. Every stored window is evaluated on its own
(:func:`vggt_t_mv.eval.runner.window_metrics`: cameras after Sim(3), depth after median scaling with the static /
moving split when the ground truth has moving masks, points after Sim(3), mask IoU) and the windows are averaged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from app.capture.calibration.undistort import Undistorter
from app.capture.ground_truth import GroundTruth, GroundTruthError, GroundTruthFrame
from app.capture.preprocess import FrameTransform, preprocess_frame
from app.capture.truth import open_ground_truth
from app.common.vocab import Stream
from app.reconstruct.error_map import RELATIVE_FLOOR, depth_scale, error_image, nice_limit, surface_error
from app.reconstruct.store import Reconstruction
from vggt_t_mv.eval.runner import EvalResult, WindowPrediction, trivial_prediction, window_metrics
from vggt_t_mv.loading import WeightsSpec
from vggt_t_mv.npgeometry import Sim3, camera_centers, umeyama
from vggt_t_mv.train.dataset import Sample, window_sample

TRIVIAL_NAME = "trivial: identity cams / const depth / static mask"


@dataclass
class ModelPixels:
    """One camera's ground truth at the model's pixels: ``depth [H, W]`` (0 = invalid), ``intrinsics [3, 3]``,
    ``extrinsics [3, 4]`` (OpenCV camera-from-world), ``moving [H, W]`` bool or None."""

    depth: np.ndarray
    intrinsics: np.ndarray
    extrinsics: np.ndarray
    moving: np.ndarray | None


def to_model_pixels(
    frame: GroundTruthFrame, transform: FrameTransform, undistorter: Undistorter | None = None
) -> ModelPixels:
    """``frame`` through the run's lens undistortion (``undistorter``, None: none) and crop / pad ``transform``
    (nearest sampling; outside the frame = invalid)."""
    height, width = transform.target_hw
    depth = np.zeros((height, width), np.float32)
    if frame.depth is not None:
        source = frame.depth.astype(np.float32)
        if undistorter is not None:
            source = undistorter.nearest(source)
        depth = preprocess_frame(source, transform, interpolation=cv2.INTER_NEAREST)
    moving = None
    if frame.moving is not None:
        mask = frame.moving.astype(np.uint8) * 255
        if undistorter is not None:
            mask = undistorter.nearest(mask)
        moving = preprocess_frame(mask, transform, interpolation=cv2.INTER_NEAREST) > 127
    return ModelPixels(depth, transform.intrinsics_to_target(frame.intrinsics), frame.extrinsics, moving)


def camera_keys(recon: Reconstruction, gt: GroundTruth) -> list[str | int]:
    """How each reconstructed camera is found in ``gt``: by name when the ground truth names its cameras, else by
    index (same count required)."""
    if gt.camera_names is not None:
        missing = [name for name in recon.camera_names if name not in gt.camera_names]
        if missing:
            raise GroundTruthError(
                f"ground truth {gt.path} has no camera(s) {', '.join(missing)} (it has {', '.join(gt.camera_names)}); "
                "evaluate against the ground truth of the capture that was reconstructed"
            )
        return list(recon.camera_names)
    if gt.num_cameras != recon.num_cameras:
        raise GroundTruthError(
            f"ground truth {gt.path} has {gt.num_cameras} cameras, the reconstruction {recon.root} has "
            f"{recon.num_cameras}; evaluate against the ground truth of the capture that was reconstructed"
        )
    return list(range(recon.num_cameras))


def run_undistorters(recon: Reconstruction, transforms: list[FrameTransform]) -> list[Undistorter | None]:
    """Per camera, the lens undistortion the run applied to its frames (meta.json ``calibration``), or None."""
    calibration = recon.record.calibration
    if calibration is None:
        return [None] * len(transforms)
    return [
        Undistorter.for_camera(camera, (transform.source_hw[1], transform.source_hw[0]))
        for camera, transform in zip(calibration.lenses(), transforms, strict=True)
    ]


def ground_truth_sample(recon: Reconstruction, gt: GroundTruth, times: range) -> Sample:
    """The ground truth of the reconstructed timesteps ``times`` as a :class:`Sample` at the model's pixels."""
    if recon.record.capture is None or not recon.record.preprocess:
        raise GroundTruthError(
            f"{recon.root}/meta.json records no capture frames or preprocessing, so its pixels cannot be matched to a "
            "ground truth; evaluate a reconstruction written by `vggt-mv run`"
        )
    frame_index = np.asarray(recon.record.capture.frame_index)  # [T, N] source frame of each reconstructed frame
    transforms = list(recon.record.preprocess)
    keys = camera_keys(recon, gt)
    undistorters = run_undistorters(recon, transforms)
    rows = []
    for t in times:
        row = []
        for n, key in enumerate(keys):
            f = int(frame_index[t, n])
            frame = gt.frame(f, key)
            if tuple(frame.image_hw) != tuple(transforms[n].source_hw):
                raise GroundTruthError(
                    f"ground truth {gt.path}: camera {recon.camera_names[n]} frame {f} is "
                    f"{frame.image_hw[1]}x{frame.image_hw[0]}, the reconstructed frames were "
                    f"{transforms[n].source_hw[1]}x{transforms[n].source_hw[0]}; use the capture's own ground truth"
                )
            row.append(to_model_pixels(frame, transforms[n], undistorters[n]))
        rows.append(row)
    height, width = recon.image_hw
    moving_known = all(p.moving is not None for row in rows for p in row)

    def stack(field: str) -> np.ndarray:
        return np.stack([np.stack([getattr(p, field) for p in row]) for row in rows])

    depth = stack("depth")
    return window_sample(
        images=np.zeros((*depth.shape, 3), np.uint8),  # the metrics do not look at the images
        depth=depth,
        valid=depth > 0,
        extrinsics=stack("extrinsics"),
        intrinsics=stack("intrinsics"),
        dynamic_masks=stack("moving") if moving_known else np.zeros(depth.shape, bool),
        mask_known=moving_known,
        target_hw=(height, width),
    )


def stored_prediction(recon: Reconstruction, times: range) -> WindowPrediction:
    """The reconstruction's cameras, depth, geo-stream points and dynamic mask over ``times``."""
    return WindowPrediction(
        extrinsics=recon.load("extrinsics", times),
        depth=recon.load("depth", times),
        world_points=recon.load("world_points", times),
        dynamic_prob=recon.load("dynamic_mask", times).astype(np.float32) if recon.has("dynamic_mask") else None,
    )


def evaluate_reconstruction(
    recon: Reconstruction,
    gt: str | Path | GroundTruth,
    baselines: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> list:
    """:class:`EvalResult` of the reconstruction (and, with ``baselines``, of the trivial predictor on the same
    windows) against ``gt``; ``progress(done, total)`` after each window. Raises :class:`GroundTruthError` naming
    the file when the ground truth is unusable."""
    truth = gt if isinstance(gt, GroundTruth) else open_ground_truth(gt)
    results = [EvalResult(f"reconstruction {recon.root.name}")]
    if baselines:
        results.append(EvalResult(TRIVIAL_NAME))
    records = recon.windows()
    for done, record in enumerate(records, start=1):
        times = range(*record.span)
        sample = ground_truth_sample(recon, truth, times)
        results[0].windows.append(window_metrics(stored_prediction(recon, times), sample))
        if baselines:
            results[1].windows.append(window_metrics(trivial_prediction(sample), sample))
        if progress is not None:
            progress(done, len(records))
    problem = truth.depth_problem()
    if problem is not None:  # said in the table and the JSON, not silently dropped
        for result in results:
            result.notes.append(problem)
    return results


def camera_alignment(recon: Reconstruction, gt: GroundTruth) -> Sim3:
    """The Sim(3) ``(s, R, t)`` from the reconstruction's world to the ground truth's, ``x_gt = s R x + t``: the
    Umeyama fit of the reconstructed camera centres onto the ground-truth ones over every stored timestep, as the
    evaluation's ATE fits each window (:func:`vggt_t_mv.eval.metrics.ate`)."""
    pred, truth = [], []
    for record in recon.windows():
        times = range(*record.span)
        pred.append(recon.load("extrinsics", times))
        truth.append(ground_truth_sample(recon, gt, times).extrinsics.double().numpy())
    pred_centres = camera_centers(np.concatenate(pred).astype(np.float64)).reshape(-1, 3)
    gt_centres = camera_centers(np.concatenate(truth)).reshape(-1, 3)
    return umeyama(pred_centres, gt_centres)


class EvalInputError(ValueError):
    """What ``vggt-mv eval`` should evaluate cannot be told from its arguments; the message says what to give."""


def eval_weights(target: Path | None, weights: WeightsSpec) -> WeightsSpec | None:
    """What ``vggt-mv eval`` evaluates: ``None`` for a reconstruction folder ``target``; a model folder ``target``
    (save_pretrained) is ``--checkpoint target``; no ``target``: the model options as given (the same weights rule
    as every command, :func:`vggt_t_mv.load_model`)."""
    if target is not None and Reconstruction.exists(target):
        if weights.overrides:
            given = ", ".join(sorted(weights.overrides))
            raise EvalInputError(
                f"{target} is a reconstruction, already computed: model overrides ({given}) apply to a model; run "
                "`vggt-mv run` with them and evaluate that reconstruction"
            )
        return None
    if target is not None:
        if not (Path(target) / "config.json").is_file():
            raise EvalInputError(f"{target} is neither a model folder (config.json) nor a reconstruction (meta.json)")
        if weights.has_weights() or weights.random_weights:
            raise EvalInputError(f"give TARGET ({target}) or the model options (--checkpoint, ...), not both")
        return dataclasses.replace(weights, checkpoint=Path(target))
    if not weights.has_weights() and not weights.random_weights:
        raise EvalInputError("nothing to evaluate: give TARGET or --checkpoint / --pi3 / --random-weights")
    return weights


def timestep_error(recon: Reconstruction, gt: GroundTruth, t: int, to_gt: Sim3, stream: Stream = "geo") -> np.ndarray:
    """:func:`~app.reconstruct.error_map.surface_error` of timestep ``t``'s ``stream`` points against ``gt``
    (brought to the model's pixels as the evaluation does): ``[N, H, W]`` float32, reconstruction units."""
    sample = ground_truth_sample(recon, gt, range(t, t + 1))
    points, _ = recon.stream(t, stream)
    return surface_error(
        np.asarray(points),
        to_gt,
        sample.extrinsics[0].double().numpy(),
        sample.intrinsics[0].double().numpy(),
        sample.depth[0].numpy(),
    )


@dataclass
class ErrorMaps:
    """What :func:`write_error_maps` wrote: ``paths`` (one PNG per timestep and camera), and per timestep the top of
    its colour scale ``limits`` and the ``medians`` (reconstruction units), ``scale`` the alignment's ``s`` (one
    reconstruction unit is ``s`` ground-truth units)."""

    paths: list[Path]
    limits: list[float]
    medians: list[float]
    scale: float


def write_error_maps(
    recon: Reconstruction,
    gt: str | Path | GroundTruth,
    folder: str | Path,
    stream: Stream = "geo",
    progress: Callable[[int, int], None] | None = None,
) -> ErrorMaps:
    """Write ``folder/t00012_cam0.png`` for every timestep and camera: the distance of the ``stream``'s points to the
    ground-truth surface (:mod:`app.reconstruct.error_map`, the viewer's error colouring), coloured from 0 to the
    timestep's own limit, with the scale under the picture. The alignment is the viewer's (camera centres over the
    whole reconstruction, :func:`camera_alignment`)."""
    import cv2

    truth = gt if isinstance(gt, GroundTruth) else open_ground_truth(gt)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    to_gt = camera_alignment(recon, truth)
    result = ErrorMaps([], [], [], float(to_gt.scale))
    floor = RELATIVE_FLOOR * depth_scale(np.asarray(recon.get("depth", 0)))  # the viewer's colour scale
    count = recon.num_timesteps
    for t in range(count):
        errors = timestep_error(recon, truth, t, to_gt, stream)
        limit = nice_limit(errors, floor)
        finite = errors[np.isfinite(errors)]
        median = float(np.median(finite)) if finite.size else float("nan")
        for n, name in enumerate(recon.camera_names):
            caption = f"t{t} {name}: 0..{limit:.3g} recon units"
            path = folder / f"t{t:05d}_{name}.png"
            image = error_image(errors[n], limit, caption)
            if not cv2.imwrite(str(path), np.ascontiguousarray(image[..., ::-1])):
                raise OSError(f"cannot write {path}")
            result.paths.append(path)
        result.limits.append(limit)
        result.medians.append(median)
        if progress is not None:
            progress(t + 1, count)
    return result
