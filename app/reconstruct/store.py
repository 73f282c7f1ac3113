"""The on-disk Reconstruction: a folder written window by window, read back without the model.

Layout (format version :data:`FORMAT_VERSION` = 2)::

    RECON/
      meta.json                 format + version, capture description, model config and checkpoint sha256,
                                window settings and spans, preprocessing, per-window alignment, rig report
      windows/00000/            one folder per finished window, committed by an atomic rename
        window.json             index, span [start, end) in timesteps, Sim(3) alignment, timing
        images.npy              uint8   [Tw, N, H, W, 3]   model-resolution RGB (colours)
        depth.npy               float32 [Tw, N, H, W]      geo stream depth (scaled with the window)
        depth_conf.npy          float16 [Tw, N, H, W]      its confidence (also the pose stream's)
        world_points.npy        float32 [Tw, N, H, W, 3]   geo stream: the point head's map
        world_points_conf.npy   float16 [Tw, N, H, W]
        extrinsics.npy          float32 [Tw, N, 3, 4]      OpenCV camera-from-world
        intrinsics.npy          float32 [Tw, N, 3, 3]      model pixels (see meta "preprocess" for the originals)
        dynamic_mask.npy        float16 [Tw, N, H, W]      probability, only when the model predicts it

``world_points_from_depth`` (float32 ``[Tw, N, H, W, 3]``, the pose stream: depth unprojected with the cameras) is
not stored: every reader (:meth:`Reconstruction.get`, :meth:`~Reconstruction.load`,
:meth:`~Reconstruction.window_arrays`) derives it from ``depth``, ``extrinsics`` and ``intrinsics``
(:func:`derive_world_points`), so it always follows the stored cameras (also after ``--rigid-rig``).

Precision of what is read back against what the pipeline computed in float32 (``tests/test_store_format.py``):

==========================  ============================================================================
images, depth, world_points exact (uint8 / float32 stored as computed)
extrinsics, intrinsics      exact (float32)
depth_conf,                 float16: relative error <= 2**-11 (4.9e-4); values beyond 65504 (float16's
world_points_conf           largest) saturate at 65504. Confidences only rank pixels (percentile filters,
                            alignment weights), so this changes no decision that matters
dynamic_mask                float16: absolute error <= 2**-12 (2.4e-4) on [0, 1]
world_points_from_depth     derived in float32 from the exact depth and cameras: equal to unprojecting then
                            moving by the window's Sim(3) (format 1's order) up to float32 rounding,
                            relative 1e-5 of the scene's extent
==========================  ============================================================================

Not float16: ``depth`` and ``world_points`` (and the cameras). World points are coordinates in the first camera's
frame: float16's 11-bit mantissa gives steps of 1/2048 of the distance from that origin (5 cm at 100 units, and
nothing above 65504), too coarse for meshes and COLMAP; depth is unbounded in model units and the pose-stream points
come from it, so its 0.05 % steps would show as terraces on surfaces.

Format version 1 (before issue 16) stored ``world_points_from_depth.npy`` and float32 confidences; it is read as
it was written (the stored pose-stream points, not derived ones), so old reconstructions open, view and export
unchanged. It cannot be resumed by this version (``--overwrite`` starts again).

Everything is in the frame of camera 0 at the first timestep (metres when a calibration was given).
Windows overlap; each timestep is read from one window by the merge rule of :mod:`app.reconstruct.stitching`.
Every ``.npy`` opens memory-mapped. A window folder is written under a temporary name and renamed when
complete, so a reader (or ``--resume``) only ever sees complete windows; reading a partially written
reconstruction gives the timesteps of its complete windows.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from app.common.atomic import atomic_file, write_failure_cause, write_json_atomic
from app.common.paths import file_ancestor
from app.reconstruct.stitching import owned_ranges
from vggt_t_mv.geometry import depth_to_world_points

FORMAT_NAME = "vggt-mv-reconstruction"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
ARRAY_NAMES = (  # what readers can ask for, stored or derived
    "images",
    "depth",
    "depth_conf",
    "world_points",
    "world_points_conf",
    "world_points_from_depth",
    "extrinsics",
    "intrinsics",
    "dynamic_mask",
)
DERIVED_ARRAYS = ("world_points_from_depth",)  # format 2: computed on read (module docstring)
STORED_ARRAYS = tuple(name for name in ARRAY_NAMES if name not in DERIVED_ARRAYS)  # what format 2 writes
ARRAY_DTYPES = {  # format 2 on disk; others float32
    "images": np.uint8,
    "depth_conf": np.float16,
    "world_points_conf": np.float16,
    "dynamic_mask": np.float16,
}
OPTIONAL_ARRAYS = ("dynamic_mask",)
FLOAT16_MAX = float(np.finfo(np.float16).max)
# stream name -> (points, confidence) arrays; the viewer toggles between them
STREAMS = {"geo": ("world_points", "world_points_conf"), "pose": ("world_points_from_depth", "depth_conf")}


LOCK_NAME = ".vggt-mv.lock"  # held by the run writing the folder (app.reconstruct.lock); never deleted by it


class ReconstructionError(ValueError):
    """A reconstruction folder that cannot be used as asked; the message says why and what to do."""


# name -> trailing shape after [Tw, N] for model images of H x W
ARRAY_TRAILING = {
    "images": lambda h, w: (h, w, 3),
    "depth": lambda h, w: (h, w),
    "depth_conf": lambda h, w: (h, w),
    "world_points": lambda h, w: (h, w, 3),
    "world_points_conf": lambda h, w: (h, w),
    "world_points_from_depth": lambda h, w: (h, w, 3),
    "extrinsics": lambda h, w: (3, 4),
    "intrinsics": lambda h, w: (3, 3),
    "dynamic_mask": lambda h, w: (h, w),
}


def check_npy(path: Path, shape: tuple[int, ...]) -> None:
    """Raise :class:`ReconstructionError` unless ``path`` is a complete ``.npy`` file of ``shape``: present, a
    readable header, numbers (never pickled Python objects), that shape, and as many bytes as the header promises (a
    truncated copy is caught here, not as garbage or a crash when it is memory-mapped)."""
    if not path.is_file():
        raise ReconstructionError(f"{path} is missing")
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                found, _, dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                found, _, dtype = np.lib.format.read_array_header_2_0(handle)
            offset = handle.tell()
        size = path.stat().st_size
    except (ValueError, OSError, EOFError) as error:
        raise ReconstructionError(f"{path} is not a readable .npy file ({error})") from error
    if dtype.hasobject or dtype.kind not in "biuf":
        what = "Python objects (a pickled array)" if dtype.hasobject else f"values of type {dtype}"
        raise ReconstructionError(f"{path} holds {what}, not the numbers a reconstruction stores")
    if tuple(found) != tuple(shape):
        raise ReconstructionError(f"{path} has shape {list(found)}, expected {list(shape)}")
    expected = offset + int(np.prod(found, dtype=np.int64)) * dtype.itemsize
    if size < expected:
        raise ReconstructionError(f"{path} is truncated ({size} of {expected} bytes)")


def _meta_problem(meta: dict) -> str | None:
    """What is wrong with the fields of a meta.json every reader relies on, or None."""
    names, hw, spans = meta.get("camera_names"), meta.get("image_hw"), meta.get("spans")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return "camera_names must be a list of camera names"
    if not isinstance(hw, list) or len(hw) != 2 or not all(isinstance(v, int) and v > 0 for v in hw):
        return "image_hw must be [height, width]"
    if not isinstance(spans, list) or not all(
        isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) for v in s) and 0 <= s[0] < s[1] for s in spans
    ):
        return "spans must be a list of [start, end) timestep pairs"
    if not isinstance(meta.get("capture", {}), dict) or not isinstance(meta.get("alignment", []), list):
        return "capture must be an object and alignment a list"
    return None


class StoreWriteError(ReconstructionError):
    """Writing to the reconstruction folder failed (disk full, read-only, permissions); what was complete is kept."""


def write_failure(path: Path, error: OSError) -> StoreWriteError:
    """The error for a failed write of ``path``: what the system said and what to do."""
    reason, fix = write_failure_cause(path, error) or (str(error), "check the disk and the folder")
    return StoreWriteError(f"cannot write {path} ({reason}); {fix}, then continue with --resume")


def _remove(path: Path) -> None:
    """Remove a temporary file or folder, quietly (it is being cleaned up after a failure)."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        with contextlib.suppress(OSError):
            path.unlink()


