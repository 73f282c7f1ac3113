"""`run`, `view`, `weights inspect`, `train` and `eval` turn the same weights options into the same model.

Each command runs for real up to the point where it asks for its model; there a recorder takes the request and
stops the command. Every recorded request is then loaded with :func:`vggt_t_mv.load_model` and the models compared:
same config, same tensor sources, same tensor values. One table of cases: checkpoint only, checkpoint + Pi3, a
save_pretrained folder, a preset around a checkpoint, random weights, the attention knobs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import app.cli.train as train_cli_module
import app.cli.view as view_module
import app.cli.weights as weights_module
import app.reconstruct.run as run_module
import vggt_t_mv.train.trainer as trainer_module
from app.cli.main import main
from tests.helpers.shared import REPO_ROOT
from vggt_t_mv import ModelConfig, WeightsSpec, load_model

DEMO_RIG = REPO_ROOT / "assets" / "demo_rig"
DEMO_WEIGHTS = REPO_ROOT / "assets" / "demo_weights"


class Asked(Exception):
    """Raised by the recorder: the command asked for its model, the test has what it needs."""


class Recorder:
    """Stands in for ``load_model`` / ``load_spec``: records the request as a dict of load_model arguments."""

    def __init__(self) -> None:
        self.requests: list[dict] = []

    def spec(self, spec: WeightsSpec, **_options) -> None:
        self.requests.append(
            {
                "config": spec.config,
                "checkpoint": spec.checkpoint,
                "pi3": spec.pi3,
                "random_weights": spec.random_weights,
                "overrides": dict(spec.overrides),
            }
        )
        raise Asked

    def model(self, config=None, checkpoint=None, pi3=None, *, random_weights=False, overrides=None, **_options):
        self.requests.append(
            {
                "config": config,
                "checkpoint": checkpoint,
                "pi3": pi3,
                "random_weights": random_weights,
                "overrides": dict(overrides or {}),
            }
        )
        raise Asked


def fingerprint(request: dict) -> tuple[str, str, str, str]:
    """(config, tensor sources, sources' paths and sha256, sha256 of every tensor) of the model a request loads."""
    loaded = load_model(**request)
    digest = hashlib.sha256()
    for name, tensor in sorted(loaded.model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to(torch.float64).contiguous().numpy().tobytes())
    sources = json.dumps(loaded.report.sources if loaded.report else None, sort_keys=True)
    provenance = json.dumps({k: vars(v) for k, v in loaded.provenance.sources.items()}, sort_keys=True)
    return json.dumps(loaded.config.to_dict(), sort_keys=True), sources, provenance, digest.hexdigest()


@pytest.fixture(scope="module")
def weights(reference_dir: Path) -> dict[str, Path]:
    return {
        "vggt": reference_dir / "vggt_tiny" / "weights.safetensors",
        "pi3": reference_dir / "pi3_tiny" / "weights.safetensors",
        "folder": DEMO_WEIGHTS,
    }


# case -> (model options of run / view / eval, `weights inspect` arguments or None, the training `model:` section)
CASES = {
    "checkpoint only": (["--checkpoint", "{vggt}"], ["{vggt}"], {"checkpoint": "{vggt}"}),
    "checkpoint + pi3": (
        ["--checkpoint", "{vggt}", "--pi3", "{pi3}"],
        ["{vggt}", "--pi3", "{pi3}"],
        {"checkpoint": "{vggt}", "pi3": "{pi3}"},
    ),
    "save_pretrained folder": (["--checkpoint", "{folder}"], ["{folder}"], {"pretrained": "{folder}"}),
    "preset around a checkpoint": (
        ["--config", "tiny_two_stream", "--checkpoint", "{vggt}"],
        ["{vggt}", "--config", "tiny_two_stream"],
        {"preset": "tiny_two_stream", "checkpoint": "{vggt}"},
    ),
    "random weights": (["--config", "tiny", "--random-weights"], None, {"preset": "tiny"}),
    "attention knobs": (
        ["--checkpoint", "{vggt}", "--time-window", "1", "--kv-pool", "2"],
        None,
        {"checkpoint": "{vggt}", "overrides": {"time_window": 1, "kv_pool": 2}},
    ),
}


def fill(items, paths: dict[str, Path]):
    if isinstance(items, dict):
        return {k: v.format(**paths) if isinstance(v, str) else v for k, v in items.items()}
    return [item.format(**paths) for item in items]


def ask(monkeypatch, target, name: str, recorder_method, invoke) -> dict:
    recorder = Recorder()
    monkeypatch.setattr(target, name, getattr(recorder, recorder_method))
    result = invoke()
    assert isinstance(result.exception, Asked), result.output
    assert len(recorder.requests) == 1
    return recorder.requests[0]


class FakeViewer:
    """Takes the live run the view command starts (instead of serving it) and records its weights."""

    requests: list[dict] = []

    def __init__(self, config) -> None:
        self.config = config

    def check_ground_truth(self) -> None:
        pass

    def start(self) -> FakeViewer:
        return self

    def run_live(self, spec) -> None:
        recorder = Recorder()
        try:
            recorder.spec(spec.model)
        finally:
            FakeViewer.requests.extend(recorder.requests)


@pytest.mark.parametrize("case", list(CASES))
def test_every_command_resolves_the_options_to_the_same_model(case, weights, monkeypatch, tmp_path) -> None:
    options, inspect_args, train_section = CASES[case]
    options, paths = fill(options, weights), weights
    runner = CliRunner()
    requests = {}

    requests["run"] = ask(
        monkeypatch,
        run_module,
        "load_spec",
        "spec",
        lambda: runner.invoke(main, ["run", str(DEMO_RIG), "--out", str(tmp_path / "recon"), *options]),
    )

    FakeViewer.requests = []
    monkeypatch.setattr(view_module, "Viewer", FakeViewer)
    result = runner.invoke(main, ["view", str(DEMO_RIG), "--no-browser", "--out", str(tmp_path / "v"), *options])
    assert isinstance(result.exception, Asked), result.output
    requests["view"] = FakeViewer.requests[-1]

    if inspect_args is not None:
        requests["weights inspect"] = ask(
            monkeypatch,
            weights_module,
            "load_model",
            "model",
            lambda: runner.invoke(main, ["weights", "inspect", *fill(inspect_args, paths)]),
        )

    config = tmp_path / "train.json"
    config.write_text(json.dumps({"model": fill(train_section, paths), "run": {"out": str(tmp_path / "train")}}))
    requests["train"] = ask(
        monkeypatch, trainer_module, "load_model", "model", lambda: runner.invoke(main, ["train", str(config)])
    )

    eval_args = [str(DEMO_WEIGHTS)] if case == "save_pretrained folder" else options
    requests["eval"] = ask(
        monkeypatch,
        train_cli_module,
        "load_spec",
        "spec",
        lambda: runner.invoke(main, ["eval", *eval_args, "--gt", "synthetic:1"]),
    )

    monkeypatch.undo()
    prints = {command: fingerprint(request) for command, request in requests.items()}
    reference = prints["run"]
    assert {command: p == reference for command, p in prints.items()} == {command: True for command in prints}


def test_the_cases_mean_what_their_names_say(weights) -> None:
    # the table above is not vacuous: the six cases give six different models
    checkpoint_only = load_model(checkpoint=weights["vggt"])
    with_pi3 = load_model(checkpoint=weights["vggt"], pi3=weights["pi3"])
    folder = load_model(checkpoint=weights["folder"])
    preset = load_model("tiny_two_stream", weights["vggt"])
    random = load_model("tiny", random_weights=True)
    assert checkpoint_only.provenance.config_origin == "inferred from the checkpoint's shapes"
    assert "pi3" in with_pi3.report.layouts and with_pi3.provenance.sources["pi3"].sha256
    assert folder.provenance.sources["checkpoint"].kind == "folder" and folder.report.new == []
    assert preset.config == ModelConfig.tiny_two_stream() and preset.report.new  # the two-stream parts are new
    assert random.report is None and random.provenance.random_weights
    fingerprints = {
        fingerprint(r)
        for r in (
            {"checkpoint": weights["vggt"]},
            {"checkpoint": weights["vggt"], "pi3": weights["pi3"]},
            {"checkpoint": weights["folder"]},
            {"config": "tiny_two_stream", "checkpoint": weights["vggt"]},
            {"config": "tiny", "random_weights": True},
            {"checkpoint": weights["vggt"], "overrides": {"time_window": 1, "kv_pool": 2}},
        )
    }
    assert len(fingerprints) == 6
