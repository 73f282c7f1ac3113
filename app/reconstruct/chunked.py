"""Compressed arrays of a reconstruction window: one zstd frame per timestep, lossless.

A ``<stem>.zst`` file holds an array ``[T, ...]`` (a window's held timesteps first) as::

    b"VGGTMVZ1"                       magic (8 bytes)
    uint32 little-endian              length of the JSON header that follows
    JSON header                       {"dtype": "<f2", "shape": [T, ...], "shuffle": true, "chunks": [bytes per row]}
    T zstd frames                     row t: its bytes, byte-shuffled (byte k of every value, then byte k + 1, ...)
                                      when ``shuffle``, compressed at level 1 with a checksum (damage is caught when
                                      the row is read); the frames follow each other

Byte shuffling puts the sign/exponent bytes of float16 values together, which is what makes float16 maps compress
(the low mantissa bytes are nearly noise). Reading a row decompresses that row's frame only, so one timestep of a
window costs one frame (:class:`ChunkedArray` indexes like the memory-map of a ``.npy``). The codec is lossless: what
is read back is bit for bit what was written.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import zstandard

SUFFIX = ".zst"
MAGIC = b"VGGTMVZ1"
LEVEL = 1  # zstd's fastest standard level: the writer thread must keep up with the pipeline


class ChunkError(ValueError):
    """A ``.zst`` array file that is not complete or not one of ours (the message says what; the caller names it)."""


def _shuffled(row: np.ndarray) -> np.ndarray:
    """Bytes of ``row`` as ``[itemsize, values]`` planes (byte k of every value together), flat uint8."""
    size = row.dtype.itemsize
    if size == 1:
        return row.reshape(-1).view(np.uint8)
    values = row.reshape(-1).view(np.uint8).reshape(-1, size)
    planes = np.empty((size, values.shape[0]), np.uint8)
    for k in range(size):
        planes[k] = values[:, k]
    return planes.reshape(-1)


def _unshuffled(data: bytes, dtype: np.dtype, count: int) -> np.ndarray:
    """The inverse of :func:`_shuffled`: ``count`` values of ``dtype`` from their byte planes."""
    raw = np.frombuffer(data, np.uint8)
    size = dtype.itemsize
    if size == 1:
        return raw.view(dtype).copy()
    planes = raw.reshape(size, count)
    values = np.empty((count, size), np.uint8)
    for k in range(size):
        values[:, k] = planes[k]
    return values.reshape(-1).view(dtype)


def write_chunked(handle: BinaryIO, value: np.ndarray) -> None:
    """Write array ``value [T, ...]`` (numbers, any shape with a leading row axis) to the open binary ``handle``."""
    value = np.ascontiguousarray(value)
    if value.ndim == 0 or value.dtype.hasobject or value.dtype.kind not in "biuf":
        raise ValueError(f"only arrays of numbers with a row axis are stored chunked, not {value.dtype} {value.shape}")
    shuffle = value.dtype.itemsize > 1
    compressor = zstandard.ZstdCompressor(level=LEVEL, write_checksum=True)
    frames = [compressor.compress((_shuffled(row) if shuffle else row.reshape(-1)).tobytes()) for row in value]
    header = {
        "dtype": value.dtype.str,
        "shape": list(value.shape),
        "shuffle": shuffle,
        "chunks": [len(frame) for frame in frames],
    }
    text = json.dumps(header).encode("ascii")
    handle.write(MAGIC + struct.pack("<I", len(text)) + text)
    for frame in frames:
        handle.write(frame)


def save_chunked(path: Path, value: np.ndarray) -> None:
    """:func:`write_chunked` into the file ``path`` (created or replaced)."""
    with open(path, "wb") as handle:
        write_chunked(handle, value)


class ChunkedArray:
    """A ``.zst`` array opened for reading: ``shape``, ``dtype``, ``len``, and indexing by a row or a slice of rows
    (``[t]`` -> ``[...]``, ``[a:b]`` -> ``[b - a, ...]``, a fresh array each time); ``np.asarray`` reads every row.
    Opening checks the header and that the file holds every byte it promises (:class:`ChunkError` if not)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as handle:
            head = handle.read(len(MAGIC) + 4)
            if len(head) < len(MAGIC) + 4 or head[: len(MAGIC)] != MAGIC:
                raise ChunkError("is not a vggt-mv compressed array (no VGGTMVZ1 header)")
            (length,) = struct.unpack("<I", head[len(MAGIC) :])
            text = handle.read(length)
        try:
            header = json.loads(text.decode("ascii"))
            self.dtype = np.dtype(header["dtype"])
            self.shape = tuple(int(v) for v in header["shape"])
            chunks = [int(v) for v in header["chunks"]]
            self.shuffle = bool(header["shuffle"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
            raise ChunkError(f"has a damaged header ({error})") from error
        if self.dtype.hasobject or self.dtype.kind not in "biuf":
            raise ChunkError(f"holds values of type {self.dtype}, not numbers")
        if not self.shape or len(chunks) != self.shape[0] or min(chunks, default=0) < 0:
            raise ChunkError(f"has a damaged header ({len(chunks)} chunks for shape {list(self.shape)})")
        self.offsets = np.concatenate([[0], np.cumsum(chunks, dtype=np.int64)]) + len(MAGIC) + 4 + length
        size = self.path.stat().st_size
        if size < int(self.offsets[-1]):
            raise ChunkError(f"is truncated ({size} of {int(self.offsets[-1])} bytes)")
        self.row_values = int(np.prod(self.shape[1:], dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def _rows(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((max(stop - start, 0), *self.shape[1:]), self.dtype)
        if stop <= start:
            return out
        decompressor = zstandard.ZstdDecompressor()
        size = self.row_values * self.dtype.itemsize
        with open(self.path, "rb") as handle:
            handle.seek(int(self.offsets[start]))
            data = handle.read(int(self.offsets[stop] - self.offsets[start]))
        for t in range(start, stop):
            begin, end = (int(self.offsets[i] - self.offsets[start]) for i in (t, t + 1))
            try:
                raw = decompressor.decompress(data[begin:end], max_output_size=size)
            except zstandard.ZstdError as error:
                raise ChunkError(f"row {t} does not decompress ({error})") from error
            if len(raw) != size:
                raise ChunkError(f"row {t} holds {len(raw)} bytes, expected {size}")
            row = _unshuffled(raw, self.dtype, self.row_values) if self.shuffle else np.frombuffer(raw, self.dtype)
            out[t - start] = row.reshape(self.shape[1:])
        return out

    def __getitem__(self, rows: int | slice) -> np.ndarray:
        if isinstance(rows, slice):
            start, stop, step = rows.indices(self.shape[0])
            if step != 1:
                return self._rows(0, self.shape[0])[rows]
            return self._rows(start, stop)
        index = int(rows)
        if not -self.shape[0] <= index < self.shape[0]:
            raise IndexError(f"row {index} of {self.shape[0]} in {self.path}")
        index %= self.shape[0]
        return self._rows(index, index + 1)[0]

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        whole = self._rows(0, self.shape[0])
        return whole if dtype is None else whole.astype(dtype)
