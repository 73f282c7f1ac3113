"""``vggt-mv weights``: look into checkpoints without running the model."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group("weights")
def weights() -> None:
    """Inspect checkpoints: layout, inferred config, and which model tensor each source fills."""


@weights.command("inspect")
@click.argument("checkpoint", type=click.Path(path_type=Path), required=False)
@click.option("--pi3", type=click.Path(path_type=Path), help="Pi3 weights (model.safetensors or .pt), second source.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Model config JSON (ModelConfig.to_json) or a preset name: vggt_1b, vggt_t_mv, tiny, tiny_two_stream. "
    "Default: inferred from CHECKPOINT's shapes (vggt_t_mv when only --pi3 is given).",
)
@click.option("--strict", is_flag=True, help="Exit with status 1 if any source tensor is unused or mismatched.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-tensor sources as JSON instead of a table.")
def inspect_command(
    checkpoint: Path | None, pi3: Path | None, config_path: Path | None, strict: bool, as_json: bool
) -> None:
    """Print the detected layout(s), the model config and the load report, without loading any data.

    Shapes are read from the file headers (safetensors) or memory-mapped (.pt), and the model is built on
    PyTorch's meta device, so a multi-GB checkpoint is inspected in seconds with no memory to speak of.
    """
    import torch

    from vggt_t_mv import VGGTTMV, CheckpointError, ModelConfig, detect_layout, infer_config, load_pretrained
    from vggt_t_mv.weights import read_state_dict

    if checkpoint is None and pi3 is None:
        raise click.UsageError("give a CHECKPOINT, --pi3 PI3, or both")
    try:
        checkpoint_state = read_state_dict(checkpoint, shapes_only=True) if checkpoint else None
        pi3_state = read_state_dict(pi3, shapes_only=True) if pi3 else None
    except CheckpointError as error:
        raise click.ClickException(str(error)) from error

    if checkpoint_state is not None:
        click.echo(
            f"checkpoint: {checkpoint} ({len(checkpoint_state)} tensors, layout {detect_layout(checkpoint_state)})"
        )
    if pi3_state is not None:
        click.echo(f"pi3:        {pi3} ({len(pi3_state)} tensors, layout {detect_layout(pi3_state)})")

    if config_path is not None:
        preset = getattr(ModelConfig, str(config_path), None)
        cfg = preset() if preset and not Path(config_path).exists() else ModelConfig.from_json(config_path)
        origin = str(config_path)
    elif checkpoint_state is not None and detect_layout(checkpoint_state) != "pi3":
        cfg, origin = infer_config(checkpoint_state), "inferred from the checkpoint's shapes"
    else:
        cfg, origin = ModelConfig.vggt_t_mv(), "preset vggt_t_mv (no VGGT-layout checkpoint to infer from)"
    defaults = ModelConfig().to_dict()
    changed = {k: v for k, v in cfg.to_dict().items() if v != defaults[k]}
    click.echo(f"config ({origin}); fields that differ from vggt_1b(): {json.dumps(changed) if changed else 'none'}")

    with torch.device("meta"):
        model = VGGTTMV(cfg)
    report = load_pretrained(model, checkpoint_state, pi3=pi3_state)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "sources": report.sources,
                    "unused": report.unused,
                    "mismatches": [m.__dict__ for m in report.mismatches],
                },
                indent=1,
            )
        )
    else:
        click.echo(report.table())
    click.echo(report.summary())
    if strict and not report.ok:
        raise SystemExit(1)
