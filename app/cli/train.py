"""``vggt-mv train [CONFIG] --data ROOT ...`` and ``vggt-mv eval TARGET --gt GT`` (click commands registered by
:mod:`app.cli.main`); the logic is in :mod:`app.train`.

Under ``torchrun --nproc_per_node K -m app.cli train ...`` the training runs in K processes with
DistributedDataParallel (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import click

from app.cli.interrupt import exit_status, resume_hint
from app.cli.options import (
    CHECKPOINT_HELP,
    CONFIG_HELP,
    console_warnings,
    min_views_option,
    model_options,
    step_progress,
    weights_spec,
)
from app.common.vocab import check_choice
from app.reconstruct.evaluate import EvalInputError, eval_weights
from app.train.data import SYNTHETIC_GT, TrainDataError, evaluation_sequences
from app.train.run import TrainOptions, train_captures, training_config
from vggt_t_mv.eval.metrics import HIGHER_IS_BETTER
from vggt_t_mv.loading import LoadedModel, ModelLoadError, WeightsSpec, load_model, load_spec
from vggt_t_mv.train.freeze import POLICIES


# ------------------------------------------------------------------------------------------------------------ train
@click.command("train")
@click.argument("config", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "data",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Training data: a recorded capture with ground truth (a dataset root: images/ with depths/ intrs/ extrs/, "
    "SegAnyMo/ masks as labels; or a capture with ground_truth.npz), or a folder of them. Repeatable.",
)
@click.option(
    "--val",
    "val",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Held-out captures for validation (as --data). Default: the last of several --data sequences, or the last "
    "timesteps of a single one. Repeatable.",
)
@click.option("--checkpoint", type=click.Path(exists=True, path_type=Path), help=CHECKPOINT_HELP)
@click.option("--pi3", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Pi3 weights.")
@click.option("--config", "model_config", help=CONFIG_HELP)
@click.option("--steps", type=int, help="Training steps (optim.max_steps).")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (run.out).")
@click.option("--val-every", type=int, help="Validate every N steps (val.every; 0: never). Default with --data: 100.")
@click.option(
    "--best-metric",
    type=click.Choice(list(HIGHER_IS_BETTER)),
    help="Keep the weights with the best value of this validation metric in OUT/best/ (val.metric; default ate).",
)
@click.option("--freeze", type=click.Choice(POLICIES), help="What is trained (model.freeze; default auto).")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in the run's output folder.")
@click.option("--stop-after", type=int, help="Stop (with a checkpoint) after this many steps; the schedule is kept.")
@click.option("--set", "assignments", multiple=True, help="Override a config value: --set optim.lr=1e-4 (repeatable).")
def train_command(
    config: Path | None,
    data: tuple[Path, ...],
    val: tuple[Path, ...],
    checkpoint: Path | None,
    pi3: Path | None,
    model_config: str | None,
    steps: int | None,
    out: Path | None,
    val_every: int | None,
    best_metric: str | None,
    freeze: str | None,
    resume: bool,
    stop_after: int | None,
    assignments: tuple[str, ...],
) -> None:
    """Train or fine-tune on recorded captures (--data ROOT), or as CONFIG (YAML or JSON, see configs/) says.

    \b
    vggt-mv train --data ROOT --checkpoint WEIGHTS --steps N --out DIR   # validation every 100 steps
    vggt-mv train configs/finetune_rig.yaml --set optim.lr=1e-4

    Single process, or under torchrun (DistributedDataParallel). Writes checkpoints, metrics.jsonl (training losses
    and validation metrics), loss_curve.png, best/ (best validation metric) and final/ (save_pretrained) into OUT.
    """
    if config is None and not data:
        raise click.UsageError("give training data (--data ROOT) and/or a CONFIG file (see configs/)")
    if data and val_every is None and not any(a.startswith("val.every=") for a in assignments):
        val_every = DEFAULT_VAL_EVERY
    options = TrainOptions(
        config,
        list(data),
        list(val),
        checkpoint,
        pi3,
        model_config,
        steps,
        out,
        val_every,
        best_metric,
        None if freeze is None else check_choice(freeze, POLICIES, "--freeze"),
        assignments,
    )
    console_warnings()
    try:
        cfg = training_config(options)
        if data and config is None and steps is None and not any(a.startswith("optim.max_steps=") for a in assignments):
            raise click.UsageError("--steps N: how many steps to train (there is no config file to say)")
        result = train_captures(cfg, resume=resume, stop_after=stop_after, log=lambda text: click.echo(text, err=True))
    except (FileNotFoundError, ValueError) as error:  # ConfigError, TrainDataError, ModelLoadError are ValueErrors
        where = f"{config}: " if config is not None and not isinstance(error, TrainDataError) else ""
        raise click.ClickException(f"{where}{error}") from error
    except KeyboardInterrupt as interrupt:
        click.secho(
            f"\ninterrupted: the checkpoints already written are kept; {resume_hint('train')}", err=True, fg="red"
        )
        sys.exit(exit_status(interrupt))
    if os.environ.get("RANK", "0") != "0":
        return
    loss = "n/a" if result.final_loss is None else f"{result.final_loss:.4f}"
    click.echo(f"trained {result.steps} steps in {result.seconds:.0f} s, last loss {loss}; output in {result.out}")
    if result.best is not None and result.best.step is not None:
        click.echo(
            f"best {result.best.metric} {result.best.value:.4g} at step {result.best.step}: {result.best.folder}"
        )


DEFAULT_VAL_EVERY = 100


# ------------------------------------------------------------------------------------------------------------- eval
def _gt_sequences(spec: str, synthetic_hw: tuple[int, int]) -> tuple[str, list]:
    from app.capture.ground_truth import GroundTruthError, check_sequence_cameras
    from vggt_t_mv.data.recorded import Sequence

    try:
        name, sequences = evaluation_sequences(spec, synthetic_hw)
        for sequence in sequences:
            if isinstance(sequence, Sequence) and not spec.startswith(SYNTHETIC_GT):
                check_sequence_cameras(sequence, Path(spec))  # NaN extrinsics, zero intrinsics: named, not LinAlgError
        return name, sequences
    except (TrainDataError, GroundTruthError) as error:
        raise click.BadParameter(str(error), param_hint="--gt") from error


def _window_shape(sequences: list, timesteps: int, cameras: int | None, width: int) -> tuple[int, int, int, int]:
    """Window ``(T, N, H, W)`` for a set: ``T`` and ``N`` clipped to the sequences, ``H`` from the frames' aspect."""
    first = sequences[0]
    t = min(timesteps, min(s.num_timesteps for s in sequences))
    n = min(cameras or first.num_cameras, min(s.num_cameras for s in sequences))
    h, w = first.image_hw
    height = max(14, round(h * width / w / 14) * 14)
    return t, n, height, width


