"""`torchrun --nproc_per_node 2 -m app.cli run ...` (2 CPU processes, gloo) writes the same Reconstruction as a
single process: windows are shared between the ranks and rank 0 stitches and writes them in order."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

from app.reconstruct.store import Reconstruction
from tests.helpers.shared import REPO_ROOT

RUN_ARGS = ["--config", "tiny_two_stream", "--random-weights", "--device", "cpu", "--size", "56"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_capture(folder: Path) -> Path:
    from vggt_t_mv.data.synthetic import SyntheticRigConfig, make_synthetic_rig, write_capture

    rig = make_synthetic_rig(SyntheticRigConfig(num_timesteps=9, num_cameras=2, height=64, width=96, seed=3))
    return write_capture(rig, folder, fmt="images")


def vggt_mv(*args: str, torchrun: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "app.cli"]
    if torchrun:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={torchrun}",
            f"--master_port={free_port()}",
            "-m",
            "app.cli",
        ]
    result = subprocess.run(
        [*launcher, "run", *args], capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_two_process_run_matches_the_single_process_run(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "capture")
    window = ["--window", "3", "--stride", "2"]  # 4 windows: ranks 0 and 1 take two each
    vggt_mv(str(capture), "--out", str(tmp_path / "single"), *RUN_ARGS, *window)
    shared = vggt_mv(str(capture), "--out", str(tmp_path / "torchrun"), *RUN_ARGS, *window, torchrun=2)
    assert "2 processes share the windows" in shared.stderr
    single, multi = Reconstruction.open(tmp_path / "single"), Reconstruction.open(tmp_path / "torchrun")
    assert multi.is_complete and multi.spans == single.spans == [(0, 3), (2, 5), (4, 7), (6, 9)]
    for name in multi.array_names():
        np.testing.assert_array_equal(multi.load(name), single.load(name), err_msg=name)
    alignments = [w.info["alignment"] for w in multi.windows()]
    assert alignments == [w.info["alignment"] for w in single.windows()]
