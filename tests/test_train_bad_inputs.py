"""Bad training inputs end in one message that names the key (or file) and the fix: never a traceback, never a run
that starts anyway."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli.main import main
from tests.helpers.shared import require, shared_dir


def train(args: list[str], tmp_path: Path):
    result = CliRunner().invoke(main, ["train", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # a message, not a traceback
    assert "Traceback" not in result.output
    assert not (tmp_path / "out" / "metrics.jsonl").exists()  # nothing started
    return result.output


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    config = write(tmp_path, "model:\n  freeze: [all\noptim:\n  lr: 1e-4\n")
    output = train([config], tmp_path)
    assert "config.yaml" in output and "line" in output and "not valid YAML" in output


def test_a_yaml_tag_is_refused_with_the_fix(tmp_path: Path) -> None:
    config = write(tmp_path, "model:\n  freeze: !!python/object/apply:os.system ['echo hi']\n")
    output = train([config], tmp_path)
    assert "config.yaml" in output and "remove the tag" in output


@pytest.mark.parametrize(
    ("key", "value"),
    [("data.batch_size", "0"), ("optim.max_steps", "-3"), ("data.window.timesteps", "0"), ("data.batch_size", "-1")],
)
def test_non_positive_sizes_name_the_key(tmp_path: Path, key: str, value: str) -> None:
    config = write(tmp_path, "data:\n  kind: synthetic\n")
    output = train([config, "--set", f"{key}={value}"], tmp_path)
    assert f"{key} must be a positive whole number, got {value}" in output and "set it to 1 or more" in output


def test_non_positive_sizes_in_the_file_name_the_key(tmp_path: Path) -> None:
    config = write(tmp_path, "optim:\n  max_steps: 0\n")
    assert "optim.max_steps must be a positive whole number, got 0" in train([config], tmp_path)


def test_a_dataset_root_without_ground_truth(tmp_path: Path) -> None:
    rig = require(shared_dir() / "realdata" / "mv_page4d_rig", "the mv_page4d_rig dataset root")
    bare = tmp_path / "bare"
    shutil.copytree(rig / "images", bare / "images")
    output = train(["--data", str(bare), "--steps", "2"], tmp_path)
    assert "dataset root without ground truth" in output and "intrs/ and extrs/" in output


def test_data_without_steps_or_a_config_says_what_to_add(tmp_path: Path) -> None:
    rig = require(shared_dir() / "realdata" / "mv_page4d_rig", "the mv_page4d_rig dataset root")
    assert "--steps N" in train(["--data", str(rig)], tmp_path)
    assert "--data ROOT" in train([], tmp_path)


def test_an_unknown_validation_metric_lists_the_metrics(tmp_path: Path) -> None:
    config = write(tmp_path, "val:\n  metric: accuracy_at_5\n")
    output = train([config], tmp_path)
    assert "val.metric 'accuracy_at_5' is not a metric" in output and "ate" in output
