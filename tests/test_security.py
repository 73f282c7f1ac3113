"""Security (issue 15, items 1 and 2): files and connections from others never run code or read the scene.

1. ``vggt-mv train --resume`` reads ``training_state.pt`` with ``weights_only=True``: a crafted file is refused
   with a message naming it, and the code inside never runs.
2. The viewer's websocket refuses cross-origin connections, and on a non-loopback ``--host`` every connection
   without the access token printed at start.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner

from app.cli.train import train_command
from tests.helpers.files import tree_digest
from tests.test_train_loop import tiny_config
from vggt_t_mv import VGGTTMV, ModelConfig, save_pretrained
from vggt_t_mv.train.trainer import CHECKPOINTS, STATE_FILE


class _Payload:
    """Unpickling this creates ``marker`` (what a crafted file could do with any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_resume_refuses_a_crafted_training_state_without_running_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    folder = out / CHECKPOINTS / "step_000002"
    save_pretrained(VGGTTMV(ModelConfig.tiny_two_stream()), folder)
    marker = tmp_path / "marker"
    crafted = {"step": 2, "optimizer": _Payload(marker), "scheduler": {}, "rng": {}}
    torch.save(crafted, folder / STATE_FILE)

    # the payload is real: the same kind of file, unpickled the unsafe way, does create its marker
    torch.save({"x": _Payload(tmp_path / "ran")}, tmp_path / "probe.pt")
    torch.load(tmp_path / "probe.pt", weights_only=False)
    assert (tmp_path / "ran").exists()

    config = tmp_path / "config.json"
    config.write_text(json.dumps(tiny_config(out, tmp_path / "cache", max_steps=4).to_dict()))
    before = tree_digest(out)
    result = CliRunner().invoke(train_command, [str(config), "--resume"])

    assert result.exit_code == 1, result.output
    assert str(folder / STATE_FILE) in result.output and "refusing to load" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert not marker.exists()
    assert tree_digest(out) == before
