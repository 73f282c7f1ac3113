"""The compressed array files of a reconstruction (app/reconstruct/chunked.py): lossless for every dtype the store
compresses, rows read one by one or as slices, and a truncated or foreign file refused with what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.reconstruct.chunked import ChunkedArray, ChunkError, save_chunked
from app.reconstruct.store import ReconstructionError, check_stem


def sample(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(3)
    values = rng.normal(0, 100, (5, 2, 7, 9, 3))
    values[0, 0, 0, 0] = [np.nan, np.inf, -0.0]
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 255, (5, 2, 7, 9), dtype=dtype)
    return values.astype(dtype)


@pytest.mark.parametrize("dtype", ["uint8", "float16", "float32", "float64", "int32"])
def test_round_trip_is_bit_exact_row_by_row_and_by_slice(tmp_path: Path, dtype: str) -> None:
    value = sample(dtype)
    save_chunked(tmp_path / "a.zst", value)
    read = ChunkedArray(tmp_path / "a.zst")
    assert read.shape == value.shape and read.dtype == value.dtype and len(read) == 5
    assert np.asarray(read).tobytes() == value.tobytes()
    for t in range(-5, 5):
        assert read[t].tobytes() == value[t].tobytes()
    for rows in (slice(1, 4), slice(3, None), slice(4, 2), slice(None, None, 2)):
        assert read[rows].shape == value[rows].shape and read[rows].tobytes() == value[rows].tobytes()
    with pytest.raises(IndexError):
        read[5]


def test_float16_maps_compress(tmp_path: Path) -> None:
    """A smooth float16 map (what depth and points are) takes less than half its bytes; noise does not grow much."""
    v, u = np.mgrid[0:120, 0:160]
    smooth = (3 + 0.3 * np.sin(u / 17) * np.cos(v / 11))[None, None].astype(np.float16)
    save_chunked(tmp_path / "s.zst", np.repeat(smooth, 4, 0))
    assert (tmp_path / "s.zst").stat().st_size < 0.5 * smooth.nbytes * 4
    noise = np.random.default_rng(0).integers(0, 256, (4, 1, 120, 160), dtype=np.uint8)
    save_chunked(tmp_path / "n.zst", noise)
    assert (tmp_path / "n.zst").stat().st_size < 1.01 * noise.nbytes + 1000


def test_truncated_or_foreign_files_are_refused(tmp_path: Path) -> None:
    value = sample("float16")
    save_chunked(tmp_path / "a.zst", value)
    data = (tmp_path / "a.zst").read_bytes()
    (tmp_path / "cut.zst").write_bytes(data[: len(data) - 10])
    with pytest.raises(ChunkError, match="truncated"):
        ChunkedArray(tmp_path / "cut.zst")
    (tmp_path / "other.zst").write_bytes(b"\x28\xb5\x2f\xfd not ours")
    with pytest.raises(ChunkError, match="not a vggt-mv compressed array"):
        ChunkedArray(tmp_path / "other.zst")
    damaged = bytearray(data)  # bytes inside the last row's frame changed: its checksum no longer matches
    damaged[-20:-10] = b"\xff" * 10
    (tmp_path / "bad.zst").write_bytes(bytes(damaged))
    with pytest.raises(ChunkError, match="row 4"):
        ChunkedArray(tmp_path / "bad.zst")[4]
    with pytest.raises(ValueError, match="numbers"):
        save_chunked(tmp_path / "o.zst", np.array([[None]], dtype=object))


def test_store_check_names_the_file_and_the_shape(tmp_path: Path) -> None:
    save_chunked(tmp_path / "depth.zst", np.zeros((2, 3, 4, 5), np.float16))
    check_stem(tmp_path, "depth", (2, 3, 4, 5), compressed=True)
    with pytest.raises(ReconstructionError, match=r"depth.zst has shape \[2, 3, 4, 5\], expected \[2, 3, 4, 6\]"):
        check_stem(tmp_path, "depth", (2, 3, 4, 6), compressed=True)
    with pytest.raises(ReconstructionError, match="conf.zst is missing"):
        check_stem(tmp_path, "conf", (2, 3, 4, 5), compressed=True)
    with pytest.raises(ReconstructionError, match="conf.npy is missing"):
        check_stem(tmp_path, "conf", (2, 3, 4, 5), compressed=False)
