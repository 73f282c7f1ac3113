"""The typed, versioned record of a reconstruction: :class:`RunRecord`, what ``meta.json`` holds.

Only :mod:`app.reconstruct.store` reads and writes the JSON (``Reconstruction.open(path).record``); every other
module reads the record's fields. Each dataclass here has ``to_dict`` (the JSON form, the keys format 2 has always
written) and ``from_dict`` (its inverse). Reading is lenient where a file can lawfully differ:

* a key an older writer did not write takes its default (format 1 has no ``settings.cameras``; a reconstruction
  written by a tool or test may have no ``capture``, ``model`` or ``settings`` at all);
* a key this version does not know is kept, untouched, in the dataclass's ``extra`` and written back;
* a model block whose config this version cannot build is kept as written (``model_problem`` says why), so the
  reconstruction still opens, views and exports; only ``--resume`` refuses it, naming that reason.

What every reader relies on (``camera_names``, ``image_hw``, ``spans``; ``capture`` and ``alignment`` of the right
JSON type) is checked: :class:`RecordError` says what is wrong.

Resume identity (:meth:`RunRecord.resume_difference`, :meth:`RunRecord.kept_windows`) is a question asked of two
records: may a run described by one continue the reconstruction described by the other.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from app.capture.calibration.rig import (
    CALIBRATION_FORMATS,
    DISTORTION_MODELS,
    CalibrationFormat,
    CameraCalibration,
    Distortion,
    RigCalibration,
)
from app.capture.preprocess import FrameTransform
from app.common.vocab import (
    ALIGNMENT_KINDS,
    CAMERA_MODES,
    DTYPE_NAMES,
    LENGTH_UNITS,
    PREPROCESS_MODES,
    RUN_STATUSES,
    AlignmentKind,
    CameraMode,
    Choice,
    DtypeName,
    LengthUnit,
    PreprocessMode,
    RunStatus,
)
from app.reconstruct.calibrated import Agreement, CameraAgreement
from vggt_t_mv.npgeometry import Sim3
from vggt_t_mv.provenance import Provenance
from vggt_t_mv.tracks import QueryKind, TrackConfig
from vggt_t_mv.tracks.chain import QUERY_KINDS

FORMAT_NAME = "vggt-mv-reconstruction"
FORMAT_VERSION = 3  # what new runs write
READABLE_VERSIONS = (1, 2, 3)
WRITABLE_VERSIONS = (2, 3)  # format 2 is still written to continue (--resume) a format-2 run
CONVENTION = "OpenCV camera-from-world; frame of camera 0 at the first timestep"


class RecordError(ValueError):
    """A meta.json whose content cannot be a reconstruction's record; the message says which field and why."""


