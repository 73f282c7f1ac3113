"""``vggt-mv run``: reconstruct a capture into a reconstruction folder (:func:`app.reconstruct.prepare_reconstruction`
does the work; this file only maps options and prints)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app.capture.notes import capture_notes, ground_truth_of
from app.capture.sources import CaptureError
from app.cli.interrupt import exit_status, resume_hint
from app.cli.options import (
    CONTEXT_SETTINGS,
    capture_options,
    console_warnings,
    model_options,
    pipeline_config,
    pipeline_options,
    progress_bar,
    weights_spec,
)
from app.reconstruct.pipeline import PipelineError
from app.reconstruct.run import PreparedRun, prepare_reconstruction
from app.reconstruct.store import ReconstructionError
from app.reconstruct.summary import next_steps, summary_text
from app.reconstruct.tracking import track_summary
from vggt_t_mv.distributed import DistContext
from vggt_t_mv.loading import ModelLoadError


@click.command("run", context_settings=CONTEXT_SETTINGS)
@click.argument("capture", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output reconstruction folder.")
@model_options
@pipeline_options
def run_command(capture: Path, out: Path, **options) -> None:
    """Reconstruct CAPTURE (a folder of camera videos or image folders, a folder of timestep folders, a dataset
    root with images/, a video, or a folder of images) into the reconstruction folder --out, window by window."""
    console_warnings()
    ctx = DistContext.from_env()
    prepared: PreparedRun | None = None
    try:
        prepared = prepare_reconstruction(
            capture,
            out,
            weights_spec(options),
            pipeline_config(options, device=ctx.device_name(options["device"])),
            capture_options(options),
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
            click.echo(prepared.plan.camera_note, err=True)
            if prepared.track_source is not None:
                click.echo(prepared.track_source.note, err=True)
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
    except KeyboardInterrupt as interrupt:
        click.secho(f"\ninterrupted: complete windows are kept in {out}; {resume_hint('run')}", err=True, fg="red")
        sys.exit(exit_status(interrupt))
    finally:
        ctx.shutdown()
    if result is None:  # a torchrun rank other than 0: rank 0 wrote the reconstruction
        return
    click.echo(summary_text(result.reconstruction, result))
    if prepared.track_result is not None:
        click.echo(track_summary(prepared.track_result))
    click.echo(next_steps(out, ground_truth_of(prepared.capture, capture)))
