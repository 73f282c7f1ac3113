"""``vggt-mv weights``: look into checkpoints without running the model (the same :func:`vggt_t_mv.load_model` rule
as every other command, on PyTorch's meta device)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from app.cli.options import CONFIG_HELP
from vggt_t_mv import CheckpointError, ModelConfig, ModelLoadError, detect_layout, load_model
from vggt_t_mv.weights import layout_name, read_state_dict


@click.group("weights")
def weights() -> None:
    """Inspect checkpoints: layout, inferred config, and which model tensor each source fills."""


@weights.command("inspect")
@click.argument("checkpoint", type=click.Path(path_type=Path), required=False)
@click.option("--pi3", type=click.Path(path_type=Path), help="Pi3 weights (model.safetensors or .pt), second source.")
@click.option("--config", "model_config", help=CONFIG_HELP)
@click.option("--strict", is_flag=True, help="Exit with status 1 if any source tensor is unused or mismatched.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-tensor sources as JSON instead of a table.")
def inspect_command(
    checkpoint: Path | None, pi3: Path | None, model_config: str | None, strict: bool, as_json: bool
) -> None:
    """Print the detected layout(s), the model config and the load report, without loading any data.

    Shapes are read from the file headers (safetensors) or memory-mapped (.pt), and the model is built on
    PyTorch's meta device, so a multi-GB checkpoint is inspected in seconds with no memory to speak of.
    """
    if checkpoint is None and pi3 is None:
        raise click.UsageError("give a CHECKPOINT, --pi3 PI3, or both")
    try:
        for label, path in (("checkpoint", checkpoint), ("pi3", pi3)):
            if path is not None:
                state = read_state_dict(path, shapes_only=True)
                layout = layout_name(detect_layout(state))
                click.echo(f"{label + ':':<11} {path} ({len(state)} tensors, layout {layout})")
        loaded = load_model(model_config, checkpoint, pi3, device="meta", checksums=False)
    except (CheckpointError, ModelLoadError) as error:
        raise click.ClickException(str(error)) from error
    defaults = ModelConfig().to_dict()
    changed = {k: v for k, v in loaded.config.to_dict().items() if v != defaults[k]}
    click.echo(f"model:      {loaded.config.describe()}")
    click.echo(
        f"config ({loaded.provenance.config_origin}); fields that differ from vggt_1b(): "
        f"{json.dumps(changed) if changed else 'none'}"
    )
    report = loaded.report
    if report is None:  # load_model reports on every source it read, and a source was given
        raise click.ClickException("no weights were loaded from the sources given")
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