def _unknown(data: dict[str, Any], cls: type) -> dict[str, Any]:
    """The entries of ``data`` that are not fields of dataclass ``cls`` (kept in its ``extra``)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k not in names}


def _fields_of(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``data`` that are fields of dataclass ``cls`` (a newer writer's additions are left out)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


Default = TypeVar("Default")
Flat = TypeVar("Flat")  # a flat record dataclass with an ``extra`` field


def _choice(value: Any, choices: tuple[Choice, ...], default: Default) -> Choice | Default:
    """``value`` as the member of ``choices`` it equals, else ``default`` (a value this version does not know)."""
    return next((choice for choice in choices if choice == value), default)


def _kept_choice(data: dict[str, Any], key: str, choices: tuple[Choice, ...], extra: dict[str, Any]) -> Choice | None:
    """``data[key]`` as one of ``choices``; a value this version does not know goes to ``extra[key]``, kept as it
    was (``to_dict`` writes it back, the resume identity compares it), and the field is None."""
    value = data.get(key)
    known = _choice(value, choices, None)
    if value is not None and known is None:
        extra[key] = value
    return known


def _build(cls: type[Flat], data: Any, what: str) -> Flat:
    """``cls(**known fields of data, extra=the others)`` for a flat dataclass with ``extra``; a RecordError naming
    ``what`` when ``data`` is not an object or lacks a field without a default."""
    if not isinstance(data, dict):
        raise RecordError(f"{what} must be a JSON object, got {type(data).__name__}")
    make: Callable[..., Flat] = cls  # a dataclass: its fields as keywords
    try:
        return make(**_fields_of(cls, data), extra=_unknown(data, cls))
    except TypeError as error:
        raise RecordError(f"{what} {data!r} lacks a field ({error})") from error


def _flat_dict(record: Any, keep_none: bool) -> dict[str, Any]:
    """A flat dataclass with ``extra`` as JSON: its fields (None ones only with ``keep_none``), then ``extra``."""
    out = {f.name: getattr(record, f.name) for f in dataclasses.fields(record) if f.name != "extra"}
    return {**(out if keep_none else _without_none(out)), **record.extra}


# --------------------------------------------------------------------------------------------- capture
@dataclass
class SourceDescription:
    """One camera's source as the capture read it (:meth:`app.capture.sources.CameraSource.describe`): ``name``,
    absolute ``path``, ``kind`` (``video``, ``images``, ...), number of ``frames``, ``fps`` (None: not known),
    frame ``height`` and ``width`` (original pixels) and a ``note``. Every key is written, None included."""

    name: str
    path: str = ""
    kind: str | None = None
    frames: int | None = None
    fps: float | None = None
    height: int | None = None
    width: int | None = None
    note: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _flat_dict(self, keep_none=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceDescription:
        return _build(cls, data, "capture.cameras entry")


@dataclass
class FrameSelection:
    """Which timesteps of the capture were selected (``--start``, ``--end``, ``--every``, ``--max-frames``)."""

    start: int = 0
    end: int | None = None
    every: int = 1
    max_frames: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameSelection:
        return cls(int(data.get("start", 0)), data.get("end"), int(data.get("every", 1)), data.get("max_frames"))


@dataclass
class TimeSpread:
    """Per-timestep spread of the cameras' timestamps (seconds): mean, max and each timestep's."""

    mean: float
    max: float
    per_timestep: list[float]


@dataclass
class CaptureRecord:
    """The capture as the run read it (:meth:`app.capture.rig.RigCapture.describe`): its absolute ``path``, ``form``
    and ``layout``, per camera source the description ``cameras`` (name, path, kind, frames, fps, height, width,
    note), the sync mode, the selected timesteps (``timestep_ids [T]``, ``frame_index [T][N]`` source frame of each
    camera, ``times [T][N]`` seconds or None) and the capture's warnings."""

    path: str = ""
    # form, layout and sync as the file says (this version writes a CaptureForm, CaptureLayout and SyncKind; they
    # are compared for --resume, never switched on, so other words are kept as they are)
    form: str | None = None
    layout: str | None = None
    camera_names: list[str] = field(default_factory=list)
    cameras: list[SourceDescription] = field(default_factory=list)
    sync: str | None = None
    num_timesteps: int = 0
    total_timesteps: int = 0
    selection: FrameSelection = field(default_factory=FrameSelection)
    timestep_ids: list[int] = field(default_factory=list)
    frame_index: list[list[int]] = field(default_factory=list)
    times: list[list[float]] | None = None
    spread_s: TimeSpread | None = None
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out["cameras"] = [camera.to_dict() for camera in self.cameras]
        out["selection"] = dataclasses.asdict(self.selection)
        out["spread_s"] = None if self.spread_s is None else dataclasses.asdict(self.spread_s)
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaptureRecord:
        spread = data.get("spread_s")
        return cls(
            str(data.get("path", "")),
            data.get("form"),
            data.get("layout"),
            list(data.get("camera_names") or []),
            [SourceDescription.from_dict(camera) for camera in data.get("cameras") or []],
            data.get("sync"),
            int(data.get("num_timesteps") or 0),
            int(data.get("total_timesteps") or 0),
            FrameSelection.from_dict(data.get("selection") or {}),
            list(data.get("timestep_ids") or []),
            list(data.get("frame_index") or []),
            data.get("times"),
            None if not isinstance(spread, dict) else TimeSpread(spread["mean"], spread["max"], spread["per_timestep"]),
            list(data.get("warnings") or []),
            _unknown(data, cls),
        )

    def same_source(self, other: CaptureRecord) -> bool:
        """The same capture read the same way, whatever number of timesteps each selects (``--end``,
        ``--max-frames``): path, form, layout, cameras, sync, total length, ``--start`` and ``--every``."""
        keys = ("path", "form", "layout", "camera_names", "cameras", "sync", "total_timesteps")
        mine, theirs = self.to_dict(), other.to_dict()
        same = all(_json_form(mine[k]) == _json_form(theirs[k]) for k in keys) and _json_form(self.extra) == _json_form(
            other.extra
        )
        return same and ((self.selection.start, self.selection.every) == (other.selection.start, other.selection.every))


