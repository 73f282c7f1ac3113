"""The command printed to continue a viewer's live run (app/cli/resume.py) is a ``vggt-mv run`` command line: every
option it writes is one of ``vggt-mv run``'s, with the run's settings and the spec's options, ending in --resume."""

from __future__ import annotations

import shlex
from pathlib import Path

from app.capture.rig import CaptureOptions
from app.cli.resume import resume_command
from app.cli.run import run_command
from app.reconstruct.pipeline import PipelineConfig
from app.reconstruct.record import RunSettings
from app.viewer.live import LiveRunSpec
from vggt_t_mv.loading import WeightsSpec


def every_option_spec(tmp_path: Path) -> LiveRunSpec:
    """A spec with every option the command can carry set to something other than its default."""
    return LiveRunSpec(
        capture=tmp_path / "capture",
        out=tmp_path / "out",
        model=WeightsSpec(config="tiny", checkpoint=tmp_path / "ckpt.pt", pi3=tmp_path / "pi3.safetensors"),
        pipeline=PipelineConfig(
            masks=tmp_path / "masks",
            rigid_rig=True,
            calibration=tmp_path / "calib.json",
            calibration_units="mm",
            cameras="calibrated",
            track_queries=str(tmp_path / "queries.npy"),  # as the CLI gives it
        ),
        capture_options=CaptureOptions(
            start=2,
            end=20,
            every=2,
            max_frames=5,
            timestamps=tmp_path / "t.csv",
            sync="index",
            skip_unreadable=True,
            layout="time-major",
        ),
    )


def test_every_option_written_is_an_option_of_vggt_mv_run(tmp_path: Path) -> None:
    settings = RunSettings(window=4, stride=2, device="cpu", dtype="float32", size=56, mode="pad")
    words = shlex.split(resume_command(every_option_spec(tmp_path), settings))
    assert words[:3] == ["vggt-mv", "run", str((tmp_path / "capture").resolve())] and words[-1] == "--resume"
    written = {word for word in words if word.startswith("--")}
    known = {opt for param in run_command.params for opt in param.opts}
    assert written - known == set()
    assert {"--window", "--stride", "--size", "--mode", "--masks", "--calibration", "--rigid-rig"} <= written
    assert words[words.index("--size") + 1] == "56" and words[words.index("--mode") + 1] == "pad"
    assert words[words.index("--track-queries") + 1] == str((tmp_path / "queries.npy").resolve())


def test_a_spec_with_defaults_writes_only_what_identifies_the_run(tmp_path: Path) -> None:
    spec = LiveRunSpec(
        capture=tmp_path / "c", out=tmp_path / "o", model=WeightsSpec(random_weights=True), pipeline=PipelineConfig()
    )
    words = shlex.split(resume_command(spec, None))
    assert words == ["vggt-mv", "run", str((tmp_path / "c").resolve()), "--out", str((tmp_path / "o").resolve()),
                     "--random-weights", "--resume"]  # fmt: skip
