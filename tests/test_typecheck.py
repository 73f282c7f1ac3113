"""The type check: mypy (configured in pyproject.toml, ``[tool.mypy]``) over ``app/`` and ``vggt_t_mv/`` reports
nothing, and it is live: on a fixture with a plain ``str`` where a mode ``Literal`` is expected it reports
exactly the lines marked ``# wrong``."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.helpers.shared import REPO_ROOT

WRONG_LITERAL = REPO_ROOT / "tests" / "typecheck_fixtures" / "wrong_literal.py"


def run_mypy(*targets: str) -> subprocess.CompletedProcess[str]:
    """mypy with the project's configuration; its incremental cache is ``.mypy_cache`` (git-ignored)."""
    command = [sys.executable, "-m", "mypy", "--no-color-output", "--no-error-summary", *targets]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT)


def error_lines(output: str, path: str) -> dict[int, str]:
    """``{line: message}`` of the errors mypy reported in ``path``."""
    found = {}
    for match in re.finditer(rf"^{re.escape(path)}:(\d+): error: (.*)$", output, flags=re.MULTILINE):
        found[int(match.group(1))] = match.group(2)
    return found


def test_app_and_library_pass_the_type_check() -> None:
    result = run_mypy()  # the files named in [tool.mypy]: app and vggt_t_mv
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_checker_refuses_a_plain_str_where_a_mode_literal_is_expected() -> None:
    relative = WRONG_LITERAL.relative_to(REPO_ROOT).as_posix()
    lines = WRONG_LITERAL.read_text().splitlines()
    marked = {number for number, line in enumerate(lines, start=1) if line.rstrip().endswith("# wrong")}
    assert len(marked) >= 2, "the fixture marks its wrong calls with '# wrong'"

    result = run_mypy(relative)
    reported = error_lines(result.stdout, relative)

    assert result.returncode == 1, result.stdout + result.stderr
    assert set(reported) == marked, result.stdout
    for number in marked:
        assert "Literal[" in reported[number] and '"str"' in reported[number], reported[number]