def _load_evaluated(weights: WeightsSpec) -> LoadedModel:
    try:
        return load_spec(weights)
    except ModelLoadError as error:
        what = weights.checkpoint or weights.pi3 or "the model"
        raise click.ClickException(f"{what}: the model cannot be read: {error}") from error


def _model_results(loaded: LoadedModel, label: str, dataset, baselines: bool, device: str, quiet: bool) -> list:
    from vggt_t_mv.eval.runner import evaluate

    predictors: list[tuple[object, str]] = [(loaded.model.to(device), f"model {label}")]
    if baselines:
        untrained = load_model(loaded.config, random_weights=True, seed=0).model.to(device)
        predictors.append((untrained, "untrained (same config, seed 0)"))
        predictors.append(("trivial", "trivial: identity cams / const depth / static mask"))
    results = []
    for predictor, name in predictors:
        with step_progress(f"{name}: windows", enabled=not quiet) as progress:
            results.append(evaluate(predictor, dataset, name, progress=progress))
    return results


@click.command("eval")
@click.argument("target", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_options
@click.option(
    "--gt",
    "gts",
    multiple=True,
    required=True,
    help="Ground truth: 'synthetic:1000-1005' (held-out procedural rigs), a realdata folder (pi3_room, "
    "middlebury_templeSparseRing, caliscope_4cam_charuco), a recorded-sample folder or its ground_truth.npz, or "
    "(for a reconstruction) a dataset root with images/ and depths/, intrs/, extrs/. Repeatable.",
)
@click.option("--timesteps", "-T", type=int, default=2, show_default=True, help="Window timesteps (clipped).")
@click.option("--cameras", "-N", type=int, help="Window cameras (default: 3 for synthetic, all for real sets).")
@click.option("--width", type=int, default=154, show_default=True, help="Model input width (height from aspect).")
@click.option("--height", type=int, default=112, show_default=True, help="Model input height of synthetic rigs.")
@click.option(
    "--baselines",
    is_flag=True,
    help="Also evaluate the trivial baselines (and, for a model folder, the untrained model).",
)
@click.option("--device", default="cpu", show_default=True, help="Where the model runs: cpu, cuda, cuda:N or mps.")
@click.option(
    "--error-maps",
    type=click.Path(file_okay=False, path_type=Path),
    help="For a reconstruction: write one PNG per timestep and camera here, each pixel coloured by its point's "
    "distance to the ground-truth surface (the viewer's error colouring), the scale under each picture.",
)
@min_views_option
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write all numbers here ('-': stdout)."
)
def eval_command(
    target: Path | None,
    gts: tuple[str, ...],
    timesteps: int,
    cameras: int | None,
    width: int,
    height: int,
    baselines: bool,
    device: str,
    json_out: Path | None,
    error_maps: Path | None,
    min_views: int,
    **model: object,
) -> None:
    """Evaluate TARGET (a model folder written by save_pretrained, or a reconstruction folder), or the model the
    model options give (--checkpoint / --pi3 / --config / --random-weights, as `vggt-mv run`), against ground truth.

    Metrics per window, averaged: ATE (Sim(3)-aligned camera centres), RPE translation / rotation, AUC@30 of
    relative-pose errors, depth Abs Rel and δ<1.25 (per-window median scaling; also over static and moving pixels
    when the ground truth has motion masks), point accuracy / completeness (Sim(3)-aligned), dynamic-mask IoU.
    Prints a markdown table. A reconstruction's ground truth is brought to the model pixels by the run's own
    crop / pad transform (and lens undistortion). For a reconstruction also, with no alignment and no scaling: depth
    Abs Rel / δ<1.25 as stored, point accuracy / completeness when it is in its calibration frame (--cameras
    calibrated), per window and over the whole sequence, and the drift of each static camera (units printed); those
    unaligned numbers over the pixels --min-views keeps (the export's and viewer's filter); and for a reconstruction
    with tracks (--track-queries) against ground truth with tracks (a synthetic capture, or a dataset's
    tracks_3d.npy): median 3D error, δ_avg over 1-16 cm and occlusion accuracy.
    """
    from app.reconstruct.pipeline import PipelineError, resolve_device
    from vggt_t_mv.eval.runner import eval_windows, markdown_table

    try:
        device = str(resolve_device(device))
    except PipelineError as error:
        raise click.ClickException(str(error)) from error
    report: dict = {}
    tables = []
    quiet = json_out is not None and str(json_out) == "-"  # stdout carries the JSON alone
    try:
        weights = eval_weights(target, weights_spec(model))
    except EvalInputError as error:
        raise click.BadParameter(str(error)) from error
    recon = None  # a reconstruction folder TARGET: evaluated as stored, no model (eval_weights gave no weights)
    if weights is None:
        if target is None:
            raise click.UsageError("nothing to evaluate: give TARGET or --checkpoint / --pi3 / --random-weights")
        recon = target
    is_recon = recon is not None
    if min_views > 0 and not is_recon:
        raise click.UsageError("--min-views filters a reconstruction's pixels: give a reconstruction folder as TARGET")
    if error_maps is not None and (not is_recon or len(gts) != 1):
        raise click.UsageError("--error-maps needs a reconstruction folder as TARGET and exactly one --gt")
    loaded = None if weights is None else _load_evaluated(weights)
    label = target.name if target is not None else "random weights"
    if target is None and loaded is not None:
        label = " + ".join(Path(source.path).name for source in loaded.provenance.sources.values()) or label
    for spec in gts:
        if recon is not None:
            results, name = _recon_results(recon, Path(spec), baselines, quiet), Path(spec).name
            frame = _frame_report(recon, Path(spec), min_views)
            report[f"{name} (unaligned)"] = frame.to_dict()
        elif loaded is not None:
            name, sequences = _gt_sequences(spec, (height, width))
            synthetic = spec.startswith(SYNTHETIC_GT)
            t, n, h, w = _window_shape(sequences, timesteps, cameras or (3 if synthetic else None), width)
            if synthetic:
                h = height
            dataset = eval_windows(sequences, t, n, h, w)
            results = _model_results(loaded, label, dataset, baselines, device, quiet)
            name = f"{name} (windows {t}x{n} at {h}x{w})"
        tables.append(markdown_table(results, name))
        if recon is not None:
            tables.append(frame.table(name))
            tracks = _track_report(recon, Path(spec))
            if tracks is not None:
                tables.append(tracks.table(name))
                report[f"{name} (tracks)"] = tracks.to_dict()
        report[name] = {r.name: {"means": r.means(), "windows": r.windows, "notes": r.notes} for r in results}
    if error_maps is not None and target is not None:
        _write_error_maps(target, Path(gts[0]), error_maps, quiet)
    text = json.dumps(report, indent=1, default=_nan_safe) + "\n"
    if json_out is not None and str(json_out) == "-":
        click.echo(text, nl=False)
        return
    click.echo("\n\n".join(tables))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text)


