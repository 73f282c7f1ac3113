"""The ``vggt-mv`` click group and its subcommands (each in its own module), and the ``vggt-mv-view`` script."""

from __future__ import annotations

import click

from app.cli.export import export_command
from app.cli.interrupt import terminate_as_interrupt
from app.cli.options import CONTEXT_SETTINGS
from app.cli.run import run_command
from app.cli.train import eval_command, train_command
from app.cli.view import view_command
from app.cli.weights import weights


@click.group(context_settings=CONTEXT_SETTINGS)
@click.pass_context
def main(ctx: click.Context) -> None:
    """vggt-mv: 4D reconstruction for synchronized multi-camera rigs."""
    ctx.with_resource(terminate_as_interrupt())  # SIGTERM stops every command as Ctrl-C does


for command in (run_command, weights, view_command, export_command, train_command, eval_command):
    main.add_command(command)


def view_main() -> None:
    """Console script ``vggt-mv-view`` (the same command as ``vggt-mv view``)."""
    with terminate_as_interrupt():
        view_command()


if __name__ == "__main__":
    main()
