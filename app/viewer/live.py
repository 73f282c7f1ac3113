"""The pipeline in a background thread, feeding a running viewer window by window.

:class:`LiveRun` prepares the run (:func:`app.reconstruct.run.prepare_reconstruction`: capture, model, output), tells
the viewer where it is (``on_ready``) and runs it. After each committed window it
wakes the viewer (``on_window``) and reports progress. :meth:`LiveRun.stop` asks it to stop after the window it
is computing; every complete window stays on disk (continue later with ``vggt-mv run ... --resume``: the command
line is the CLI's to write, :func:`app.cli.resume.resume_command`).
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from app.capture.rig import CaptureOptions
from app.common.worker import Worker
from app.reconstruct.pipeline import PipelineConfig, PipelineError, Progress
from app.reconstruct.run import prepare_reconstruction
from vggt_t_mv.loading import WeightsSpec

DEMO_RIG = Path(__file__).resolve().parents[2] / "assets" / "demo_rig"
DEMO_WEIGHTS = Path(__file__).resolve().parents[2] / "assets" / "demo_weights"


class StopRequested(Exception):
    """Raised from the pipeline's window callback to stop a run between windows."""


@dataclass
class LiveRunSpec:
    """Everything a background run needs (``vggt-mv view`` fills it from the same options as ``vggt-mv run``)."""

    capture: Path
    out: Path
    model: WeightsSpec
    pipeline: PipelineConfig
    capture_options: CaptureOptions = field(default_factory=CaptureOptions)
    resume: bool = False
    overwrite: bool = False


def demo_weights_available(folder: Path = DEMO_WEIGHTS) -> bool:
    """The bundled demo weights exist (a ``save_pretrained`` folder: ``config.json`` + ``model.safetensors``)."""
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


@dataclass
class LiveState:
    """Where a live run is (read by the viewer's status line; :meth:`LiveRun.snapshot` copies it).

    ``state``: ``loading model``, ``running``, ``complete``, ``stopped (...)`` or ``failed``; ``windows``: (done,
    total) once the run is prepared; ``frames_per_s`` and ``eta_s``: the pipeline's last progress report;
    ``error``: what failed (None while nothing has)."""

    state: str = "loading model"
    windows: tuple[int, int] | None = None
    frames_per_s: float = 0.0
    eta_s: float = 0.0
    error: str | None = None

    # Read-only mapping access, kept for callers written when the state was a dict (``run.state["state"]``,
    # ``run.state.get("windows")``); product code reads the attributes.
    def __getitem__(self, key: str) -> Any:
        if key not in LIVE_STATE_KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in LIVE_STATE_KEYS else default


LIVE_STATE_KEYS = frozenset(f.name for f in fields(LiveState))


class LiveRun:
    """One pipeline run in a daemon thread; ``state`` (:class:`LiveState`) says where it is."""

    def __init__(
        self,
        spec: LiveRunSpec,
        on_ready: Callable[[Path], None],
        on_window: Callable[[], None] | None = None,
    ) -> None:
        self.spec, self.on_ready, self.on_window = spec, on_ready, on_window
        self.state = LiveState()
        self.thread = Worker(self._main, name="vggt-mv-pipeline")  # its stop event: stop after this window

    def start(self) -> LiveRun:
        self.thread.start()
        return self

    def request_stop(self) -> None:
        """Ask the run to stop after the window it is computing (returns at once)."""
        self.thread.request_stop()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current window and wait (up to ``timeout`` seconds) for the thread to end."""
        self.thread.request_stop()
        self.thread.join(timeout)

    @property
    def done(self) -> bool:
        return not self.thread.alive

    def snapshot(self) -> LiveState:
        """A copy of ``state`` (the run's thread goes on changing it)."""
        return replace(self.state)

    def _main(self, stop: threading.Event) -> None:
        try:
            self._run(stop)
        except (StopRequested, InterruptedError):
            self.state.state = f"stopped (complete windows kept in {self.spec.out})"
        except (ValueError, PipelineError) as error:  # a bad input: its message names the file and the fix
            self.state.state, self.state.error = "failed", str(error)
            print(f"error: the run failed: {error}", file=sys.stderr)
        except Exception as error:  # reported in the GUI and on the console, the viewer stays up
            self.state.state, self.state.error = "failed", f"{type(error).__name__}: {error}"
            traceback.print_exc()
        if self.on_window is not None:
            self.on_window()

    def _run(self, stop: threading.Event) -> None:
        spec = self.spec
        prepared = prepare_reconstruction(
            spec.capture,
            spec.out,
            spec.model,
            spec.pipeline,
            spec.capture_options,
            resume=spec.resume,
            overwrite=spec.overwrite,
            stop_requested=stop.is_set,
        )
        total = prepared.num_windows
        self.state.state, self.state.windows = "running", (prepared.first_window, total)
        self.on_ready(Path(spec.out))

        def window_done(index: int) -> None:
            self.state.windows = (index + 1, total)
            if self.on_window is not None:
                self.on_window()
            if stop.is_set() and index + 1 < total:
                raise StopRequested

        def progress(event: Progress) -> None:
            self.state.frames_per_s, self.state.eta_s = event.frames_per_s, event.eta_s

        prepared.run(progress=progress, on_window=window_done)
        self.state.state = "complete"
