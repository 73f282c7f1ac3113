"""External dynamic masks (moving = 1) for every camera and frame, in the forms motion segmenters write them.

``--masks`` accepts:

* a folder with one image folder or mask video per camera, named like the cameras (``cam0/000000.png``,
  ``cam0.mp4``), or named ``view_K`` (``view_K`` is the K-th camera in natural order);
* SegAnyMo's output as it is written: its root folder (``SegAnyMo/``, or a dataset root holding one), ``sam2/``,
  ``sam2/mask_frames/view_K/NNN.png`` (8-bit grey, 255 = moving) or ``sam2/initial_preds/view_K/NNN.png``
  (palette object ids, > 0 = moving); a root or ``sam2/`` resolves to ``mask_frames`` (else ``initial_preds``);
* ``auto``: the ``SegAnyMo/`` folder beside the ``images/`` of a dataset root.

Frame ``k`` of a camera's masks (natural order of the files, or the video's frame k) belongs to the camera's source
frame ``k``; masks may cover more frames than the capture, fewer is an error naming the camera. Images are read with
their palette: a palette PNG's pixel is its object id, any other image is moving where its grey value > 127; mask
videos are moving where their first channel > 127. SegAnyMo's ``final_res`` (an RGB cutout of the objects on
white, a visualisation) and ``moseg`` (motion tracks) are refused with a pointer to ``mask_frames``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from app.capture.rig import RigCapture
from app.capture.sources import CaptureError, VideoSource, discover_cameras, natural_key

MASKS_AUTO = "auto"
SEGANYMO_FOLDER = "SegAnyMo"
SEGANYMO_LABELS = ("mask_frames", "initial_preds")  # in order of preference
SEGANYMO_REFUSED = {
    "final_res": "holds RGB cutout videos (the moving objects in colour on white, lossy): a visualisation, not a "
    "label map",
    "moseg": "holds SegAnyMo's motion tracks, not per-pixel masks",
}
_VIEW_NAME = re.compile(r"view[_-]?(\d+)", re.IGNORECASE)


def read_mask_image(file: Path) -> np.ndarray:
    """One mask image -> uint8 ``[h, w]``, 255 = moving (palette PNG: object id > 0; otherwise grey > 127)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            if image.mode == "P":
                labels = np.asarray(image) > 0
            else:
                labels = np.asarray(image.convert("L")) > 127
    except (OSError, UnidentifiedImageError) as error:
        raise CaptureError(f"mask image {file} cannot be read ({error}); replace or delete it") from error
    return labels.astype(np.uint8) * 255


class MaskSource:
    """The masks of one camera: an image sequence (``files``) or a mask video (``files`` None).
    :meth:`read` gives frame ``k`` as uint8 ``[h, w]``, 255 = moving."""

    def __init__(self, camera: str, path: Path, files: list[Path] | None) -> None:
        self.camera, self.path, self.files = camera, path, files
        self.frames: list[Path] | VideoSource = files if files is not None else VideoSource(camera, path)
        self.num_frames = len(self.frames) if isinstance(self.frames, list) else self.frames.num_frames
        first = self.read(0)
        self.height, self.width = first.shape

    def read(self, index: int) -> np.ndarray:
        if isinstance(self.frames, list):
            return read_mask_image(self.frames[int(index)])
        frame = self.frames.read(int(index))
        return (frame[..., 0] > 127).astype(np.uint8) * 255

    def first_file(self) -> Path:
        return self.files[0] if self.files is not None else self.path


def _refuse_segany_part(path: Path) -> None:
    for part in (path, *path.parents):
        reason = SEGANYMO_REFUSED.get(part.name)
        if reason is not None:
            raise CaptureError(
                f"--masks {path}: SegAnyMo's {part.name}/ {reason}. Pass its binary masks instead: "
                f"{part.parent / 'mask_frames'} (or the SegAnyMo folder itself)"
            )


