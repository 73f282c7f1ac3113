"""The app's mode vocabularies, each written once as a ``Literal`` (for type hints) and its tuple of values (for
validation and click choices). GUI labels map onto these values; they are not vocabularies of their own."""

from __future__ import annotations

from typing import Literal, get_args

Stream = Literal["geo", "pose"]  # geo: the point head's map; pose: depth unprojected with the predicted cameras
Motion = Literal["all", "static", "dynamic"]  # pixel filter on the dynamic probability (selection.pixel_filter)
PreprocessMode = Literal["auto", "crop", "pad"]  # auto: crop unless that cuts too much, then pad
SyncMode = Literal["auto", "index", "fps", "timestamps"]
DtypeName = Literal["auto", "float32", "bfloat16", "float16"]
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
PREPROCESS_MODES: tuple[str, ...] = get_args(PreprocessMode)
SYNC_MODES: tuple[str, ...] = get_args(SyncMode)
DTYPE_NAMES: tuple[str, ...] = get_args(DtypeName)
RENDER_MODES: tuple[RenderMode, ...] = get_args(RenderMode)
SHOW_MODES: tuple[str, ...] = get_args(ShowMode)
POINT_COLORINGS: tuple[str, ...] = get_args(PointColoring)
CAMERA_MODES: tuple[str, ...] = get_args(CameraMode)
ARRAY_CODECS: tuple[str, ...] = get_args(ArrayCodec)
FRAME_MOTIONS: tuple[str, ...] = get_args(FrameMotion)
LENGTH_UNITS: tuple[str, ...] = get_args(LengthUnit)
ALIGNMENT_KINDS: tuple[str, ...] = get_args(AlignmentKind)
RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)


def check_choice(value: str, choices: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of ``choices``, else a ``ValueError`` naming ``what`` and the choices."""
    if value not in choices:
        raise ValueError(f"{what} must be one of {', '.join(choices)}; got {value!r}")
    return value
