"""The whole open -> plan -> load model -> prepare output -> run sequence, written once.

One call::

    from app.reconstruct.run import reconstruct
    from vggt_t_mv import WeightsSpec

    result = reconstruct("capture/", "recon/", WeightsSpec(checkpoint=Path("model.pt")), PipelineConfig())

or two steps when the caller shows something between them (the CLI's progress bar, the viewer opening the folder)::

    prepared = prepare_reconstruction(capture, out, weights, config, resume=True)
    result = prepared.run(progress=..., on_window=...)

Under ``torchrun`` (``dist``), every rank plans and loads the model, rank 0 alone creates / reopens the output and
tells the others which window to start at (or that it failed); :meth:`PreparedRun.run` splits the windows.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.capture.masks import open_masks
from app.capture.preprocess import DEFAULT_SIZE
from app.capture.rig import CaptureOptions, RigCapture
from app.common.vocab import PreprocessMode
from app.reconstruct.pipeline import (
    PipelineConfig,
    Progress,
    RunPlan,
    RunResult,
    plan_run,
    prepare_output,
    run_pipeline,
    run_record,
)
from app.reconstruct.store import Reconstruction, ReconstructionError
from app.reconstruct.track_queries import QuerySource, TrackQueryError, resolve_track_queries
from app.reconstruct.tracking import (
    TrackResult,
    check_queries_before_run,
    external_mask_frames,
    track_reconstruction,
    track_settings,
)
from vggt_t_mv.distributed import DistContext
from vggt_t_mv.loading import LoadedModel, ModelLoadError, WeightsSpec, load_spec
from vggt_t_mv.weights import CheckpointError, read_saved_input_hw

UNTRAINED_WARNING = "--random-weights: the model is untrained, the reconstruction is meaningless (use it for testing)"


@dataclass
class PreparedRun:
    """A run ready to go: the capture, its plan, the loaded model, the output (``None`` on ranks > 0) and the first
    window to compute (> 0 when resumed)."""

    capture: RigCapture
    plan: RunPlan
    config: PipelineConfig
    loaded: LoadedModel
    out: Path
    recon: Reconstruction | None
    first_window: int
    dist: DistContext
    size_note: str = ""  # the model input size and where it came from (the CLI prints it)
    track_source: QuerySource | None = None  # --track-queries, read and checked
    track_result: TrackResult | None = None  # the tracks, once made

    @property
    def num_windows(self) -> int:
        return len(self.plan.spans)

    def kept_windows(self) -> int:
        """Complete windows on disk now (what an interrupted run leaves for ``--resume``)."""
        return 0 if self.recon is None else len(self.recon.windows(refresh=True))

    def run(
        self,
        progress: Callable[[Progress], None] | None = None,
        on_window: Callable[[int], None] | None = None,
    ) -> RunResult | None:
        """Compute and stitch the remaining windows (see :func:`app.reconstruct.pipeline.run_pipeline`), then the
        tracks when ``--track-queries`` asked for them (:func:`app.reconstruct.tracking.track_reconstruction`)."""
        result = run_pipeline(
            self.loaded.model,
            self.capture,
            self.recon,
            self.plan,
            self.config,
            first_window=self.first_window,
            progress=progress,
            on_window=on_window,
            dist=self.dist,
        )
        if result is not None and self.track_source is not None:
            recon = result.reconstruction
            masks = external_mask_frames(self.config.masks, self.capture, self.plan)
            try:
                self.track_result = track_reconstruction(
                    self.loaded.model,
                    recon,
                    self.track_source,
                    self.plan.device,
                    self.plan.autocast_dtype,
                    masks=masks,
                )
            except TrackQueryError:
                recon.record.tracks = None  # no tracks made: --resume may continue it with a fixed query file
                recon.save_record()
                raise
        return result


def weights_folder(weights: WeightsSpec | LoadedModel) -> Path | None:
    """The ``save_pretrained`` folder the weights come from (``None`` for a checkpoint file or no checkpoint)."""
    if isinstance(weights, LoadedModel):
        source = weights.provenance.sources.get("checkpoint")
        path = None if source is None or source.kind != "folder" else Path(source.path)
    else:
        path = weights.checkpoint
    return Path(path) if path is not None and Path(path).is_dir() else None


def trained_input_size(weights: WeightsSpec | LoadedModel, mode: PreprocessMode = "crop") -> tuple[int, str] | None:
    """The input size (``--size``: width for crop, side for pad) the weights were trained at, from their
    ``save_pretrained`` folder's ``input_hw``, and where that came from; ``None`` when they do not say."""
    folder = weights_folder(weights)
    try:
        trained = None if folder is None else read_saved_input_hw(folder)
    except CheckpointError as error:
        raise ModelLoadError(str(error)) from error
    if trained is None:
        return None
    height, width = trained
    size = max(height, width) if mode == "pad" else width
    return size, f"the size {folder} was trained at ({width}x{height})"


