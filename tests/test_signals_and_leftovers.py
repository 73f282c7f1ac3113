"""Stopping and leftovers (issue 26): SIGTERM is Ctrl-C for every command (a clean stop, what is kept, the exact
command that continues), a refused ``--out`` keeps no lock, temporary files of a killed writer are removed by the next
write, write failures name their cause, and an export of an unfinished reconstruction says what it covers."""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from app.cli.interrupt import Terminated, resume_words
from app.common.atomic import atomic_file, clear_stale_temporaries, temp_sibling
from app.reconstruct.store import LOCK_NAME, Reconstruction
from tests.helpers.capture import write_solid_rig
from tests.helpers.shared import REPO_ROOT
from tests.test_bad_inputs import RUN, assert_kept, assert_ok, assert_refused, invoke, snapshot, template

__all__ = ["template"]


def cli_process(*args: object, tmp: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp)}
    command = [sys.executable, "-m", "app.cli", *map(str, args)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp)


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


# ------------------------------------------------------------------------------------------------ SIGTERM
def test_sigterm_stops_run_like_ctrl_c_with_the_exact_resume_command(tmp_path: Path) -> None:
    capture = write_solid_rig(tmp_path / "capture", num_cameras=2, num_timesteps=30, fmt="images")
    out = tmp_path / "recon"
    process = cli_process("run", capture, "--out", out, *RUN, "--overwrite", tmp=tmp_path)
    try:
        wait_for(lambda: (out / "windows" / "00000" / "window.json").is_file() or process.poll() is not None)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    assert "Traceback" not in err and "interrupted: complete windows are kept" in err
    command = err.split("continue with: ")[1].splitlines()[0]
    words = shlex.split(command)
    assert words[:2] == ["vggt-mv", "run"] and words[-1] == "--resume" and "--overwrite" not in words
    kept = Reconstruction.open(out)
    assert 0 < len(kept.windows()) < len(kept.spans)
    finished = cli_process(*words[1:], tmp=tmp_path)
    _, err = finished.communicate(timeout=300)
    assert finished.returncode == 0, err
    assert Reconstruction.open(out).is_complete


def test_resume_words_repeat_the_command_line() -> None:
    argv = ["run", "cap", "--out", "r", "--overwrite", "--size", "56"]
    assert resume_words("run", argv) == ["vggt-mv", "run", "cap", "--out", "r", "--size", "56", "--resume"]
    assert resume_words("run", ["-x", "tests"]) is None  # not a vggt-mv command line: the generic advice


def test_an_interrupted_export_leaves_no_partial_file(template, tmp_path: Path, monkeypatch) -> None:
    import app.export.formats as formats

    seen = []

    def interrupted_write(path, produce):
        with atomic_file(path) as tmp:
            tmp.write_bytes(b"half")
            seen.append(tmp)
            raise Terminated(signal.SIGTERM)

    monkeypatch.setattr(formats, "write_bytes_atomic", interrupted_write)
    result = invoke("export", template[1], "--format", "ply", "--out", tmp_path / "cloud.ply", "--t", "0")
    assert result.exit_code == 143 and "interrupted" in result.output
    assert seen and not seen[0].exists() and list(tmp_path.iterdir()) == []


def test_an_interrupted_training_says_how_to_resume(tmp_path: Path, monkeypatch) -> None:
    import app.cli.train as train_cli

    config = tmp_path / "train.json"
    config.write_text(json.dumps({"run": {"out": str(tmp_path / "runs")}}))

    def stopped(*args, **kwargs):
        raise Terminated(signal.SIGTERM)

    monkeypatch.setattr(train_cli, "train_captures", stopped)
    result = invoke("train", config)
    assert result.exit_code == 143 and "Traceback" not in result.output
    assert "checkpoints already written are kept" in result.output and "--resume" in result.output


