"""The on-disk Reconstruction: a folder written window by window, read back without the model.

Layout (format version :data:`FORMAT_VERSION` = 3)::

    RECON/
      meta.json                 the run's record (:class:`~app.reconstruct.record.RunRecord`, read and written only
                                here: ``Reconstruction.open(path).record``): format + version, capture description,
                                model provenance, settings and spans, preprocessing, per-window alignment, rig report
      windows/00000/            one folder per finished window, committed by an atomic rename
        window.json             index, span [start, end) in timesteps, "stored" [a, b): the timesteps this folder
                                holds, "to_stitched": the window's Sim(3) into the stitched frame, alignment, timing
        images.npy              uint8   [Ts, N, H, W, 3]   model-resolution RGB (colours)
        depth.zst               float16 [Ts, N, H, W]      geo stream depth, window frame (x s on read)
        depth_conf.zst          float16 [Ts, N, H, W]      its confidence (also the pose stream's)
        world_points.zst        float16 [Ts, N, H, W, 3]   geo stream points, window frame, offsets from
        world_points_origin.npy float32 [Ts, N, 3]         each image's camera centre (moved by the Sim(3) on read)
        world_points_conf.zst   float16 [Ts, N, H, W]
        extrinsics.npy          float32 [Ts, N, 3, 4]      OpenCV camera-from-world, stitched frame
        intrinsics.npy          float32 [Ts, N, 3, 3]      model pixels (see meta "preprocess" for the originals)
        dynamic_mask.zst        uint8   [Ts, N, H, W]      probability x 255, only when the model predicts it
        views_agree.zst         uint8   [Ts, N, H, W]      other cameras agreeing with each pixel (255: none sees it)

``.zst`` files hold one zstd frame per timestep, lossless (:mod:`app.reconstruct.chunked`); format-3 windows
written before compression hold the same arrays as ``.npy`` files, and readers take either.

**Each timestep is stored once**: window ``w`` holds the timesteps it owns under the merge rule of
:mod:`app.reconstruct.stitching` (``Ts`` of its ``Tw``; at window 16 / stride 12, 14, 12, ..., 14), decided at write
time from the planned spans and recorded in ``window.json`` (``stored``). **The window's alignment is applied on
read**: depth and point maps stay in the frame the model predicted them in; readers (:meth:`Reconstruction.get`,
:meth:`~Reconstruction.load`, :meth:`~Reconstruction.window_arrays`) move them by ``to_stitched``. The cameras are
stored in the stitched frame (a few bytes; calibrated runs store the calibration's own). Which arrays exist, their
codecs and motions are declared in :mod:`app.reconstruct.arrays` (one line per array).

``world_points_from_depth`` (the pose stream: depth unprojected with the cameras) is not stored (formats 2 and 3):
every reader derives it from the stitched-frame ``depth``, ``extrinsics`` and ``intrinsics``
(:func:`derive_world_points`), so it always follows the stored cameras (also after ``--rigid-rig``).

``views_agree`` (:func:`vggt_t_mv.agreement.views_agree`, default tolerances) is computed by the store when it writes
a window (the window writer's thread: :meth:`Reconstruction.complete_window`), from the depth and cameras that
window stores for its timesteps exactly as a reader decodes them (the merge rule has already picked them), and again
when :meth:`~Reconstruction.replace_arrays` changes them (``--rigid-rig``). Where a window lacks the file (formats 1
and 2, format-3 windows written before it was stored) it is computed on read from the same arrays: the same values.

Precision of what format 3 reads back against the float32 the pipeline computed (``tests/test_store_format.py``):

==========================  ============================================================================
images, extrinsics,         exact (uint8 / float32 stored as computed)
intrinsics
depth                       float16: relative error <= 2**-11 (4.9e-4: 1.5 mm at 3 m); saturates at 65504
depth_conf,                 float16: relative error <= 2**-11; values beyond 65504 saturate at 65504.
world_points_conf           Identical to format 2's (confidences only rank pixels: percentile filters and
                            alignment weights select the same pixels in both formats)
world_points                per coordinate <= 2**-11 of the point's distance from its camera (float16 offsets
                            from the camera centre), + float32 rounding (1e-6 of the coordinates)
dynamic_mask                uint8: absolute error <= 1/510 (2.0e-3) on [0, 1]
views_agree                 exact: that of the decoded depth and the stored cameras (as computed on read)
world_points_from_depth     derived in float32 from the decoded depth and the exact cameras: the depth's
                            relative error along each ray, + float32 rounding (1e-5 of the scene's extent)
(moved by the Sim(3))       relative bounds hold in the stitched frame; + float32 rounding of the move
==========================  ============================================================================

Format 2 (issues 16 to 27) stored every window's whole span (overlap timesteps twice), in the stitched frame,
depth and world points float32, float16 confidences and mask, no ``stored``/``to_stitched``; format 1 also stored
``world_points_from_depth.npy`` and float32 confidences. Both are read as they were written (format 1's stored
pose-stream points, not derived ones; each timestep from its window by the merge rule), so old reconstructions open,
view and export unchanged; format 2 is also resumed (in format 2), format 1 is not (``--overwrite`` starts again).

Everything is in the frame of camera 0 at the first timestep (metres when a calibration was given).
Every ``.npy`` opens memory-mapped; a ``.zst`` decompresses the timesteps read. A window folder is written under a
temporary name and renamed when complete, so a reader (or ``--resume``) only ever sees complete windows; reading a
partially written reconstruction gives the timesteps of its complete windows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch

from app.common.atomic import atomic_file, write_failure_cause, write_json_atomic
from app.common.paths import file_ancestor
from app.common.vocab import RUN_STATUSES, RunStatus, Stream
from app.common.worker import TaskPool
from app.reconstruct.arrays import (
    SPEC,
    SPECS,
    StoredRows,
    camera_origin,
    compressed_stem,
    decode,
    encode,
    move,
    move_back,
    stored_form_v2,
)
from app.reconstruct.chunked import SUFFIX as CHUNKED_SUFFIX
from app.reconstruct.chunked import ChunkedArray, ChunkError, save_chunked
from app.reconstruct.record import (
    FORMAT_NAME,
    FORMAT_VERSION,
    READABLE_VERSIONS,
    WRITABLE_VERSIONS,
    RecordError,
    RunRecord,
    WindowEntry,
)
from app.reconstruct.stitching import owned_ranges
from app.reconstruct.track_store import TrackSet, read_tracks
from vggt_t_mv.agreement import views_agree_window
from vggt_t_mv.geometry import depth_to_world_points
from vggt_t_mv.npgeometry import Sim3

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "READABLE_VERSIONS",
    "WRITABLE_VERSIONS",
    "Reconstruction",
    "ReconstructionError",
    "RunRecord",
]

ARRAY_NAMES = tuple(spec.name for spec in SPECS)  # what readers can ask for, stored or derived
DERIVED_ARRAYS = tuple(spec.name for spec in SPECS if spec.derived)  # formats 2, 3: computed on read
COMPUTED_ARRAYS = tuple(spec.name for spec in SPECS if spec.computed)  # by the store from depth and cameras
STORED_ARRAYS = tuple(name for name in ARRAY_NAMES if name not in DERIVED_ARRAYS)
GIVEN_ARRAYS = tuple(name for name in STORED_ARRAYS if name not in COMPUTED_ARRAYS)  # what a window writer gives
# computed array -> its function of depth [T, N, H, W], extrinsics [T, N, 3, 4], intrinsics [T, N, 3, 3]
COMPUTE: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {"views_agree": views_agree_window}
COMPUTED_FROM = ("depth", "extrinsics", "intrinsics")
SERIAL = TaskPool(1, name="store")  # tasks run one after the other in the caller's thread (no pool given)
ARRAY_DTYPES = {spec.name: spec.dtype_v2 for spec in SPECS if spec.dtype_v2 != np.float32}  # format 2 on disk
OPTIONAL_ARRAYS = tuple(spec.name for spec in SPECS if spec.optional)
# stream name -> (points, confidence) arrays; the viewer toggles between them
STREAMS: dict[Stream, tuple[str, str]] = {
    "geo": ("world_points", "world_points_conf"),
    "pose": ("world_points_from_depth", "depth_conf"),
}


LOCK_NAME = ".vggt-mv.lock"  # held by the run writing the folder (app.reconstruct.lock); never deleted by it


class ReconstructionError(ValueError):
    """A reconstruction folder that cannot be used as asked; the message says why and what to do."""


# name -> trailing shape after [Tw, N] for model images of H x W
ARRAY_TRAILING = {spec.name: spec.trailing for spec in SPECS}


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


def stem_file(folder: Path, stem: str) -> Path:
    """The file holding array file ``stem`` in window ``folder``: ``<stem>.zst`` (compressed) when there is one, else
    ``<stem>.npy`` (whether or not it exists)."""
    chunked = folder / f"{stem}{CHUNKED_SUFFIX}"
    return chunked if chunked.is_file() else folder / f"{stem}.npy"


def open_stem(folder: Path, stem: str) -> np.ndarray | ChunkedArray:
    """Array file ``stem`` of window ``folder`` for reading: a memory-map (``.npy``) or a :class:`ChunkedArray`
    (``.zst``); both index by rows."""
    path = stem_file(folder, stem)
    if path.suffix == CHUNKED_SUFFIX:
        try:
            return ChunkedArray(path)
        except (ChunkError, OSError) as error:
            raise ReconstructionError(f"{path} {error}") from error
    return np.load(path, mmap_mode="r")


def check_stem(folder: Path, stem: str, shape: tuple[int, ...], compressed: bool) -> None:
    """Raise :class:`ReconstructionError` unless window ``folder`` holds array file ``stem`` complete and of ``shape``
    (:func:`check_npy`, or the ``.zst`` header and size); when it holds neither file, the one this version writes
    (``compressed``) is named missing."""
    path = stem_file(folder, stem)
    if path.suffix != CHUNKED_SUFFIX:
        check_npy(path if path.is_file() else folder / stem_name(stem, compressed), shape)
        return
    try:
        found = ChunkedArray(path)
    except (ChunkError, OSError) as error:
        raise ReconstructionError(f"{path} {error}") from error
    if found.shape != tuple(shape):
        raise ReconstructionError(f"{path} has shape {list(found.shape)}, expected {list(shape)}")


def stem_name(stem: str, compressed: bool) -> str:
    """The file name of array file ``stem``: ``<stem>.zst`` when ``compressed``, else ``<stem>.npy``."""
    return f"{stem}{CHUNKED_SUFFIX if compressed else '.npy'}"


def save_array_file(path: Path, value: np.ndarray) -> None:
    """Save ``value`` as ``path``: compressed for a ``.zst`` name (:func:`app.reconstruct.chunked.save_chunked`),
    else ``.npy`` (a C-contiguous array is written straight from its memory)."""
    if path.suffix == CHUNKED_SUFFIX:
        save_chunked(path, value)
    else:
        np.save(path, value)


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
    """``value`` as format 2 stores array ``name`` (:func:`app.reconstruct.arrays.stored_form_v2`)."""
    return stored_form_v2(name, value)


def derive_world_points(depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """The pose stream's points: ``depth [..., H, W]`` unprojected with OpenCV camera-from-world ``extrinsics
    [..., 3, 4]`` and pixel ``intrinsics [..., 3, 3]`` -> float32 world points ``[..., H, W, 3]``
    (:func:`vggt_t_mv.geometry.depth_to_world_points`)."""
    tensors = [torch.from_numpy(np.array(a, dtype=np.float32)) for a in (depth, extrinsics, intrinsics)]
    return depth_to_world_points(*tensors).numpy()


@dataclass
class WindowRecord:
    """A complete window: ``span`` [start, end) it was computed on, ``held``: the timesteps its folder stores (format
    3: those it owns; formats 1, 2: its span), ``owned``: those read from it (the merge rule), ``to_stitched``: the
    Sim(3) its depth and points are moved by on read (formats 1, 2: identity, they are stored moved)."""

    index: int
    span: tuple[int, int]
    info: dict
    path: Path
    held: tuple[int, int] = (0, 0)
    owned: tuple[int, int] = (0, 0)
    to_stitched: Sim3 = field(default_factory=Sim3.identity)

    @property
    def entry(self) -> WindowEntry:
        """``window.json`` as a typed :class:`~app.reconstruct.record.WindowEntry`."""
        return WindowEntry.from_dict(self.info)


@dataclass
class EncodedWindow:
    """A window as it is written (:meth:`Reconstruction.encode_window`): ``files`` stem -> the array saved as
    ``<stem>.npy`` or, compressed, ``<stem>.zst`` (nothing is converted or copied again when it is written), the
    timesteps ``held`` and the Sim(3) ``to_stitched`` (format 3: applied on read; format 2: already applied)."""

    index: int
    files: dict[str, np.ndarray]
    held: tuple[int, int]
    to_stitched: Sim3


class HeldLock(Protocol):
    """What a reconstruction keeps of its writer's lock (:class:`app.reconstruct.lock.RunLock`, which imports this
    module): the writer releases it when its run ends."""

    def release(self) -> None: ...


class Reconstruction:
    """A reconstruction folder. ``Reconstruction.open(path)`` to read, :meth:`create` to start writing.

    Reading: :attr:`num_timesteps` complete timesteps, :attr:`camera_names`, :attr:`image_hw`,
    :meth:`get` (one timestep, memory-mapped ``[N, ...]``), :meth:`load` (``[T, N, ...]`` in memory),
    :meth:`window_arrays` (one window's memory-maps); :attr:`record` is the run's typed record (meta.json).
    """

    def __init__(self, root: Path, record: RunRecord) -> None:
        self.root, self.record = Path(root), record
        self._windows: list[WindowRecord] | None = None
        self._checked: dict[int, tuple] = {}  # window index -> what was checked (window.json identity)
        self.damage_problem: str | None = None  # why the window after the complete ones cannot be read (file + what)
        self.lock: HeldLock | None = None  # the writer's app.reconstruct.lock.RunLock while a run holds it
        self._agreement: dict[int, np.ndarray] = {}  # timestep -> views_agree (read or computed)

    @property
    def meta(self) -> dict:
        """meta.json's JSON form of :attr:`record` (a copy: change the record, then :meth:`save_record`)."""
        return self.record.to_dict()

    @property
    def format_version(self) -> int:
        return self.record.format_version

    def is_derived(self, name: str) -> bool:
        """Array ``name`` is computed on read here (``world_points_from_depth`` from format 2 on), not stored."""
        return name in DERIVED_ARRAYS and self.format_version >= 2

    @property
    def encoded(self) -> bool:
        """Format 3: arrays stored by their codecs, in their window's frame (:mod:`app.reconstruct.arrays`)."""
        return self.format_version >= 3

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
        try:
            record = RunRecord.from_dict(meta)
        except RecordError as error:
            raise ReconstructionError(f"{meta_path} is damaged: {error}; {rerun}") from error
        recon = cls(root, record)
        recon.windows()
        if recon.damage is not None and not damaged_ok:
            raise ReconstructionError(recon.damage)
        return recon

    @classmethod
    def create(
        cls,
        root: str | Path,
        record: RunRecord | dict[str, Any],
        *,
        overwrite: bool = False,
        format_version: int = FORMAT_VERSION,
    ) -> Reconstruction:
        """Start a new reconstruction of ``record`` (or the JSON form of one: tests and tools that write a few
        fields) in ``root`` (absent or empty; an existing reconstruction only with
        ``overwrite``, or when it holds no complete window (a run that failed before its first window); a
        non-empty folder that is not a reconstruction is never touched). The lock file of the run calling this
        (:data:`LOCK_NAME`) is kept. ``format_version``: one of :data:`WRITABLE_VERSIONS` (2: the layout older
        versions read, e.g. to compare formats)."""
        root = Path(root)
        if format_version not in WRITABLE_VERSIONS:
            raise ValueError(f"format_version {format_version}: this vggt-mv writes versions {WRITABLE_VERSIONS}")
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
        if not isinstance(record, RunRecord):  # checked before anything is deleted or written
            try:
                record = RunRecord.from_dict(json.loads(json.dumps(record)))  # as it will read back
            except RecordError as error:
                raise ValueError(f"not a reconstruction record: {error}") from error
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
        record = dataclasses.replace(
            record, format=FORMAT_NAME, format_version=format_version, created=time.time(), status="running"
        )
        write_json_atomic(root / "meta.json", record.to_dict())
        return cls(root, record)

    def save_record(self) -> None:
        """Write :attr:`record` to meta.json (atomically)."""
        try:
            write_json_atomic(self.root / "meta.json", self.record.to_dict())
        except OSError as error:
            raise write_failure(self.root / "meta.json", error) from error

    # ----------------------------------------------------------------------------- properties
    @property
    def camera_names(self) -> list[str]:
        return list(self.record.camera_names)

    @property
    def num_cameras(self) -> int:
        return self.record.num_cameras

    @property
    def image_hw(self) -> tuple[int, int]:
        height, width = self.record.image_hw
        return int(height), int(width)

    @property
    def spans(self) -> list[tuple[int, int]]:
        """All planned windows ``[(start, end)]`` (complete or not)."""
        return list(self.record.spans)

    @property
    def is_complete(self) -> bool:
        return self.record.is_complete

    def refresh_status(self) -> RunStatus:
        """Re-read ``status`` from disk (another thread or process may be writing this reconstruction) and return
        it; keeps the last known status while meta.json is being replaced."""
        try:
            status = json.loads((self.root / "meta.json").read_text()).get("status")
        except (OSError, json.JSONDecodeError, AttributeError):
            return self.record.status  # being replaced right now: ask again later
        if status in RUN_STATUSES:
            self.record.status = status
        return self.record.status

    def replaced(self) -> bool:
        """The folder no longer holds the reconstruction this object read: its ``meta.json`` is gone or belongs to
        another run (``created`` differs; ``vggt-mv run --overwrite`` replaced it)."""
        try:
            current = json.loads((self.root / "meta.json").read_text())
        except FileNotFoundError:
            return True
        except (OSError, json.JSONDecodeError):
            return False  # being replaced right now: ask again later
        return not isinstance(current, dict) or current.get("created") != self.record.created

    def windows(self, refresh: bool = False) -> list[WindowRecord]:
        """The complete windows, in order (the longest run 0, 1, 2, ... that exists on disk)."""
        if self._windows is None or refresh:
            records: list[WindowRecord] = []
            self.damage_problem = None
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
                if records and record.held[0] != records[-1].held[1] and self.encoded:
                    self.damage_problem = (
                        f"{info_path} says it stores timesteps {list(record.held)}, but window {index - 1} ends at "
                        f"{records[-1].held[1]}"
                    )
                    break
                records.append(record)
            if not self.encoded:  # formats 1, 2: each timestep from the window where it sits further from the edge
                for record, owned in zip(records, owned_ranges([r.span for r in records]), strict=True):
                    record.owned = owned
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
        held, to_stitched = span, Sim3.identity()
        if self.encoded:
            stored = info.get("stored")
            if not (
                isinstance(stored, list)
                and len(stored) == 2
                and all(isinstance(v, int) for v in stored)
                and span[0] <= stored[0] <= stored[1] <= span[1]
            ):
                raise ReconstructionError(f"{info_path}: 'stored' must be [start, end) timesteps within {list(span)}")
            try:
                to_stitched = Sim3.from_dict(info.get("to_stitched") or {})
            except (ValueError, AttributeError) as error:
                raise ReconstructionError(f"{info_path}: 'to_stitched' is damaged ({error})") from error
            held = (stored[0], stored[1])
        if self._checked.get(index) != stamp:
            length, hw = held[1] - held[0], self.image_hw
            for spec in SPECS:
                if spec.derived and self.format_version >= 2:
                    continue
                if (spec.optional or spec.computed) and not stem_file(path, spec.name).is_file():
                    continue
                if self.encoded:
                    for stem, shape in spec.file_shapes(length, self.num_cameras, hw).items():
                        check_stem(path, stem, shape, compressed_stem(stem))
                else:
                    check_npy(path / f"{spec.name}.npy", (length, self.num_cameras, *spec.trailing(*hw)))
            self._checked[index] = stamp
        return WindowRecord(index, span, info, path, held, held, to_stitched)

    @property
    def damage(self) -> str | None:
        """The message for a damaged window after the complete ones (file, what is wrong, what to do), or None."""
        if self.damage_problem is None:
            return None
        index = len(self.windows())
        capture = self.record.capture_path
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
        return windows[-1].owned[1] if windows else 0

    def has(self, name: str) -> bool:
        if self.is_derived(name) or name in COMPUTED_ARRAYS:
            return self.has("depth")
        windows = self.windows()
        return bool(windows) and stem_file(windows[0].path, name).is_file()

    # ----------------------------------------------------------------------------- reading
    def _read(
        self, record: WindowRecord, name: str, rows: slice | int, frame: Literal["stitched", "window"] = "stitched"
    ) -> np.ndarray:
        """Stored array ``name`` of window ``record``, rows ``rows`` of its held timesteps: formats 1, 2 memory-mapped
        as stored; format 3 decoded and (``frame`` "stitched") moved by the window's Sim(3), or (``frame`` "window")
        in the frame it was predicted in."""
        path = stem_file(record.path, name)
        if not path.is_file():
            raise KeyError(f"{self.root} has no array {name!r} (arrays: {', '.join(self.array_names())})")
        if not self.encoded:
            return np.load(path, mmap_mode="r")[rows]
        spec = SPEC[name]
        files = {stem: open_stem(record.path, stem) for stem in spec.files()}
        value = decode(spec, files, rows)
        return value if frame == "window" else move(spec, value, record.to_stitched)

    def window_arrays(self, index: int, names: tuple[str, ...] | list[str] | None = None) -> dict[str, np.ndarray]:
        """Arrays ``[Th, N, ...]`` of complete window ``index``, its held timesteps (``windows()[index].held``), in
        the stitched frame: stored ones memory-mapped (formats 1, 2) or decoded (format 3), derived ones computed
        (``names``: only these; default every array it has)."""
        record = self.windows()[index]
        wanted = ARRAY_NAMES if names is None else tuple(names)
        out = {
            name: self._read(record, name, slice(None))
            for name in wanted
            if not self.is_derived(name) and name not in COMPUTED_ARRAYS and stem_file(record.path, name).is_file()
        }
        for name in wanted:
            if name in COMPUTED_ARRAYS and stem_file(record.path, "depth").is_file():
                out[name] = self._computed(record, name, slice(None))
            if self.is_derived(name) and stem_file(record.path, "depth").is_file():
                stored = self.window_arrays(index, ("depth", "extrinsics", "intrinsics"))
                out[name] = derive_world_points(stored["depth"], stored["extrinsics"], stored["intrinsics"])
        return out

    def _owner(self, t: int) -> tuple[WindowRecord, int]:
        if not 0 <= t < self.num_timesteps:
            raise IndexError(f"timestep {t} out of range: {self.num_timesteps} complete timesteps in {self.root}")
        for record in self.windows():
            if record.owned[0] <= t < record.owned[1]:
                return record, t - record.held[0]
        raise IndexError(t)  # unreachable: owned ranges tile [0, num_timesteps)

    def get(self, name: str, t: int) -> np.ndarray:
        """Array ``name`` at timestep ``t``: ``[N, ...]`` memory-mapped (read-only; formats 1, 2), decoded (format
        3), or computed when derived."""
        if self.is_derived(name):
            return derive_world_points(self.get("depth", t), self.get("extrinsics", t), self.get("intrinsics", t))
        record, local = self._owner(t)
        if name in COMPUTED_ARRAYS:
            return self._computed(record, name, local)
        return self._read(record, name, local)

    def _computed(self, record: WindowRecord, name: str, rows: slice | int) -> np.ndarray:
        """Computed array ``name`` of window ``record`` (rows of its held timesteps): read where the window stores
        it, else computed from the depth and cameras as read (the arrays the writer computes it from)."""
        if stem_file(record.path, name).is_file():
            return self._read(record, name, rows)
        block = slice(rows, rows + 1) if isinstance(rows, int) else rows
        depth, extrinsics, intrinsics = (np.asarray(self._read(record, source, block)) for source in COMPUTED_FROM)
        value = COMPUTE[name](depth.astype(np.float32, copy=False), extrinsics, intrinsics)
        return value[0] if isinstance(rows, int) else value

    def views_agree(self, t: int) -> np.ndarray:
        """Multi-view agreement at timestep ``t``: uint8 ``[N, H, W]`` (:func:`vggt_t_mv.agreement.views_agree` of the
        stored depth and cameras, default tolerances; :data:`~vggt_t_mv.agreement.UNSEEN` where no other camera sees
        the pixel). Read where the run stored it, else computed on read (module docstring); kept per timestep."""
        if t not in self._agreement:
            self._agreement[t] = np.asarray(self.get("views_agree", t))
        return self._agreement[t]

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
            for record in windows:
                rows = slice(record.owned[0] - record.held[0], record.owned[1] - record.held[0])
                read = self._computed if name in COMPUTED_ARRAYS else self._read
                parts.append(np.asarray(read(record, name, rows)))
            return np.concatenate(parts, axis=0)
        return np.stack([np.asarray(self.get(name, t)) for t in timesteps])

    def timestep(self, t: int) -> dict[str, np.ndarray]:
        """Every array at timestep ``t`` (memory-mapped ``[N, ...]`` each)."""
        return {name: self.get(name, t) for name in self.array_names()}

    def tracks(self) -> TrackSet:
        """The 4D tracks (**contract**): ``points [Q, T, 3]``, ``visible [Q, T]``, per-camera 2D ``pixels
        [Q, T, N, 2]`` (:class:`app.reconstruct.track_store.TrackSet`); a :class:`ReconstructionError` when the
        run made none."""
        try:
            return read_tracks(self.root)
        except FileNotFoundError as error:
            raise ReconstructionError(str(error)) from error

    def stream(self, t: int, stream: Stream = "geo") -> tuple[np.ndarray, np.ndarray]:
        """Points ``[N, H, W, 3]`` and confidence ``[N, H, W]`` of a stream (``geo`` or ``pose``) at ``t``."""
        points, conf = STREAMS[stream]
        return self.get(points, t), self.get(conf, t)

    # ----------------------------------------------------------------------------- writing
    def _check_writable(self, names) -> None:
        if self.format_version not in WRITABLE_VERSIONS:
            writable = " or ".join(map(str, WRITABLE_VERSIONS))
            raise ReconstructionError(
                f"{self.root} is in reconstruction format version {self.format_version}; this vggt-mv writes version "
                f"{writable} only. Start it again with --overwrite (reading it keeps working)"
            )
        derived = [n for n in names if n in DERIVED_ARRAYS]
        if derived:
            raise ValueError(
                f"{', '.join(derived)} is derived on read from depth and cameras (format {self.format_version}) and "
                "not stored; leave it out of the arrays to write"
            )
        computed = [n for n in names if n in COMPUTED_ARRAYS]
        if computed:
            raise ValueError(
                f"{', '.join(computed)} is computed by the store from the depth and cameras it writes; leave it out "
                "of the arrays to write"
            )
        unknown = [n for n in names if n not in ARRAY_NAMES]
        if unknown:
            raise ValueError(f"unknown reconstruction array {unknown[0]!r}")

    def encode_window(
        self, index: int, arrays: dict[str, np.ndarray], to_stitched: Sim3 | None = None, start: int | None = None
    ) -> EncodedWindow:
        """Window ``index`` as it will be written: ``arrays [Tw, N, ...]`` over its whole span, depth and points in
        the window's own frame, cameras in the stitched frame, and ``to_stitched`` the window's Sim(3) (None:
        identity). Format 3 keeps the timesteps the window owns (the merge rule over the planned spans; from ``start``,
        the end of what window ``index - 1`` stores, when that differs: a kept window of a resumed run planned
        otherwise) and encodes them (:mod:`app.reconstruct.arrays`); format 2 moves depth and points by the Sim(3)
        and keeps the whole span. Pure when ``start`` is given: the pipeline runs it before the writer thread
        has committed window ``index - 1``."""
        self._check_writable(arrays)
        span = self.spans[index]
        length = span[1] - span[0]
        for name, value in arrays.items():
            if value.shape[:2] != (length, self.num_cameras):
                raise ValueError(f"{name} has shape {value.shape}, expected [{length}, {self.num_cameras}, ...]")
        missing = [n for n in GIVEN_ARRAYS if n not in arrays and n not in OPTIONAL_ARRAYS]
        if missing:
            raise ValueError(f"window {index} misses arrays {missing}")
        sim3 = Sim3.identity() if to_stitched is None else to_stitched
        if not self.encoded:
            files = {name: stored_form_v2(name, move(SPEC[name], value, sim3)) for name, value in arrays.items()}
            return EncodedWindow(index, files, span, sim3)
        owned = owned_ranges(self.spans)[index]
        if start is None:
            windows = self.windows()
            start = windows[index - 1].held[1] if 0 < index <= len(windows) else owned[0]
        if not span[0] <= start <= span[1]:
            raise ValueError(f"window {index} {list(span)} cannot continue the stored timesteps at {start}")
        held = (start, max(start, owned[1]))
        rows = slice(held[0] - span[0], held[1] - span[0])
        files = {}
        for name, value in arrays.items():
            spec = SPEC[name]
            origin = camera_origin(arrays["extrinsics"][rows], sim3) if spec.codec == "offset_float16" else None
            files.update(encode(spec, value[rows], origin))
        return EncodedWindow(index, files, held, sim3)

    def complete_window(self, window: EncodedWindow, tasks: TaskPool | None = None) -> EncodedWindow:
        """``window`` with its computed arrays (format 3; formats 1, 2 store none): ``views_agree`` of the depth and
        cameras it stores, exactly as a reader decodes them (decoded, moved by its Sim(3)), so what is stored equals
        what :meth:`get` computes where a window lacks it. ``window`` itself when they are there already. Costs
        :func:`vggt_t_mv.agreement.views_agree` per stored timestep: run in the writer's thread, the timesteps spread
        over ``tasks``' threads (None: one after the other)."""
        missing = [name for name in COMPUTED_ARRAYS if name not in window.files]
        if not self.encoded or not missing:
            return window
        depth = move(SPEC["depth"], decode(SPEC["depth"], window.files, slice(None)), window.to_stitched)
        extrinsics, intrinsics = window.files["extrinsics"], window.files["intrinsics"]
        files = dict(window.files)
        tasks = tasks or SERIAL
        for name in missing:
            compute = COMPUTE[name]
            rows = tasks.map_all(
                lambda t: compute(depth[t : t + 1], extrinsics[t : t + 1], intrinsics[t : t + 1]),  # noqa: B023
                range(len(depth)),
            )
            value = np.concatenate(rows) if rows else compute(depth, extrinsics, intrinsics)  # none: its empty shape
            files.update(encode(SPEC[name], value))
        return dataclasses.replace(window, files=files)

    def write_window(
        self,
        index: int,
        arrays: dict[str, np.ndarray],
        info: WindowEntry | dict[str, Any],
        to_stitched: Sim3 | None = None,
    ) -> None:
        """Write window ``index`` atomically (:meth:`encode_window`, then :meth:`commit_window`)."""
        self.commit_window(self.encode_window(index, arrays, to_stitched), info)

    def commit_window(
        self, window: EncodedWindow, info: WindowEntry | dict[str, Any], tasks: TaskPool | None = None
    ) -> None:
        """Write an :meth:`encode_window` result (completed: :meth:`complete_window`) and its ``window.json`` into a
        temporary folder and rename it to the
        window's folder (readers and ``--resume`` only ever see complete windows); then meta.json's alignment.
        ``info``: the window's entry (or its JSON form); index, span and what it stores are this window's. The array
        files are compressed and saved on ``tasks``' threads (None: one after the other)."""
        index = window.index
        span = self.spans[index]
        window = self.complete_window(window, tasks)
        if index != len(self.windows(refresh=True)):
            raise ReconstructionError(f"window {index} written out of order ({len(self.windows())} complete)")
        final = self.root / "windows" / _window_dir_name(index)
        tmp = self.root / "windows" / f".{_window_dir_name(index)}.tmp-{os.getpid()}"
        header = {"index": index, "span": list(span)}
        if self.encoded:
            header.update(stored=list(window.held), to_stitched=window.to_stitched.to_dict())
        given = info.to_dict() if isinstance(info, WindowEntry) else dict(info)
        entry = WindowEntry.from_dict(json.loads(json.dumps({**header, **given})))
        entry = dataclasses.replace(entry, index=index, span=span)
        target = tmp
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            if final.exists():  # left over beyond the complete prefix (cannot be trusted): replace
                shutil.rmtree(final)
            tmp.mkdir(parents=True)

            def save(item: tuple[str, np.ndarray]) -> None:
                path = tmp / stem_name(item[0], self.encoded and compressed_stem(item[0]))
                try:
                    save_array_file(path, item[1])
                except OSError as error:
                    raise write_failure(path, error) from error

            (tasks or SERIAL).map_all(save, window.files.items())
            target = tmp / "window.json"
            write_json_atomic(target, entry.to_dict())
            target = final
            os.replace(tmp, final)
        except StoreWriteError:
            _remove(tmp)  # never leave a half-written window behind
            raise
        except OSError as error:
            _remove(tmp)
            raise write_failure(target, error) from error
        self._windows = None
        self._agreement.clear()
        del self.record.alignment[index:]
        self.record.alignment.append(entry)  # as in window.json (--resume rebuilds the list from those)
        self.save_record()

    def overlap_points(self, source: EncodedWindow | int, begin: int) -> tuple[np.ndarray, np.ndarray, Sim3, int]:
        """What a window starting at timestep ``begin`` is aligned to: the geo-stream points ``[K, N, H, W, 3]`` and
        confidences ``[K, N, H, W]`` of the timesteps ``first..`` that window ``source`` holds (an
        :meth:`encode_window` result in memory, or a complete window's index: read from disk, the same values), the
        Sim(3) from the frame they are in to the stitched frame, and ``first``."""
        files: Mapping[str, StoredRows]
        if isinstance(source, EncodedWindow):
            files, held, sim3 = source.files, source.held, source.to_stitched
        else:
            record = self.windows()[source]
            held, sim3 = record.held, record.to_stitched
            stems = [stem for name in STREAMS["geo"] for stem in (SPEC[name].files() if self.encoded else (name,))]
            files = {stem: open_stem(record.path, stem) for stem in stems}
        first = max(begin, held[0])
        rows = slice(first - held[0], held[1] - held[0])
        points, conf = STREAMS["geo"]
        if not self.encoded:  # stored moved already
            return np.asarray(files[points][rows]), np.asarray(files[conf][rows]), Sim3.identity(), first
        return decode(SPEC[points], files, rows), decode(SPEC[conf], files, rows), sim3, first

    def replace_arrays(self, index: int, arrays: dict[str, np.ndarray]) -> None:
        """Overwrite some arrays of a complete window, each file atomically (post-processing passes). ``arrays``
        in the stitched frame, over the window's held timesteps or its whole span (then cut to the held ones). Format
        3: the computed arrays follow new depth or cameras (computed again and saved after them)."""
        self._agreement.clear()
        self._check_writable(arrays)
        record = self.windows()[index]
        path = record.path
        rows = slice(record.held[0] - record.span[0], record.held[1] - record.span[0])
        span_length = record.span[1] - record.span[0]
        files: dict[str, np.ndarray] = {}
        for name, value in arrays.items():
            if not self.encoded:
                files[name] = stored_form_v2(name, value)
                continue
            spec = SPEC[name]
            value = value[rows] if len(value) == span_length else value
            origin = None
            if spec.codec == "offset_float16":  # the (new) cameras' centres, as when the window was written
                cameras = arrays.get("extrinsics")
                cameras = self._read(record, "extrinsics", slice(None)) if cameras is None else cameras
                origin = camera_origin(cameras[rows] if len(cameras) == span_length else cameras, record.to_stitched)
            files.update(encode(spec, move_back(spec, np.asarray(value), record.to_stitched), origin))
        self._save_files(path, files)
        if self.encoded and any(name in arrays for name in COMPUTED_FROM):  # follow the new depth / cameras
            depth, extrinsics, intrinsics = (np.asarray(self._read(record, n, slice(None))) for n in COMPUTED_FROM)
            computed: dict[str, np.ndarray] = {}
            for name in COMPUTED_ARRAYS:
                computed.update(encode(SPEC[name], COMPUTE[name](depth, extrinsics, intrinsics)))
            self._save_files(path, computed)
        self._checked.pop(index, None)
        self._agreement.clear()

    def _save_files(self, path: Path, files: dict[str, np.ndarray]) -> None:
        """Save each array file ``stem`` in window folder ``path``, each atomically, in the container the window has
        for it."""
        for stem, value in files.items():
            # the container the window has (format-3 windows written before compression keep their .npy files)
            existing = stem_file(path, stem)
            compressed = self.encoded and (
                existing.suffix == CHUNKED_SUFFIX or (not existing.is_file() and compressed_stem(stem))
            )
            target = path / stem_name(stem, compressed)
            try:
                with atomic_file(target) as tmp:
                    save_array_file(tmp, value)
            except OSError as error:
                raise write_failure(target, error) from error

    def discard_incomplete(self) -> None:
        """Remove temporary folders and windows past the complete prefix (before resuming)."""
        complete = self.windows(refresh=True)
        keep = {r.path.name for r in complete}
        for entry in (self.root / "windows").iterdir():
            if entry.name not in keep:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        # rebuilt from each window's own window.json (written before its rename): a kill between a window's
        # rename and the meta.json update loses no alignment entry
        self.record.alignment = [record.entry for record in complete]
        self.save_record()
