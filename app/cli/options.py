"""Options and console helpers that several commands share, declared once.

:func:`model_options` adds ``--checkpoint``, ``--pi3``, ``--config``, ``--random-weights`` and the attention knobs
``--time-window`` / ``--kv-pool`` (one meaning for every command: :func:`vggt_t_mv.load_model`, the knobs as config
overrides); :func:`weights_spec` turns them into a :class:`~vggt_t_mv.WeightsSpec`.
:func:`console_warnings` prints warnings as one yellow line; :func:`progress_bar` is the windows progress bar.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from app.capture.layout import LAYOUT_CHOICES
from app.capture.preprocess import CROP_TOLERANCE, PreprocessConfig
from app.capture.rig import CaptureOptions
from app.common.vocab import (
    CAMERA_MODES,
    DTYPE_NAMES,
    LENGTH_UNITS,
    PREPROCESS_MODES,
    RENDER_MODES,
    SYNC_MODES,
    Choice,
    check_choice,
)
from app.export.selection import DEFAULT_CONF_PERCENTILE
from app.reconstruct.pipeline import PipelineConfig
from app.viewer.server import DEFAULT_POINT_BUDGET
from vggt_t_mv.loading import PRESETS, WeightsSpec

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 110}

CHECKPOINT_HELP = "VGGT-family weights: a .pt/.pth/.safetensors file or a save_pretrained folder."
CONFIG_HELP = (
    f"Model config: a preset ({', '.join(PRESETS)}) or a JSON file. Default: from --checkpoint (a save_pretrained "
    "folder's own config.json, else inferred from the checkpoint's tensor shapes; Pi3 weights alone: full size)."
)

TIME_WINDOW_HELP = (
    "Time-SA sees only the timesteps within +-K of each frame's (long windows: attention cost grows with T*(2K+1) "
    "instead of T^2). Default: every timestep. README 'Long windows' for the accuracy cost."
)
KV_POOL_HELP = (
    "Average the keys/values of Time-SA and View-SA over SxS patches (camera/register tokens kept): about S^2 times "
    "fewer keys. Default 1 (off)."
)
# CLI option -> the ModelConfig field it overrides.
ATTENTION_KNOB_FIELDS = {"time_window": "time_window", "kv_pool": "kv_pool"}

SIZE_HELP = (
    "Model input width (crop) / side (pad), a multiple of 14. Default: the size the weights were trained at (a "
    "save_pretrained folder's config.json records it), else 518."
)


def model_options(command: Callable) -> Callable:
    """Decorate ``command`` with the shared weights options (keyword arguments ``checkpoint``, ``pi3``,
    ``model_config``, ``random_weights``)."""
    decorators = [
        click.option("--checkpoint", type=click.Path(exists=True, path_type=Path), help=CHECKPOINT_HELP),
        click.option("--pi3", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Pi3 weights."),
        click.option("--config", "model_config", help=CONFIG_HELP),
        click.option(
            "--random-weights", is_flag=True, help="Run an untrained model (testing only; output is meaningless)."
        ),
        click.option("--time-window", type=click.IntRange(min=0), metavar="K", help=TIME_WINDOW_HELP),
        click.option("--kv-pool", type=click.IntRange(min=1), metavar="S", help=KV_POOL_HELP),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def weights_spec(options: dict[str, Any]) -> WeightsSpec:
    """The :class:`WeightsSpec` of :func:`model_options`' keyword arguments (the attention knobs given become
    ``ModelConfig`` overrides)."""
    overrides = {field: options[name] for name, field in ATTENTION_KNOB_FIELDS.items() if options.get(name) is not None}
    return WeightsSpec(
        config=options.get("model_config"),
        checkpoint=options.get("checkpoint"),
        pi3=options.get("pi3"),
        random_weights=bool(options.get("random_weights")),
        overrides=overrides,
    )


NUMPY_ARITHMETIC = (
    r"(invalid value|divide by zero|overflow|underflow) encountered|Mean of empty slice|All-NaN (slice|axis) "
    r"encountered|Degrees of freedom <= 0"
)


def console_warnings() -> None:
    """Show every warning once per place, as ``warning: ...`` in yellow on stderr, except numpy's floating-point
    RuntimeWarnings (arithmetic on values the code marks invalid with NaN on purpose: they say nothing to a user)."""
    warnings.simplefilter("default")
    warnings.filterwarnings("ignore", NUMPY_ARITHMETIC, RuntimeWarning)
    warnings.showwarning = lambda message, category, *args, **kw: click.secho(
        f"warning: {message}", fg="yellow", err=True
    )


@contextmanager
def progress_bar(total: int, enabled: bool = True) -> Iterator[Callable[[Any], None] | None]:
    """A windows progress bar on stderr; yields the pipeline's ``progress`` callback (``None`` when disabled)."""
    if not enabled:
        yield None
        return
    state = {"text": ""}

    def shown(_: int | None) -> str:  # the bar counts windows; it shows the latest event's line
        return state["text"]

    with click.progressbar(
        length=total, label="windows", show_eta=False, show_pos=True, file=sys.stderr, item_show_func=shown
    ) as bar:

        def update(event: Any) -> None:
            eta = time.strftime("%H:%M:%S", time.gmtime(event.eta_s))
            state["text"] = (
                f"timesteps {event.timesteps_done}/{event.num_timesteps}  {event.frames_per_s:.1f} frames/s  ETA {eta}"
            )
            bar.update(1)

        yield update