def test_sigterm_after_a_colmap_export_in_the_viewer_prints_no_native_stack(template, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import threading
        from app.viewer.server import Viewer, ViewerConfig, serve_until_interrupted
        viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1)).start()
        viewer.open({str(template[1])!r})
        def export():  # what the GUI's button does, in the GUI's export thread
            viewer.gui.export_format.value = "COLMAP (zip)"
            print(viewer.gui._export_pool.submit(viewer.gui._export_and_send, None).result(), flush=True)
        threading.Timer(1.0, export).start()
        serve_until_interrupted(viewer)
        print("stopped cleanly", flush=True)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)  # fmt: skip
    try:
        line = ""
        deadline = time.monotonic() + 120
        while "exported" not in line and time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline()
        assert "exported" in line and ".zip" in line, line
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and "stopped cleanly" in out, err
    assert "Aborted" not in err and "stack trace" not in err


# ------------------------------------------------------------------------------------------------ leftovers
@pytest.mark.parametrize("where", ["foreign", "capture"])
def test_a_refused_out_keeps_no_lock(template, tmp_path: Path, where: str) -> None:
    if where == "foreign":
        out = tmp_path / "mine"
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    else:
        out = Path(shutil.copytree(template[0], tmp_path / "capture"))
    before = snapshot(out)
    result = invoke("run", template[0] if where == "foreign" else out, "--out", out, *RUN)
    assert_refused(result, out, "--out")
    assert not (out / LOCK_NAME).exists()
    assert_kept(before, out)
    assert snapshot(out) == before


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "cloud.ply"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has exited, as one killed with -9 would have
    stale_file = target.with_name(f".cloud.tmp-{pid}.ply")
    stale_file.write_bytes(b"x" * 1000)
    stale_folder = tmp_path / f".model.tmp-{pid}"
    stale_folder.mkdir()
    (stale_folder / "cameras.bin").write_bytes(b"x")
    other = target.with_name(f".cloud.tmp-{os.getppid()}.ply")  # a live writer's: kept
    other.write_bytes(b"y")
    with atomic_file(target) as tmp:
        tmp.write_bytes(b"new")
    clear_stale_temporaries(tmp_path / "model")
    assert target.read_bytes() == b"new" and not stale_file.exists() and not stale_folder.exists()
    assert other.exists()


def test_a_folder_moved_aside_by_a_killed_writer_is_put_back(tmp_path: Path) -> None:
    target = tmp_path / "model"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    aside = target.with_name(f".model.old-{int(dead.stdout)}")
    aside.mkdir()
    (aside / "cameras.bin").write_bytes(b"earlier export")
    clear_stale_temporaries(target)
    assert (target / "cameras.bin").read_bytes() == b"earlier export" and not aside.exists()
    assert temp_sibling(target).name.startswith(".model.tmp-")


def test_earlier_viewer_reconstructions_are_removed_at_the_next_launch(tmp_path: Path) -> None:
    from app.viewer.launch import TEMP_PREFIX, clear_earlier_views

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = tmp_path / f"{TEMP_PREFIX}{int(dead.stdout)}-abc"
    (gone / "windows").mkdir(parents=True)
    (gone / "windows" / "depth.npy").write_bytes(b"x" * 50_000)
    alive = tmp_path / f"{TEMP_PREFIX}{os.getpid()}-def"
    alive.mkdir()
    unrelated = tmp_path / f"{TEMP_PREFIX}abc"  # no pid in the name: not ours to judge
    unrelated.mkdir()
    (said,) = clear_earlier_views(tmp_path)
    assert "removed 1 earlier viewer reconstruction" in said and "--out" in said
    assert not gone.exists() and alive.exists() and unrelated.exists()


# ------------------------------------------------------------------------------------------------ write failures
def test_resume_on_a_read_only_folder_says_read_only_not_cannot_create(tmp_path: Path, monkeypatch) -> None:
    import builtins

    from app.reconstruct.lock import RunLock
    from app.reconstruct.store import ReconstructionError

    real_open = builtins.open

    def read_only(path, *args, **kwargs):
        if str(path).endswith(LOCK_NAME):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only)
    with pytest.raises(ReconstructionError, match="read-only") as caught:
        RunLock.acquire(tmp_path)
    assert "cannot create" not in str(caught.value) and "--resume there" in str(caught.value)


