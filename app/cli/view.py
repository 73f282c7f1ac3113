"""``vggt-mv view`` / ``vggt-mv-view``: open a reconstruction, a capture (run live) or the demo in the viewer
(:func:`app.viewer.launch.plan_view` decides what; :class:`app.viewer.server.Viewer` serves it)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app.capture.ground_truth import GroundTruthError
from app.cli.interrupt import exit_status
from app.cli.options import (
    CONTEXT_SETTINGS,
    capture_options,
    conf_percentile_option,
    console_warnings,
    display_options,
    min_views_option,
    model_options,
    pipeline_config,
    pipeline_options,
    weights_spec,
)
from app.cli.resume import resume_command
from app.common.vocab import RENDER_MODES, STREAMS, check_choice
from app.reconstruct.store import ReconstructionError
from app.viewer.launch import ViewUsageError, plan_view
from app.viewer.server import Viewer, ViewerConfig, free_port, serve_until_interrupted


def _stderr(text: str) -> None:
    click.echo(text, err=True)


@click.command("view", context_settings=CONTEXT_SETTINGS)
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), help="For a capture: where the reconstruction goes.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (not loopback: needs a token).")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port, 0..65535 (the next free one if taken; 0: any free port).",
)
@click.option("--no-browser", is_flag=True, help="Do not open a browser tab.")
@model_options
@pipeline_options
@click.option("--stream", type=click.Choice(STREAMS), default="geo", show_default=True, help="Stream shown first.")
@conf_percentile_option
@min_views_option
@display_options
@click.option("--exit-after", type=float, help="Serve this many seconds, then stop as on Ctrl-C (scripts, tests).")
@click.option(
    "--ground-truth",
    type=click.Path(exists=True, path_type=Path),
    help="Ground truth to show next to the reconstruction, also while a capture runs live (a dataset root, "
    "ground_truth.npz, ...: as eval --gt).",
)
def view_command(path: Path | None, **options) -> None:
    """Open PATH in the 4D viewer: a reconstruction folder (instantly), or a capture (the pipeline runs in the
    background and windows appear as they are stitched). No PATH: the bundled demo rig."""
    console_warnings()
    try:
        _view(path, options)
    except KeyboardInterrupt as interrupt:  # before the server runs (it handles its own): nothing started yet
        _stderr("interrupted while the viewer was starting")
        sys.exit(exit_status(interrupt))


def _view(path: Path | None, options: dict) -> None:
    try:
        plan = plan_view(
            path,
            weights_spec(options),
            pipeline_config(options),
            capture_options(options),
            out=options["out"],
            resume=options["resume"],
            overwrite=options["overwrite"],
        )
    except ViewUsageError as error:
        raise click.UsageError(str(error)) from error
    except ReconstructionError as error:
        raise click.ClickException(str(error)) from error
    for message in plan.messages:
        _stderr(message)
    config = ViewerConfig(
        host=options["host"],
        port=free_port(options["host"], options["port"]),
        open_browser=not options["no_browser"],
        stream=check_choice(options["stream"], STREAMS, "--stream"),
        render=check_choice(options["render"], RENDER_MODES, "--render"),
        conf_percentile=options["conf_percentile"],
        min_views=options["min_views"],
        point_budget=options["point_budget"],
        fps=options["fps"],
        notice=plan.notice,
        ground_truth=options["ground_truth"],
    )
    viewer = Viewer(config)
    try:
        viewer.check_ground_truth()
    except GroundTruthError as error:
        raise click.ClickException(str(error)) from error
    viewer.start()
    if plan.recon is not None:
        try:
            viewer.open(plan.recon)
        except GroundTruthError as error:
            viewer.stop()
            raise click.ClickException(str(error)) from error
    elif plan.live is not None:
        viewer.run_live(plan.live)
    click.echo(f"vggt-mv viewer: {viewer.url}  (Ctrl-C to stop)")
    serve_until_interrupted(viewer, options["exit_after"], log=_stderr, resume_command=resume_command)
