"""`vggt-mv weights inspect`: layout, config and load report without running (or even allocating) the model."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from app.cli.weights import weights


def invoke(*args: str):
    return CliRunner().invoke(weights, ["inspect", *args])


def test_inspect_infers_the_config_and_reports_a_complete_load(vggt_fixture_dir: Path) -> None:
    result = invoke(str(vggt_fixture_dir / "weights.safetensors"), "--strict")
    assert result.exit_code == 0, result.output
    assert "layout vggt [VGGT]" in result.output
    assert "inferred from the checkpoint's shapes" in result.output
    assert "aggregator.time_blocks" in result.output and "0 unused source tensors" in result.output


def test_inspect_names_the_page4d_layout_of_a_trainer_checkpoint(reference_dir: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    state = load_file(str(reference_dir / "page4d_tiny" / "weights.safetensors"))
    path = tmp_path / "checkpoint_150.pt"
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "prev_epoch": 150, "steps": 7}, path)
    result = invoke(str(path), "--strict")
    assert result.exit_code == 0, result.output
    assert "layout page4d_fin10 [PAGE-4D (fin10)]" in result.output
    assert "model:      PAGE-4D (fin10)" in result.output and "aggregator.spatial_mask_head" in result.output
    assert "0 unused source tensors" in result.output


def test_inspect_with_pi3_leftovers_fails_only_under_strict(reference_dir: Path) -> None:
    args = (
        str(reference_dir / "vggt_tiny" / "weights.safetensors"),
        "--pi3",
        str(reference_dir / "pi3_tiny" / "weights.safetensors"),
    )
    relaxed, strict = invoke(*args), invoke(*args, "--strict")
    assert relaxed.exit_code == 0, relaxed.output
    assert "unused in pi3 (73)" in relaxed.output
    assert strict.exit_code == 1


def test_inspect_names_a_missing_file(tmp_path: Path) -> None:
    result = invoke(str(tmp_path / "checkpoint_150.pt"))
    assert result.exit_code != 0
    assert "checkpoint_150.pt does not exist" in result.output
