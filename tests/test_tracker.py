"""TrackerPredictor against the upstream-generated vggt_tiny fixture and the VGGT-1B key layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.shared import require
from vggt_t_mv.heads.tracker import TrackerPredictor

TRACKER_MODULE = "track_head.tracker (derived, built by TrackHead)"
PREFIX = "track_head.tracker."
ATOL = 1e-3

# Upstream TrackHead/BaseTrackerPredictor arguments of VGGT-1B.
ARGS_1B = {
    "latent_dim": 128,
    "hidden_size": 384,
    "corr_levels": 7,
    "corr_radius": 4,
    "stride": 2,
    "depth": 6,
    "num_heads": 8,
    "num_virtual_tracks": 64,
    "max_scale": 518,
    "predict_conf": True,
    "mlp_ratio": 4.0,
}


@pytest.fixture(scope="module")
def fixture_dir(vggt_fixture_dir: Path) -> Path:
    return vggt_fixture_dir


@pytest.fixture(scope="module")
def config(fixture_dir: Path) -> dict:
    return json.loads((fixture_dir / "config.json").read_text())


@pytest.fixture(scope="module")
def tracker(fixture_dir: Path, config: dict) -> TrackerPredictor:
    cfg = config["modules"][TRACKER_MODULE]
    former = cfg["updateformer"]
    assert former["time_depth"] == former["space_depth"] == cfg["depth"]
    assert former["hidden_size"] == cfg["hidden_size"]
    assert cfg["use_spaceatt"]
    assert former["add_space_attn"]
    model = TrackerPredictor(
        latent_dim=cfg["latent_dim"],
        hidden_size=cfg["hidden_size"],
        corr_levels=cfg["corr_levels"],
        corr_radius=cfg["corr_radius"],
        stride=cfg["stride"],
        depth=cfg["depth"],
        num_heads=former["num_heads"],
        num_virtual_tracks=former["num_virtual_tracks"],
        max_scale=cfg["max_scale"],
        predict_conf=cfg["predict_conf"],
        mlp_ratio=former["mlp_ratio"],
    )
    weights = load_file(str(fixture_dir / "weights.safetensors"))
    state = {k[len(PREFIX) :]: v for k, v in weights.items() if k.startswith(PREFIX)}
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.mark.parametrize("io_name", ["io.safetensors", "io_s1.safetensors"])
def test_tracker_matches_fixture(fixture_dir: Path, config: dict, tracker: TrackerPredictor, io_name: str):
    io = load_file(str(fixture_dir / io_name))
    iters = config["modules"]["track_head"]["iters"]
    assert config["modules"]["track_head"]["predict_conf"] is True
    with torch.no_grad():
        coord_preds, vis, conf = tracker(io["query_points"], io["track_feature_maps"], iters)

    assert len(coord_preds) == iters == io["track_list"].shape[0]
    assert conf is not None
    got = {"track_list": torch.stack(coord_preds), "track": coord_preds[-1], "vis": vis, "conf": conf}
    for name, value in got.items():
        ref = io[name]
        assert value.shape == ref.shape, name
        diff = (value - ref).abs().max().item()
        assert diff <= ATOL, f"{io_name} {name}: max abs diff {diff:.3g}"
    # frame 0 is pinned to the query in every iteration
    for coords in coord_preds:
        torch.testing.assert_close(coords[:, 0], io["query_points"], atol=1e-5, rtol=0)


def _read_keys(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in path.read_text().splitlines()[1:]:
        name, shape, _ = line.split("\t")
        if name.startswith(PREFIX):
            rows.append((name[len(PREFIX) :], tuple(int(d) for d in shape.split("x"))))
    return rows


def test_tracker_keys_match_vggt_1b(reference_dir: Path):
    keys_path = require(reference_dir / "vggt_1b.keys.tsv", "VGGT-1B key list")
    expected = _read_keys(keys_path)
    assert expected, "no track_head.tracker keys in the key list"
    with torch.device("meta"):
        model = TrackerPredictor(**ARGS_1B)
    got = [(name, tuple(t.shape)) for name, t in model.state_dict().items()]
    assert got == expected
