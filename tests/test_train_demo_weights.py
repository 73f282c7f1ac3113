"""The bundled demo weights: a small save_pretrained folder that loads strictly, with its training record; on a
held-out synthetic rig they beat the untrained model and the trivial baselines."""

from __future__ import annotations

import json
import math

from tests.helpers.shared import REPO_ROOT
from vggt_t_mv import VGGTTMV, ModelConfig
from vggt_t_mv.eval.metrics import HIGHER_IS_BETTER

DEMO = REPO_ROOT / "assets" / "demo_weights"


def better(metric: str, a: float, b: float) -> bool:
    return a > b if HIGHER_IS_BETTER[metric] else a < b


def test_demo_weights_load_and_are_small() -> None:
    size = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert size < 30 * 2**20
    model = VGGTTMV.from_pretrained(DEMO)
    assert model.cfg == ModelConfig.tiny_two_stream()
    for name in ("train_config.json", "metrics.jsonl", "loss_curve.png", "eval_synthetic.json", "README.md"):
        assert (DEMO / name).is_file(), name
    records = [json.loads(line) for line in (DEMO / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["loss"] < 0.5 * records[0]["loss"]


def test_recorded_evaluation_beats_every_baseline_on_every_metric() -> None:
    report = json.loads((DEMO / "eval_synthetic.json").read_text())
    (results,) = report.values()
    model = next(v["means"] for k, v in results.items() if k.startswith("model"))
    others = [v["means"] for k, v in results.items() if not k.startswith("model")]
    split = {k for k in HIGHER_IS_BETTER if k.endswith(("_static", "_moving"))}  # metrics added after the recording
    assert len(others) == 2 and set(HIGHER_IS_BETTER) - split <= set(model) <= set(HIGHER_IS_BETTER)
    for metric, value in model.items():
        for other in others:
            assert better(metric, value, other[metric]), (metric, value, other[metric])


def test_demo_weights_beat_baselines_on_a_held_out_rig() -> None:
    """Re-measures on one held-out seed (the recorded table uses six)."""
    from vggt_t_mv.eval.runner import eval_windows, evaluate
    from vggt_t_mv.train.dataset import SyntheticDataConfig, synthetic_sequences

    sequences = synthetic_sequences(SyntheticDataConfig(seeds=[1000], height=112, width=154))
    dataset = eval_windows(sequences, 2, 3, 112, 154)
    model = VGGTTMV.from_pretrained(DEMO)
    trained = evaluate(model, dataset, "demo").means()
    trivial = evaluate("trivial", dataset, "trivial").means()
    for metric in ("auc30", "rpe_rot_deg", "abs_rel", "delta1", "mask_iou"):
        assert not math.isnan(trained[metric])
        assert better(metric, trained[metric], trivial[metric]), (metric, trained[metric], trivial[metric])