MODE_HELP = (
    f"crop: VGGT's centre crop to the width; pad: VGGT's pad mode (the whole frame, white borders); auto: crop, "
    f"unless that removes more than {100 * CROP_TOLERANCE:.0f} % of a camera's frame (portrait video), then pad."
)


@contextmanager
def step_progress(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr for work counted in steps; yields the ``progress(done, total)`` callback that
    evaluation loops take (``None`` when disabled). The bar appears with the first step."""
    if not enabled:
        yield None
        return
    state: dict[str, Any] = {"bar": None, "done": 0}

    def update(done: int, total: int) -> None:
        bar = state["bar"]
        if bar is None:
            bar = click.progressbar(length=total, label=label, show_pos=True, show_eta=True, file=sys.stderr)
            bar.__enter__()
            state["bar"] = bar
        bar.update(done - state["done"])
        state["done"] = done

    try:
        yield update
    finally:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)


def conf_percentile_option(command: Callable) -> Callable:
    """``--conf-percentile`` (keyword ``conf_percentile``) of ``export`` and ``view``: one default,
    :data:`~app.export.selection.DEFAULT_CONF_PERCENTILE`, so the same settings keep the same points."""
    return click.option(
        "--conf-percentile",
        type=click.FloatRange(0.0, 100.0, max_open=True),
        default=DEFAULT_CONF_PERCENTILE,
        show_default=True,
        help="Drop the least confident percent of each timestep's valid pixels (0 keeps every valid pixel).",
    )(command)


def min_views_option(command: Callable) -> Callable:
    """``--min-views`` (keyword ``min_views``) of ``export``, ``view`` and ``eval``: the multi-view agreement filter of
    :func:`app.export.selection.pixel_filter` (0: off)."""
    return click.option(
        "--min-views",
        type=click.IntRange(min=0),
        default=0,
        show_default=True,
        help="Keep pixels whose depth at least K other cameras of the same instant agree with (0: off; pixels no "
        "other camera sees are kept).",
    )(command)


def display_options(command: Callable) -> Callable:
    """``--render``, ``--point-budget`` and ``--fps`` (keywords ``render``, ``point_budget``, ``fps``): how a 4D scene
    is drawn and played, the same for the viewer and for ``export --format viser|web``."""
    decorators = [
        click.option(
            "--render",
            type=click.Choice(RENDER_MODES),
            default="points",
            show_default=True,
            help="Draw the points as points or as Gaussian splats.",
        ),
        click.option(
            "--point-budget",
            type=click.IntRange(min=1),
            default=DEFAULT_POINT_BUDGET,
            show_default=True,
            help="At most this many points per timestep (a fixed random subset).",
        ),
        click.option(
            "--fps",
            type=click.FloatRange(min=0.0, min_open=True),
            default=5.0,
            show_default=True,
            help="Playback speed in timesteps per second.",
        ),  # fmt: skip
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


TRACK_QUERIES_HELP = (
    "4D point tracks after the run: a file of [Q, 4] rows t x y z (3D, the reconstruction's frame: the "
    "calibration's when calibrated; MVTracker's query_points.npy) or, for a name ending in _2d, t camera u v (model "
    "pixels); auto: a dataset root's query_points.npy, else a grid on the moving pixels of the first timestep. "
    "README '4D tracks'."
)


def pipeline_options(command: Callable) -> Callable:
    """Decorate ``command`` with every option of ``vggt-mv run`` besides ``--out`` and the model options: windows,
    input size and mode, device and dtype, which timesteps, synchronization, masks, calibration, resume/overwrite.

    ``run`` and ``view`` (live mode) both take exactly these (``tests/test_cli_options.py`` compares the two
    commands), so an option added here reaches both; :func:`capture_options` and :func:`pipeline_config` turn the
    keyword arguments into the configs."""
    decorators = [
        click.option(
            "--window", type=click.IntRange(min=1), help="Timesteps per window (default: cuda 16, mps 8, cpu 6)."
        ),
        click.option(
            "--stride",
            type=click.IntRange(min=1),
            help="Timesteps between window starts (default: cuda 12, mps 6, cpu 4).",
        ),
        click.option("--size", type=int, help=SIZE_HELP),
        click.option("--mode", type=click.Choice(PREPROCESS_MODES), default="auto", show_default=True, help=MODE_HELP),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps."),
        click.option(
            "--dtype",
            type=click.Choice(DTYPE_NAMES),
            default="auto",
            show_default=True,
            help="Autocast dtype of the trunk (auto: bf16 on CUDA where supported, fp32 on CPU).",
        ),
        click.option("--start", type=int, default=0, show_default=True, help="First synchronized timestep."),
        click.option("--end", type=int, help="Stop before this timestep (default: the last)."),
        click.option("--every", type=int, default=1, show_default=True, help="Keep every k-th timestep."),
        click.option("--max-frames", type=int, help="At most this many timesteps (after --every)."),
        click.option(
            "--layout",
            type=click.Choice(LAYOUT_CHOICES),
            default="auto",
            show_default=True,
            help="camera-major: a video / image folder per camera; time-major: a folder per timestep, an image per "
            "camera.",
        ),
        click.option(
            "--timestamps",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Timestamps CSV: camera + time columns (README).",
        ),
        click.option(
            "--sync",
            type=click.Choice(SYNC_MODES),
            default="auto",
            show_default=True,
            help="auto: timestamps if a CSV exists, else by fps if they differ, else by frame index.",
        ),
        click.option(
            "--masks",
            metavar="FOLDER|auto",
            help="Dynamic masks: a folder per camera (or view_K), SegAnyMo's output folder, or auto (a dataset "
            "root's SegAnyMo/).",
        ),
        click.option("--rigid-rig", is_flag=True, help="Average intrinsics and camera-to-camera-0 poses over time."),
        click.option(
            "--skip-bad-cameras", is_flag=True, help="Drop cameras that cannot be decoded instead of stopping."
        ),
        click.option("--resume", is_flag=True, help="Continue an interrupted run in --out from its last window."),
        click.option("--overwrite", is_flag=True, help="Replace a reconstruction already in --out."),
        click.option("--track-queries", metavar="FILE|auto", help=TRACK_QUERIES_HELP),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return calibration_options(command)


CALIBRATION_HELP = (
    "Rig calibration: caliscope camera_array.toml; anipose / pose2sim calibration.toml or Calib.toml; JSON (README); "
    "Qualisys QTM .qca.txt; EasyMocap intri.yml + extri.yml (their folder); a COLMAP sparse model (folder, .bin or "
    ".txt); a dataset root with intrs/ + extrs/. auto (default): a dataset root's own intrs/ + extrs/ when the "
    "capture is one; none: no calibration. Lens distortion is removed before the model."
)


def calibration_options(command: Callable) -> Callable:
    """Decorate ``command`` with the calibration options that ``run`` and ``view`` share (keyword arguments
    ``calibration``, ``calibration_units``, ``camera_mode``)."""
    decorators = [
        click.option(
            "--calibration", default="auto", show_default=True, metavar="PATH|auto|none", help=CALIBRATION_HELP
        ),
        click.option(
            "--calibration-units",
            type=click.Choice(LENGTH_UNITS),
            help="Units of the calibration's lengths when the file does not state them and the camera spacing does "
            "not tell (arbitrary: not metric).",
        ),
        click.option(
            "--cameras",
            "camera_mode",
            type=click.Choice(CAMERA_MODES),
            help="calibrated: the stored cameras are the calibration, each window moved into its frame by its own "
            "Sim(3) (no drift); predicted: the model's cameras, windows chained. Default: calibrated whenever the "
            "calibration has extrinsics.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def capture_options(options: dict[str, Any]) -> CaptureOptions:
    """The :class:`CaptureOptions` of :func:`pipeline_options`' keyword arguments."""
    return CaptureOptions(
        start=options["start"],
        end=options["end"],
        every=options["every"],
        max_frames=options["max_frames"],
        timestamps=options["timestamps"],
        sync=check_choice(options["sync"], SYNC_MODES, "--sync"),
        skip_unreadable=options["skip_bad_cameras"],
        layout=check_choice(options["layout"], LAYOUT_CHOICES, "--layout"),
    )


def pipeline_config(options: dict[str, Any], device: str | None = None) -> PipelineConfig:
    """The :class:`PipelineConfig` of :func:`pipeline_options`' keyword arguments (``device``: the resolved device
    name when the caller knows better than ``--device``, e.g. a torchrun rank)."""
    return PipelineConfig(
        window=options["window"],
        stride=options["stride"],
        device=device or options["device"],
        dtype=check_choice(options["dtype"], DTYPE_NAMES, "--dtype"),
        preprocess=PreprocessConfig(
            size=options["size"], mode=check_choice(options["mode"], PREPROCESS_MODES, "--mode")
        ),
        masks=options["masks"],
        rigid_rig=options["rigid_rig"],
        calibration=options["calibration"],
        calibration_units=_optional_choice(options["calibration_units"], LENGTH_UNITS, "--calibration-units"),
        cameras=_optional_choice(options["camera_mode"], CAMERA_MODES, "--cameras"),
        track_queries=options["track_queries"],
    )


def _optional_choice(value: str | None, choices: tuple[Choice, ...], what: str) -> Choice | None:
    """An optional choice option's value as its ``Literal`` (not given: None)."""
    return None if value is None else check_choice(value, choices, what)