def resolve_mask_folder(spec: str | Path, capture: RigCapture) -> Path:
    """The folder of per-camera masks that ``spec`` (a path or ``auto``) means (module docstring)."""
    if str(spec) == MASKS_AUTO:
        root = capture.dataset_root
        if root is None or not (root / SEGANYMO_FOLDER).is_dir():
            where = root if root is not None else capture.path
            raise CaptureError(
                f"--masks auto: no {SEGANYMO_FOLDER}/ folder beside the images of {where}; pass a mask folder "
                "(one image folder or video per camera) instead"
            )
        folder = root / SEGANYMO_FOLDER
    else:
        folder = Path(spec)
    if not folder.exists():
        raise CaptureError(f"--masks {folder} does not exist; pass a folder of masks per camera, or auto")
    _refuse_segany_part(folder)
    if not folder.is_dir():
        raise CaptureError(f"--masks {folder} is a file; pass a folder with one mask folder or video per camera")
    if (folder / SEGANYMO_FOLDER).is_dir():
        folder = folder / SEGANYMO_FOLDER
    if (folder / "sam2").is_dir():
        folder = folder / "sam2"
    for name in SEGANYMO_LABELS:
        if (folder / name).is_dir():
            return folder / name
    refused = [name for name in SEGANYMO_REFUSED if (folder / name).is_dir()]
    if refused:
        _refuse_segany_part(folder / refused[0])
    return folder


def segany_labels(root: Path) -> Path | None:
    """The SegAnyMo label folder (``SegAnyMo/sam2/mask_frames``, else ``initial_preds``) of a dataset root, or
    None."""
    for name in SEGANYMO_LABELS:
        folder = root / SEGANYMO_FOLDER / "sam2" / name
        if folder.is_dir():
            return folder
    return None


def match_mask_sources(folder: Path, names: list[str]) -> list[MaskSource]:
    """One :class:`MaskSource` per camera name, from ``folder``'s image folders / videos: by name, else ``view_K``
    as the K-th of ``names``. Raises :class:`CaptureError` naming the folder and the cameras without masks."""
    try:
        _, found = discover_cameras(folder)
    except CaptureError as error:
        raise CaptureError(
            f"--masks {folder}: no mask folder or video per camera in it ({error}). Give one image folder or video "
            f"per camera, named like the cameras ({', '.join(names)}) or view_0, view_1, ..."
        ) from None
    by_name = {name: (path, files) for name, path, files in found}
    if not all(name in by_name for name in names):
        numbered = {int(m.group(1)): entry for entry in found if (m := _VIEW_NAME.fullmatch(entry[0]))}
        if numbered and len(numbered) == len(found):
            by_name = {name: numbered[k][1:] for k, name in enumerate(names) if k in numbered}
    missing = [n for n in names if n not in by_name]
    if missing:
        listing = ", ".join(sorted((name for name, _, _ in found), key=natural_key)) or "nothing"
        raise CaptureError(
            f"mask folder {folder} has no masks for camera(s) {', '.join(missing)} (found: {listing}); give one image "
            f"folder or video per camera, named like the cameras ({', '.join(names)}) or view_0 ... view_"
            f"{len(names) - 1} in camera order"
        )
    return [MaskSource(name, *by_name[name]) for name in names]


def open_masks(spec: str | Path, capture: RigCapture) -> list[MaskSource]:
    """One :class:`MaskSource` per camera of ``capture`` (capture order), checked against the capture: a source
    for every camera, enough frames, the camera's frame size. Raises :class:`CaptureError` naming the file."""
    sources = match_mask_sources(resolve_mask_folder(spec, capture), capture.camera_names)
    for n, (mask, camera) in enumerate(zip(sources, capture.sources, strict=True)):
        needed = int(capture.frame_index[:, n].max()) + 1
        if mask.num_frames < needed:
            raise CaptureError(
                f"masks for camera {camera.name} ({mask.path}) cover {mask.num_frames} frames, the capture uses "
                f"{needed} (frames 0..{needed - 1}); give a mask for every frame, or stop earlier with --end"
            )
        if (mask.height, mask.width) != (camera.height, camera.width):
            raise CaptureError(
                f"mask {mask.first_file()} is {mask.width}x{mask.height}, camera {camera.name}'s frames are "
                f"{camera.width}x{camera.height}; masks must have the size of their camera's frames"
            )
    return sources
