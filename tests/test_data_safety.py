"""Data safety (issue 15, items 3, 10, 11, 12): nothing a command did not write itself is ever replaced, and resume
continues exactly, whatever was interrupted where.

Every refusal: exit status 1, a message naming the file or option, no traceback, and every file already on disk
unchanged.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from app.capture.preprocess import PreprocessConfig
from app.cli.export import export_command
from app.cli.main import main
from app.cli.resume import resume_command
from app.export.ownership import MARKER_NAME
from app.reconstruct import prepare_reconstruction, reconstruct
from app.reconstruct.pipeline import PipelineConfig
from app.reconstruct.store import Reconstruction
from app.viewer.live import LiveRunSpec
from app.viewer.server import Viewer, ViewerConfig, serve_until_interrupted
from tests.helpers.capture import solid_frames, write_solid_rig, write_video
from tests.helpers.files import tree_digest
from tests.helpers.viewer import make_reconstruction
from vggt_t_mv import VGGTTMV, ModelConfig, WeightsSpec, save_pretrained

FILE_FORMATS = {
    "ply": "out.ply", "glb": "out.glb", "mesh": "out.obj", "npz": "out.npz", "splat": "splats.ply",
    "colmap": "out_model",
}  # fmt: skip


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
    assert ": 2 of 4 windows already on disk" in result.output  # windows 0 and 1 were kept, not recomputed
    assert_same_reconstruction(rigid_reference, out)
    kept = tree_digest(out / "windows")
    rigid_pass = ("extrinsics.npy", "intrinsics.npy", "world_points_from_depth.npy")  # what --rigid-rig rewrites
    untouched = {name: digest for name, digest in windows_before.items() if not name.endswith(rigid_pass)}
    assert untouched and all(kept[name] == digest for name, digest in untouched.items())


# ------------------------------------------------------------------------------------------------- 11. resume
def test_resume_takes_the_same_capture_by_relative_or_absolute_path(rig_capture: Path, tmp_path, monkeypatch) -> None:
    out = tmp_path / "part"
    monkeypatch.chdir(rig_capture.parent)
    _interrupt(Path(rig_capture.name), out, after_window=0, rigid=False)  # "cap", relative
    kept = tree_digest(out / "windows" / "00000")
    result = ran(run_cli(rig_capture.resolve(), "--out", out, *RUN, "--resume"))
    assert "resuming" in result.output and tree_digest(out / "windows" / "00000") == kept
    assert Reconstruction.open(out).is_complete


def _weights_folder(folder: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    save_pretrained(VGGTTMV(ModelConfig.tiny()), folder)
    return folder


def test_resume_with_other_weights_in_a_save_pretrained_folder_is_refused(rig_capture: Path, tmp_path) -> None:
    first = _weights_folder(tmp_path / "weights", seed=1)
    args = RUN[3:]  # device, size and window options; no --config / --random-weights
    out = tmp_path / "recon"
    assert run_cli(rig_capture, "--out", out, "--checkpoint", first, *args, "--max-frames", 4).exit_code == 0
    meta = json.loads((out / "meta.json").read_text())
    assert len(meta["model"]["checkpoint_sha256"]) == 64 and meta["model"]["checkpoint_kind"] == "folder"
    shutil.rmtree(first)
    _weights_folder(first, seed=2)  # the same folder now holds other weights
    before = tree_digest(out)
    refused(run_cli(rig_capture, "--out", out, "--checkpoint", first, *args, "--max-frames", 4, "--resume"), "model")
    assert tree_digest(out) == before


def test_the_command_printed_after_a_viewer_ctrl_c_continues_the_run(rig_capture: Path, tmp_path: Path) -> None:
    spec = LiveRunSpec(
        capture=rig_capture,
        out=tmp_path / "live",
        model=WeightsSpec(config="tiny", random_weights=True),
        pipeline=PipelineConfig(window=4, stride=2, device="cpu", preprocess=PreprocessConfig(size=56)),
    )
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1)).start()
    with pytest.warns(UserWarning, match="untrained"):
        live = viewer.run_live(spec)
        assert viewer.wait_until(lambda: (live.state.get("windows") or (0, 0))[0] >= 1, 120)
        lines: list[str] = []
        serve_until_interrupted(viewer, exit_after=0.01, log=lines.append, resume_command=resume_command)  # Ctrl-C
    (command,) = [line.split(": ", 1)[1] for line in lines if line.startswith("continue it with")]
    words = shlex.split(command)
    assert words[:2] == ["vggt-mv", "run"] and words[-1] == "--resume"
    kept = tree_digest(spec.out / "windows" / "00000")
    result = ran(CliRunner().invoke(main, words[1:]))
    assert "resuming" in result.output
    assert Reconstruction.open(spec.out).is_complete and tree_digest(spec.out / "windows" / "00000") == kept


def _truncated_rig(folder: Path, num_timesteps: int = 11) -> Path:
    """Two MJPG cameras; cam1's file is cut so that its header still says ``num_timesteps`` frames but only the
    first few decode."""
    folder.mkdir(parents=True)
    for k in range(2):
        write_video(folder / f"cam{k}.avi", solid_frames(k, num_timesteps))
    data = (folder / "cam1.avi").read_bytes()
    (folder / "cam1.avi").write_bytes(data[: int(len(data) * 0.85)])
    return folder


def test_after_a_truncated_video_the_suggested_end_resumes(tmp_path: Path) -> None:
    capture, out = _truncated_rig(tmp_path / "cap"), tmp_path / "recon"
    result = run_cli(capture, "--out", out, *RUN)
    refused(result, "cam1.avi", "--end", "--resume")
    end = re.search(r"--end (\d+)", result.output).group(1)
    kept = tree_digest(out / "windows")
    assert kept  # the windows before the broken frame are on disk
    result = ran(run_cli(capture, "--out", out, *RUN, "--end", end, "--resume"))
    assert "resuming" in result.output or "kept" in result.output
    resumed = Reconstruction.open(out)
    assert resumed.is_complete and resumed.num_timesteps == int(end)
    survived = tree_digest(out / "windows")
    # format 3 stores each timestep once: a kept window that stored only the first part of its overlap with a window
    # the shorter run no longer has (here window 1 of [0, 4) [2, 6), which stored 3..4 and left 5 to window 2) is
    # computed again; every window before it is kept byte for byte
    continued = [w.index for w in resumed.windows() if w.index < len(resumed.spans) - 1]
    assert continued, "no window was kept"
    kept_arrays = {n: d for n, d in kept.items() if n.endswith((".npy", ".zst")) and int(n.split("/")[0]) in continued}
    assert kept_arrays and all(survived.get(name) == digest for name, digest in kept_arrays.items())
    ran(run_cli(capture, "--out", tmp_path / "straight", *RUN, "--end", end))
    straight = Reconstruction.open(tmp_path / "straight")
    for name in straight.array_names():
        assert np.array_equal(straight.load(name), resumed.load(name)), name


def test_a_run_that_failed_before_its_first_window_does_not_block_its_out(rig_capture: Path, tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    shutil.copytree(rig_capture / "cam0", masks / "cam0")  # masks for one camera of three
    out = tmp_path / "recon"
    refused(run_cli(rig_capture, "--out", out, *RUN, "--masks", masks), str(masks), "cam1")
    assert not Reconstruction.has_complete_window(out)
    ran(run_cli(rig_capture, "--out", out, *RUN))  # the same --out, no --overwrite needed
    assert Reconstruction.open(out).is_complete
    # a run that died after writing meta.json but before its first window (killed while loading frames)
    died = tmp_path / "died"
    with pytest.warns(UserWarning, match="untrained"):
        prepared = prepare_reconstruction(
            rig_capture,
            died,
            WeightsSpec(config="tiny", random_weights=True),
            PipelineConfig(window=4, stride=2, device="cpu", preprocess=PreprocessConfig(size=56)),
        )
    prepared.recon.lock.release()  # as the operating system does when the process dies
    assert Reconstruction.exists(died) and not Reconstruction.has_complete_window(died)
    ran(run_cli(rig_capture, "--out", died, *RUN))
    assert Reconstruction.open(died).is_complete


def test_a_second_run_on_the_same_out_is_refused_while_the_first_runs(rig_capture: Path, tmp_path: Path) -> None:
    out = tmp_path / "recon"
    with pytest.warns(UserWarning, match="untrained"):
        first = prepare_reconstruction(
            rig_capture,
            out,
            WeightsSpec(config="tiny", random_weights=True),
            PipelineConfig(window=4, stride=2, device="cpu", preprocess=PreprocessConfig(size=56)),
        )
    before = tree_digest(out)
    for flag in ("--overwrite", "--resume"):
        refused(run_cli(rig_capture, "--out", out, *RUN, flag), str(out), "another vggt-mv run")
        assert tree_digest(out) == before
    first.run()
    assert Reconstruction.open(out).is_complete
    ran(run_cli(rig_capture, "--out", out, *RUN, "--overwrite"))  # the lock went with the first run


# ------------------------------------------------------------------------------ 12. a viewer on a replaced folder
def test_a_viewer_on_a_reconstruction_replaced_by_overwrite_drops_the_old_data(tmp_path: Path) -> None:
    root = tmp_path / "recon"
    make_reconstruction(root, 6, 3, (24, 32))
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1)).start()
    try:
        viewer.open(root)
        assert viewer.wait_until(viewer.idle, 30)
        old_scene = viewer.scene
        assert old_scene.timesteps
        shutil.rmtree(root)  # what `vggt-mv run --overwrite` does first
        assert viewer.wait_until(lambda: viewer.scene is None, 30)
        assert not old_scene.timesteps and not old_scene.node_names()  # every old node was removed
        assert "was deleted or replaced" in viewer._status()
        make_reconstruction(root, 4, 2, (24, 32))  # the new run's reconstruction
        assert viewer.wait_until(lambda: viewer.scene is not None and viewer.idle(), 30)
        assert viewer.recon.num_timesteps == 4 and viewer.recon.num_cameras == 2
        assert "showing the new reconstruction" in viewer._status()
    finally:
        viewer.stop()
