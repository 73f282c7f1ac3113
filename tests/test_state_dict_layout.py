"""At full size, the model's state dict is upstream VGGT-1B's, with frame/global renamed to time/view."""

from __future__ import annotations

from pathlib import Path

import torch

from vggt_t_mv import VGGTTMV, ModelConfig
from vggt_t_mv.weights import rename_vggt_keys


def read_manifest(path: Path) -> dict[str, tuple[int, ...]]:
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == ["name", "shape", "dtype"]
    manifest = {}
    for line in lines[1:]:
        name, shape, _dtype = line.split("\t")
        # "scalar" (PAGE-4D's key lists) or an empty column: a 0-dim tensor.
        manifest[name] = () if shape in ("", "scalar") else tuple(int(d) for d in shape.split("x"))
    return manifest


def test_vggt_1b_has_exactly_the_upstream_keys_and_shapes(reference_dir: Path) -> None:
    upstream = read_manifest(reference_dir / "vggt_1b.keys.tsv")
    renamed = rename_vggt_keys({name: torch.empty(0) for name in upstream})
    expected = {new: upstream[old] for old, new in zip(upstream, renamed, strict=True)}
    with torch.device("meta"):
        model = VGGTTMV(ModelConfig.vggt_1b())
    ours = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert sorted(set(expected) - set(ours)) == []
    assert sorted(set(ours) - set(expected)) == []
    assert {k: v for k, v in ours.items() if expected[k] != v} == {}
    parameters = sum(p.numel() for p in model.parameters())
    print(f"VGGTTMV(vggt_1b): {parameters:,} parameters in {len(ours)} tensors")
    assert parameters == sum(torch.Size(s).numel() for s in expected.values())
