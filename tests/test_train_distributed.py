"""``torchrun --nproc_per_node 2`` trains with DistributedDataParallel (gloo on CPU): both processes end with
identical weights, and they are the saved final weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.shared import REPO_ROOT
from tests.helpers.train import tiny_config
from vggt_t_mv import VGGTTMV
from vggt_t_mv.train.trainer import weights_checksum


def test_two_gloo_processes_end_with_identical_weights(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path / "run", tmp_path / "cache", max_steps=3)
    cfg.run.threads = 1
    config = tmp_path / "config.json"
    config.write_text(json.dumps(cfg.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "app.cli",
        "train",
        str(config),
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 3
    assert len(summary["checksums"]) == 2 and summary["checksums"][0] == summary["checksums"][1]
    assert weights_checksum(VGGTTMV.from_pretrained(tmp_path / "run" / "final")) == summary["checksums"][0]
    # the processes saw different windows (a distributed sampler), and the logged loss is their average
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
