"""Data safety (issue 15, items 3, 10, 11, 12): nothing a command did not write itself is ever replaced, and resume
continues exactly, whatever was interrupted where.

Every refusal: exit status 1, a message naming the file or option, no traceback, and every file already on disk
unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from app.cli.export import export_command
from app.export.ownership import MARKER_NAME
from tests.helpers.files import tree_digest
from tests.test_viewer_support import make_reconstruction

FILE_FORMATS = {"ply": "out.ply", "glb": "out.glb", "mesh": "out.obj", "npz": "out.npz", "colmap": "out_model"}


def refused(result: Result, *named: str) -> None:
    """A clean refusal: exit 1, the message names each of ``named``, no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), result.output
    for name in named:
        assert name in result.output, (name, result.output)


def export(recon: Path, fmt: str, out: Path, *extra: str) -> Result:
    return CliRunner().invoke(export_command, [str(recon), "--format", fmt, "--out", str(out), "--t", "0", *extra])


def first_names(digest: dict[str, str]) -> set[str]:
    return {name.split("/")[0] for name in digest}


# ----------------------------------------------------------------------------------------------- 3. --overwrite
@pytest.fixture(scope="module")
def recon_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("safety") / "recon"
    make_reconstruction(root, 3, 2, (24, 32))
    return root


def _unrelated(path: Path, fmt: str) -> None:
    """Something the user made at ``path``: a folder with a file for folder formats, a file otherwise."""
    if fmt == "colmap":
        path.mkdir()
        (path / "notes.txt").write_text("mine")
    else:
        path.write_bytes(b"my own file")


@pytest.mark.parametrize("fmt", sorted(FILE_FORMATS))
def test_overwrite_refuses_an_unrelated_output(recon_root: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / FILE_FORMATS[fmt]
    _unrelated(out, fmt)
    before, recon_before = tree_digest(tmp_path), tree_digest(recon_root)
    result = export(recon_root, fmt, out, "--overwrite")
    refused(result, str(out), "--overwrite", "did not write")
    assert tree_digest(tmp_path) == before and tree_digest(recon_root) == recon_before


@pytest.mark.parametrize("fmt", sorted(FILE_FORMATS))
def test_overwrite_replaces_an_unchanged_export_of_this_tool(recon_root: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / FILE_FORMATS[fmt]
    assert export(recon_root, fmt, out).exit_code == 0
    first = tree_digest(tmp_path)
    refused(export(recon_root, fmt, out), str(out), "--overwrite")  # exists, no --overwrite
    assert tree_digest(tmp_path) == first
    result = export(recon_root, fmt, out, "--overwrite", "--conf-percentile", "50")
    assert result.exit_code == 0, result.output
    assert tree_digest(tmp_path) != first
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(first_names(first))


@pytest.mark.parametrize("fmt", sorted(FILE_FORMATS))
def test_overwrite_refuses_an_export_changed_since(recon_root: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / FILE_FORMATS[fmt]
    assert export(recon_root, fmt, out).exit_code == 0
    if fmt == "colmap":
        (out / "dense").mkdir()
        (out / "dense" / "fused.ply").write_bytes(b"work done in the export folder by another tool")
        named = "dense/fused.ply"
    else:
        with open(out, "ab") as handle:
            handle.write(b"edited")
        named = "changed since"
    before = tree_digest(tmp_path)
    refused(export(recon_root, fmt, out, "--overwrite"), str(out), named)
    assert tree_digest(tmp_path) == before


INTO_THE_RECONSTRUCTION = [
    (fmt, where) for fmt in sorted(FILE_FORMATS) for where in ("itself", "windows", "inside windows")
] + [("colmap", "its parent")]  # a folder output around the reconstruction (a file output cannot contain one)


@pytest.mark.parametrize(("fmt", "where"), INTO_THE_RECONSTRUCTION)
def test_export_never_writes_into_or_over_the_reconstruction(tmp_path: Path, fmt: str, where: str) -> None:
    root = tmp_path / "recon"
    make_reconstruction(root, 3, 2, (24, 32))
    # a marker planted by someone does not make the reconstruction replaceable either
    (root / MARKER_NAME).write_text('{"tool": "vggt-mv export", "files": {}}')
    name = FILE_FORMATS[fmt]
    out = {
        "itself": root,
        "windows": root / "windows",
        "inside windows": root / "windows" / name,
        "its parent": tmp_path,
    }[where]
    before = tree_digest(tmp_path)
    result = export(root, fmt, out, "--overwrite")
    refused(result, str(out), str(root))
    assert tree_digest(tmp_path) == before
