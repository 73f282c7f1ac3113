"""What a reconstruction stores per window, declared once: each array's shape, its codec in format 3, what a
window's Sim(3) does to it on read, and its format-2 dtype. :mod:`app.reconstruct.store` reads and writes every
array through this table, so a new array is one :class:`ArraySpec` line (plus its precision test), not code.

Codecs (format 3; worst-case error of what is read back against the float32 the pipeline computed):

==================  =====================================================================================
``exact``           stored as computed (``dtype``): no error
``float16``         relative error <= 2**-11 (4.9e-4); beyond 65504 (float16's largest) saturates at 65504
``unit_uint8``      a probability in [0, 1] as round(255 p): absolute error <= 1/510 (2.0e-3)
``offset_float16``  points ``[..., H, W, 3]`` as float16 offsets from a float32 origin per image (``<name>_origin``,
                    ``[T, N, 3]``: the image's camera centre): per coordinate error <= 2**-11 of the point's distance
                    from its camera, plus float32 rounding (1e-7 of the coordinates); offsets beyond 65504 saturate
==================  =====================================================================================

Files: an array's codec output is saved as ``<name>.npy`` (memory-mapped on read), or, when its spec says
``compressed``, as ``<name>.zst``: one zstd frame per timestep of the byte-shuffled values
(:mod:`app.reconstruct.chunked`), lossless, so the error bounds above are unchanged. A reader takes whichever of the
two files a window has (windows written before compression have ``.npy`` files). Compressed: the float16 maps and
the uint8 mask, which compress (on a tiny model's output at 154 px: depth to 54 %, confidences 55 % and 26 %,
point offsets 60 %, mask 12 %); not the images (79 % there, about 90 % on camera footage, for the most CPU) nor the
few bytes of cameras and origins.

Motions (format 3 stores depth and point maps in the window's own frame and its Sim(3) ``y = s R x + t`` in
``window.json``; the reader applies it): ``points`` -> ``s R x + t``, ``scale`` -> ``s x`` (depth), ``none``
(images, confidences, masks; the cameras are stored in the stitched frame already). A relative error bound holds
after the motion unchanged (in the stitched frame's units).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from app.common.vocab import ArrayCodec, FrameMotion
from vggt_t_mv.npgeometry import Sim3, camera_centers

FLOAT16_MAX = float(np.finfo(np.float16).max)
ORIGIN_SUFFIX = "_origin"  # offset_float16's second file: <name>_origin.npy, float32 [T, N, 3]


class StoredRows(Protocol):
    """A stored file as :func:`decode` reads it: indexed by a row or a slice of rows (a ``.npy`` memory-map, an array,
    or a :class:`app.reconstruct.chunked.ChunkedArray`)."""

    def __getitem__(self, rows: Any, /) -> Any: ...


@dataclass(frozen=True)
class ArraySpec:
    """One reconstruction array. ``trailing(h, w)``: its shape after ``[T, N]`` for model images of ``h x w``;
    ``dtype``: as computed (and as read back); ``codec``/``motion``: format 3 (module docstring); ``dtype_v2``:
    format 2's file dtype; ``optional``: a model may not predict it; ``derived``: computed on read, never stored;
    ``computed``: computed from the stored depth and cameras by the store when it writes a window (format 3), read
    where a window has it, else computed on read (formats 1, 2, format-3 windows written before it existed)."""

    name: str
    trailing: Callable[[int, int], tuple[int, ...]]
    codec: ArrayCodec = "exact"
    motion: FrameMotion = "none"
    dtype: type = np.float32
    dtype_v2: type = np.float32
    optional: bool = False
    derived: bool = False
    compressed: bool = False
    computed: bool = False

    def files(self) -> tuple[str, ...]:
        """The file stems format 3 writes for this array (``.npy`` each)."""
        if self.derived:
            return ()
        return (self.name, self.name + ORIGIN_SUFFIX) if self.codec == "offset_float16" else (self.name,)

    def file_shapes(self, length: int, num_cameras: int, hw: tuple[int, int]) -> dict[str, tuple[int, ...]]:
        """Format 3: each file's shape for ``length`` timesteps."""
        shape = (length, num_cameras, *self.trailing(*hw))
        out = {self.name: shape}
        if self.codec == "offset_float16":
            out[self.name + ORIGIN_SUFFIX] = (length, num_cameras, 3)
        return out


def _image(h: int, w: int) -> tuple[int, ...]:
    return (h, w)