def test_a_full_disk_that_numpy_does_not_name_is_named(template, tmp_path: Path, monkeypatch) -> None:
    """numpy's ``tofile`` on a full disk raises OSError without an errno ("fix the folder" said nothing)."""
    import app.common.atomic as atomic
    from app.reconstruct import store as store_module

    for owner, name in ((np, "save"), (store_module, "save_chunked")):  # depth_conf is written compressed in format 3
        real_save = getattr(owner, name)

        def save(file, *args, real_save=real_save, **kwargs):
            if ".00001.tmp-" in str(file) and "depth_conf" in str(file):
                raise OSError("14336 requested and 0 written")
            return real_save(file, *args, **kwargs)

        monkeypatch.setattr(owner, name, save)
    monkeypatch.setattr(atomic, "disk_problem", lambda path: errno.ENOSPC)
    result = invoke("run", template[0], "--out", tmp_path / "recon", *RUN)
    assert_refused(result, "No space left on device", "free some space", "--resume")
    assert "fix the folder" not in result.output


def test_a_colmap_export_on_a_full_disk_names_the_cause_not_a_temporary_path(template, tmp_path, monkeypatch):
    import pycolmap

    import app.common.atomic as atomic

    def full(self, path):
        raise RuntimeError(f"Could not open {path}/cameras.bin for writing")

    monkeypatch.setattr(pycolmap.Reconstruction, "write_binary", full)
    monkeypatch.setattr(atomic, "disk_problem", lambda path: errno.ENOSPC)
    before = snapshot(tmp_path)
    result = invoke("export", template[1], "--format", "colmap", "--out", tmp_path / "model", "--t", "0")
    assert_refused(result, tmp_path / "model", "No space left on device", "free some space")
    assert ".tmp-" not in result.output
    assert_kept(before, tmp_path)


def test_a_truncated_training_state_is_called_damaged(tmp_path: Path) -> None:
    import torch

    from vggt_t_mv.train.state import TrainingStateError, read_training_state

    path = tmp_path / "training_state.pt"
    torch.save({"step": 1, "optimizer": {}, "scheduler": {}, "rng": {}}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(TrainingStateError, match="damaged or cut short") as caught:
        read_training_state(path)
    assert "could run code" not in str(caught.value)


# ------------------------------------------------------------------------------------------------ words
def test_export_of_an_unfinished_reconstruction_says_what_it_covers(template, tmp_path: Path) -> None:
    recon = Path(shutil.copytree(template[1], tmp_path / "recon"))
    shutil.rmtree(recon / "windows" / "00001")
    meta = json.loads((recon / "meta.json").read_text())
    meta["status"] = "running"
    (recon / "meta.json").write_text(json.dumps(meta))
    result = invoke("export", recon, "--format", "ply", "--out", tmp_path / "c.ply", "--merge")
    assert_ok(result)
    assert "covers timesteps 0..2 (3 of 5)" in result.output and "--resume" in result.output
    from app.reconstruct.lock import RunLock

    lock = RunLock.acquire(recon)  # a run writing it right now
    try:
        result = invoke("export", recon, "--format", "ply", "--out", tmp_path / "d.ply", "--merge")
    finally:
        lock.release()
    assert "its run is still going" in result.output


def test_numpy_arithmetic_warnings_do_not_reach_the_user(capsys) -> None:
    from app.cli.options import console_warnings

    saved = warnings.showwarning, warnings.filters[:]
    try:
        console_warnings()
        np.array([np.nan, -1.0]) ** 0.5  # invalid value
        np.log(np.zeros(1))  # divide by zero
        warnings.warn("something the user should read", UserWarning, stacklevel=1)
    finally:
        warnings.showwarning, warnings.filters[:] = saved
    err = capsys.readouterr().err
    assert "encountered" not in err and "something the user should read" in err


def test_sigterm_while_the_viewer_starts_is_a_clean_stop(template, monkeypatch) -> None:
    import app.cli.view as view_cli

    def stopped(*args, **kwargs):
        raise Terminated(signal.SIGTERM)

    monkeypatch.setattr(view_cli, "plan_view", stopped)
    result = invoke("view", template[0], "--no-browser", "--config", "tiny", "--random-weights")
    assert result.exit_code == 143 and "Traceback" not in result.output and "interrupted" in result.output
