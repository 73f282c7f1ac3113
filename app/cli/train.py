"""``vggt-mv train CONFIG`` and ``vggt-mv eval TARGET --gt GT`` (click commands registered by :mod:`app.cli.main`).

Under ``torchrun --nproc_per_node K -m app.cli train CONFIG`` the training runs in K processes with
DistributedDataParallel (gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import click

from app.cli.options import model_options, weights_spec
from app.reconstruct.evaluate import EvalInputError, eval_weights
from vggt_t_mv.loading import LoadedModel, ModelLoadError, WeightsSpec, load_model, load_spec
from vggt_t_mv.train.config import TrainConfig, apply_overrides, read_config_dict
from vggt_t_mv.train.trainer import train

SYNTHETIC_PREFIX = "synthetic:"


# ------------------------------------------------------------------------------------------------------------ train
@click.command("train")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in the run's output folder.")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder (replaces run.out).")
@click.option("--stop-after", type=int, help="Stop (with a checkpoint) after this many steps; the schedule is kept.")
@click.option("--set", "assignments", multiple=True, help="Override a config value: --set optim.lr=1e-4 (repeatable).")
def train_command(config: Path, resume: bool, out: Path | None, stop_after: int | None, assignments: tuple) -> None:
    """Train or fine-tune as CONFIG (YAML or JSON, see configs/demo_tiny.yaml) says.

    Single process, or under torchrun (DistributedDataParallel). Writes checkpoints, metrics.jsonl, loss_curve.png
    and final/ (save_pretrained) into run.out.
    """
    try:
        data = apply_overrides(read_config_dict(config), assignments)
        if out is not None:
            data.setdefault("run", {})["out"] = str(out)
        cfg = TrainConfig.from_dict(data)
    except (ValueError, TypeError) as error:
        raise click.ClickException(f"{config}: {error}") from error
    try:
        result = train(cfg, resume=resume, stop_after=stop_after, log=lambda text: click.echo(text, err=True))
    except (FileNotFoundError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    if os.environ.get("RANK", "0") != "0":
        return
    loss = "n/a" if result.final_loss is None else f"{result.final_loss:.4f}"
    click.echo(f"trained {result.steps} steps in {result.seconds:.0f} s, last loss {loss}; output in {result.out}")


# ------------------------------------------------------------------------------------------------------------- eval
def _gt_sequences(spec: str, synthetic_hw: tuple[int, int]) -> tuple[str, list]:
    """``synthetic:SEEDS`` (held-out procedural rigs, drawn as in training) or a folder: a realdata set, a recorded
    sample (``ground_truth.npz``), or a folder of recorded samples."""
    from vggt_t_mv.eval.realdata import load_realdata
    from vggt_t_mv.train.dataset import GROUND_TRUTH_FILE, SyntheticDataConfig, recorded_sequences, synthetic_sequences

    if spec.startswith(SYNTHETIC_PREFIX):
        height, width = synthetic_hw
        cfg = SyntheticDataConfig(seeds=spec[len(SYNTHETIC_PREFIX) :], height=height, width=width)
        return spec, synthetic_sequences(cfg)
    path = Path(spec)
    if not path.exists():
        raise click.BadParameter(f"{spec} is neither 'synthetic:SEEDS' nor an existing folder", param_hint="--gt")
    if path.is_file() and path.name == GROUND_TRUTH_FILE:
        path = path.parent
    try:
        try:
            return path.name, [load_realdata(path)]
        except FileNotFoundError:
            return path.name, recorded_sequences(path)
    except (OSError, ValueError, KeyError) as error:
        raise click.BadParameter(f"{spec}: {error}", param_hint="--gt") from error


def _window_shape(sequences: list, timesteps: int, cameras: int | None, width: int) -> tuple[int, int, int, int]:
    """Window ``(T, N, H, W)`` for a set: ``T`` and ``N`` clipped to the sequences, ``H`` from the frames' aspect."""
    first = sequences[0]
    t = min(timesteps, min(s.num_timesteps for s in sequences))
    n = min(cameras or first.num_cameras, min(s.num_cameras for s in sequences))
    h, w = first.images.shape[2:4]
    height = max(14, round(h * width / w / 14) * 14)
    return t, n, height, width