def _recon_results(target: Path, gt: Path, baselines: bool, quiet: bool) -> list:
    from app.capture.ground_truth import GroundTruthError
    from app.reconstruct.evaluate import evaluate_reconstruction
    from app.reconstruct.store import Reconstruction, ReconstructionError

    try:
        with step_progress(f"{target.name} vs {gt.name}: windows", enabled=not quiet) as progress:
            return evaluate_reconstruction(Reconstruction.open(target), gt, baselines, progress=progress)
    except (GroundTruthError, ReconstructionError) as error:
        raise click.ClickException(str(error)) from error


def _write_error_maps(target: Path, gt: Path, folder: Path, quiet: bool) -> None:
    from app.capture.ground_truth import GroundTruthError
    from app.reconstruct.evaluate import write_error_maps
    from app.reconstruct.store import Reconstruction, ReconstructionError

    try:
        with step_progress("error maps: timesteps", enabled=not quiet) as progress:
            maps = write_error_maps(Reconstruction.open(target), gt, folder, progress=progress)
    except (GroundTruthError, ReconstructionError, OSError) as error:
        raise click.ClickException(str(error)) from error
    if not quiet:
        medians = [m for m in maps.medians if math.isfinite(m)]
        median = f"{sorted(medians)[len(medians) // 2]:.3g}" if medians else "n/a"
        click.echo(
            f"error maps: {len(maps.paths)} images in {folder} (distance to the ground-truth surface in "
            f"reconstruction units, 1 unit = {maps.scale:.4g} ground-truth units; colour scale per timestep "
            f"0..{min(maps.limits):.3g}-{max(maps.limits):.3g}; median error {median})",
            err=True,
        )