# --------------------------------------------------------------------------------------------- settings
@dataclass
class RunSettings:
    """The run's resolved options: windows, device, autocast dtype (``float32`` = none), model input ``size`` and
    ``mode``, external ``masks`` (``auto``, an absolute path or None), ``rigid_rig``, the ``calibration`` (absolute
    path or None) and its ``calibration_units``, and which ``cameras`` are stored."""

    window: int
    stride: int
    device: str = "cpu"
    dtype: DtypeName = "float32"
    size: int | None = None
    mode: PreprocessMode = "crop"
    masks: str | None = None
    rigid_rig: bool = False
    calibration: str | None = None
    calibration_units: LengthUnit | None = None
    cameras: CameraMode = "predicted"  # format 1 and runs before issue 23: the model's cameras
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSettings:
        for key in ("window", "stride"):
            if not isinstance(data.get(key), int):
                raise RecordError(f"settings.{key} must be a whole number, got {data.get(key)!r}")
        return cls(
            data["window"],
            data["stride"],
            str(data.get("device", "cpu")),
            _choice(data.get("dtype"), DTYPE_NAMES, "float32"),
            data.get("size"),
            _choice(data.get("mode"), PREPROCESS_MODES, "crop"),
            data.get("masks"),
            bool(data.get("rigid_rig", False)),
            data.get("calibration"),
            _choice(data.get("calibration_units"), LENGTH_UNITS, None),
            _choice(data.get("cameras"), CAMERA_MODES, "predicted"),
            _unknown(data, cls),
        )


# --------------------------------------------------------------------------------------------- tracks
@dataclass
class TrackSettings:
    """``--track-queries`` as the run resolved it: ``queries`` (``auto`` or the query file's absolute path; ``auto``
    with a dataset's ``query_points.npy``: that file), the file's ``sha256``, ``kind`` and ``count`` (None for the
    automatic grid, chosen after the windows), the grid's ``grid_cells`` (points along the longer image side) and
    ``max_queries``, and the tracker's thresholds ``config``. Part of the run's identity for ``--resume``."""

    queries: str
    sha256: str | None = None
    kind: QueryKind | None = None
    count: int | None = None
    grid_cells: int | None = None
    max_queries: int | None = None
    config: TrackConfig = field(default_factory=TrackConfig)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out["config"] = dataclasses.asdict(self.config)
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrackSettings:
        config = data.get("config")
        kind = data.get("kind")
        return cls(
            str(data.get("queries", "")),
            data.get("sha256"),
            _choice(kind, QUERY_KINDS, None),
            data.get("count"),
            data.get("grid_cells"),
            data.get("max_queries"),
            TrackConfig(**_fields_of(TrackConfig, config)) if isinstance(config, dict) else TrackConfig(),
            _unknown(data, cls),
        )

    def describe(self) -> str:
        """One line: which queries (and the file's hash), for messages."""
        if self.sha256 is None:
            return f"--track-queries {self.queries}"
        return f"--track-queries {self.queries} (sha256 {self.sha256[:12]}, {self.count} {self.kind} queries)"