def _load_evaluated(weights: WeightsSpec) -> LoadedModel:
    try:
        return load_spec(weights)
    except ModelLoadError as error:
        what = weights.checkpoint or weights.pi3 or "the model"
        raise click.ClickException(f"{what}: the model cannot be read: {error}") from error


def _model_results(loaded: LoadedModel, label: str, dataset, baselines: bool, device: str) -> list:
    from vggt_t_mv.eval.runner import evaluate

    results = [evaluate(loaded.model.to(device), dataset, f"model {label}")]
    if baselines:
        untrained = load_model(loaded.config, random_weights=True, seed=0).model.to(device)
        results.append(evaluate(untrained, dataset, "untrained (same config, seed 0)"))
        results.append(evaluate("trivial", dataset, "trivial: identity cams / const depth / static mask"))
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
@click.option("--device", default="cpu", show_default=True)
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
    **model: object,
) -> None:
    """Evaluate TARGET (a model folder written by save_pretrained, or a reconstruction folder), or the model the
    model options give (--checkpoint / --pi3 / --config / --random-weights, as `vggt-mv run`), against ground truth.

    Metrics per window, averaged: ATE (Sim(3)-aligned camera centres), RPE translation / rotation, AUC@30 of
    relative-pose errors, depth Abs Rel and δ<1.25 (per-window median scaling; also over static and moving pixels
    when the ground truth has motion masks), point accuracy / completeness (Sim(3)-aligned), dynamic-mask IoU.
    Prints a markdown table. A reconstruction's ground truth is brought to the model pixels by the run's own
    crop / pad transform.
    """
    from app.reconstruct.pipeline import PipelineError, resolve_device
    from vggt_t_mv.eval.runner import eval_windows, markdown_table

    try:
        device = str(resolve_device(device))
    except PipelineError as error:
        raise click.ClickException(str(error)) from error
    report: dict = {}
    tables = []
    try:
        weights = eval_weights(target, weights_spec(model))
    except EvalInputError as error:
        raise click.BadParameter(str(error)) from error
    is_recon = weights is None
    loaded = None if is_recon else _load_evaluated(weights)
    label = target.name if target is not None else " + ".join(
        Path(source["path"]).name for source in loaded.provenance["sources"].values()
    ) or "random weights"
    for spec in gts:
        if is_recon:
            results, name = _recon_results(target, Path(spec), baselines), Path(spec).name
        else:
            name, sequences = _gt_sequences(spec, (height, width))
            synthetic = spec.startswith(SYNTHETIC_PREFIX)
            t, n, h, w = _window_shape(sequences, timesteps, cameras or (3 if synthetic else None), width)
            if synthetic:
                h = height
            dataset = eval_windows(sequences, t, n, h, w)
            results = _model_results(loaded, label, dataset, baselines, device)
            name = f"{name} (windows {t}x{n} at {h}x{w})"
        tables.append(markdown_table(results, name))
        report[name] = {r.name: {"means": r.means(), "windows": r.windows} for r in results}
    text = json.dumps(report, indent=1, default=_nan_safe) + "\n"
    if json_out is not None and str(json_out) == "-":
        click.echo(text, nl=False)
        return
    click.echo("\n\n".join(tables))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(text)


def _recon_results(target: Path, gt: Path, baselines: bool) -> list:
    from app.capture.ground_truth import GroundTruthError
    from app.reconstruct.evaluate import evaluate_reconstruction
    from app.reconstruct.store import Reconstruction, ReconstructionError

    try:
        return evaluate_reconstruction(Reconstruction.open(target), gt, baselines)
    except (GroundTruthError, ReconstructionError) as error:
        raise click.ClickException(str(error)) from error


def _nan_safe(value):
    return None if isinstance(value, float) and math.isnan(value) else value
