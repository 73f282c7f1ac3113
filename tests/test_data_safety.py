"""Data safety (issue 15, items 3, 10, 11, 12): nothing a command did not write itself is ever replaced, and resume
continues exactly, whatever was interrupted where.

Every refusal: exit status 1, a message naming the file or option, no traceback, and every file already on disk
unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from app.capture.preprocess import PreprocessConfig
from app.cli.export import export_command
from app.cli.main import main
from app.export.ownership import MARKER_NAME
from app.reconstruct import reconstruct
from app.reconstruct.pipeline import PipelineConfig
from app.reconstruct.store import Reconstruction
from tests.capture_helpers import write_solid_rig
from tests.helpers.files import tree_digest
from tests.test_viewer_support import make_reconstruction
from vggt_t_mv import WeightsSpec

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


# ------------------------------------------------------------------------------------ 10. exact --rigid-rig resume
RUN = ["--config", "tiny", "--random-weights", "--device", "cpu", "--size", "56", "--window", "4", "--stride", "2"]


def run_cli(*args: object) -> Result:
    return CliRunner().invoke(main, ["run", *map(str, args)])


def ran(result: Result) -> Result:
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    return result


@pytest.fixture(scope="module")
def rig_capture(tmp_path_factory) -> Path:
    return write_solid_rig(tmp_path_factory.mktemp("rig") / "cap", num_cameras=3, num_timesteps=9, fmt="images")


@pytest.fixture(scope="module")
def rigid_reference(rig_capture: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rigid") / "full"
    ran(run_cli(rig_capture, "--out", out, *RUN, "--rigid-rig"))
    return out


def assert_same_reconstruction(reference: Path, other: Path) -> None:
    full, resumed = Reconstruction.open(reference), Reconstruction.open(other)
    assert resumed.is_complete and resumed.spans == full.spans
    for name in full.array_names():
        assert np.array_equal(full.load(name), resumed.load(name)), name
    timing = "model_seconds"  # the one thing that may differ
    strip = lambda entries: [{k: v for k, v in e.items() if k != timing} for e in entries]  # noqa: E731
    assert strip(full.meta["alignment"]) == strip(resumed.meta["alignment"])
    assert full.meta["rig"] == resumed.meta["rig"]


def _interrupt(capture: Path, out: Path, after_window: int, rigid: bool = True) -> None:
    config = PipelineConfig(window=4, stride=2, device="cpu", preprocess=PreprocessConfig(size=56), rigid_rig=rigid)

    def stop(index: int) -> None:
        if index == after_window:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="untrained"), pytest.raises(KeyboardInterrupt):
        reconstruct(capture, out, WeightsSpec(config="tiny", random_weights=True), config, on_window=stop)


def test_resuming_a_finished_rigid_run_changes_nothing(rig_capture: Path, rigid_reference: Path, tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(rigid_reference, copy)
    ran(run_cli(rig_capture, "--out", copy, *RUN, "--rigid-rig", "--resume"))
    assert_same_reconstruction(rigid_reference, copy)


def test_kill_during_the_rigid_pass_then_resume_is_exact(rig_capture, rigid_reference, tmp_path, monkeypatch) -> None:
    out = tmp_path / "part"
    calls = []
    original = Reconstruction.replace_arrays

    def killed_on_the_second_window(self, index, arrays):
        calls.append(index)
        if len(calls) == 2:
            raise KeyboardInterrupt
        original(self, index, arrays)

    monkeypatch.setattr(Reconstruction, "replace_arrays", killed_on_the_second_window)
    _interrupt(rig_capture, out, after_window=-1)
    monkeypatch.undo()
    assert calls == [0, 1] and not Reconstruction.open(out).is_complete
    ran(run_cli(rig_capture, "--out", out, *RUN, "--rigid-rig", "--resume"))
    assert_same_reconstruction(rigid_reference, out)


def test_kill_between_a_window_rename_and_the_meta_update_keeps_its_alignment(
    rig_capture: Path, rigid_reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "part"
    _interrupt(rig_capture, out, after_window=1)
    meta_path = out / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert [a["index"] for a in meta["alignment"]] == [0, 1]
    meta["alignment"] = meta["alignment"][:1]  # window 1 renamed into place, meta.json not updated yet
    meta_path.write_text(json.dumps(meta))
    windows_before = tree_digest(out / "windows")
    result = ran(run_cli(rig_capture, "--out", out, *RUN, "--rigid-rig", "--resume"))
    assert "window 3/" in result.output  # windows 0 and 1 were kept, not recomputed
    assert_same_reconstruction(rigid_reference, out)
    kept = tree_digest(out / "windows")
    rigid_pass = ("extrinsics.npy", "intrinsics.npy", "world_points_from_depth.npy")  # what --rigid-rig rewrites
    untouched = {name: digest for name, digest in windows_before.items() if not name.endswith(rigid_pass)}
    assert untouched and all(kept[name] == digest for name, digest in untouched.items())