def input_size_note(requested: int | None, trained: tuple[int, str] | None, plan: RunPlan) -> str:
    """One line: the model input in pixels, the mode, and why this size (``--size``, the weights, the default)."""
    height, width = plan.image_hw
    size = plan.preprocess.size
    if requested is not None:
        why = f"--size {size}"
    elif trained is not None:
        why = f"size {size}: {trained[1]}; --size overrides"
    else:
        why = f"size {size}, the default; --size overrides"
    return f"model input {width}x{height} px ({plan.preprocess.mode}; {why})"


def prepare_reconstruction(
    capture: str | Path | RigCapture,
    out: str | Path,
    weights: WeightsSpec | LoadedModel,
    config: PipelineConfig | None = None,
    capture_options: CaptureOptions | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    dist: DistContext | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> PreparedRun:
    """Open the capture, plan the windows, load the model (:func:`vggt_t_mv.load_model`) and create (or, with
    ``resume``, reopen) the output. ``stop_requested`` is asked after the model is loaded (before anything is
    written); when it says yes this raises :class:`InterruptedError`.

    Raises :class:`~app.capture.sources.CaptureError`, :class:`~app.reconstruct.store.ReconstructionError`,
    :class:`~vggt_t_mv.ModelLoadError` (all ``ValueError``-like, with the file and the fix)."""
    config = config or PipelineConfig()
    dist = dist or DistContext()
    rig = capture if isinstance(capture, RigCapture) else RigCapture.open(capture, capture_options or CaptureOptions())
    trained = None if config.preprocess.size is not None else trained_input_size(weights, config.preprocess.mode)
    plan = plan_run(rig, config, DEFAULT_SIZE if trained is None else trained[0])
    for note in plan.notes:
        warnings.warn(note, stacklevel=2)
    if config.masks is not None:
        open_masks(config.masks, rig)  # refuse bad masks before anything is loaded or written
    track_source = resolve_track_queries(config.track_queries, rig.dataset_root, rig.num_timesteps, rig.num_cameras)
    track_source = check_queries_before_run(track_source, rig, plan)  # what can be checked before the model runs
    dist.join(plan.device)
    loaded = weights if isinstance(weights, LoadedModel) else load_spec(weights)
    if loaded.provenance.random_weights:
        warnings.warn(UNTRAINED_WARNING, stacklevel=2)
    if stop_requested is not None and stop_requested():
        raise InterruptedError("stopped before the run started")
    record = run_record(rig, plan, config, loaded.provenance)
    record.tracks = track_settings(track_source)
    recon, first, failure = None, 0, None
    if dist.is_main:
        try:
            recon, first = prepare_output(
                Path(out), record, resume=resume, overwrite=overwrite, format_version=config.format_version
            )
        except (ReconstructionError, ValueError) as error:
            failure = str(error)
    first, failure = dist.broadcast((first, failure))  # every rank starts at the same window, or stops
    if failure is not None:
        raise ReconstructionError(failure)
    note = input_size_note(config.preprocess.size, trained, plan)
    return PreparedRun(rig, plan, config, loaded, Path(out), recon, first, dist, note, track_source)


def reconstruct(
    capture: str | Path | RigCapture,
    out: str | Path,
    weights: WeightsSpec | LoadedModel,
    config: PipelineConfig | None = None,
    capture_options: CaptureOptions | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: Callable[[Progress], None] | None = None,
    on_window: Callable[[int], None] | None = None,
    dist: DistContext | None = None,
) -> RunResult | None:
    """Reconstruct ``capture`` into the folder ``out`` in one call (:func:`prepare_reconstruction` then
    :meth:`PreparedRun.run`); ``None`` on torchrun ranks other than 0."""
    prepared = prepare_reconstruction(
        capture, out, weights, config, capture_options, resume=resume, overwrite=overwrite, dist=dist
    )
    return prepared.run(progress=progress, on_window=on_window)
