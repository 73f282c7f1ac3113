"""The on-disk Reconstruction: a folder written window by window, read back without the model.

Layout (format version :data:`FORMAT_VERSION`)::

    RECON/
      meta.json                 format + version, capture description, model config and checkpoint sha256,
                                window settings and spans, preprocessing, per-window alignment, rig report
      windows/00000/            one folder per finished window, committed by an atomic rename
        window.json             index, span [start, end) in timesteps, Sim(3) alignment, timing
        images.npy              uint8   [Tw, N, H, W, 3]   model-resolution RGB (colours)
        depth.npy               float32 [Tw, N, H, W]      geo stream depth (scaled with the window)
        depth_conf.npy          float32 [Tw, N, H, W]      its confidence (also the pose stream's)
        world_points.npy        float32 [Tw, N, H, W, 3]   geo stream: the point head's map
        world_points_conf.npy   float32 [Tw, N, H, W]
        world_points_from_depth.npy float32 [Tw, N, H, W, 3]  pose stream: depth unprojected with the cameras
        extrinsics.npy          float32 [Tw, N, 3, 4]      OpenCV camera-from-world
        intrinsics.npy          float32 [Tw, N, 3, 3]      model pixels (see meta "preprocess" for the originals)
        dynamic_mask.npy        float16 [Tw, N, H, W]      probability, only when the model predicts it

Everything is in the frame of camera 0 at the first timestep (metres when a calibration was given).
Windows overlap; each timestep is read from one window by the merge rule of :mod:`app.reconstruct.stitching`.
Every ``.npy`` opens memory-mapped. A window folder is written under a temporary name and renamed when
complete, so a reader (or ``--resume``) only ever sees complete windows; reading a partially written
reconstruction gives the timesteps of its complete windows.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.reconstruct.stitching import owned_ranges

FORMAT_NAME = "vggt-mv-reconstruction"
FORMAT_VERSION = 1
ARRAY_NAMES = (
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
ARRAY_DTYPES = {"images": np.uint8, "dynamic_mask": np.float16}  # others float32
OPTIONAL_ARRAYS = ("dynamic_mask",)
# stream name -> (points, confidence) arrays; the viewer toggles between them
STREAMS = {"geo": ("world_points", "world_points_conf"), "pose": ("world_points_from_depth", "depth_conf")}


class ReconstructionError(ValueError):
    """A reconstruction folder that cannot be used as asked; the message says why and what to do."""


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=True))
    os.replace(tmp, path)


def _window_dir_name(index: int) -> str:
    return f"{index:05d}"


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

    # ----------------------------------------------------------------------------- open / create
    @staticmethod
    def exists(root: str | Path) -> bool:
        """``root`` holds a reconstruction (its ``meta.json``); says nothing about whether it opens."""
        return (Path(root) / "meta.json").is_file()

    @classmethod
    def open(cls, root: str | Path) -> Reconstruction:
        root = Path(root)
        meta_path = root / "meta.json"
        if not meta_path.is_file():
            raise ReconstructionError(f"{root} is not a reconstruction (no meta.json); make one with `vggt-mv run`")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as error:
            raise ReconstructionError(f"{meta_path} is not valid JSON ({error}); re-run `vggt-mv run`") from error
        if meta.get("format") != FORMAT_NAME:
            raise ReconstructionError(f"{meta_path} is not a {FORMAT_NAME} file (format {meta.get('format')!r})")
        version = meta.get("format_version")
        if version != FORMAT_VERSION:
            raise ReconstructionError(
                f"{root} was written in reconstruction format version {version}; this vggt-mv reads version "
                f"{FORMAT_VERSION}. Re-run `vggt-mv run` on the capture with this version (or --overwrite), or "
                "open it with the vggt-mv version that wrote it"
            )
        return cls(root, meta)

    @classmethod
    def create(cls, root: str | Path, meta: dict, *, overwrite: bool = False) -> Reconstruction:
        """Start a new reconstruction in ``root`` (absent or empty; an existing reconstruction only with
        ``overwrite``; a non-empty folder that is not a reconstruction is never touched)."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise ReconstructionError(f"output {root} is a file; pass a folder path with --out")
        if root.exists() and any(root.iterdir()):
            if not (root / "meta.json").is_file():
                raise ReconstructionError(
                    f"output folder {root} is not empty and holds no reconstruction; choose another --out "
                    "(vggt-mv never deletes folders it did not write)"
                )
            if not overwrite:
                raise ReconstructionError(
                    f"output folder {root} already holds a reconstruction; pass --resume to continue it, "
                    "--overwrite to replace it, or choose another --out"
                )
            shutil.rmtree(root)
        root.mkdir(parents=True, exist_ok=True)
        (root / "windows").mkdir(exist_ok=True)
        meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "created": time.time(), **meta}
        meta.setdefault("status", "running")
        meta.setdefault("alignment", [])
        _write_json_atomic(root / "meta.json", meta)
        return cls(root, meta)

    def save_meta(self) -> None:
        _write_json_atomic(self.root / "meta.json", self.meta)

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

    def windows(self, refresh: bool = False) -> list[WindowRecord]:
        """The complete windows, in order (the longest run 0, 1, 2, ... that exists on disk)."""
        if self._windows is None or refresh:
            records = []
            for index, span in enumerate(self.spans):
                path = self.root / "windows" / _window_dir_name(index)
                info_path = path / "window.json"
                if not info_path.is_file():
                    break
                records.append(WindowRecord(index, span, json.loads(info_path.read_text()), path))
            self._windows = records
        return self._windows

    @property
    def num_timesteps(self) -> int:
        """Timesteps available for reading: up to the end of the last complete window."""
        windows = self.windows()
        return windows[-1].span[1] if windows else 0

    def has(self, name: str) -> bool:
        windows = self.windows()
        return bool(windows) and (windows[0].path / f"{name}.npy").is_file()

    # ----------------------------------------------------------------------------- reading
    def window_arrays(self, index: int) -> dict[str, np.ndarray]:
        """Memory-mapped arrays ``[Tw, N, ...]`` of complete window ``index``."""
        record = self.windows()[index]
        return {
            name: np.load(record.path / f"{name}.npy", mmap_mode="r")
            for name in ARRAY_NAMES
            if (record.path / f"{name}.npy").is_file()
        }

    def _owner(self, t: int) -> tuple[int, int]:
        windows = self.windows()
        if not 0 <= t < self.num_timesteps:
            raise IndexError(f"timestep {t} out of range: {self.num_timesteps} complete timesteps in {self.root}")
        for record, (start, end) in zip(windows, owned_ranges([w.span for w in windows]), strict=True):
            if start <= t < end:
                return record.index, t - record.span[0]
        raise IndexError(t)  # unreachable: owned ranges tile [0, num_timesteps)

    def get(self, name: str, t: int) -> np.ndarray:
        """Array ``name`` at timestep ``t``: ``[N, ...]`` memory-mapped (read-only)."""
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
    def write_window(self, index: int, arrays: dict[str, np.ndarray], info: dict) -> None:
        """Write window ``index`` atomically: all arrays ``[Tw, N, ...]`` and its ``window.json``."""
        span = self.spans[index]
        if index != len(self.windows(refresh=True)):
            raise ReconstructionError(f"window {index} written out of order ({len(self.windows())} complete)")
        length = span[1] - span[0]
        final = self.root / "windows" / _window_dir_name(index)
        tmp = self.root / "windows" / f".{_window_dir_name(index)}.tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        if final.exists():  # left over beyond the complete prefix (cannot be trusted): replace
            shutil.rmtree(final)
        tmp.mkdir(parents=True)
        for name, value in arrays.items():
            if name not in ARRAY_NAMES:
                raise ValueError(f"unknown reconstruction array {name!r}")
            if value.shape[:2] != (length, self.num_cameras):
                raise ValueError(f"{name} has shape {value.shape}, expected [{length}, {self.num_cameras}, ...]")
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(value, dtype=ARRAY_DTYPES.get(name, np.float32)))
        missing = [n for n in ARRAY_NAMES if n not in arrays and n not in OPTIONAL_ARRAYS]
        if missing:
            raise ValueError(f"window {index} misses arrays {missing}")
        _write_json_atomic(tmp / "window.json", {"index": index, "span": list(span), **info})
        os.replace(tmp, final)
        self._windows = None
        alignment = self.meta.setdefault("alignment", [])
        del alignment[index:]
        alignment.append({"index": index, "span": list(span), **info})
        self.save_meta()

    def replace_arrays(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        """Overwrite some arrays of a complete window, each file atomically (post-processing passes)."""
        path = self.windows()[index].path
        for name, value in arrays.items():
            tmp = path / f".{name}.tmp-{os.getpid()}.npy"
            np.save(tmp, np.ascontiguousarray(value, dtype=ARRAY_DTYPES.get(name, np.float32)))
            os.replace(tmp, path / f"{name}.npy")

    def discard_incomplete(self) -> None:
        """Remove temporary folders and windows past the complete prefix (before resuming)."""
        keep = {r.path.name for r in self.windows(refresh=True)}
        for entry in (self.root / "windows").iterdir():
            if entry.name not in keep:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        self.meta["alignment"] = self.meta.get("alignment", [])[: len(keep)]
        self.save_meta()
