"""The command line as one surface: ``vggt-mv-view CAPTURE`` takes everything ``vggt-mv run`` takes (live mode with
``--ground-truth`` too), every option of every command explains itself, and ``run`` ends with the commands that
view, export and evaluate its output."""

from __future__ import annotations

import shlex
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from app.cli.main import main
from app.cli.run import run_command
from app.cli.view import view_command
from tests.helpers.shared import require, shared_dir

SMALL = ["--config", "tiny", "--random-weights", "--device", "cpu", "--size", "42"]


def rig_root() -> Path:
    return require(shared_dir() / "realdata" / "mv_page4d_rig", "mv_page4d_rig")


def options_of(command: click.Command) -> dict[str, click.Option]:
    """``--long-name`` -> the click option, for every option of ``command``."""
    return {max(p.opts, key=len): p for p in command.params if isinstance(p, click.Option)}


def all_commands(group: click.Group, prefix: str = "vggt-mv") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += all_commands(command, f"{prefix} {name}")
        else:
            found.append((f"{prefix} {name}", command))
    return found


def test_view_takes_every_option_of_run_with_the_same_meaning() -> None:
    run, view = options_of(run_command), options_of(view_command)
    missing = sorted(set(run) - set(view))
    assert missing == [], f"vggt-mv-view lacks run's {missing}: declare them in app/cli/options.py"
    for name, option in run.items():
        if name == "--out":  # required for run; for view a capture's --out is optional (a temporary folder)
            continue
        twin = view[name]
        assert (twin.name, twin.is_flag, twin.default, twin.type.to_info_dict()) == (
            option.name, option.is_flag, option.default, option.type.to_info_dict()
        ), name  # fmt: skip


def test_every_option_of_every_command_has_help_text() -> None:
    commands = all_commands(main)
    names = {name for name, _ in commands}
    assert {"vggt-mv run", "vggt-mv view", "vggt-mv export", "vggt-mv eval", "vggt-mv weights inspect"} <= names
    silent = [
        f"{name} {max(p.opts, key=len)}"
        for name, command in commands
        for p in command.params
        if isinstance(p, click.Option) and not (p.help or "").strip()
    ]
    assert silent == []


def test_export_and_view_share_one_default_confidence_percentile() -> None:
    from app.cli.export import export_command
    from app.export.selection import DEFAULT_CONF_PERCENTILE, Selection
    from app.viewer.data import CloudSettings
    from app.viewer.server import ViewerConfig

    export, view = options_of(export_command)["--conf-percentile"], options_of(view_command)["--conf-percentile"]
    assert export.default == view.default == DEFAULT_CONF_PERCENTILE
    assert Selection().conf_percentile == CloudSettings().conf_percentile == ViewerConfig().conf_percentile
    assert Selection().conf_percentile == DEFAULT_CONF_PERCENTILE


def test_export_and_viewer_keep_the_same_points_for_the_same_settings(tmp_path: Path) -> None:
    """Defaults on both sides (and a non-default percentile given to both): the PLY the export writes holds exactly
    the points the viewer draws for that timestep (its point budget not binding)."""
    import plyfile

    from app.viewer.data import CloudSettings, filter_timestep
    from tests.helpers.viewer import make_reconstruction

    recon = make_reconstruction(tmp_path / "recon", 4, 3, (24, 32))
    for extra, settings in (([], CloudSettings(point_budget=10**9)), (["--conf-percentile", "35"], None)):
        settings = settings or CloudSettings(conf_percentile=35.0, point_budget=10**9)
        out = tmp_path / f"t2{len(extra)}.ply"
        result = CliRunner().invoke(main, ["export", str(recon.root), "--format", "ply", "--out", str(out), "--t", "2",
                                           *extra])  # fmt: skip
        assert result.exit_code == 0, result.output
        vertex = plyfile.PlyData.read(str(out))["vertex"].data
        exported = np.stack([vertex["x"], vertex["y"], vertex["z"]], axis=-1)
        cloud = filter_timestep(recon, 2, "geo", settings)
        drawn = np.concatenate([np.concatenate([c.static_points, c.dynamic_points]) for c in cloud.cameras])
        assert len(exported) == len(drawn) == cloud.num_after_conf < 3 * 24 * 32
        np.testing.assert_array_equal(np.unique(exported, axis=0), np.unique(drawn, axis=0))


