"""The README's ``vggt-mv eval`` commands run as written, after the README's own ``vggt-mv run`` commands that make
the reconstructions they read (those run on 2 timesteps only, to stay fast; the evaluation is the README's line).

The commands run in a scratch copy of the repository's layout (``assets/`` and ``../shared`` linked), with
``/tmp/...`` output paths moved under the test's own folder."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli.main import main
from tests.helpers.shared import REPO_ROOT, require, shared_dir

FAST_RUN = ["--max-frames", "2", "--window", "2"]


def readme_commands(program: str) -> list[list[str]]:
    """Every ``vggt-mv <program> ...`` line of the README's code blocks, comments stripped, split like a shell."""
    text = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[2:] for line in lines if line.startswith(f"vggt-mv {program} ")]


def sandbox(tmp_path: Path, args: list[str]) -> list[str]:
    return [str(tmp_path / "tmp" / a[len("/tmp/") :]) if a.startswith("/tmp/") else a for a in args]


@pytest.fixture
def repo_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "assets").symlink_to(REPO_ROOT / "assets")
    (tmp_path / "shared").symlink_to(require(shared_dir(), "shared data"))
    monkeypatch.chdir(tmp_path / "repo")
    return tmp_path


def test_the_readme_has_eval_commands_for_reconstructions_and_a_dataset_root() -> None:
    evals = readme_commands("eval")
    assert any("--gt" in c and c[c.index("--gt") + 1].endswith("mv_page4d_rig") for c in evals)
    assert any(c[c.index("--gt") + 1].endswith("ground_truth.npz") for c in evals)


RECON_EVALS = [c for c in readme_commands("eval") if c[0] != "assets/demo_weights"]
MODEL_EVALS = [c for c in readme_commands("eval") if c[0] == "assets/demo_weights"]


@pytest.mark.parametrize("command", RECON_EVALS, ids=lambda c: " ".join(c[:3]))
def test_readme_eval_of_a_reconstruction_runs_as_written(repo_copy: Path, command: list[str]) -> None:
    target = command[0]
    makers = [c for c in readme_commands("run") if c[c.index("--out") + 1] == target]
    assert makers, f"no README `vggt-mv run` line writes {target}"
    result = CliRunner().invoke(main, ["run", *sandbox(repo_copy, makers[0]), *FAST_RUN])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["eval", *sandbox(repo_copy, command)])
    assert result.exit_code == 0, result.output
    assert "| reconstruction " in result.output and "abs_rel" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("command", MODEL_EVALS, ids=lambda c: " ".join(c[:3]))
def test_readme_eval_of_the_demo_weights_runs_as_written(repo_copy: Path, command: list[str]) -> None:
    result = CliRunner().invoke(main, ["eval", *sandbox(repo_copy, command)])
    assert result.exit_code == 0, result.output
    assert "| model demo_weights" in result.output
