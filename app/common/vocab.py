"""The app's mode vocabularies, each written once as a ``Literal`` (for type hints) and its tuple of values (for
validation and click choices). GUI labels map onto these values; they are not vocabularies of their own."""

from __future__ import annotations

from typing import Literal, TypeVar, get_args

Stream = Literal["geo", "pose"]  # geo: the point head's map; pose: depth unprojected with the predicted cameras
Motion = Literal["all", "static", "dynamic"]  # pixel filter on the dynamic probability (selection.pixel_filter)
PreprocessMode = Literal["auto", "crop", "pad"]  # auto: crop unless that cuts too much, then pad
SyncMode = Literal["auto", "index", "fps", "timestamps"]
# how a capture's frames were matched across cameras (app.capture.sync.SyncResult): by frame number, by each camera's
# frame rate, by a timestamps CSV, or a single timestep of still images
SyncKind = Literal["index", "fps", "timestamps", "static"]
# what a capture folder holds (app.capture.sources.discover_cameras, app.capture.layout.discover)
CaptureForm = Literal["videos", "image_folders", "mixed", "static_images", "single_video", "time_major"]
DtypeName = Literal["auto", "float32", "bfloat16", "float16"]
ExportFormat = Literal["ply", "glb", "mesh", "colmap", "npz", "splat", "tracks"]  # app.export.api's files
SceneFormat = Literal["viser", "web"]  # a 4D scene to share (app.viewer.recording): a .viser file or a web folder
RenderMode = Literal["points", "splats"]  # the viewer draws point clouds or Gaussian splats
ShowMode = Literal["prediction", "ground truth", "both"]  # what the viewer draws when it has a ground truth
PointColoring = Literal["image", "error"]  # prediction coloured by its images or by its distance to the ground truth
CameraMode = Literal["calibrated", "predicted"]  # stored cameras: the rig's calibration, or the model's prediction
# how reconstruction format 3 stores an array (app.reconstruct.arrays): as computed, float16, a probability in uint8,
# or float16 offsets from a float32 origin per image
ArrayCodec = Literal["exact", "float16", "unit_uint8", "offset_float16"]
# what a window's Sim(3) does to an array when it is read in the stitched frame: nothing, move points, scale depths
FrameMotion = Literal["none", "points", "scale"]
LengthUnit = Literal["m", "cm", "mm", "arbitrary"]  # a calibration's unit; arbitrary: its own, not known to be metric
# how a window was moved into the reconstruction's frame (app.reconstruct.record.Alignment)
AlignmentKind = Literal["reference", "sim3", "failed", "calibrated"]
RunStatus = Literal["running", "complete"]  # a reconstruction's run: still writing (or stopped), or finished

STREAMS: tuple[Stream, ...] = get_args(Stream)
MOTIONS: tuple[Motion, ...] = get_args(Motion)
PREPROCESS_MODES: tuple[PreprocessMode, ...] = get_args(PreprocessMode)
SYNC_MODES: tuple[SyncMode, ...] = get_args(SyncMode)
SYNC_KINDS: tuple[SyncKind, ...] = get_args(SyncKind)
CAPTURE_FORMS: tuple[CaptureForm, ...] = get_args(CaptureForm)
DTYPE_NAMES: tuple[DtypeName, ...] = get_args(DtypeName)
EXPORT_FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)
SCENE_FORMATS: tuple[SceneFormat, ...] = get_args(SceneFormat)
RENDER_MODES: tuple[RenderMode, ...] = get_args(RenderMode)
SHOW_MODES: tuple[ShowMode, ...] = get_args(ShowMode)
POINT_COLORINGS: tuple[PointColoring, ...] = get_args(PointColoring)
CAMERA_MODES: tuple[CameraMode, ...] = get_args(CameraMode)
ARRAY_CODECS: tuple[ArrayCodec, ...] = get_args(ArrayCodec)
FRAME_MOTIONS: tuple[FrameMotion, ...] = get_args(FrameMotion)
LENGTH_UNITS: tuple[LengthUnit, ...] = get_args(LengthUnit)
ALIGNMENT_KINDS: tuple[AlignmentKind, ...] = get_args(AlignmentKind)
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)


Choice = TypeVar("Choice", bound=str)


def check_choice(value: str, choices: tuple[Choice, ...], what: str) -> Choice:
    """``value`` as the member of ``choices`` it equals (typed by their ``Literal``), else a ``ValueError`` naming
    ``what`` and the choices. The one checked way from a string (a CLI option, a GUI dropdown) to a mode."""
    for choice in choices:
        if value == choice:
            return choice
    raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
