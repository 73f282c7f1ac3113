"""SIGTERM handled as Ctrl-C (SIGINT) by every command: a clean stop, what is kept, and the exact command that
continues the work.

A terminated process gets :class:`Terminated` (a ``KeyboardInterrupt``) in its main thread, so every ``except
KeyboardInterrupt`` path (stop after the current window, remove temporary files, say how to resume) runs for both;
the exit status is ``128 + signal`` (130 for Ctrl-C, 143 for SIGTERM), as a shell reports an interrupted command.
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM (or another catchable stop signal), delivered as an interrupt."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"signal {signum}")
        self.signum = signum


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (elsewhere: nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """``128 + signal``: 143 for SIGTERM, 130 for Ctrl-C."""
    return 128 + (interrupt.signum if isinstance(interrupt, Terminated) else signal.SIGINT)


def resume_words(command: str, argv: list[str] | None = None) -> list[str] | None:
    """``vggt-mv <this command line> --resume`` (``--overwrite`` dropped, so the resumed run keeps what is written),
    from the process's arguments; None when they are not a ``vggt-mv command`` line (called from Python)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if command not in args:
        return None
    args = args[args.index(command) :]
    args = [word for word in args if word != "--overwrite"]
    if "--resume" not in args:
        args.append("--resume")
    return ["vggt-mv", *args]


def resume_hint(command: str) -> str:
    """``continue with: vggt-mv run ... --resume`` (the exact command), or the generic advice."""
    words = resume_words(command)
    return f"continue with: {shlex.join(words)}" if words else "continue with the same command and --resume"
