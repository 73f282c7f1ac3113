"""Sliding-window inference over a rig capture, stitched into an on-disk Reconstruction.

The capture's ``T`` timesteps are cut into windows of ``window`` timesteps every ``stride`` (see
:func:`app.reconstruct.stitching.window_spans`); each window is one model call ``[1, Tw, N, 3, H, W]`` under
``torch.inference_mode()`` (bf16 autocast on CUDA where supported, fp16 on older GPUs, fp32 on CPU).
Window ``w > 0`` is taken into the first window's frame by a robust Sim(3) fitted on the geo-stream
world points of the timesteps it shares with window ``w - 1`` that ``w - 1`` stores (as stored on disk, so a
resumed run computes exactly what an uninterrupted one does), composed with ``w - 1``'s own Sim(3). The Sim(3)
moves its cameras at once; depth and points are stored in the window's frame with it and moved on read (format 3,
:mod:`app.reconstruct.store`). Each window is written to disk as soon as it is done.

Default window / stride per device (override with ``--window`` / ``--stride``):

============  ======  ======  =====================================================================
device        window  stride  why
============  ======  ======  =====================================================================
cuda          16      12      1B model, 4 cameras at 518 px: ~64 frames per call fit a 24 GB GPU
mps           8       6
cpu           6       4       keeps a CPU call to seconds with the tiny model; 2 shared timesteps
============  ======  ======  =====================================================================

Decoding, preprocessing and the next window's device copy run ahead in background threads
(:mod:`app.reconstruct.feeding`), writing behind (:mod:`app.reconstruct.writing`), all through bounded queues: at
most two windows of preprocessed frames (plus the prefetch queue) and one window being written are held in memory,
so memory does not grow with the capture's length. ``benchmarks/pipeline_ceiling.py`` measures what this costs.
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch

from app.capture.calibration import RigCalibration, load_calibration
from app.capture.calibration.dataset import is_dataset_root
from app.capture.calibration.undistort import Undistorter
from app.capture.masks import MASKS_AUTO, open_masks
from app.capture.preprocess import DEFAULT_SIZE, FrameTransform, PreprocessConfig, frame_transform, resolve_preprocess
from app.capture.rig import RigCapture
from app.common.allocator import keep_freed_memory
from app.common.blas_threads import single_threaded_blas
from app.common.timing import StageTimer
from app.common.vocab import CameraMode, DtypeName, LengthUnit
from app.reconstruct.calibrated import agreement_summary, fit_to_calibration, has_baseline
from app.reconstruct.feeding import WindowFeeder, WindowInput
from app.reconstruct.lock import RunLock
from app.reconstruct.record import (
    Alignment,
    CalibrationComparison,
    CalibrationRecord,
    CaptureRecord,
    FocalComparison,
    RigDiagnostics,
    RigError,
    RigidRig,
    RigReport,
    RunRecord,
    RunSettings,
    WindowEntry,
)
from app.reconstruct.stitching import (
    align_window,
    apply_rig,
    metric_scale,
    rig_diagnostics,
    rig_error,
    rigid_rig,
    window_spans,
)
from app.reconstruct.store import (
    FORMAT_VERSION,
    LOCK_NAME,
    WRITABLE_VERSIONS,
    EncodedWindow,
    Reconstruction,
    ReconstructionError,
)
from app.reconstruct.writing import WindowWriter
from vggt_t_mv.distributed import DistContext
from vggt_t_mv.geometry import pose_encoding_to_extri_intri
from vggt_t_mv.loading import Provenance
from vggt_t_mv.memory import available_bytes, format_bytes
from vggt_t_mv.npgeometry import Sim3

WINDOW_DEFAULTS = {"cuda": (16, 12), "mps": (8, 6), "cpu": (6, 4)}
FOV_LIMITS = (float(np.radians(0.5)), float(np.radians(179.5)))  # radians; predicted FoVs are clamped to this
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"


class PipelineError(RuntimeError):
    """The run cannot go on; what is already on disk is kept (resume with --resume)."""


class PipelineWarning(UserWarning):
    """Something in the run deserves attention (an alignment fell back, a calibration mismatch...)."""


CALIBRATION_AUTO, CALIBRATION_NONE = "auto", "none"


@dataclass
class PipelineConfig:
    """How to run: ``window``/``stride`` None = the device default (module docstring); ``device``
    ``auto``|``cpu``|``cuda``|``cuda:1``...; ``dtype`` ``auto``|``float32``|``bfloat16``|``float16`` (autocast
    dtype of the trunk; the heads always run in float32); ``masks``: external dynamic masks, a folder or ``auto``
    (:mod:`app.capture.masks`); ``rigid_rig``: average intrinsics and
    camera-to-camera-0 poses over time at the end; ``calibration``: the rig calibration (a file or folder,
    :mod:`app.capture.calibration`), ``"auto"`` (a dataset root's ``intrs/`` + ``extrs/`` when the capture is one)
    or ``"none"``; ``calibration_units`` overrides its unit; ``cameras``: ``calibrated`` (every window moved into
    the calibration's frame on its own, :mod:`app.reconstruct.calibrated`) or ``predicted`` (windows chained by
    Sim(3) on their overlaps); None: calibrated whenever the calibration has extrinsics and a baseline;
    ``track_queries``: 4D point tracks after the windows (:mod:`app.reconstruct.tracking`)."""

    window: int | None = None
    stride: int | None = None
    device: str = "auto"
    dtype: DtypeName = "auto"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    masks: Path | str | None = None
    rigid_rig: bool = False
    calibration: Path | str | None = CALIBRATION_AUTO
    calibration_units: LengthUnit | None = None
    cameras: CameraMode | None = None
    prefetch: int = 8
    format_version: int = FORMAT_VERSION  # of a new reconstruction (2: the older layout); --resume keeps the folder's
    track_queries: Path | str | None = None  # a query file or "auto" (app.reconstruct.track_queries); None: no tracks


@dataclass
class RunPlan:
    """Resolved settings of one run (what goes into meta.json's ``settings``)."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    window: int
    stride: int
    spans: list[tuple[int, int]]
    image_hw: tuple[int, int]
    transforms: list[FrameTransform]
    calibration: RigCalibration | None
    preprocess: PreprocessConfig  # resolved: a size, and crop or pad
    notes: list[str] = field(default_factory=list)  # what the user should know about the input size and mode
    undistorters: list[Undistorter | None] = field(default_factory=list)  # per camera, None: nothing to undo
    cameras: CameraMode = "predicted"  # resolved --cameras
    camera_note: str = ""  # one line: which cameras the run stores, and why

    def settings(self, config: PipelineConfig) -> RunSettings:
        dtype = "float32" if self.autocast_dtype is None else str(self.autocast_dtype).removeprefix("torch.")
        return RunSettings(
            window=self.window,
            stride=self.stride,
            device=str(self.device),
            dtype=cast(DtypeName, dtype),
            size=self.preprocess.size,
            mode=self.preprocess.mode,
            masks=mask_setting(config.masks),
            rigid_rig=config.rigid_rig,
            calibration=None if self.calibration is None else str(Path(self.calibration.path).resolve()),
            calibration_units=None if self.calibration is None else self.calibration.units,
            cameras=self.cameras,
        )


def mask_setting(masks: Path | str | None) -> str | None:
    """How meta.json's settings record ``--masks``: ``auto``, an absolute path or None."""
    if masks is None or str(masks) == MASKS_AUTO:
        return None if masks is None else MASKS_AUTO
    return str(Path(masks).resolve())


@dataclass
class Progress:
    """Reported after each window: counts, throughput (camera images of new timesteps per second), ETA."""

    window: int
    num_windows: int
    timesteps_done: int
    num_timesteps: int
    elapsed_s: float
    frames_per_s: float
    eta_s: float


@dataclass
class RunResult:
    reconstruction: Reconstruction
    first_window: int  # > 0 when resumed
    windows_run: int
    seconds: float
    frames_per_s: float
    warnings: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # wall, see app.common.timing
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)  # the stages' threads' CPU time


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise PipelineError(f"--device {name!r} is not a device; use {DEVICE_NAMES} ({error})") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PipelineError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise PipelineError(
            f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s) (cuda:0.."
            f"cuda:{torch.cuda.device_count() - 1})"
        )
    mps = getattr(torch.backends, "mps", None)
    if device.type == "mps" and (mps is None or not mps.is_available()):
        raise PipelineError(f"--device {name}: MPS is not available on this machine; use --device cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise PipelineError(f"--device {name}: the pipeline runs on {DEVICE_NAMES}")
    return device


def resolve_dtype(device: torch.device, name: DtypeName) -> torch.dtype | None:
    """Autocast dtype, or None for plain float32."""
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return None
    if name not in DTYPES:
        raise PipelineError(f"--dtype must be one of auto, {', '.join(DTYPES)}; got {name!r}")
    return None if name == "float32" else DTYPES[name]


# What one pixel of one frame of a window costs at least while it is computed: the float32 input (12 bytes) and the
# float outputs kept for writing (depth, points, their confidences, the mask: 28 bytes), before any activation.
MIN_BYTES_PER_PIXEL = 40


def check_input_fits(
    capture: RigCapture, image_hw: tuple[int, int], window: int, device: torch.device, size: int | None
) -> None:
    """:class:`PipelineError` when one window at ``image_hw`` cannot fit in ``device``'s free memory (checked before
    anything is allocated; the floor :data:`MIN_BYTES_PER_PIXEL` leaves the model's activations out)."""
    available = available_bytes(device)
    frames = min(window, capture.num_timesteps) * capture.num_cameras
    needed = frames * image_hw[0] * image_hw[1] * MIN_BYTES_PER_PIXEL
    if available is None or needed <= available:
        return
    largest = int((size or image_hw[1]) * (available / needed) ** 0.5) // 14 * 14
    source = capture.sources[0]
    raise PipelineError(
        f"--size {size}: the model input would be {image_hw[1]}x{image_hw[0]} px (from {source.name}'s "
        f"{source.width}x{source.height} frames); one window ({frames} images) needs at least "
        f"{format_bytes(needed)} for its inputs and outputs alone, more than the {format_bytes(available)} free on "
        f"{device}. Choose a --size well below {largest} (the largest whose inputs and outputs fit; VGGT-family "
        f"weights are trained at {DEFAULT_SIZE})"
    )


def plan_run(capture: RigCapture, config: PipelineConfig, default_size: int = DEFAULT_SIZE) -> RunPlan:
    """Resolve ``config`` for ``capture``: device, dtype, windows, the input size (``default_size`` where
    ``config.preprocess.size`` is ``None``) and mode (:func:`~app.capture.preprocess.resolve_preprocess`)."""
    device = resolve_device(config.device)
    autocast_dtype = resolve_dtype(device, config.dtype)
    default_window, default_stride = WINDOW_DEFAULTS.get(device.type, WINDOW_DEFAULTS["cpu"])
    for option, value in (("--window", config.window), ("--stride", config.stride)):
        if value is not None and value < 1:
            raise PipelineError(f"{option} {value}: must be at least 1 (leave it out for the device default)")
    window = default_window if config.window is None else config.window
    stride = min(default_stride, max(window - 1, 1)) if config.stride is None else config.stride
    if stride >= window and capture.num_timesteps > window:
        raise PipelineError(
            f"--window {window} / --stride {stride}: need window >= 2 and 1 <= stride < window so that windows "
            "share timesteps for stitching"
        )
    spans = window_spans(capture.num_timesteps, window, stride)
    preprocess, notes = resolve_preprocess(
        config.preprocess, [(s.height, s.width) for s in capture.sources], capture.camera_names, default_size
    )
    image_hw = preprocess.target_hw(capture.sources[0].height, capture.sources[0].width)
    check_input_fits(capture, image_hw, window, device, preprocess.size)
    transforms = [frame_transform((s.height, s.width), image_hw, preprocess.mode) for s in capture.sources]
    calibration = resolve_calibration(capture, config)
    undistorters: list[Undistorter | None] = [None] * capture.num_cameras
    if calibration is not None:
        undistorters = [
            Undistorter.for_camera(camera, (source.width, source.height))
            for camera, source in zip(calibration.cameras, capture.sources, strict=True)
        ]
    return RunPlan(
        device,
        autocast_dtype,
        window,
        stride,
        spans,
        image_hw,
        transforms,
        calibration,
        preprocess,
        notes,
        undistorters,
        *resolve_cameras(calibration, config.cameras),
    )


def resolve_cameras(calibration: RigCalibration | None, requested: CameraMode | None) -> tuple[CameraMode, str]:
    """``--cameras`` resolved (None: calibrated whenever the calibration can be) and the line that announces it."""
    if requested not in (None, "calibrated", "predicted"):
        raise PipelineError(f"--cameras must be calibrated or predicted, got {requested!r}")
    if requested == "predicted":
        return "predicted", "cameras: predicted by the model (--cameras predicted), windows chained by Sim(3)"
    if calibration is None or not calibration.has_extrinsics:
        if requested == "calibrated":
            what = "no calibration" if calibration is None else f"calibration {calibration.path} has no extrinsics"
            raise PipelineError(
                f"--cameras calibrated: {what}; pass --calibration with the rig's extrinsics, or --cameras predicted"
            )
        return "predicted", "cameras: predicted by the model (no calibrated extrinsics), windows chained by Sim(3)"
    if not has_baseline(calibration.extrinsics_for(np.zeros((1, len(calibration.cameras)), np.int64))):
        return "predicted", (
            f"cameras: predicted by the model: calibration {calibration.path} has "
            f"{'one camera' if len(calibration.cameras) < 2 else 'its cameras at one place'}, no baseline to fit a "
            "window's scale on (--cameras calibrated needs two cameras apart)"
        )
    return "calibrated", (
        f"cameras: the calibration's ({calibration.units}); each window moved into its frame by its own Sim(3) "
        "(--cameras predicted keeps the model's)"
    )


def calibration_path(capture: RigCapture, setting: Path | str | None) -> Path | None:
    """The calibration a run uses: ``setting`` (a path), or for ``auto`` the capture's dataset root when it has
    ``intrs/`` + ``extrs/``; None for ``none`` (or ``auto`` without one)."""
    if setting is None or str(setting) == CALIBRATION_NONE:
        return None
    if str(setting) == CALIBRATION_AUTO:
        root = capture.dataset_root
        return root if root is not None and is_dataset_root(root) else None
    return Path(setting)


def resolve_calibration(capture: RigCapture, config: PipelineConfig) -> RigCalibration | None:
    """The run's calibration matched to the capture's cameras and checked against their frame sizes."""
    path = calibration_path(capture, config.calibration)
    if path is None:
        return None
    sizes = [(source.width, source.height) for source in capture.sources]
    return load_calibration(path, capture.camera_names, sizes, config.calibration_units)


def run_record(capture: RigCapture, plan: RunPlan, config: PipelineConfig, model: Provenance) -> RunRecord:
    """The record of a run about to start: what identifies it (compared on ``--resume``) and its plan."""
    return RunRecord(
        camera_names=capture.camera_names,
        image_hw=plan.image_hw,
        spans=list(plan.spans),
        capture=CaptureRecord.from_dict(capture.describe()),
        model=model,
        settings=plan.settings(config),
        num_timesteps_planned=capture.num_timesteps,
        preprocess=list(plan.transforms),
        calibration=None if plan.calibration is None else CalibrationRecord.of(plan.calibration),
    )


def _continues(stored_end: int, index: int, spans: list[tuple[int, int]]) -> bool:
    """A format-3 window ``index`` that stores timesteps up to ``stored_end`` can stay in a run planned as ``spans``:
    the next window starts at or before ``stored_end`` and ends after it (it stores the rest), or there is none and
    the window stores to its end."""
    if index + 1 == len(spans):
        return stored_end == spans[index][1]
    begin, end = spans[index + 1]
    return begin <= stored_end < end


def _reopen(out: Path, record: RunRecord) -> tuple[Reconstruction, int]:
    """``--resume``: reopen ``out``, check it was made by the same run (or one selecting more or fewer timesteps
    of the same capture: the windows both share are kept), drop what is incomplete."""
    recon = Reconstruction.open(out, damaged_ok=True)
    if recon.format_version not in WRITABLE_VERSIONS:
        writable = " and ".join(map(str, WRITABLE_VERSIONS))
        raise ReconstructionError(
            f"--resume: {out} is in reconstruction format version {recon.format_version} (an older vggt-mv); this "
            f"version continues only format {writable} runs. Pass --overwrite to start it again"
        )
    old = recon.record
    if old.model_problem is not None:
        raise ReconstructionError(
            f"--resume: {out} cannot be continued: {old.model_problem}, so this version cannot tell whether the "
            "weights are the same. Pass --overwrite to start it again (opening, viewing and exporting it still work)"
        )
    differ = old.resume_differences(record)
    if differ:
        kept = old.kept_windows(record, [window.span for window in recon.windows(refresh=True)])
        if kept is not None and recon.encoded:  # format 3: a kept window must store up to where the next one starts
            spans = [(begin, end) for begin, end in record.spans]
            stops = [i for i, w in enumerate(recon.windows()[:kept]) if not _continues(w.held[1], w.index, spans)]
            kept = stops[0] if stops else kept
        if kept is None:
            why = f" ({old.tracks_difference(record)})" if "tracks" in differ else ""
            raise ReconstructionError(
                f"--resume: {out} was made from a different run (differs in: {', '.join(differ)}){why}; "
                "use the same capture, weights and options, or pass --overwrite to start again"
            )
        for window in recon.windows()[kept:]:
            shutil.rmtree(window.path)
        before = old.capture.num_timesteps if old.capture is not None else old.planned_timesteps
        old.capture, old.spans, old.num_timesteps_planned = record.capture, record.spans, record.num_timesteps_planned
        warnings.warn(
            f"--resume: the capture now selects {record.num_timesteps_planned} timesteps "
            f"({before} before); {kept} complete window(s) are kept",
            PipelineWarning,
            stacklevel=3,
        )
    if recon.damage_problem is not None:  # never "complete": the damaged window and the ones after it rerun
        message = f"{recon.damage_problem}: windows {len(recon.windows())}.. are computed again"
        warnings.warn(message, PipelineWarning, stacklevel=3)
    recon.discard_incomplete()
    old.status = "running"
    old.tracks, old.tracks_recorded = record.tracks, True  # the same, or queries for a run that had none
    recon.save_record()
    return recon, len(recon.windows(refresh=True))


def prepare_output(
    out: Path, record: RunRecord, *, resume: bool, overwrite: bool, format_version: int = FORMAT_VERSION
) -> tuple[Reconstruction, int]:
    """Create the output reconstruction or reopen it for ``--resume``; returns it and the first window to run.

    The folder is locked first (:class:`~app.reconstruct.lock.RunLock`, held by ``recon.lock`` until
    :func:`run_pipeline` ends or the process exits): a second run on the same ``--out`` is refused before it reads,
    writes or deletes anything."""
    out = Path(out)
    if resume and out.exists() and not Reconstruction.exists(out):
        if any(e.name != LOCK_NAME for e in out.iterdir()) and not overwrite:
            raise ReconstructionError(f"--resume: {out} holds no reconstruction to resume (no meta.json)")
    lock = RunLock.acquire(out)
    try:
        if resume and Reconstruction.exists(out):
            recon, first = _reopen(out, record)
        else:
            recon, first = Reconstruction.create(out, record, overwrite=overwrite, format_version=format_version), 0
    except BaseException:
        # refused (a foreign folder, the capture itself, ...) or stopped before anything was written: leave no trace
        if Reconstruction.exists(out):
            lock.release()
        else:
            lock.abandon()
        raise
    recon.lock = lock
    return recon, first


# --------------------------------------------------------------------------------------------- run
def _to_host(tensors: dict[str, torch.Tensor], device: torch.device) -> dict[str, np.ndarray]:
    """Window outputs ``[1, Tw, N, ...]`` float32 -> numpy ``[Tw, N, ...]`` on the host, without copying on the CPU;
    on CUDA into pinned buffers with ``non_blocking`` copies and one wait for all of them."""
    if device.type != "cuda":
        return {name: value[0].contiguous().numpy() for name, value in tensors.items()}
    pinned = {}
    for name, value in tensors.items():
        pinned[name] = torch.empty(value.shape[1:], dtype=value.dtype, pin_memory=True)
        pinned[name].copy_(value[0], non_blocking=True)
    torch.cuda.current_stream(device).synchronize()
    return {name: value.numpy() for name, value in pinned.items()}


def _predict(model: torch.nn.Module, window: WindowInput, plan: RunPlan, timer: StageTimer) -> dict[str, np.ndarray]:
    """One model call on ``window.images [1, Tw, N, 3, H, W]``; returns float32 numpy arrays ``[Tw, N, ...]`` (they
    may share memory with the model's outputs: never written into)."""
    window.wait()
    kwargs = {} if window.masks is None else {"masks": window.masks}
    with torch.inference_mode():
        with timer.measure("model"):  # on CUDA the launch; the wait for the GPU shows in to_host
            if plan.autocast_dtype is not None:
                with torch.autocast(device_type=plan.device.type, dtype=plan.autocast_dtype):
                    preds = model(window.images, **kwargs)
            else:
                preds = model(window.images, **kwargs)
        tic, cpu = time.perf_counter(), time.thread_time()
        height, width = window.images.shape[-2:]
        pose_enc = preds["pose_enc"].float().clone()
        # A degenerate FoV (0 or 180 degrees, e.g. from untrained weights) would make the intrinsics infinite.
        pose_enc[..., 7:9] = pose_enc[..., 7:9].clamp(FOV_LIMITS[0], FOV_LIMITS[1])
        extrinsics, intrinsics = pose_encoding_to_extri_intri(pose_enc, (height, width))
        out = {
            "depth": preds["depth"].float()[..., 0],
            "depth_conf": preds["depth_conf"].float(),
            "world_points": preds["world_points"].float(),
            "world_points_conf": preds["world_points_conf"].float(),
            "extrinsics": extrinsics,
            "intrinsics": intrinsics,
        }
        if "dynamic_mask" in preds:
            out["dynamic_mask"] = preds["dynamic_mask"].float()
        # cameras from the pose encoding (no points: derived on read)
        timer.add("unproject", time.perf_counter() - tic, time.thread_time() - cpu)
        with timer.measure("to_host"):
            return _to_host(out, plan.device)


def check_window_finite(index: int, span: tuple[int, int], arrays: dict[str, np.ndarray]) -> None:
    """Refuse a window whose model outputs hold NaN or Inf (before it is aligned or written): broken weights or a
    numeric overflow would otherwise be stitched and stored as a "complete" reconstruction of garbage."""
    bad = {}
    for name, value in arrays.items():
        # NaN and Inf propagate into the sum, so a finite sum proves every value finite; a sum that overflows float32
        # on finite values only costs the exact check below
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value.sum()):
            finite = np.isfinite(value)
            if not finite.all():
                bad[name] = 100.0 * (1.0 - finite.mean())
    if bad:
        detail = ", ".join(f"{name} ({share:.3g} % of values)" for name, share in bad.items())
        raise PipelineError(
            f"window {index} (timesteps {span[0]}..{span[1] - 1}): the model output holds NaN or Inf in {detail}; "
            "nothing of this window was written. Check the weights (`vggt-mv weights inspect`) and, on a GPU, try "
            "--dtype float32"
        )


def run_pipeline(
    model: torch.nn.Module,
    capture: RigCapture,
    recon: Reconstruction | None,
    plan: RunPlan,
    config: PipelineConfig,
    *,
    first_window: int = 0,
    progress: Callable[[Progress], None] | None = None,
    on_window: Callable[[int], None] | None = None,
    dist: DistContext | None = None,
) -> RunResult | None:
    """Run windows ``first_window..`` of ``plan`` and write them to ``recon``; then the rig report.

    ``progress`` is called after every window; ``on_window(index)`` after each window is committed (tests
    use it to interrupt a run). Under ``torchrun`` (``dist``), rank ``r`` computes windows ``w % K == r``,
    and rank 0 (the only one with a ``recon``) aligns and writes every window in order; other ranks return
    None. Threads: :mod:`app.reconstruct.feeding` (decode, preprocess, upload ahead) and
    :mod:`app.reconstruct.writing` (window ``w`` written while ``w + 1`` is computed). Frame-sized memory freed
    is kept for reuse from here on (:func:`app.common.allocator.keep_freed_memory`), and BLAS runs on one thread
    (:func:`app.common.blas_threads.single_threaded_blas`).
    """
    keep_freed_memory()
    single_threaded_blas()
    dist = dist or DistContext()
    messages: list[str] = []
    spans = plan.spans
    mine = [w for w in range(first_window, len(spans)) if w % dist.world_size == dist.rank]
    timer = StageTimer()
    feeder = writer = None
    started = time.perf_counter()
    counts = {"done": spans[first_window - 1][1] if first_window > 0 else 0, "new": 0}
    previous: EncodedWindow | None = None  # the last window as written, for aligning the next

    def committed(w: int | None) -> None:
        if w is None:
            return
        begin, end = spans[w]
        counts["new"] += end - max(begin, counts["done"])
        counts["done"] = end
        if on_window is not None:
            on_window(w)
        if progress is not None:
            elapsed = time.perf_counter() - started
            rate = counts["new"] / max(elapsed, 1e-9)
            remaining = (capture.num_timesteps - counts["done"]) / max(rate, 1e-9)
            progress(
                Progress(
                    w, len(spans), counts["done"], capture.num_timesteps, elapsed, rate * capture.num_cameras, remaining
                )
            )

    try:
        model = model.to(plan.device).eval()
        read_masks = None if config.masks is None else mask_reader(open_masks(config.masks, capture), capture)
        feeder = WindowFeeder(
            capture,
            spans,
            mine,
            plan.transforms,
            plan.device,
            timer,
            prefetch=config.prefetch,
            read_masks=read_masks,
            undistorters=plan.undistorters,
        )
        writer = WindowWriter(recon, timer) if dist.is_main and recon is not None else None
        started = time.perf_counter()
        for round_start in range(first_window, len(spans), dist.world_size):
            w = round_start + dist.rank
            payload = _compute_window(model, feeder, w, plan, timer) if w in mine else None
            gathered = dist.gather(payload)
            if recon is None or writer is None or gathered is None:  # another rank: rank 0 writes every window
                continue
            for w, window in enumerate(gathered, start=round_start):
                if window is None:
                    continue
                arrays, model_seconds = window
                with timer.measure("stitch"):
                    check_window_finite(w, spans[w], arrays)
                    if plan.cameras == "calibrated":
                        sim3, cameras, alignment = _to_calibration(w, arrays, capture, plan, messages)
                    else:
                        sim3, alignment = _align(recon, w, arrays, previous, plan, messages)
                        cameras = {"extrinsics": sim3.apply_to_extrinsics(arrays["extrinsics"]).astype(np.float32)}
                    start = previous.held[1] if previous is not None else _stored_end(recon, w)
                    encoded = recon.encode_window(w, {**arrays, **cameras}, sim3, start)  # depth, points: own frame
                info = WindowEntry(w, spans[w], alignment, model_seconds)
                previous = encoded
                committed(writer.flush())  # window w - 1 is on disk: report it before writing w
                writer.submit(w, encoded, info)
        if writer is not None:
            committed(writer.flush())
        if recon is None or not dist.is_main:
            return None
        seconds = time.perf_counter() - started
        _finish(recon, capture, plan, config, messages)
    finally:
        if feeder is not None:
            feeder.close()
        if writer is not None:
            writer.close()
        if recon is not None and recon.lock is not None:
            recon.lock.release()
    for message in messages:
        warnings.warn(message, PipelineWarning, stacklevel=2)
    return RunResult(
        recon,
        first_window,
        len(spans) - first_window,
        seconds,
        counts["new"] * capture.num_cameras / max(seconds, 1e-9),
        messages,
        timer.to_dict(),
        timer.cpu_dict(),
    )


def _compute_window(
    model: torch.nn.Module, feeder: WindowFeeder, w: int, plan: RunPlan, timer: StageTimer
) -> tuple[dict[str, np.ndarray], float]:
    """Predict window ``w`` (the feeder's next); its arrays in the window's own frame (``images`` uint8 included)
    and the seconds the model took."""
    window = feeder.get()
    if window.index != w:
        raise RuntimeError(f"window feeder out of step: got window {window.index}, expected {w}")
    tic = time.perf_counter()
    try:
        arrays = _predict(model, window, plan, timer)
    except ValueError as error:
        if window.masks is not None and "mask" in str(error):
            raise PipelineError(f"--masks: {error}") from error
        raise
    arrays["images"] = window.colors  # [Tw, N, H, W, 3]
    return arrays, time.perf_counter() - tic


def mask_reader(sources: list, capture: RigCapture) -> Callable[[int], list[np.ndarray]]:
    """Timestep ``t`` -> the N external mask frames (first channel, original resolution)."""

    def read(t: int) -> list[np.ndarray]:
        return [src.read(int(capture.frame_index[t, n])) for n, src in enumerate(sources)]

    return read


def _stored_end(recon: Reconstruction, w: int) -> int:
    """Where window ``w`` starts storing: the end of what window ``w - 1`` stores (0 for the first window)."""
    return recon.windows()[w - 1].held[1] if w > 0 else 0


def _align(
    recon: Reconstruction, w: int, arrays: dict, previous: EncodedWindow | None, plan: RunPlan, messages: list[str]
) -> tuple[Sim3, Alignment]:
    """The Sim(3) of window ``w`` into the stitched frame (window 0: identity, or the metric scale): fitted on the
    overlap timesteps window ``w - 1`` stores, in the frame they are stored in, then composed with that frame's
    Sim(3). ``previous``: window ``w - 1`` as written when this run made it (else it is read from disk: the same
    values)."""
    if w == 0:
        if plan.calibration is None or plan.calibration.extrinsics is None or len(recon.camera_names) < 2:
            return Sim3.identity(), Alignment("reference")
        try:
            scale, ratios = metric_scale(arrays["extrinsics"], plan.calibration.extrinsics)
        except ValueError as error:
            messages.append(f"--calibration: no metric scale ({error}); the reconstruction keeps the model's scale")
            return Sim3.identity(), Alignment("reference")
        if not np.isfinite(scale) or scale <= 0:
            messages.append("--calibration: the predicted rig has no usable baseline; metric scale not applied")
            return Sim3.identity(), Alignment("reference")
        return Sim3(scale), Alignment("reference", metric_scale=float(scale), baseline_ratios=list(ratios))
    begin = plan.spans[w][0]
    points, conf, previous_sim3, first = recon.overlap_points(w - 1 if previous is None else previous, begin)
    shared = len(points)
    rows = slice(first - begin, first - begin + shared)
    try:
        fit = align_window(points, conf, arrays["world_points"][rows], arrays["world_points_conf"][rows])
        ok = np.isfinite(fit.sim3.as_matrix()).all() and fit.sim3.scale > 0
    except (ValueError, np.linalg.LinAlgError) as error:
        fit, ok = None, False
        messages.append(f"window {w}: Sim(3) fit failed ({error}); window left unaligned")
    if not ok:
        if fit is not None:
            messages.append(f"window {w}: Sim(3) fit is degenerate; window left unaligned")
        return previous_sim3, Alignment("failed", overlap=shared)
    assert fit is not None
    sim3 = previous_sim3.compose(fit.sim3)
    return sim3, Alignment(
        "sim3",
        sim3=sim3,
        overlap=shared,
        residual_median=fit.residual_median,
        residual_mean_inlier=fit.residual_mean_inlier,
        inlier_fraction=fit.inlier_fraction,
        num_points=fit.num_points,
        iterations=fit.iterations,
    )


def _to_calibration(
    w: int, arrays: dict[str, np.ndarray], capture: RigCapture, plan: RunPlan, messages: list[str]
) -> tuple[Sim3, dict[str, np.ndarray], Alignment]:
    """Window ``w``'s Sim(3) into the calibration's frame (fitted on the cameras alone,
    :mod:`app.reconstruct.calibrated`), the calibration's cameras it stores (``extrinsics [Tw, N, 3, 4]``,
    ``intrinsics`` at model resolution) and its alignment (kind ``calibrated``: the Sim(3), its fit and each
    camera's agreement)."""
    assert plan.calibration is not None
    begin, end = plan.spans[w]
    calibrated = plan.calibration.extrinsics_for(capture.frame_index[begin:end])
    intrinsics = np.stack(
        [t.intrinsics_to_target(k) for t, k in zip(plan.transforms, plan.calibration.intrinsics, strict=True)]
    )
    try:
        fitted = fit_to_calibration(arrays["extrinsics"], calibrated, capture.camera_names)
    except (ValueError, np.linalg.LinAlgError) as error:
        raise PipelineError(f"window {w}: the cameras cannot be fitted to the calibration ({error})") from error
    sim3 = fitted.sim3
    entry = Alignment(
        "calibrated",
        sim3=sim3,
        residual_median=fitted.fit.residual_median,
        inlier_fraction=fitted.fit.inlier_fraction,
        rig_spacing=fitted.spacing,
        units=plan.calibration.units,
        flagged=fitted.flagged,
        cameras=list(fitted.cameras),
    )
    if fitted.flagged:
        worst = max(fitted.cameras, key=lambda c: c.rotation_error_deg)
        messages.append(
            f"window {w} (timesteps {begin}..{end - 1}): the predicted cameras disagree with the calibration (worst "
            f"{worst.name}: {worst.rotation_error_deg:.1f} deg, centre {worst.center_error:.3g} "
            f"{plan.calibration.units}); its depth scale may be off"
        )
    cameras = {
        "extrinsics": np.asarray(calibrated, np.float32),
        "intrinsics": np.broadcast_to(np.asarray(intrinsics, np.float32), arrays["intrinsics"].shape).copy(),
    }
    return sim3, cameras, entry


def _finish(
    recon: Reconstruction,
    capture: RigCapture,
    plan: RunPlan,
    config: PipelineConfig,
    messages: list,
) -> None:
    """Rig diagnostics, optional rigid-rig averaging and calibration report; marks the run complete."""
    names = recon.camera_names
    windows = [recon.window_arrays(r.index, ("extrinsics", "intrinsics")) for r in recon.windows(refresh=True)]
    extrinsics, intrinsics = recon.load("extrinsics"), recon.load("intrinsics")
    record = recon.record
    report = RigReport(diagnostics=RigDiagnostics.from_dict(rig_diagnostics(extrinsics, intrinsics, names)))
    if config.rigid_rig and len(names) > 1 and plan.cameras == "predicted":
        # The pass is idempotent (it rebuilds every camera from camera 0, which it leaves exactly as it is), so a
        # resume after a kill during or after it gives the same arrays; the diagnostics stay those measured
        # before it.
        earlier = record.rig or RigReport()
        stored = earlier.rigid
        if stored is not None and earlier.diagnostics is not None:
            report.diagnostics = earlier.diagnostics
        if stored is None:
            _, rigid_intrinsics, rig = rigid_rig(extrinsics, intrinsics)
            stored = RigidRig(rig.tolist(), rigid_intrinsics[0].tolist())
            record.rig = RigReport(diagnostics=report.diagnostics, rigid=stored)
            recon.save_record()
        rig, rig_k = np.array(stored.camera_from_camera0), np.array(stored.intrinsics, np.float32)
        for window, cams in zip(recon.windows(), windows, strict=True):
            new_ext = apply_rig(cams["extrinsics"], rig).astype(np.float32)
            new_k = np.broadcast_to(rig_k, cams["intrinsics"].shape).astype(np.float32)
            recon.replace_arrays(window.index, {"extrinsics": new_ext, "intrinsics": new_k})  # pose points follow
        # camera 0 of every timestep is its owner window's, so the merged cameras follow by the same formula
        extrinsics = apply_rig(extrinsics, rig).astype(np.float32)
        intrinsics = np.broadcast_to(rig_k, intrinsics.shape).astype(np.float32)
        report.rigid = stored
        report.diagnostics_after_rigid = RigDiagnostics.from_dict(rig_diagnostics(extrinsics, intrinsics, names))
    if plan.calibration is not None and plan.cameras == "predicted":  # calibrated: the stored cameras ARE it
        report.calibration = _calibration_report(extrinsics, intrinsics, capture, plan.transforms, plan.calibration)
    report.agreement = agreement_summary(record.alignments())
    record.rig = report
    record.status = "complete"
    record.num_timesteps = recon.num_timesteps
    record.run_warnings = messages
    recon.save_record()


def _calibration_report(
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    capture: RigCapture,
    transforms: list[FrameTransform],
    calibration: RigCalibration,
) -> CalibrationComparison:
    cameras = []
    for n, (source, transform) in enumerate(zip(capture.sources, transforms, strict=True)):
        predicted = transform.intrinsics_to_source(np.median(intrinsics[:, n], axis=0))
        k = calibration.intrinsics[n]  # its size is the source's (load_calibration refuses others)
        focal_pred, focal_cal = (predicted[0, 0] + predicted[1, 1]) / 2, (k[0, 0] + k[1, 1]) / 2
        cameras.append(
            FocalComparison(
                source.name, float(focal_pred), float(focal_cal), float(100 * (focal_pred - focal_cal) / focal_cal)
            )
        )
    report = CalibrationComparison(str(calibration.path), calibration.units, cameras)
    if calibration.extrinsics is not None and len(capture.sources) > 1:
        errors = rig_error(extrinsics, calibration.extrinsics, capture.camera_names)
        report.rig = [RigError(**entry) for entry in errors]
    return report