def _window_dir_name(index: int) -> str:
    return f"{index:05d}"


def stored_form(name: str, value: np.ndarray) -> np.ndarray:
    """``value`` as format 2 stores array ``name`` (C-contiguous, :data:`ARRAY_DTYPES`; float16 arrays saturate
    at +-65504 instead of overflowing to infinity). Returns ``value`` itself when it already is."""
    dtype = np.dtype(ARRAY_DTYPES.get(name, np.float32))
    if dtype == np.float16 and value.dtype != np.float16:
        # torch's conversion (F16C) rounds like numpy's, to nearest even, but does not slow down on the values that
        # become float16 subnormals (numpy's takes 20x longer on a mask of tiny probabilities)
        single = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        return single.clamp(-FLOAT16_MAX, FLOAT16_MAX).to(torch.float16).numpy()
    return np.ascontiguousarray(value, dtype=dtype)


def derive_world_points(depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """The pose stream's points: ``depth [..., H, W]`` unprojected with OpenCV camera-from-world ``extrinsics
    [..., 3, 4]`` and pixel ``intrinsics [..., 3, 3]`` -> float32 world points ``[..., H, W, 3]``
    (:func:`vggt_t_mv.geometry.depth_to_world_points`)."""
    tensors = [torch.from_numpy(np.array(a, dtype=np.float32)) for a in (depth, extrinsics, intrinsics)]
    return depth_to_world_points(*tensors).numpy()


@dataclass
class WindowRecord:
    index: int
    span: tuple[int, int]
    info: dict
    path: Path


class Reconstruction:
    """A reconstruction folder. ``Reconstruction.open(path)`` to read, :meth:`create` to start writing.

    Reading: :attr:`num_timesteps` complete timesteps, :attr:`camera_names`, :attr:`image_hw`,
    :meth:`get` (one timestep, memory-mapped ``[N, ...]``), :meth:`load` (``[T, N, ...]`` in memory),
    :meth:`window_arrays` (one window's memory-maps).
    """

    def __init__(self, root: Path, meta: dict) -> None:
        self.root, self.meta = Path(root), meta
        self._windows: list[WindowRecord] | None = None
        self._checked: dict[int, tuple] = {}  # window index -> what was checked (window.json identity)
        self.damage_problem: str | None = None  # why the window after the complete ones cannot be read (file + what)
        self.lock = None  # the writer's app.reconstruct.lock.RunLock while a run holds it

    @property
    def format_version(self) -> int:
        return int(self.meta.get("format_version", FORMAT_VERSION))

    def is_derived(self, name: str) -> bool:
        """Array ``name`` is computed on read here (format 2's ``world_points_from_depth``), not stored."""
        return name in DERIVED_ARRAYS and self.format_version >= 2

    # ----------------------------------------------------------------------------- open / create
    @staticmethod
    def exists(root: str | Path) -> bool:
        """``root`` holds a reconstruction (its ``meta.json``); says nothing about whether it opens."""
        return (Path(root) / "meta.json").is_file()

    @staticmethod
    def has_complete_window(root: str | Path) -> bool:
        """``root/windows`` holds a committed window (``window.json`` of window 0): data a new run must not
        silently replace."""
        return (Path(root) / "windows" / _window_dir_name(0) / "window.json").is_file()

    @classmethod
    def open(cls, root: str | Path, *, damaged_ok: bool = False) -> Reconstruction:
        """Open the reconstruction in ``root`` for reading. Its windows are checked (window.json and every array's
        header, shape and size): a damaged one raises :class:`ReconstructionError` naming the file, unless
        ``damaged_ok`` (``--resume``: the windows before it are the complete ones, see :attr:`damage`)."""
        root = Path(root)
        meta_path = root / "meta.json"
        if not meta_path.is_file():
            raise ReconstructionError(f"{root} is not a reconstruction (no meta.json); make one with `vggt-mv run`")
        rerun = f"re-run `vggt-mv run CAPTURE --out {root} --overwrite` to make it again"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ReconstructionError(f"{meta_path} is not valid JSON ({error}); {rerun}") from error
        if not isinstance(meta, dict):
            raise ReconstructionError(f"{meta_path} holds a JSON {type(meta).__name__}, not an object; {rerun}")
        if meta.get("format") != FORMAT_NAME:
            raise ReconstructionError(f"{meta_path} is not a {FORMAT_NAME} file (format {meta.get('format')!r})")
        version = meta.get("format_version")
        if version not in READABLE_VERSIONS:
            readable = ", ".join(map(str, READABLE_VERSIONS))
            raise ReconstructionError(
                f"{root} was written in reconstruction format version {version}; this vggt-mv reads versions "
                f"{readable}. Re-run `vggt-mv run` on the capture with this version (or --overwrite), or "
                "open it with the vggt-mv version that wrote it"
            )
        problem = _meta_problem(meta)
        if problem:
            raise ReconstructionError(f"{meta_path} is damaged: {problem}; {rerun}")
        recon = cls(root, meta)
        recon.windows()
        if recon.damage is not None and not damaged_ok:
            raise ReconstructionError(recon.damage)
        return recon

    @classmethod
    def create(cls, root: str | Path, meta: dict, *, overwrite: bool = False) -> Reconstruction:
        """Start a new reconstruction in ``root`` (absent or empty; an existing reconstruction only with
        ``overwrite``, or when it holds no complete window (a run that failed before its first window); a
        non-empty folder that is not a reconstruction is never touched). The lock file of the run calling this
        (:data:`LOCK_NAME`) is kept."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise ReconstructionError(f"output {root} is a file; pass a folder path with --out")
        entries = [e for e in root.iterdir() if e.name != LOCK_NAME] if root.exists() else []
        if entries:
            if not (root / "meta.json").is_file():
                raise ReconstructionError(
                    f"output folder {root} is not empty and holds no reconstruction; choose another --out "
                    "(vggt-mv never deletes folders it did not write)"
                )
            if not overwrite and cls.has_complete_window(root):
                raise ReconstructionError(
                    f"output folder {root} already holds a reconstruction; pass --resume to continue it, "
                    "--overwrite to replace it, or choose another --out"
                )
            for entry in entries:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        blocker = file_ancestor(root)
        if blocker is not None:
            raise ReconstructionError(f"output {root} is below {blocker}, which is a file; choose another --out")
        try:
            root.mkdir(parents=True, exist_ok=True)
            (root / "windows").mkdir(exist_ok=True)
        except OSError as error:
            raise ReconstructionError(
                f"cannot create the output folder {root} ({error.strerror or error}); choose another --out"
            ) from error
        meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "created": time.time(), **meta}
        meta.setdefault("status", "running")
        meta.setdefault("alignment", [])
        write_json_atomic(root / "meta.json", meta)
        return cls(root, meta)

    def save_meta(self) -> None:
        try:
            write_json_atomic(self.root / "meta.json", self.meta)
        except OSError as error:
            raise write_failure(self.root / "meta.json", error) from error

    # ----------------------------------------------------------------------------- properties
    @property
    def camera_names(self) -> list[str]:
        return list(self.meta["camera_names"])

    @property
    def num_cameras(self) -> int:
        return len(self.meta["camera_names"])

    @property
    def image_hw(self) -> tuple[int, int]:
        height, width = self.meta["image_hw"]
        return int(height), int(width)

    @property
    def spans(self) -> list[tuple[int, int]]:
        """All planned windows ``[(start, end)]`` (complete or not)."""
        return [tuple(s) for s in self.meta["spans"]]

    @property
    def is_complete(self) -> bool:
        return self.meta.get("status") == "complete"

    def refresh_status(self) -> str | None:
        """Re-read ``status`` from disk (another thread or process may be writing this reconstruction) and return
        it; keeps the last known status while meta.json is being replaced."""
        try:
            status = json.loads((self.root / "meta.json").read_text()).get("status")
        except (OSError, json.JSONDecodeError):
            return self.meta.get("status")  # being replaced right now: ask again later
        self.meta["status"] = status
        return status

    def replaced(self) -> bool:
        """The folder no longer holds the reconstruction this object read: its ``meta.json`` is gone or belongs to
        another run (``created`` differs; ``vggt-mv run --overwrite`` replaced it)."""
        try:
            current = json.loads((self.root / "meta.json").read_text())
        except FileNotFoundError:
            return True
        except (OSError, json.JSONDecodeError):
            return False  # being replaced right now: ask again later
        return current.get("created") != self.meta.get("created")

    def windows(self, refresh: bool = False) -> list[WindowRecord]:
        """The complete windows, in order (the longest run 0, 1, 2, ... that exists on disk)."""
        if self._windows is None or refresh:
            records, self.damage_problem = [], None
            for index, span in enumerate(self.spans):
                path = self.root / "windows" / _window_dir_name(index)
                info_path = path / "window.json"
                if not info_path.is_file():
                    if path.is_dir():  # a committed window always has its window.json
                        self.damage_problem = f"{info_path} is missing"
                    break
                try:
                    record = self._checked_record(index, span, path)
                except ReconstructionError as error:
                    self.damage_problem = str(error)
                    break
                records.append(record)
            self._windows = records
        return self._windows

    def _checked_record(self, index: int, span: tuple[int, int], path: Path) -> WindowRecord:
        """Window ``index`` read and checked (arrays once per window.json version); raises on damage."""
        info_path = path / "window.json"
        try:
            stamp = (info_path.stat().st_mtime_ns, info_path.stat().st_size)
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (ValueError, OSError) as error:
            raise ReconstructionError(f"{info_path} is not valid JSON ({error})") from error
        if not isinstance(info, dict):
            raise ReconstructionError(f"{info_path} holds a JSON {type(info).__name__}, not an object")
        if self._checked.get(index) != stamp:
            length, (height, width) = span[1] - span[0], self.image_hw
            for name in ARRAY_NAMES:
                file = path / f"{name}.npy"
                if self.is_derived(name) or (name in OPTIONAL_ARRAYS and not file.is_file()):
                    continue
                check_npy(file, (length, self.num_cameras, *ARRAY_TRAILING[name](height, width)))
            self._checked[index] = stamp
        return WindowRecord(index, span, info, path)

    @property
    def damage(self) -> str | None:
        """The message for a damaged window after the complete ones (file, what is wrong, what to do), or None."""
        if self.damage_problem is None:
            return None
        index = len(self.windows())
        capture = self.meta["capture"].get("path", "CAPTURE") if self.meta.get("capture") else "CAPTURE"
        kept = {0: "no window before it", 1: "window 0 is fine"}.get(index, f"windows 0..{index - 1} are fine")
        return (
            f"{self.damage_problem}: the reconstruction {self.root} is damaged from window {index} (timestep "
            f"{self.spans[index][0]}) on ({kept}). Recompute it with `vggt-mv run {capture} --out {self.root} "
            "--resume` and the options of the first run"
        )

    @property
    def num_timesteps(self) -> int:
        """Timesteps available for reading: up to the end of the last complete window."""
        windows = self.windows()
        return windows[-1].span[1] if windows else 0

    def has(self, name: str) -> bool:
        if self.is_derived(name):
            return self.has("depth")
        windows = self.windows()
        return bool(windows) and (windows[0].path / f"{name}.npy").is_file()

    # ----------------------------------------------------------------------------- reading
    def window_arrays(self, index: int, names: tuple[str, ...] | list[str] | None = None) -> dict[str, np.ndarray]:
        """Arrays ``[Tw, N, ...]`` of complete window ``index``: the stored ones memory-mapped, derived ones computed
        (``names``: only these; default every array it has)."""
        record = self.windows()[index]
        wanted = ARRAY_NAMES if names is None else tuple(names)
        out = {
            name: np.load(record.path / f"{name}.npy", mmap_mode="r")
            for name in wanted
            if not self.is_derived(name) and (record.path / f"{name}.npy").is_file()
        }
        for name in wanted:
            if self.is_derived(name) and (record.path / "depth.npy").is_file():
                stored = self.window_arrays(index, ("depth", "extrinsics", "intrinsics"))
                out[name] = derive_world_points(stored["depth"], stored["extrinsics"], stored["intrinsics"])
        return out

    def _owner(self, t: int) -> tuple[int, int]:
        windows = self.windows()
        if not 0 <= t < self.num_timesteps:
            raise IndexError(f"timestep {t} out of range: {self.num_timesteps} complete timesteps in {self.root}")
        for record, (start, end) in zip(windows, owned_ranges([w.span for w in windows]), strict=True):
            if start <= t < end:
                return record.index, t - record.span[0]
        raise IndexError(t)  # unreachable: owned ranges tile [0, num_timesteps)

    def get(self, name: str, t: int) -> np.ndarray:
        """Array ``name`` at timestep ``t``: ``[N, ...]`` memory-mapped (read-only), or computed when derived."""
        if self.is_derived(name):
            return derive_world_points(self.get("depth", t), self.get("extrinsics", t), self.get("intrinsics", t))
        index, local = self._owner(t)
        path = self.windows()[index].path / f"{name}.npy"
        if not path.is_file():
            raise KeyError(f"{self.root} has no array {name!r} (arrays: {', '.join(self.array_names())})")
        return np.load(path, mmap_mode="r")[local]

    def array_names(self) -> list[str]:
        return [name for name in ARRAY_NAMES if self.has(name)]

    def load(self, name: str, timesteps: range | list[int] | None = None) -> np.ndarray:
        """Array ``name`` over ``timesteps`` (default: all complete ones) as one ``[T, N, ...]`` array."""
        windows = self.windows()
        if not windows:
            raise ReconstructionError(f"{self.root} has no complete window yet")
        if self.is_derived(name):
            return derive_world_points(*(self.load(n, timesteps) for n in ("depth", "extrinsics", "intrinsics")))
        if timesteps is None:
            parts = []
            for record, (start, end) in zip(windows, owned_ranges([w.span for w in windows]), strict=True):
                mm = np.load(record.path / f"{name}.npy", mmap_mode="r")
                parts.append(np.asarray(mm[start - record.span[0] : end - record.span[0]]))
            return np.concatenate(parts, axis=0)
        return np.stack([np.asarray(self.get(name, t)) for t in timesteps])

    def timestep(self, t: int) -> dict[str, np.ndarray]:
        """Every array at timestep ``t`` (memory-mapped ``[N, ...]`` each)."""
        return {name: self.get(name, t) for name in self.array_names()}

    def stream(self, t: int, stream: str = "geo") -> tuple[np.ndarray, np.ndarray]:
        """Points ``[N, H, W, 3]`` and confidence ``[N, H, W]`` of a stream (``geo`` or ``pose``) at ``t``."""
        points, conf = STREAMS[stream]
        return self.get(points, t), self.get(conf, t)

    # ----------------------------------------------------------------------------- writing
    def _check_writable(self, names) -> None:
        if self.format_version != FORMAT_VERSION:
            raise ReconstructionError(
                f"{self.root} is in reconstruction format version {self.format_version}; this vggt-mv writes version "
                f"{FORMAT_VERSION} only. Start it again with --overwrite (reading it keeps working)"
            )
        derived = [n for n in names if n in DERIVED_ARRAYS]
        if derived:
            raise ValueError(
                f"{', '.join(derived)} is derived on read from depth and cameras (format {FORMAT_VERSION}) and not "
                "stored; leave it out of the arrays to write"
            )

    def write_window(self, index: int, arrays: dict[str, np.ndarray], info: dict) -> None:
        """Write window ``index`` atomically: every stored array ``[Tw, N, ...]`` (:data:`STORED_ARRAYS`, each
        converted by :func:`stored_form`; no derived one) and its ``window.json``."""
        self._check_writable(arrays)
        span = self.spans[index]
        if index != len(self.windows(refresh=True)):
            raise ReconstructionError(f"window {index} written out of order ({len(self.windows())} complete)")
        length = span[1] - span[0]
        final = self.root / "windows" / _window_dir_name(index)
        tmp = self.root / "windows" / f".{_window_dir_name(index)}.tmp-{os.getpid()}"
        for name, value in arrays.items():
            if name not in ARRAY_NAMES:
                raise ValueError(f"unknown reconstruction array {name!r}")
            if value.shape[:2] != (length, self.num_cameras):
                raise ValueError(f"{name} has shape {value.shape}, expected [{length}, {self.num_cameras}, ...]")
        missing = [n for n in STORED_ARRAYS if n not in arrays and n not in OPTIONAL_ARRAYS]
        if missing:
            raise ValueError(f"window {index} misses arrays {missing}")
        target = tmp
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            if final.exists():  # left over beyond the complete prefix (cannot be trusted): replace
                shutil.rmtree(final)
            tmp.mkdir(parents=True)
            for name, value in arrays.items():
                target = tmp / f"{name}.npy"
                np.save(target, stored_form(name, value))
            target = tmp / "window.json"
            write_json_atomic(target, {"index": index, "span": list(span), **info})
            target = final
            os.replace(tmp, final)
        except OSError as error:
            _remove(tmp)  # never leave a half-written window behind
            raise write_failure(target, error) from error
        self._windows = None
        alignment = self.meta.setdefault("alignment", [])
        del alignment[index:]
        alignment.append({"index": index, "span": list(span), **info})
        self.save_meta()

    def replace_arrays(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        """Overwrite some arrays of a complete window, each file atomically (post-processing passes)."""
        self._check_writable(arrays)
        path = self.windows()[index].path
        for name, value in arrays.items():
            try:
                with atomic_file(path / f"{name}.npy") as tmp:
                    np.save(tmp, stored_form(name, value))
            except OSError as error:
                raise write_failure(path / f"{name}.npy", error) from error

    def discard_incomplete(self) -> None:
        """Remove temporary folders and windows past the complete prefix (before resuming)."""
        complete = self.windows(refresh=True)
        keep = {r.path.name for r in complete}
        for entry in (self.root / "windows").iterdir():
            if entry.name not in keep:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        # rebuilt from each window's own window.json (written before its rename): a kill between a window's
        # rename and the meta.json update loses no alignment entry
        self.meta["alignment"] = [dict(record.info) for record in complete]
        self.save_meta()
