"""The import graph of ``app/`` and ``vggt_t_mv/`` (every import statement, also those inside functions): no cycle
between files, the library never imports the app, no private name crosses a module boundary, app packages import
one way (cli -> viewer -> export -> train -> reconstruct -> capture -> common -> library), nothing imports
``app.cli``, and only the library constructs ``VGGTTMV(``."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers.graph import ImportGraph, find_cycles

REPO_ROOT = Path(__file__).resolve().parents[1]
APP_LAYERS = ("common", "capture", "reconstruct", "train", "export", "viewer", "cli")  # lowest first


def graph() -> ImportGraph:
    return ImportGraph.of(REPO_ROOT, ("app", "vggt_t_mv"))


def test_no_import_cycle_between_files() -> None:
    cycles = find_cycles(graph().edges())
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_finder_sees_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    # the guard itself: a module-level import one way and a function-level import back is a cycle
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("thing = 1\n\ndef later():\n    from pkg import a\n    return a\n")
    found = find_cycles(ImportGraph.of(tmp_path, ("pkg",)).edges())
    assert found and set(found[0]) >= {"pkg.a", "pkg.b"}


def test_the_library_never_imports_the_app() -> None:
    bad = [(m, target) for m, target, _ in graph().imports if m.startswith("vggt_t_mv") and target.startswith("app")]
    assert bad == []


def test_no_private_name_is_imported_across_modules() -> None:
    bad = [
        f"{module} imports {target}.{name}"
        for module, target, names in graph().imports
        for name in names
        if name.startswith("_") and not name.startswith("__") and target.split(".")[0] in ("app", "vggt_t_mv")
    ]
    assert bad == []


def test_app_packages_import_one_way_and_nothing_imports_the_cli() -> None:
    def layer(module: str) -> int | None:
        parts = module.split(".")
        if parts[0] != "app" or len(parts) < 2:
            return None
        return APP_LAYERS.index(parts[1]) if parts[1] in APP_LAYERS else None

    upward = []
    for module, target, _ in graph().imports:
        if target.startswith("app.cli") and not module.startswith("app.cli"):
            upward.append(f"{module} imports the CLI ({target})")
        mine, theirs = layer(module), layer(target)
        if module.startswith("app.") and target.startswith("app") and (mine is None or theirs is None):
            upward.append(f"{module} -> {target}: every app module lives in one of the packages {APP_LAYERS}")
        elif mine is not None and theirs is not None and theirs > mine:
            upward.append(f"{module} ({APP_LAYERS[mine]}) imports {target} ({APP_LAYERS[theirs]})")
    assert upward == []


def test_only_the_library_constructs_the_model() -> None:
    offenders = []
    for path in sorted((REPO_ROOT / "app").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
                name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
                if name == "VGGTTMV":
                    offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert offenders == [], "build models with vggt_t_mv.load_model: " + ", ".join(offenders)


def test_click_lives_only_in_the_cli() -> None:
    users = sorted(
        module
        for module, target, _ in graph().imports
        if target.split(".")[0] == "click" and not module.startswith("app.cli")
    )
    assert users == []


def definitions(kind: type[ast.FunctionDef] | type[ast.ClassDef], pattern: str) -> list[str]:
    """``file:line name`` of every module-level function (methods may delegate) or any class in ``app/`` and
    ``vggt_t_mv/`` whose lower-cased name contains ``pattern``."""
    found = []
    for package in ("app", "vggt_t_mv"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree) if kind is ast.ClassDef else tree.body:
                if isinstance(node, kind) and pattern in node.name.lower():
                    found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name}")
    return found


def test_one_umeyama_one_sim3_one_rotation_angle_in_the_code() -> None:
    place = lambda found: [d.split(":")[0] + " " + d.split(" ")[1] for d in found]  # noqa: E731
    assert place(definitions(ast.FunctionDef, "umeyama")) == ["vggt_t_mv/npgeometry.py umeyama"]
    assert place(definitions(ast.ClassDef, "sim3")) == [
        "vggt_t_mv/npgeometry.py Sim3",
        "vggt_t_mv/npgeometry.py Sim3Fit",
    ]
    for name in ("rotation_angle", "sim3", "camera_centers", "rigid_rig", "apply_rig"):
        places = {d.split(":")[0] for d in definitions(ast.FunctionDef, name)}
        assert len(places) <= 1, f"{name} is written in {sorted(places)}"
