"""The import graph of ``app/`` and ``vggt_t_mv/`` (every import statement, also those inside functions): no cycle
between files, the library never imports the app, no private name crosses a module boundary, app packages import
one way (cli -> viewer -> export -> train -> reconstruct -> capture -> common -> library), nothing imports
``app.cli``, and only the library constructs ``VGGTTMV(``."""

from __future__ import annotations

import ast
import subprocess
import sys
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


def modules_loaded_by(*imports: str) -> set[str]:
    """The modules in ``sys.modules`` of a fresh interpreter after ``import <each of imports>``."""
    code = "import sys\n" + "".join(f"import {name}\n" for name in imports) + "print('\\n'.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    return set(result.stdout.split())


def test_the_store_and_the_selection_load_no_pipeline_and_no_model() -> None:
    for module in ("app.reconstruct.store", "app.export.selection"):
        loaded = modules_loaded_by(module)
        assert module in loaded  # the probe imported what it names
        heavy = sorted(loaded & {"app.reconstruct.pipeline", "app.reconstruct.run", "vggt_t_mv.model"})
        assert heavy == [], f"import {module} loads {heavy}"


def test_package_inits_load_no_pipeline_model_or_viewer() -> None:
    packages = sorted(
        ".".join(path.parent.relative_to(REPO_ROOT).parts)
        for root in ("app", "vggt_t_mv")
        for path in (REPO_ROOT / root).rglob("__init__.py")
        if path.parent.name != "cli"  # the command layer's package is its entry point (app.cli:main)
    )
    assert "app.reconstruct" in packages and "vggt_t_mv" in packages
    for package in packages:
        heavy = sorted(modules_loaded_by(package) & {"app.reconstruct.pipeline", "vggt_t_mv.model", "viser"})
        assert heavy == [], f"import {package} loads {heavy}"


def is_training_or_eval(module: str) -> bool:
    return module.startswith(("vggt_t_mv.train", "vggt_t_mv.eval"))


def test_capture_imports_no_training_or_eval_code() -> None:
    imports = graph().imports
    static = [f"{m} imports {t}" for m, t, _ in imports if m.startswith("app.capture") and is_training_or_eval(t)]
    assert static == []
    capture = sorted(
        ".".join(path.with_suffix("").relative_to(REPO_ROOT).parts).removesuffix(".__init__")
        for path in (REPO_ROOT / "app" / "capture").rglob("*.py")
    )
    assert "app.capture.ground_truth" in capture
    loaded = sorted(m for m in modules_loaded_by(*capture) if is_training_or_eval(m))
    assert loaded == [], f"importing app.capture loads {loaded}"


def test_one_reader_of_a_recorded_capture_ground_truth() -> None:
    # the file name "ground_truth.npz" is a value in one module only (GROUND_TRUTH_FILE, which the others import),
    # the module whose read_ground_truth_file is its one reader
    namers = sorted(
        {
            path.relative_to(REPO_ROOT).as_posix()
            for package in ("app", "vggt_t_mv")
            for path in (REPO_ROOT / package).rglob("*.py")
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and node.value == "ground_truth.npz"
        }
    )
    assert namers == ["vggt_t_mv/data/recorded.py"]
