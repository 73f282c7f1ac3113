"""``vggt-mv``: the command line. A click group; each subcommand lives in its own function
(``run`` here; ``view``, ``export``, ``weights``, ``train`` are added by later issues)."""

from __future__ import annotations

import hashlib
import sys
import time
import warnings
from pathlib import Path

import click
import numpy as np

from app.capture import CaptureError, CaptureOptions, RigCapture
from app.preprocess import MODES, PreprocessConfig
from app.reconstruction import ReconstructionError

RANDOM_WEIGHTS_SEED = 0


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
def main() -> None:
    """vggt-mv: 4D reconstruction for synchronized multi-camera rigs."""


def sha256_of(path: Path, chunk: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


PRESETS = ("vggt_1b", "vggt_t_mv", "tiny", "tiny_two_stream")


def resolve_config(config: str | None, checkpoint: Path | None):
    """The model config: a preset name, a JSON file (``ModelConfig.to_dict()``), the config of a
    ``save_pretrained`` folder, or (no ``--config``) inferred from the checkpoint's tensor shapes."""
    import json

    from vggt_t_mv import ModelConfig, detect_layout, infer_config
    from vggt_t_mv.weights import read_saved_config, read_state_dict

    if config in PRESETS:
        return getattr(ModelConfig, config)()
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise click.BadParameter(
                f"{config} is neither a preset ({', '.join(PRESETS)}) nor a JSON file", param_hint="--config"
            )
        try:
            return ModelConfig.from_dict(json.loads(path.read_text()))
        except (ValueError, TypeError) as error:
            raise click.BadParameter(f"{path}: {error}", param_hint="--config") from error
    if checkpoint is not None and Path(checkpoint).is_dir():
        return ModelConfig.from_dict(read_saved_config(checkpoint))
    if checkpoint is not None:
        shapes = read_state_dict(checkpoint, shapes_only=True)
        if detect_layout(shapes) != "pi3":
            return infer_config(shapes)
    return ModelConfig.vggt_1b()


def build_model(config: str | None, checkpoint: Path | None, pi3: Path | None, random_weights: bool):
    """The model and its description for meta.json (see :func:`resolve_config` for ``config``)."""
    import torch

    from vggt_t_mv import VGGTTMV, CheckpointError, load_pretrained

    if checkpoint is None and pi3 is None and not random_weights:
        raise click.UsageError(
            "no weights given: pass --checkpoint FILE (VGGT-family checkpoint) and/or --pi3 FILE (Pi3 weights); "
            "--random-weights runs an untrained model (for testing only)"
        )
    try:
        cfg = resolve_config(config, checkpoint)
        torch.manual_seed(RANDOM_WEIGHTS_SEED)  # random weights are reproducible (a --resume gets the same model)
        model = VGGTTMV(cfg).eval()
        info: dict = {"config": cfg.to_dict(), "random_weights": bool(random_weights and not (checkpoint or pi3))}
        if info["random_weights"]:
            info["seed"] = RANDOM_WEIGHTS_SEED
            warnings.warn(
                "--random-weights: the model is untrained, the reconstruction is meaningless (use it for testing)",
                stacklevel=2,
            )
        if checkpoint is not None or pi3 is not None:
            report = load_pretrained(model, checkpoint=checkpoint, pi3=pi3)
            info["load_report"] = report.summary()
            click.echo(f"weights: {report.summary()}", err=True)
    except CheckpointError as error:
        raise click.ClickException(str(error)) from error
    for key, path in (("checkpoint", checkpoint), ("pi3", pi3)):
        if path is not None and Path(path).is_file():
            info[key] = str(Path(path).resolve())
            info[f"{key}_sha256"] = sha256_of(Path(path))
    return model, info


def _progress_printer(num_windows: int):
    bar = click.progressbar(length=num_windows, label="windows", show_eta=False, show_pos=True, file=sys.stderr)
    state = {"text": ""}
    bar.item_show_func = lambda _: state["text"]
    bar.__enter__()

    def update(event) -> None:
        eta = time.strftime("%H:%M:%S", time.gmtime(event.eta_s))
        state["text"] = (
            f"timesteps {event.timesteps_done}/{event.num_timesteps}  {event.frames_per_s:.1f} frames/s  ETA {eta}"
        )
        bar.update(1)

    return bar, update


@main.command("run")
@click.argument("capture", type=click.Path(exists=True, path_type=Path))
@click.option("--out", "-o", required=True, type=click.Path(path_type=Path), help="Output reconstruction folder.")
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, path_type=Path),
    help="VGGT-family weights (.pt/.pth/.safetensors, or a save_pretrained folder).",
)
@click.option("--pi3", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Pi3 weights.")
@click.option(
    "--config",
    "model_config",
    help="Model config: a preset (vggt_1b, vggt_t_mv, tiny, tiny_two_stream) or a JSON file. Default: inferred "
    "from --checkpoint's shapes (vggt_1b without a VGGT-layout checkpoint).",
)
@click.option("--random-weights", is_flag=True, help="Run an untrained model (testing only; output is meaningless).")
@click.option("--window", type=int, help="Timesteps per window (default: cuda 16, mps 8, cpu 6).")
@click.option("--stride", type=int, help="Timesteps between window starts (default: cuda 12, mps 6, cpu 4).")
@click.option("--size", type=int, default=518, show_default=True, help="Model input width (crop) / side (pad).")
@click.option("--mode", type=click.Choice(MODES), default="crop", show_default=True, help="Crop or pad to the size.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
    default="auto",
    show_default=True,
    help="Autocast dtype of the trunk (auto: bf16 on CUDA where supported, fp32 on CPU).",
)
@click.option("--start", type=int, default=0, show_default=True, help="First synchronized timestep.")
@click.option("--end", type=int, help="Stop before this timestep (default: the last).")
@click.option("--every", type=int, default=1, show_default=True, help="Keep every k-th timestep.")
@click.option("--max-frames", type=int, help="At most this many timesteps (after --every).")
@click.option(
    "--timestamps",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Timestamps CSV: camera + time columns (README).",
)
@click.option(
    "--sync",
    type=click.Choice(["auto", "index", "fps", "timestamps"]),
    default="auto",
    show_default=True,
    help="auto: timestamps if a CSV exists, else by fps if they differ, else by frame index.",
)
@click.option(
    "--masks", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Dynamic masks: a folder per camera."
)
@click.option(
    "--calibration",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rig calibration (TOML/JSON): metric scale.",
)
@click.option("--rigid-rig", is_flag=True, help="Average intrinsics and camera-to-camera-0 poses over time.")
@click.option("--skip-bad-cameras", is_flag=True, help="Drop cameras that cannot be decoded instead of stopping.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out from its last complete window.")
@click.option("--overwrite", is_flag=True, help="Replace a reconstruction already in --out.")
def run_command(capture: Path, out: Path, **options) -> None:
    """Reconstruct CAPTURE (a folder of camera videos or image folders, a video, or a folder of images)
    into the reconstruction folder --out, window by window."""
    from app.pipeline import PipelineConfig, PipelineError, plan_run, prepare_output, run_metadata, run_pipeline

    warnings.simplefilter("default")
    warnings.showwarning = lambda message, category, *args, **kw: click.secho(
        f"warning: {message}", fg="yellow", err=True
    )
    from vggt_t_mv.distributed import DistContext

    ctx = DistContext.from_env()
    try:
        rig = RigCapture.open(
            capture,
            CaptureOptions(
                start=options["start"],
                end=options["end"],
                every=options["every"],
                max_frames=options["max_frames"],
                timestamps=options["timestamps"],
                sync=options["sync"],
                skip_unreadable=options["skip_bad_cameras"],
            ),
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
        )
        plan = plan_run(rig, config)
        ctx.join(plan.device)
        model, model_info = build_model(
            options["model_config"], options["checkpoint"], options["pi3"], options["random_weights"]
        )
        meta = run_metadata(rig, plan, config, model_info)
        recon, first, failure = None, 0, None
        if ctx.is_main:
            try:
                recon, first = prepare_output(out, meta, resume=options["resume"], overwrite=options["overwrite"])
            except (ReconstructionError, ValueError) as error:
                failure = str(error)
        first, failure = ctx.broadcast((first, failure))  # every rank starts at the same window, or stops
        if failure is not None:
            raise ReconstructionError(failure)
        if first and ctx.is_main:
            click.echo(f"resuming {out} at window {first + 1}/{len(plan.spans)}", err=True)
        if ctx.enabled and ctx.is_main:
            click.echo(f"{ctx.world_size} processes share the windows (torchrun)", err=True)
        bar, update = _progress_printer(len(plan.spans) - first) if ctx.is_main else (None, None)
        try:
            result = run_pipeline(model, rig, recon, plan, config, first_window=first, progress=update, dist=ctx)
        finally:
            if bar is not None:
                bar.__exit__(None, None, None)
    except (CaptureError, ReconstructionError, PipelineError, ValueError) as error:
        message = str(error)
        if "recon" in locals() and recon is not None and recon.windows(refresh=True):
            message += f"\n{len(recon.windows())} complete window(s) are kept in {out}; continue with --resume"
        raise click.ClickException(message) from error
    except KeyboardInterrupt:
        click.secho(f"\ninterrupted: complete windows are kept in {out}; continue with --resume", err=True, fg="red")
        sys.exit(130)
    finally:
        ctx.shutdown()
    if result is None:  # a torchrun rank other than 0: rank 0 wrote the reconstruction
        return
    click.echo(summary_text(result.reconstruction, result))


def summary_text(recon, result=None) -> str:
    """One screen about a reconstruction: capture, shapes, timing, per-window alignment, rig report."""
    meta = recon.meta
    capture, settings = meta["capture"], meta["settings"]
    height, width = recon.image_hw
    lines = [
        f"reconstruction {recon.root}  ({meta.get('status')})",
        f"  capture   {capture['path']}  [{capture['form']}, sync {capture['sync']}]",
        f"  cameras   {recon.num_cameras}: {', '.join(recon.camera_names)}",
        f"  timesteps {recon.num_timesteps} of {capture['total_timesteps']}  at {width}x{height} px "
        f"({settings['mode']})",
        f"  windows   {len(recon.spans)} x {settings['window']} (stride {settings['stride']}) on {settings['device']}, "
        f"{settings['dtype']}",
    ]
    if capture.get("spread_s"):
        spread = capture["spread_s"]
        lines.append(
            f"  sync      camera time spread mean {spread['mean'] * 1e3:.1f} ms, max {spread['max'] * 1e3:.1f} ms"
        )
    if result is not None:
        lines.append(
            f"  time      {result.seconds:.1f} s for {result.windows_run} windows, {result.frames_per_s:.1f} frames/s"
            + (f" (resumed at window {result.first_window + 1})" if result.first_window else "")
        )
    align = [a for a in meta.get("alignment", []) if a.get("alignment", {}).get("kind") == "sim3"]
    if align:
        scales = np.array([a["alignment"]["sim3"]["scale"] for a in align])
        residuals = np.array([a["alignment"]["residual_median"] for a in align])
        inliers = np.array([a["alignment"]["inlier_fraction"] for a in align])
        lines.append(
            f"  stitching scale {scales.min():.3g}..{scales.max():.3g}, median residual {np.median(residuals):.3g} "
            f"(max {residuals.max():.3g}), inliers {100 * inliers.min():.0f}..{100 * inliers.max():.0f} %"
        )
    failed = [a["index"] for a in meta.get("alignment", []) if a.get("alignment", {}).get("kind") == "failed"]
    if failed:
        lines.append(f"  stitching FAILED for windows {failed} (left unaligned)")
    rig = meta.get("rig", {})
    for camera in rig.get("diagnostics", {}).get("cameras", [])[1:]:
        lines.append(
            f"  rig {camera['name']:>8}: focal spread {camera['focal_spread_pct']:.1f} %, baseline "
            f"{camera['baseline_mean']:.3g} (spread {camera['translation_spread_pct']:.1f} %), rotation spread "
            f"{camera['rotation_spread_mean_deg']:.2f} deg"
        )
    calibration = rig.get("calibration")
    if calibration:
        scale = (meta.get("alignment") or [{}])[0].get("alignment", {}).get("metric_scale")
        if scale:
            lines.append(f"  metric    scale {scale:.4g} from the calibrated baselines")
        for camera in calibration.get("rig", []):
            lines.append(
                f"  vs calib {camera['name']:>8}: rotation {camera['rotation_error_deg']:.2f} deg, translation "
                f"{camera['translation_error']:.3f} m (baseline {camera['baseline_calibrated']:.3f} m)"
            )
    if capture.get("warnings") or (result and result.warnings):
        lines.append(f"  warnings  {len(capture.get('warnings', [])) + len(result.warnings if result else [])}")
    return "\n".join(lines)


def _register_subcommands() -> None:
    from app.export import export_command
    from app.train_cli import eval_command, train_command
    from app.viewer import view_command
    from app.weights_cli import weights

    main.add_command(weights)
    main.add_command(view_command)
    main.add_command(export_command)
    main.add_command(train_command)
    main.add_command(eval_command)


_register_subcommands()

if __name__ == "__main__":
    main()