# --------------------------------------------------------------------------------------------- alignment
@dataclass
class Alignment:
    """How one window was moved into the reconstruction's frame.

    ``kind``: ``reference`` (window 0, scaled by ``metric_scale`` when a calibration gave one),
    ``sim3`` (fitted on its ``overlap`` timesteps with the window before: ``sim3`` and the fit's statistics),
    ``failed`` (no usable fit: left unaligned) or ``calibrated`` (``--cameras calibrated``: its own Sim(3) onto the
    calibration, the fit, the calibrated rig's camera ``rig_spacing`` in ``units``, and each camera's agreement);
    None when the writer recorded none (a test or another tool)."""

    kind: AlignmentKind | None = None
    sim3: Sim3 | None = None
    overlap: int | None = None
    residual_median: float | None = None
    residual_mean_inlier: float | None = None
    inlier_fraction: float | None = None
    num_points: int | None = None
    iterations: int | None = None
    metric_scale: float | None = None
    baseline_ratios: list[float] | None = None
    rig_spacing: float | None = None
    units: LengthUnit | None = None
    flagged: bool | None = None
    cameras: list[CameraAgreement] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        if self.sim3 is not None:
            out["sim3"] = self.sim3.to_dict()
        if self.cameras is not None:
            out["cameras"] = [dataclasses.asdict(c) for c in self.cameras]
        return {**_without_none(out), **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alignment:
        extra = _unknown(data, cls)
        kind = data.get("kind")
        if kind is not None and kind not in ALIGNMENT_KINDS:
            extra["kind"] = kind  # a kind another writer recorded; kept as it was
            kind = None
        sim3 = data.get("sim3")
        cameras = data.get("cameras")
        return cls(
            kind,
            None if sim3 is None else Sim3.from_dict(sim3),
            data.get("overlap"),
            data.get("residual_median"),
            data.get("residual_mean_inlier"),
            data.get("inlier_fraction"),
            data.get("num_points"),
            data.get("iterations"),
            data.get("metric_scale"),
            data.get("baseline_ratios"),
            data.get("rig_spacing"),
            data.get("units"),
            data.get("flagged"),
            None if cameras is None else [CameraAgreement(**_fields_of(CameraAgreement, c)) for c in cameras],
            extra,
        )


@dataclass
class WindowEntry:
    """One complete window (also its ``window.json``): ``index``, ``span`` [start, end) in timesteps, its
    :class:`Alignment` and the seconds the model took (None when not recorded)."""

    index: int
    span: tuple[int, int]
    alignment: Alignment = field(default_factory=Alignment)
    model_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "span": list(self.span)}
        if self.model_seconds is not None:
            out["model_seconds"] = self.model_seconds
        return {**out, "alignment": self.alignment.to_dict(), **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowEntry:
        span = data.get("span") or (0, 0)
        alignment = data.get("alignment")
        return cls(
            int(data.get("index", 0)),
            (int(span[0]), int(span[1])),
            Alignment.from_dict(alignment if isinstance(alignment, dict) else {}),
            data.get("model_seconds"),
            _unknown(data, cls),
        )


# --------------------------------------------------------------------------------------------- calibration
@dataclass
class CalibratedCameraRecord:
    """One capture camera's lens as the run's calibration gave it: the capture's ``name``, the calibration's own
    ``calibration_name``, the frame ``size`` ``(width, height)`` the intrinsics belong to (None: the file does not
    say), ``intrinsics [3][3]`` (OpenCV pixels) and ``distortion`` (``{"model", "coefficients"}``, OpenCV order)."""

    name: str
    intrinsics: list[list[float]]
    calibration_name: str | None = None
    size: list[int] | None = None
    distortion: dict[str, Any] = field(default_factory=lambda: {"model": "none", "coefficients": []})
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, camera: CameraCalibration) -> CalibratedCameraRecord:
        """The record of capture camera ``name`` calibrated as ``camera``."""
        return cls(
            name,
            np.asarray(camera.intrinsics, np.float64).tolist(),
            camera.name,
            None if camera.size is None else [int(camera.size[0]), int(camera.size[1])],
            {"model": camera.distortion.model, "coefficients": [float(c) for c in camera.distortion.coefficients]},
        )

    def lens(self) -> CameraCalibration:
        """The camera's intrinsics, size and distortion (no extrinsics): what undoes the run's undistortion."""
        model = self.distortion.get("model", "none")
        if model not in DISTORTION_MODELS:
            raise RecordError(
                f"calibration camera {self.name!r}: distortion model {model!r} is not one of "
                f"{', '.join(DISTORTION_MODELS)}"
            )
        size = None if self.size is None else (int(self.size[0]), int(self.size[1]))
        coefficients = np.asarray(self.distortion.get("coefficients", []), np.float64)
        return CameraCalibration(
            self.calibration_name or self.name,
            np.asarray(self.intrinsics, np.float64),
            size,
            Distortion(model, coefficients),
        )

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "calibration_name": self.calibration_name,
            "size": self.size,
            "intrinsics": self.intrinsics,
            "distortion": self.distortion,
        }
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibratedCameraRecord:
        return _build(cls, data, "calibration.cameras entry")


