"""The on-disk Reconstruction: layout, merge rule on read, atomic windows, partial reads, version check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.reconstruct.store import FORMAT_VERSION, Reconstruction, ReconstructionError

SPANS = [(0, 4), (2, 6), (4, 8)]
N, H, W = 2, 3, 5


def window_arrays(index: int, span: tuple[int, int]) -> dict[str, np.ndarray]:
    """Arrays whose every value encodes (window, timestep, camera) so reads can be traced to their source."""
    length = span[1] - span[0]
    stamp = np.array([[100 * index + 10 * (span[0] + i) + n for n in range(N)] for i in range(length)], np.float32)

    def filled(*trailing: int) -> np.ndarray:
        return np.broadcast_to(stamp.reshape(length, N, *([1] * len(trailing))), (length, N, *trailing)).copy()

    return {
        "images": filled(H, W, 3).astype(np.uint8),
        "depth": filled(H, W),
        "depth_conf": filled(H, W),
        "world_points": filled(H, W, 3),
        "world_points_conf": filled(H, W),
        "extrinsics": filled(3, 4),
        "intrinsics": filled(3, 3),
    }


def make(root: Path, windows: int = 3) -> Reconstruction:
    recon = Reconstruction.create(root, {"camera_names": ["a", "b"], "image_hw": [H, W], "spans": SPANS})
    for index in range(windows):
        recon.write_window(index, window_arrays(index, SPANS[index]), {"alignment": {"kind": "test"}})
    return recon


def test_layout_and_merge_rule_on_read(tmp_path: Path) -> None:
    make(tmp_path / "r")
    recon = Reconstruction.open(tmp_path / "r")
    assert recon.num_timesteps == 8 and recon.camera_names == ["a", "b"]
    assert sorted(p.name for p in (tmp_path / "r" / "windows").iterdir()) == ["00000", "00001", "00002"]
    depth = recon.load("depth")
    assert depth.shape == (8, N, H, W)
    # timestep -> window: 0,1,2 from window 0; 3,4 from window 1; 5,6,7 from window 2 (overlaps split in half)
    source_window = (depth[:, 0, 0, 0] // 100).astype(int).tolist()
    assert source_window == [0, 0, 0, 1, 1, 2, 2, 2]
    assert ((depth[:, 1, 0, 0] % 100 - 1) / 10).astype(int).tolist() == list(range(8))  # timestep t at index t
    one = recon.get("images", 6)  # stored as computed: a view of the memory-mapped file
    assert isinstance(one.base, np.memmap) or isinstance(one, np.memmap)
    assert recon.get("world_points", 6).shape == (N, H, W, 3)  # decoded (format 3)
    assert recon.load("extrinsics", [3, 0]).shape == (2, N, 3, 4)
    assert json.loads((tmp_path / "r" / "meta.json").read_text())["format_version"] == FORMAT_VERSION
    assert len(recon.meta["alignment"]) == 3


def test_partial_reconstruction_reads_complete_windows(tmp_path: Path) -> None:
    recon = make(tmp_path / "r", windows=2)
    # a window being written (temporary folder) is invisible
    (tmp_path / "r" / "windows" / ".00002.tmp-1").mkdir()
    reader = Reconstruction.open(tmp_path / "r")
    assert reader.num_timesteps == 5  # window 1 stores the timesteps it owns, 3 and 4 (window 2 will store 5..7)
    assert reader.load("depth").shape[0] == 5
    with pytest.raises(IndexError, match="5 complete timesteps"):
        reader.get("depth", 5)
    with pytest.raises(ReconstructionError, match="out of order"):
        recon.write_window(0, window_arrays(0, SPANS[0]), {})
    recon.discard_incomplete()
    assert not (tmp_path / "r" / "windows" / ".00002.tmp-1").exists()


def test_window_with_wrong_shape_is_refused_and_not_committed(tmp_path: Path) -> None:
    recon = make(tmp_path / "r", windows=0)
    arrays = window_arrays(0, SPANS[0])
    arrays["depth"] = arrays["depth"][:3]
    with pytest.raises(ValueError, match="depth has shape"):
        recon.write_window(0, arrays, {})
    assert Reconstruction.open(tmp_path / "r").num_timesteps == 0


def test_other_format_version_is_a_clear_error(tmp_path: Path) -> None:
    make(tmp_path / "r", windows=1)
    meta = json.loads((tmp_path / "r" / "meta.json").read_text())
    meta["format_version"] = FORMAT_VERSION + 1
    (tmp_path / "r" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ReconstructionError, match=f"format version {FORMAT_VERSION + 1}.*reads versions"):
        Reconstruction.open(tmp_path / "r")
    with pytest.raises(ReconstructionError, match="not a reconstruction"):
        Reconstruction.open(tmp_path)


def test_create_refuses_existing_outputs(tmp_path: Path) -> None:
    make(tmp_path / "r", windows=1)
    with pytest.raises(ReconstructionError, match="already holds a reconstruction.*--overwrite"):
        make(tmp_path / "r")
    meta = {"camera_names": ["a", "b"], "image_hw": [H, W], "spans": SPANS}
    replaced = Reconstruction.create(tmp_path / "r", meta, overwrite=True)
    assert replaced.num_timesteps == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    with pytest.raises(ReconstructionError, match="not empty and holds no reconstruction"):
        Reconstruction.create(other, {}, overwrite=True)
    assert (other / "precious.txt").exists()