def _track_report(target: Path, gt: Path):
    """The 4D track metrics, when the reconstruction has tracks and the ground truth has tracks to compare."""
    from app.capture.ground_truth import GroundTruthError
    from app.reconstruct.store import Reconstruction, ReconstructionError
    from app.reconstruct.track_eval import evaluate_tracks

    try:
        return evaluate_tracks(Reconstruction.open(target), gt)
    except (GroundTruthError, ReconstructionError, ValueError) as error:
        raise click.ClickException(str(error)) from error


def _frame_report(target: Path, gt: Path, min_views: int = 0):
    """Unaligned, unscaled numbers (depth; points in the calibration frame) and static-camera drift, over the pixels
    the export's pixel filter keeps with ``--min-views`` (pose stream: the evaluated points are the depth's)."""
    from app.capture.ground_truth import GroundTruthError
    from app.capture.truth import open_ground_truth
    from app.export.selection import Selection, keep_function
    from app.reconstruct.frame_metrics import frame_report, reconstruction_frame
    from app.reconstruct.store import Reconstruction, ReconstructionError

    try:
        recon = Reconstruction.open(target)
        calibrated, units = reconstruction_frame(recon)
        keep = None
        if min_views > 0:  # the evaluated points are the depth's (pose stream); no confidence cut, as before
            keep = keep_function(recon, Selection(stream="pose", conf_percentile=0.0, min_views=min_views))
        return frame_report(recon, open_ground_truth(gt), calibrated, units, keep)
    except (GroundTruthError, ReconstructionError) as error:
        raise click.ClickException(str(error)) from error


def _nan_safe(value):
    return None if isinstance(value, float) and math.isnan(value) else value
