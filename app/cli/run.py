"""``vggt-mv run``: reconstruct a capture into a reconstruction folder (:func:`app.reconstruct.prepare_reconstruction`
does the work; this file only maps options and prints)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app.capture.notes import capture_notes
from app.capture.preprocess import CROP_TOLERANCE, PreprocessConfig
from app.capture.rig import CaptureOptions
from app.capture.sources import CaptureError
from app.cli.options import (
    CONTEXT_SETTINGS,
    calibration_options,
    console_warnings,
    model_options,
    pipeline_options,
    progress_bar,
    weights_spec,
)
from app.common.vocab import DTYPE_NAMES, PREPROCESS_MODES, SYNC_MODES
from app.reconstruct.pipeline import PipelineConfig, PipelineError
from app.reconstruct.run import PreparedRun, prepare_reconstruction
from app.reconstruct.store import ReconstructionError
from app.reconstruct.summary import summary_text
from vggt_t_mv.distributed import DistContext
from vggt_t_mv.loading import ModelLoadError

MODE_HELP = (
    f"crop: VGGT's centre crop to the width; pad: VGGT's pad mode (the whole frame, white borders); auto: crop, "
    f"unless that removes more than {100 * CROP_TOLERANCE:.0f} % of a camera's frame (portrait video), then pad."
)


@click.command("run", context_settings=CONTEXT_SETTINGS)
@click.argument("capture", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output reconstruction folder.")
@model_options
@pipeline_options
@click.option("--mode", type=click.Choice(PREPROCESS_MODES), default="auto", show_default=True, help=MODE_HELP)
@click.option(
    "--dtype",
    type=click.Choice(DTYPE_NAMES),
    default="auto",
    show_default=True,
    help="Autocast dtype of the trunk (auto: bf16 on CUDA where supported, fp32 on CPU).",
)
@click.option("--start", type=int, default=0, show_default=True, help="First synchronized timestep.")
@click.option("--end", type=int, help="Stop before this timestep (default: the last).")
@click.option("--every", type=int, default=1, show_default=True, help="Keep every k-th timestep.")
@click.option(
    "--timestamps",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Timestamps CSV: camera + time columns (README).",
)
@click.option(
    "--sync",
    type=click.Choice(SYNC_MODES),
    default="auto",
    show_default=True,
    help="auto: timestamps if a CSV exists, else by fps if they differ, else by frame index.",
)
@click.option(
    "--masks",
    metavar="FOLDER|auto",
    help="Dynamic masks: a folder per camera (or view_K), SegAnyMo's output folder, or auto (a dataset root's "
    "SegAnyMo/).",
)
@calibration_options
@click.option("--rigid-rig", is_flag=True, help="Average intrinsics and camera-to-camera-0 poses over time.")
@click.option("--skip-bad-cameras", is_flag=True, help="Drop cameras that cannot be decoded instead of stopping.")
def run_command(capture: Path, out: Path, **options) -> None:
    """Reconstruct CAPTURE (a folder of camera videos or image folders, a folder of timestep folders, a dataset
    root with images/, a video, or a folder of images) into the reconstruction folder --out, window by window."""
    console_warnings()
    ctx = DistContext.from_env()
    prepared: PreparedRun | None = None
    try:
        capture_options = CaptureOptions(
            start=options["start"],
            end=options["end"],
            every=options["every"],
            max_frames=options["max_frames"],
            timestamps=options["timestamps"],
            sync=options["sync"],
            skip_unreadable=options["skip_bad_cameras"],
            layout=options["layout"],
        )
        config = PipelineConfig(
            window=options["window"],
            stride=options["stride"],
            device=ctx.device_name(options["device"]),
            dtype=options["dtype"],
            preprocess=PreprocessConfig(size=options["size"], mode=options["mode"]),
            masks=options["masks"],
            rigid_rig=options["rigid_rig"],
            calibration=options["calibration"],
            calibration_units=options["calibration_units"],
        )
        prepared = prepare_reconstruction(
            capture,
            out,
            weights_spec(options),
            config,
            capture_options,
            resume=options["resume"],
            overwrite=options["overwrite"],
            dist=ctx,
        )
        if ctx.is_main:
            for line in capture_notes(prepared.capture, options["masks"]):
                click.echo(line, err=True)
            click.echo(prepared.size_note, err=True)
            if prepared.plan.calibration is not None:
                click.echo(prepared.plan.calibration.summary(), err=True)
        if prepared.loaded.report is not None:
            click.echo(f"weights: {prepared.loaded.report.summary()}", err=True)
        if prepared.first_window and ctx.is_main:
            click.echo(
                f"resuming {out}: {prepared.first_window} of {prepared.num_windows} windows already on disk", err=True
            )
        if ctx.enabled and ctx.is_main:
            click.echo(f"{ctx.world_size} processes share the windows (torchrun)", err=True)
        with progress_bar(prepared.num_windows - prepared.first_window, enabled=ctx.is_main) as update:
            result = prepared.run(progress=update)
    except (CaptureError, ReconstructionError, PipelineError, ModelLoadError, ValueError) as error:
        message = str(error)
        kept = 0 if prepared is None else prepared.kept_windows()
        if kept:
            message += f"\n{kept} complete window(s) are kept in {out}; continue with --resume"
        raise click.ClickException(message) from error
    except KeyboardInterrupt:
        click.secho(f"\ninterrupted: complete windows are kept in {out}; continue with --resume", err=True, fg="red")
        sys.exit(130)
    finally:
        ctx.shutdown()
    if result is None:  # a torchrun rank other than 0: rank 0 wrote the reconstruction
        return
    click.echo(summary_text(result.reconstruction, result))
