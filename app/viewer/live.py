"""The pipeline in a background thread, feeding a running viewer window by window.

:class:`LiveRun` opens the capture, builds the model, creates (or resumes) the output reconstruction, tells the
viewer where it is (``on_ready``) and runs :func:`app.pipeline.run_pipeline`. After each committed window it
wakes the viewer (``on_window``) and reports progress. :meth:`LiveRun.stop` asks it to stop after the window it
is computing; every complete window stays on disk (continue later with ``vggt-mv run --resume``).
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.capture import CaptureOptions

DEMO_RIG = Path(__file__).resolve().parents[1] / "assets" / "demo_rig"
DEMO_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "demo_weights"


class StopRequested(Exception):
    """Raised from the pipeline's window callback to stop a run between windows."""


@dataclass
class ModelSpec:
    """Which weights: a ``save_pretrained`` folder (``pretrained``), or ``vggt-mv run``'s options."""

    config: str | None = None
    checkpoint: Path | None = None
    pi3: Path | None = None
    random_weights: bool = False
    pretrained: Path | None = None


@dataclass
class LiveRunSpec:
    """Everything a background run needs (the viewer's CLI fills it from ``vggt-mv run``-like options)."""

    capture: Path
    out: Path
    model: ModelSpec
    pipeline: object  # app.pipeline.PipelineConfig (imported lazily: torch is heavy)
    capture_options: CaptureOptions = field(default_factory=CaptureOptions)
    resume: bool = False
    overwrite: bool = False


def load_model(spec: ModelSpec):
    """The model and its meta.json description (``vggt-mv run``'s :func:`app.cli.build_model`, or a
    ``save_pretrained`` folder such as the demo weights)."""
    if spec.pretrained is not None:
        from vggt_t_mv import VGGTTMV

        model = VGGTTMV.from_pretrained(spec.pretrained).eval()
        return model, {"config": model.cfg.to_dict(), "pretrained": str(Path(spec.pretrained).resolve())}
    from app.cli import build_model

    return build_model(spec.config, spec.checkpoint, spec.pi3, spec.random_weights)


def demo_weights_available(folder: Path = DEMO_WEIGHTS) -> bool:
    """The bundled demo weights exist (a ``save_pretrained`` folder: ``config.json`` + ``model.safetensors``)."""
    return (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()


class LiveRun:
    """One pipeline run in a daemon thread. ``state`` (a dict, read by the GUI's status line): ``state``
    (loading / running / complete / stopped / failed), ``windows`` (done, total), ``frames_per_s``, ``eta_s``,
    ``error``."""

    def __init__(
        self,
        spec: LiveRunSpec,
        on_ready: Callable[[Path], None],
        on_window: Callable[[], None] | None = None,
    ) -> None:
        self.spec, self.on_ready, self.on_window = spec, on_ready, on_window
        self.state: dict = {"state": "loading model", "windows": None, "frames_per_s": 0.0, "eta_s": 0.0}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._main, name="vggt-mv-pipeline", daemon=True)

    def start(self) -> LiveRun:
        self.thread.start()
        return self

    def request_stop(self) -> None:
        """Ask the run to stop after the window it is computing (returns at once)."""
        self._stop.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the current window and wait (up to ``timeout`` seconds) for the thread to end."""
        self._stop.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def _main(self) -> None:
        try:
            self._run()
        except StopRequested:
            self.state["state"] = f"stopped (complete windows kept in {self.spec.out})"
        except Exception as error:  # reported in the GUI and on the console, the viewer stays up
            self.state["state"], self.state["error"] = "failed", f"{type(error).__name__}: {error}"
            traceback.print_exc()
        if self.on_window is not None:
            self.on_window()

    def _run(self) -> None:
        from app.capture import RigCapture
        from app.pipeline import plan_run, prepare_output, run_metadata, run_pipeline

        spec = self.spec
        rig = RigCapture.open(spec.capture, spec.capture_options)
        plan = plan_run(rig, spec.pipeline)
        model, model_info = load_model(spec.model)
        if self._stop.is_set():
            raise StopRequested
        meta = run_metadata(rig, plan, spec.pipeline, model_info)
        recon, first = prepare_output(spec.out, meta, resume=spec.resume, overwrite=spec.overwrite)
        self.state.update(state="running", windows=(first, len(plan.spans)))
        self.on_ready(Path(spec.out))

        def window_done(index: int) -> None:
            self.state["windows"] = (index + 1, len(plan.spans))
            if self.on_window is not None:
                self.on_window()
            if self._stop.is_set() and index + 1 < len(plan.spans):
                raise StopRequested

        def progress(event) -> None:
            self.state.update(frames_per_s=event.frames_per_s, eta_s=event.eta_s)

        run_pipeline(
            model, rig, recon, plan, spec.pipeline, first_window=first, progress=progress, on_window=window_done
        )
        self.state["state"] = "complete"