SPECS: tuple[ArraySpec, ...] = (
    ArraySpec("images", lambda h, w: (h, w, 3), dtype=np.uint8, dtype_v2=np.uint8),
    ArraySpec("depth", _image, codec="float16", motion="scale", compressed=True),
    ArraySpec("depth_conf", _image, codec="float16", dtype_v2=np.float16, compressed=True),
    ArraySpec("world_points", lambda h, w: (h, w, 3), codec="offset_float16", motion="points", compressed=True),
    ArraySpec("world_points_conf", _image, codec="float16", dtype_v2=np.float16, compressed=True),
    ArraySpec("world_points_from_depth", lambda h, w: (h, w, 3), derived=True),
    ArraySpec("extrinsics", lambda h, w: (3, 4)),
    ArraySpec("intrinsics", lambda h, w: (3, 3)),
    ArraySpec("dynamic_mask", _image, codec="unit_uint8", dtype_v2=np.float16, optional=True, compressed=True),
    ArraySpec("views_agree", _image, dtype=np.uint8, dtype_v2=np.uint8, computed=True, compressed=True),
)
SPEC = {spec.name: spec for spec in SPECS}


def compressed_stem(stem: str) -> bool:
    """Format 3 saves file ``stem`` (an array's name, or its ``_origin``) compressed (``.zst``)."""
    spec = SPEC.get(stem)
    return spec is not None and spec.compressed


# ------------------------------------------------------------------------------------------------ conversions
def to_float16(value: np.ndarray) -> np.ndarray:
    """float16, saturating at +-65504 instead of overflowing to infinity. Through torch: the same round to nearest
    even as numpy's, but without numpy's 20x slowdown on values that become float16 subnormals."""
    single = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    return single.clamp(-FLOAT16_MAX, FLOAT16_MAX).to(torch.float16).numpy()


def stored_form_v2(name: str, value: np.ndarray) -> np.ndarray:
    """``value`` as format 2 stores array ``name`` (C-contiguous, :attr:`ArraySpec.dtype_v2`; float16 saturates).
    Returns ``value`` itself when it already is."""
    dtype = np.dtype(SPEC[name].dtype_v2)
    if dtype == np.float16 and value.dtype != np.float16:
        return to_float16(value)
    return np.ascontiguousarray(value, dtype=dtype)


def encode(spec: ArraySpec, value: np.ndarray, origin: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Array ``value [T, N, ...]`` -> format 3's files ``{stem: array}``. ``origin [T, N, 3]``: the offsets' origin
    (``offset_float16`` only)."""
    if spec.codec == "exact":
        return {spec.name: np.ascontiguousarray(value, dtype=spec.dtype)}
    if spec.codec == "float16":
        return {spec.name: to_float16(value)}
    if spec.codec == "unit_uint8":
        single = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        return {spec.name: single.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()}
    if origin is None:
        raise ValueError(f"{spec.name}: the offset_float16 codec needs an origin per image")
    origin32 = np.ascontiguousarray(origin, dtype=np.float32)
    points = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    offsets = points - torch.from_numpy(origin32)[:, :, None, None, :]
    half = offsets.clamp_(-FLOAT16_MAX, FLOAT16_MAX).to(torch.float16).numpy()
    return {spec.name: half, spec.name + ORIGIN_SUFFIX: origin32}


def decode(spec: ArraySpec, files: Mapping[str, StoredRows], rows: slice | int) -> np.ndarray:
    """Format 3's files of array ``spec`` (memory-maps or arrays ``[T, N, ...]``) -> the array's rows ``rows`` in
    its computed dtype, in the frame it was stored in (see :func:`move`)."""
    stored = files[spec.name][rows]
    if spec.codec == "exact":
        return stored
    if spec.codec == "float16":
        return stored if spec.dtype == np.float16 else np.asarray(stored, np.float32)
    if spec.codec == "unit_uint8":
        return np.asarray(stored, np.float32) / np.float32(255.0)
    origin = np.asarray(files[spec.name + ORIGIN_SUFFIX][rows], np.float32)
    out = np.asarray(stored, np.float32)  # a new array: added to in place
    out += origin[..., None, None, :]
    return out


def move(spec: ArraySpec, value: np.ndarray, sim3: Sim3) -> np.ndarray:
    """Array ``value`` in a window's frame -> the stitched frame by the window's ``sim3`` (``value`` itself when
    nothing moves)."""
    if spec.motion == "none" or sim3.is_identity():
        return value
    if spec.motion == "scale":
        return value * np.asarray(sim3.scale, value.dtype)
    return sim3.apply(value)


def move_back(spec: ArraySpec, value: np.ndarray, sim3: Sim3) -> np.ndarray:
    """The inverse of :func:`move`: an array given in the stitched frame -> the window's frame."""
    return move(spec, value, sim3.inverse())


def camera_origin(extrinsics: np.ndarray, to_stitched: Sim3) -> np.ndarray:
    """The ``offset_float16`` origin of each image: its camera centre in the window's frame, from stitched-frame
    ``extrinsics [T, N, 3, 4]`` and the window's Sim(3); float32 ``[T, N, 3]``."""
    centres = camera_centers(np.asarray(extrinsics, np.float64))
    return to_stitched.inverse().apply(centres).astype(np.float32)
