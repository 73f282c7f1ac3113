"""What a new user reads: the run summary, the viewer's status line, the help texts and the README's PLY table say
what is true, once, in the right number."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from app.cli.main import main
from app.cli.options import CONFIG_HELP, SIZE_HELP
from app.cli.view import view_command
from app.common.text import plural
from app.reconstruct.record import CameraSpread
from app.reconstruct.store import Reconstruction
from app.reconstruct.summary import rig_lines, summary_text
from app.viewer.gui import format_status
from app.viewer.live import LiveState
from tests.helpers.capture import write_solid_rig
from tests.helpers.shared import REPO_ROOT

TINY = ["--config", "tiny", "--random-weights", "--device", "cpu", "--size", "56"]


def camera_entry(name: str, baseline: float) -> CameraSpread:
    return CameraSpread(
        name, focal_spread_pct=0.0, baseline_mean=baseline, translation_spread_pct=0.0, rotation_spread_mean_deg=0.0
    )


def test_plural() -> None:
    assert [plural(n, "camera") for n in (0, 1, 2)] == ["0 cameras", "1 camera", "2 cameras"]


def test_status_line_says_1_camera() -> None:
    assert "1 camera ·" in format_status(3, 3, 3, 1, None, True) + " ·"
    assert "1 cameras" not in format_status(3, 3, 3, 1, None, True)
    assert "4 cameras" in format_status(3, 3, 3, 4, None, True)


def test_status_line_reads_as_words() -> None:
    """No "timesteps 1/6 of 24": what is reconstructed, what the viewer still loads, what the pipeline does."""
    running = LiveState(state="running", windows=(2, 8), frames_per_s=3.25, eta_s=70.0)
    line = format_status(1, 6, 24, 4, running, False)
    assert line == (
        "6 of 24 timesteps reconstructed · 4 cameras · loading 5 more into the viewer · window 2 of 8 done · "
        "3.2 frames/s · about 00:01:10 left · running"
    )
    assert "/" not in line.replace("frames/s", "")
    assert format_status(6, 6, 6, 4, None, True) == "6 timesteps · 4 cameras · complete"


def test_a_static_capture_summarises_the_rig_in_one_line() -> None:
    cameras = [camera_entry(f"cam{n}", 0.1 * n) for n in range(1, 16)]
    (line,) = rig_lines(cameras, num_timesteps=1)
    assert "16 cameras at a single timestep" in line and "0.1..1.5" in line and "spread" in line
    assert len(rig_lines(cameras, num_timesteps=5)) == 15  # over time the per-camera spreads mean something


def test_run_summary_of_a_single_timestep_capture(tmp_path: Path) -> None:
    capture = write_solid_rig(tmp_path / "cap", num_cameras=5, num_timesteps=1, fmt="images")
    result = CliRunner().invoke(main, ["run", str(capture), "--out", str(tmp_path / "r"), *TINY])
    assert result.exit_code == 0, result.output
    rig = [line for line in result.output.splitlines() if line.startswith("  rig")]
    assert len(rig) == 1 and "5 cameras at a single timestep" in rig[0]
    assert "for 1 window," in result.output  # not "1 windows"
    assert summary_text(Reconstruction.open(tmp_path / "r")).count("\n  rig") == 1


def test_help_texts_come_from_one_declaration_and_do_not_claim_a_vggt_1b_default() -> None:
    outputs = {
        "run": CliRunner().invoke(main, ["run", "--help"], terminal_width=400).output,
        "view": CliRunner().invoke(main, ["view", "--help"], terminal_width=400).output,
        "vggt-mv-view": CliRunner()
        .invoke(view_command, ["--help"], prog_name="vggt-mv-view", terminal_width=400)
        .output,
    }

    def squash(text: str) -> str:
        return re.sub(r"\s+", " ", text)

    for name, output in outputs.items():
        text = squash(output)
        assert squash(CONFIG_HELP) in text and squash(SIZE_HELP) in text, name
        assert "inferred from the checkpoint" in text, name
        assert not re.search(r"(default[^.]*vggt_1b|vggt_1b without)", text, re.IGNORECASE), name


def test_readme_ply_row_lists_every_property_the_ply_has(tmp_path: Path) -> None:
    from app.export.api import ExportOptions, Selection, export_reconstruction
    from tests.helpers.viewer import make_reconstruction

    recon = make_reconstruction(tmp_path / "recon", num_timesteps=2)
    (path,) = export_reconstruction(recon, "ply", Selection(timesteps=(0,)), tmp_path / "c.ply", ExportOptions())
    header = path.read_bytes().split(b"end_header")[0].decode("ascii")
    properties = re.findall(r"^property \S+ (\S+)$", header, re.MULTILINE)
    assert "alpha" in properties
    readme = (REPO_ROOT / "README.md").read_text()
    (row,) = [line for line in readme.splitlines() if line.startswith("| `ply` |")]
    missing = [name for name in properties if f"`{name}`" not in row and name not in ("x", "y", "z")]
    assert missing == [], f"README's PLY row does not name {missing}"
