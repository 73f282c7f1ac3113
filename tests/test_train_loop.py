"""The training loop: a few steps lower the loss on a fixed batch; resume restores the exact state; the CLI writes
metrics, the loss curve and loadable weights; the example config parses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from app.cli.train import train_command
from tests.helpers.shared import REPO_ROOT
from tests.helpers.train import tiny_config
from vggt_t_mv import VGGTTMV, ModelConfig
from vggt_t_mv.data.synthetic import make_synthetic_rig
from vggt_t_mv.train.config import TrainConfig
from vggt_t_mv.train.dataset import Sequence, WindowConfig, WindowDataset, collate
from vggt_t_mv.train.losses import LossConfig, compute_loss
from vggt_t_mv.train.trainer import checkpoint_dirs, lr_factor, train, weights_checksum
from vggt_t_mv.weights import read_saved_input_hw


def test_a_few_steps_lower_the_loss_on_a_fixed_batch() -> None:
    rig = make_synthetic_rig(num_timesteps=2, num_cameras=2, height=28, width=42, seed=1)
    batch = WindowDataset([Sequence.from_rig(rig)], WindowConfig(2, 2, 28, 42))[0]
    batch = collate([batch])
    model = VGGTTMV(ModelConfig.tiny_two_stream())
    model.aggregator.gradient_checkpointing = False
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    losses = []
    for _ in range(8):
        loss = compute_loss(model(batch.images), batch, LossConfig())
        optimizer.zero_grad()
        loss.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.total.item())
    assert max(losses[-2:]) < 0.8 * losses[0], losses


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    cfg = TrainConfig().optim
    cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio = 10, 110, 0.1
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(60, cfg) == pytest.approx(0.55)
    assert lr_factor(110, cfg) == pytest.approx(0.1)
    assert all(lr_factor(s, cfg) >= lr_factor(s + 1, cfg) for s in range(10, 120))


def test_resume_restores_the_exact_state(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    straight = train(tiny_config(tmp_path / "straight", cache), log=lambda _: None)
    first = train(tiny_config(tmp_path / "resumed", cache), stop_after=2, log=lambda _: None)
    assert first.steps == 2 and [p.name for p in checkpoint_dirs(tmp_path / "resumed")] == ["step_000002"]
    assert first.checksums != straight.checksums
    resumed = train(tiny_config(tmp_path / "resumed", cache), resume=True, log=lambda _: None)
    assert resumed.steps == 4
    assert resumed.checksums == straight.checksums
    records = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    reference = [json.loads(line) for line in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in records] == [r["loss"] for r in reference]
    state = torch.load(checkpoint_dirs(tmp_path / "resumed")[-1] / "training_state.pt", weights_only=True)
    assert state["step"] == 4 and state["optimizer"]["state"]


def test_train_cli_writes_metrics_curve_and_loadable_weights(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(tiny_config(tmp_path / "ignored", tmp_path / "cache", max_steps=2).to_dict()))
    out = tmp_path / "run"
    result = CliRunner().invoke(
        train_command, [str(config), "--out", str(out), "--set", "model.freeze=streams", "--set", "optim.lr=2e-4"]
    )
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.output
    assert "freeze policy 'streams'" in result.output
    saved = json.loads((out / "config.json").read_text())
    assert saved["optim"]["lr"] == 2e-4 and saved["model"]["freeze"] == "streams"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    pytest.importorskip("matplotlib")
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    model = VGGTTMV.from_pretrained(out / "final")
    window = saved["data"]["window"]
    for folder in (out / "final", checkpoint_dirs(out)[-1]):  # every weights folder says what size it learned at
        assert read_saved_input_hw(folder) == (window["height"], window["width"])
    assert json.loads((out / "summary.json").read_text())["checksums"] == [weights_checksum(model)]


def test_train_cli_rejects_unknown_keys(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"optim": {"learning_rate": 1}}))
    result = CliRunner().invoke(train_command, [str(config)])
    assert result.exit_code != 0 and "learning_rate" in result.output


def test_example_configs_parse() -> None:
    pytest.importorskip("yaml")
    configs = sorted((REPO_ROOT / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        cfg = TrainConfig.from_file(path)
        for size in (cfg.data.window.height, cfg.data.window.width):
            assert size is None or size % 14 == 0  # None: from the weights and the frames' aspect
        assert cfg.model.freeze in ("auto", "new", "streams", "all")
