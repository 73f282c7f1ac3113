"""The type check: mypy (configured in pyproject.toml, ``[tool.mypy]``) over ``app/`` and ``vggt_t_mv/`` reports
nothing, and it is live: on a fixture with a plain ``str`` where a mode ``Literal`` is expected it reports
exactly the lines marked ``# wrong``. No module is exempt: the configuration has no override that turns the check
off or down, and every ``# type: ignore`` in the code names its error code and says why."""

from __future__ import annotations

import re
import subprocess
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from tests.helpers.shared import REPO_ROOT

WRONG_LITERAL = REPO_ROOT / "tests" / "typecheck_fixtures" / "wrong_literal.py"
# per-module settings that exempt code from the check or weaken it: key -> the values that do
WEAKENING = {
    "ignore_errors": (True,),
    "follow_imports": ("skip", "silent"),
    "check_untyped_defs": (False,),
}
IGNORE_COMMENT = re.compile(r"#\s*type:\s*ignore(?P<codes>\[[^\]]*\])?(?P<rest>.*)$")


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


def test_no_module_is_exempt_from_the_check() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert not config.get("exclude"), f"[tool.mypy] exclude leaves code unchecked: {config['exclude']}"
    assert {"app", "vggt_t_mv"} <= set(config["files"]), config["files"]
    for override in config.get("overrides", []):
        weakened = sorted(key for key, values in WEAKENING.items() if override.get(key, object()) in values)
        if override.get("disable_error_code"):
            weakened.append("disable_error_code")
        assert not weakened, f"a [[tool.mypy.overrides]] for {override.get('module')} weakens the check: {weakened}"


def test_every_type_ignore_names_its_code_and_says_why() -> None:
    bare = []
    for path in sorted([*(REPO_ROOT / "app").rglob("*.py"), *(REPO_ROOT / "vggt_t_mv").rglob("*.py")]):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = IGNORE_COMMENT.search(line)
            if match and not (match["codes"] and match["rest"].strip().startswith("#")):
                bare.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert not bare, "a type: ignore needs [code] and a '# why' after it:\n" + "\n".join(bare)