def test_a_live_view_plans_the_run_with_runs_options(tmp_path: Path) -> None:
    """The options reach the background run exactly as ``run`` would get them."""
    from app.cli.options import capture_options, pipeline_config, weights_spec
    from app.viewer.launch import plan_view

    args = [str(rig_root()), "--out", str(tmp_path / "r"), *SMALL, "--start", "1", "--end", "5", "--every", "2",
            "--mode", "pad", "--dtype", "float32", "--masks", "auto", "--rigid-rig", "--sync", "index",
            "--skip-bad-cameras", "--layout", "time-major"]  # fmt: skip
    options = view_command.make_context("view", list(args)).params
    plan = plan_view(
        Path(options["path"]), weights_spec(options), pipeline_config(options), capture_options(options), out=tmp_path
    )
    run_context = run_command.make_context("run", list(args))
    run_options = run_context.params
    assert plan.live.capture_options == capture_options(run_options)
    assert plan.live.pipeline == pipeline_config(run_options)
    assert (plan.live.capture_options.start, plan.live.capture_options.every) == (1, 2)
    assert plan.live.pipeline.preprocess.mode == "pad" and plan.live.pipeline.rigid_rig


@pytest.fixture(scope="module")
def rig_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("next_steps")
    out = folder / "recon"
    result = CliRunner().invoke(main, ["run", str(rig_root()), "--out", str(out), *SMALL, "--max-frames", "2",
                                       "--window", "2"])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, result.output


def test_run_ends_with_the_commands_for_its_output_and_they_work(
    rig_run: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, output = rig_run
    lines = output.rstrip().splitlines()
    start = lines.index("next:")
    steps = {line.split()[0]: shlex.split(line.split(None, 1)[1]) for line in lines[start + 1 :]}
    assert list(steps) == ["view", "export", "share", "evaluate"] and start + 5 == len(lines)
    assert steps["view"] == ["vggt-mv-view", str(out)]
    assert steps["evaluate"] == ["vggt-mv", "eval", str(out), "--gt", str(rig_root())]  # the dataset root's own
    monkeypatch.chdir(tmp_path)  # the export writes beside the working directory, as it would for the user
    export = CliRunner().invoke(main, steps["export"][1:])
    assert export.exit_code == 0, export.output
    assert (tmp_path / steps["export"][steps["export"].index("--out") + 1]).is_file()
    share = CliRunner().invoke(main, steps["share"][1:])
    assert share.exit_code == 0, share.output
    assert (tmp_path / steps["share"][steps["share"].index("--out") + 1] / "index.html").is_file()
    evaluate = CliRunner().invoke(main, steps["evaluate"][1:])
    assert evaluate.exit_code == 0, evaluate.output
    view = CliRunner().invoke(view_command, [*steps["view"][1:], "--no-browser", "--port", "0", "--exit-after", "0"])
    assert view.exit_code == 0, view.output


def test_eval_prints_a_unit_for_every_metric_and_shows_progress(rig_run: tuple[Path, str]) -> None:
    from vggt_t_mv.eval.metrics import HIGHER_IS_BETTER, UNITS

    assert set(UNITS) == set(HIGHER_IS_BETTER)
    result = CliRunner().invoke(main, ["eval", str(rig_run[0]), "--gt", str(rig_root())])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if line.startswith("| predictor"))
    cells = [cell.strip() for cell in header.split("|")[3:-1]]
    assert cells and all(f"{cell.split()[0]} [{UNITS[cell.split()[0]]}]" in cell for cell in cells), header
    assert "recon vs mv_page4d_rig: windows" in result.stderr


def test_the_no_weights_error_names_the_bundled_demo_weights(tmp_path: Path) -> None:
    result = CliRunner().invoke(view_command, [str(rig_root()), "--no-browser", "--port", "0", "--exit-after", "0"])
    assert result.exit_code == 2 and "assets/demo_weights" in result.output
    result = CliRunner().invoke(main, ["run", str(rig_root()), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1 and "assets/demo_weights" in result.output