@dataclass
class CalibrationRecord:
    """The rig calibration the run used: its absolute ``path``, ``format``, ``units`` and where they came from, how
    its cameras were matched to the capture's, whether it is a moving rig, and per capture camera its lens
    (``cameras``). Built from the calibration by :meth:`of`."""

    path: str
    format: CalibrationFormat | None = None
    units: LengthUnit = "arbitrary"
    units_source: str | None = None
    match: str | None = None
    moving: bool = False
    cameras: list[CalibratedCameraRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, calibration: RigCalibration) -> CalibrationRecord:
        """The record of the calibration a run used."""
        return cls(
            str(Path(calibration.path).resolve()),
            calibration.format,
            calibration.units,
            calibration.units_source,
            calibration.match,
            calibration.moving,
            [
                CalibratedCameraRecord.of(name, camera)
                for name, camera in zip(calibration.camera_names, calibration.cameras, strict=True)
            ],
        )

    def lenses(self) -> list[CameraCalibration]:
        """Per capture camera, in capture order, its lens (:meth:`CalibratedCameraRecord.lens`)."""
        return [camera.lens() for camera in self.cameras]

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("extra", "cameras")}
        return {**out, "cameras": [camera.to_dict() for camera in self.cameras], **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationRecord:
        extra = _unknown(data, cls)
        return cls(
            str(data.get("path", "")),
            _kept_choice(data, "format", CALIBRATION_FORMATS, extra),
            _choice(data.get("units"), LENGTH_UNITS, "arbitrary"),
            data.get("units_source"),
            data.get("match"),
            bool(data.get("moving", False)),
            [CalibratedCameraRecord.from_dict(entry) for entry in data.get("cameras") or []],
            extra,
        )


# --------------------------------------------------------------------------------------------- rig report
@dataclass
class RigidRig:
    """The ``--rigid-rig`` average: each camera's pose relative to camera 0 (``camera_from_camera0 [N][3][4]``) and
    the one set of intrinsics (``[3][3]``, model pixels) every stored frame got."""

    camera_from_camera0: list[list[list[float]]]
    intrinsics: list[list[float]]


@dataclass
class CameraSpread:
    """One camera of the rig diagnostics (:func:`app.reconstruct.stitching.rig_diagnostics`): focal length mean
    (model pixels) and spread over time (std / mean, %), principal point std (px); for the cameras after camera 0,
    relative to it: baseline mean, translation spread (% of the baseline) and rotation spread (mean and max angle
    from the mean relative rotation, degrees). None: not measured (camera 0's relative values); not written."""

    name: str
    focal_mean: float | None = None
    focal_spread_pct: float | None = None
    principal_point_std_px: float | None = None
    baseline_mean: float | None = None
    translation_spread_pct: float | None = None
    rotation_spread_mean_deg: float | None = None
    rotation_spread_max_deg: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _flat_dict(self, keep_none=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CameraSpread:
        return _build(cls, data, "rig diagnostics camera")


@dataclass
class RigDiagnostics:
    """How constant the rig stayed over time, per camera (:class:`CameraSpread`, camera 0 first)."""

    cameras: list[CameraSpread] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"cameras": [camera.to_dict() for camera in self.cameras], **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RigDiagnostics:
        if not isinstance(data, dict):
            raise RecordError(f"rig diagnostics must be a JSON object, got {type(data).__name__}")
        cameras = [CameraSpread.from_dict(camera) for camera in data.get("cameras") or []]
        return cls(cameras, _unknown(data, cls))


@dataclass
class FocalComparison:
    """One camera's focal length, predicted (median over time, at the source's resolution) and the calibration's
    (pixels), and the predicted one's error (%)."""

    name: str
    focal_predicted_px: float
    focal_calibrated_px: float
    focal_error_pct: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _flat_dict(self, keep_none=True)


@dataclass
class RigError:
    """One camera after camera 0 (:func:`app.reconstruct.stitching.rig_error`): the predicted rig's mean pose
    relative to camera 0 against the calibration's: rotation error (degrees), translation error and both baselines
    (calibration units)."""

    name: str
    rotation_error_deg: float
    translation_error: float
    baseline_calibrated: float
    baseline_predicted: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _flat_dict(self, keep_none=False)


@dataclass
class CalibrationComparison:
    """The predicted cameras against the calibration ``file`` (``--calibration`` with predicted cameras): per camera
    the focal lengths (``intrinsics``) and, for a calibration with extrinsics and more than one camera, the rig's
    pose errors (``rig``) in ``units``."""

    file: str
    units: str = "m"
    intrinsics: list[FocalComparison] = field(default_factory=list)
    rig: list[RigError] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "units": self.units,
            "intrinsics": [camera.to_dict() for camera in self.intrinsics],
        }
        if self.rig is not None:
            out["rig"] = [camera.to_dict() for camera in self.rig]
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationComparison:
        if not isinstance(data, dict):
            raise RecordError(f"rig.calibration must be a JSON object, got {type(data).__name__}")
        rig = data.get("rig")
        return cls(
            str(data.get("file", "")),
            str(data.get("units", "m")),
            [_build(FocalComparison, c, "rig.calibration.intrinsics entry") for c in data.get("intrinsics") or []],
            None if rig is None else [_build(RigError, c, "rig.calibration.rig entry") for c in rig],
            _unknown(data, cls),
        )


@dataclass
class RigReport:
    """The end-of-run report on the rig: ``diagnostics`` (:func:`app.reconstruct.stitching.rig_diagnostics`: per
    camera the spread of focal length, baseline and rotation over time), the ``rigid`` average and the diagnostics
    after it (``--rigid-rig``), the comparison with a calibration (``calibration``: per camera focal error, and the
    rig's rotation / translation error per camera) and the calibrated windows' :class:`Agreement`."""

    diagnostics: RigDiagnostics | None = None
    rigid: RigidRig | None = None
    diagnostics_after_rigid: RigDiagnostics | None = None
    calibration: CalibrationComparison | None = None
    agreement: Agreement | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "diagnostics": None if self.diagnostics is None else self.diagnostics.to_dict(),
            "rigid": None if self.rigid is None else dataclasses.asdict(self.rigid),
            "diagnostics_after_rigid": None
            if self.diagnostics_after_rigid is None
            else self.diagnostics_after_rigid.to_dict(),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "agreement": None if self.agreement is None else dataclasses.asdict(self.agreement),
        }
        return {**_without_none(out), **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RigReport:
        rigid, agreement, calibration = data.get("rigid"), data.get("agreement"), data.get("calibration")
        before, after = data.get("diagnostics"), data.get("diagnostics_after_rigid")
        return cls(
            None if before is None else RigDiagnostics.from_dict(before),
            None if rigid is None else RigidRig(rigid["camera_from_camera0"], rigid["intrinsics"]),
            None if after is None else RigDiagnostics.from_dict(after),
            None if calibration is None else CalibrationComparison.from_dict(calibration),
            None if agreement is None else Agreement(**_fields_of(Agreement, agreement)),
            _unknown(data, cls),
        )


# --------------------------------------------------------------------------------------------- the record
@dataclass
class RunRecord:
    """Everything ``meta.json`` says about a reconstruction (module docstring).

    ``camera_names``, ``image_hw`` (model pixels) and ``spans`` (every planned window, ``[start, end)``) are what
    readers need; ``capture``, ``model``, ``settings``, ``preprocess`` (per camera, original -> model pixels) and
    ``calibration`` identify the run; ``alignment`` (one :class:`WindowEntry` per complete window), ``rig``,
    ``run_warnings``, ``num_timesteps`` and ``status`` are what it did."""

    camera_names: list[str]
    image_hw: tuple[int, int]
    spans: list[tuple[int, int]]
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION
    created: float = field(default_factory=time.time)
    capture: CaptureRecord | None = None
    model: Provenance | None = None
    settings: RunSettings | None = None
    num_timesteps_planned: int | None = None
    preprocess: list[FrameTransform] = field(default_factory=list)
    calibration: CalibrationRecord | None = None
    convention: str = CONVENTION
    status: RunStatus = "running"
    alignment: list[WindowEntry] = field(default_factory=list)
    rig: RigReport | None = None
    num_timesteps: int | None = None
    run_warnings: list[str] | None = None
    model_problem: str | None = None  # why ``model`` could not be read (its JSON is kept in ``extra["model"]``)
    tracks: TrackSettings | None = None  # --track-queries (None: no tracks, or none recorded)
    tracks_recorded: bool = True  # False: written before track settings were recorded (not in the JSON)
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The JSON form (meta.json)."""
        out: dict[str, Any] = {
            "format": self.format,
            "format_version": self.format_version,
            "created": self.created,
            "capture": None if self.capture is None else self.capture.to_dict(),
            "model": None if self.model is None else self.model.to_dict(),
            "settings": None if self.settings is None else self.settings.to_dict(),
            "camera_names": list(self.camera_names),
            "num_timesteps_planned": self.num_timesteps_planned,
            "image_hw": list(self.image_hw),
            "spans": [list(s) for s in self.spans],
            "preprocess": [t.to_dict() for t in self.preprocess],
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "convention": self.convention,
            "status": self.status,
            "alignment": [entry.to_dict() for entry in self.alignment],
            "rig": None if self.rig is None else self.rig.to_dict(),
            "num_timesteps": self.num_timesteps,
            "run_warnings": self.run_warnings,
            "tracks": None if self.tracks is None else self.tracks.to_dict(),
        }
        optional = ("capture", "model", "settings", "num_timesteps_planned", "rig", "num_timesteps", "run_warnings")
        out = {k: v for k, v in out.items() if v is not None or (k not in optional and k != "calibration")}
        if self.calibration is None and self.settings is not None:
            out["calibration"] = None  # written by every run since calibrations exist: "none used"
        if self.tracks is None and (self.settings is None or not self.tracks_recorded):
            del out["tracks"]  # written by every run since track settings are recorded: null = no tracks
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: Any) -> RunRecord:
        """The record of a meta.json's content; :class:`RecordError` names the field that cannot be read."""
        if not isinstance(data, dict):
            raise RecordError(f"it holds a JSON {type(data).__name__}, not an object")
        names, hw, spans = data.get("camera_names"), data.get("image_hw"), data.get("spans")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise RecordError("camera_names must be a list of camera names")
        if not isinstance(hw, list) or len(hw) != 2 or not all(isinstance(v, int) and v > 0 for v in hw):
            raise RecordError("image_hw must be [height, width]")
        if not isinstance(spans, list) or not all(
            isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) for v in s) and 0 <= s[0] < s[1]
            for s in spans
        ):
            raise RecordError("spans must be a list of [start, end) timestep pairs")
        capture, alignment = data.get("capture"), data.get("alignment", [])
        if not isinstance(capture or {}, dict) or not isinstance(alignment, list):
            raise RecordError("capture must be an object and alignment a list")
        extra = _unknown(data, cls)
        model, problem = None, None
        if isinstance(data.get("model"), dict):
            try:
                model = Provenance.from_dict(data["model"])
            except (ValueError, TypeError, KeyError) as error:
                extra["model"], problem = data["model"], f"its model record cannot be read ({error})"
        settings, tracks = data.get("settings"), data.get("tracks")
        calibration, rig = data.get("calibration"), data.get("rig")
        try:
            return cls(
                list(names),
                (hw[0], hw[1]),
                [(s[0], s[1]) for s in spans],
                str(data.get("format", FORMAT_NAME)),
                int(data.get("format_version", FORMAT_VERSION)),
                float(data.get("created", 0.0)),
                None if capture is None else CaptureRecord.from_dict(capture),
                model,
                RunSettings.from_dict(settings) if isinstance(settings, dict) else None,
                data.get("num_timesteps_planned"),
                [FrameTransform.from_dict(t) for t in data.get("preprocess") or []],
                CalibrationRecord.from_dict(calibration) if isinstance(calibration, dict) else None,
                str(data.get("convention", CONVENTION)),
                _choice(data.get("status"), RUN_STATUSES, "running"),
                [WindowEntry.from_dict(entry) for entry in alignment if isinstance(entry, dict)],
                RigReport.from_dict(rig) if isinstance(rig, dict) else None,
                data.get("num_timesteps"),
                data.get("run_warnings"),
                problem,
                TrackSettings.from_dict(tracks) if isinstance(tracks, dict) else None,
                "tracks" in data,
                extra,
            )
        except (KeyError, TypeError, ValueError, IndexError) as error:
            if isinstance(error, RecordError):
                raise
            raise RecordError(f"a field cannot be read ({type(error).__name__}: {error})") from error

    # ------------------------------------------------------------------------------------ reading
    @property
    def num_cameras(self) -> int:
        return len(self.camera_names)

    @property
    def is_complete(self) -> bool:
        return self.status == "complete"

    @property
    def capture_path(self) -> str:
        """The capture's path for a command line (``CAPTURE`` when the record has none)."""
        return self.capture.path if self.capture is not None and self.capture.path else "CAPTURE"

    @property
    def planned_timesteps(self) -> int:
        """Timesteps the run set out to reconstruct (the end of the last planned window when not recorded)."""
        return self.num_timesteps_planned or (self.spans[-1][1] if self.spans else 0)

    def alignments(self) -> list[Alignment]:
        """The complete windows' alignments, in order."""
        return [entry.alignment for entry in self.alignment]

    @property
    def random_weights(self) -> bool:
        """The model provenance says its weights were random (untrained)."""
        return self.model is not None and self.model.random_weights

    # ------------------------------------------------------------------------------------ resume identity
    def resume_differences(self, new: RunRecord) -> list[str]:
        """What a run described by ``new`` does differently from the run that wrote this record, by field name
        (``capture``, ``model``, ``settings``, ``camera_names``, ``spans``, ``image_hw``, ``preprocess``,
        ``tracks``); empty when it may continue this reconstruction as it is. The capture's warnings and where the
        model config came from do not count. Tracks count when this run recorded track settings (it tracks, or
        tracked): another query file, another hash of it, other thresholds, or none at all; a run that tracks
        nothing (or whose queries were refused after its windows) may be continued with queries."""
        differ = []
        if _capture_identity(self.capture) != _capture_identity(new.capture):
            differ.append("capture")
        if (self.model is None) != (new.model is None) or (
            self.model is not None and new.model is not None and not self.model.same_weights(new.model)
        ):
            differ.append("model")
        if _json_form(None if self.settings is None else self.settings.to_dict()) != _json_form(
            None if new.settings is None else new.settings.to_dict()
        ):
            differ.append("settings")
        for name in ("camera_names", "spans", "image_hw"):
            if _json_form(getattr(self, name)) != _json_form(getattr(new, name)):
                differ.append(name)
        if _json_form([t.to_dict() for t in self.preprocess]) != _json_form([t.to_dict() for t in new.preprocess]):
            differ.append("preprocess")
        if self.tracks is not None and _json_form(self.tracks.to_dict()) != _json_form(
            None if new.tracks is None else new.tracks.to_dict()
        ):
            differ.append("tracks")
        return sorted(differ)

    def tracks_difference(self, new: RunRecord) -> str:
        """In words, how ``new``'s track settings differ from this record's (for the ``--resume`` refusal)."""

        def words(tracks: TrackSettings | None, thresholds: bool) -> str:
            if tracks is None:
                return "no --track-queries"
            return tracks.describe() + (f", thresholds {dataclasses.asdict(tracks.config)}" if thresholds else "")

        same_queries = words(self.tracks, False) == words(new.tracks, False)
        return f"it was made with {words(self.tracks, same_queries)}, this run has {words(new.tracks, same_queries)}"

    def kept_windows(self, new: RunRecord, complete: list[tuple[int, int]]) -> int | None:
        """How many of this reconstruction's complete windows (their spans ``complete``, in order) a run described
        by ``new`` can keep when the two differ only in how many timesteps the capture selects (``--end``,
        ``--max-frames``): the leading windows with the same span and the same frames in both. None when they
        differ in anything else."""
        if set(self.resume_differences(new)) - {"capture", "spans"}:
            return None
        if self.capture is None or new.capture is None or not self.capture.same_source(new.capture):
            return None
        old_capture, new_capture = self.capture, new.capture
        kept = 0
        for index, (begin, end) in enumerate(complete):
            if index >= len(new.spans) or tuple(new.spans[index]) != (begin, end):
                break
            if (
                old_capture.timestep_ids[begin:end] != new_capture.timestep_ids[begin:end]
                or old_capture.frame_index[begin:end] != new_capture.frame_index[begin:end]
            ):
                break
            kept += 1
        return kept


def _json_form(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists, numpy scalars as numbers), for comparing records."""
    return json.loads(json.dumps(value))


def _capture_identity(capture: CaptureRecord | None) -> Any:
    """What identifies a capture for ``--resume``: its record without the warnings reading it gave."""
    if capture is None:
        return None
    return _json_form({k: v for k, v in capture.to_dict().items() if k != "warnings"})
