"""THE image file reader: every reader of capture frames (``vggt-mv run``, evaluation, training) decodes through
:func:`read_image`, so one file is one image everywhere.

* **Orientation**: an EXIF orientation tag (phones, many cameras) is applied, as image viewers do; the caller is told
  (:attr:`DecodedImage.orientation`) so it can say so once.
* **Size**: the header is read first; an image whose decoding would not fit (more pixels than OpenCV decodes, or more
  bytes than the machine has free) is refused with its size before anything is allocated.
* **Pixels** are returned as decoded (OpenCV's channel order, bit depth and channel count kept): callers convert.

OpenCV and Pillow are imported inside the functions, so importing this module loads neither.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vggt_t_mv.memory import available_bytes, format_bytes

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MAX_DECODE_PIXELS = 1 << 30  # OpenCV's own limit (CV_IO_MAX_IMAGE_PIXELS)
EXIF_ORIENTATION_TAG = 0x0112
# EXIF orientation value -> what is done to the stored pixels to show the image upright (as the tag prescribes)
ORIENTATIONS = {
    1: "none",
    2: "mirrored left-right",
    3: "rotated 180 degrees",
    4: "mirrored top-bottom",
    5: "transposed (mirrored, rotated 90 degrees counter-clockwise)",
    6: "rotated 90 degrees clockwise",
    7: "transversed (mirrored, rotated 90 degrees clockwise)",
    8: "rotated 90 degrees counter-clockwise",
}


_TOO_LARGE = (
    f"more than the {MAX_DECODE_PIXELS:,} OpenCV decodes; downscale it (frames are resized to the model's input, a few "
    "hundred pixels wide, anyway)"
)


class ImageReadError(ValueError):
    """An image file that cannot be read; the message names the file, what is wrong and the fix."""


@dataclass
class DecodedImage:
    """``pixels``: ``[H, W]`` / ``[H, W, C]`` as OpenCV decodes them (BGR(A), any bit depth), upright;
    ``orientation``: the EXIF orientation applied (1 = none)."""

    pixels: np.ndarray
    orientation: int = 1

    @property
    def rotated(self) -> bool:
        return self.orientation != 1

    def orientation_note(self) -> str:
        """``"EXIF orientation 6: rotated 90 degrees clockwise"`` (what was applied)."""
        return f"EXIF orientation {self.orientation}: {ORIENTATIONS[self.orientation]}"


def _header(path: Path) -> tuple[tuple[int, int] | None, int, int]:
    """``((width, height) or None when Pillow cannot tell, EXIF orientation, channels)`` from the file's header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                orientation = int(image.getexif().get(EXIF_ORIENTATION_TAG, 1) or 1)
                channels = len(image.getbands())
                return image.size, orientation if orientation in ORIENTATIONS else 1, channels
    except Image.DecompressionBombError as error:  # Pillow refuses to open it at all: its message has the count
        found = re.search(r"\((\d+) pixels\)", str(error))
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        count = f"{int(found.group(1)):,} pixels" if found else f"more than {limit:,} pixels"
        raise ImageReadError(f"the image {path} has {count}, {_TOO_LARGE}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None, 1, 0  # OpenCV may still read it; it says so if not


def upright(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """The stored ``pixels [H, W, ...]`` shown as EXIF ``orientation`` prescribes (a view where possible)."""
    if orientation in (5, 6, 7, 8):
        pixels = np.swapaxes(pixels, 0, 1)  # transpose: rows become columns
    flips = {2: (1,), 3: (0, 1), 4: (0,), 5: (), 6: (1,), 7: (0, 1), 8: (0,)}.get(orientation, ())
    return np.flip(pixels, axis=flips) if flips else pixels


def read_image(path: str | Path) -> DecodedImage:
    """Decode the image file ``path`` upright (module docstring); :class:`ImageReadError` when it cannot be read."""
    import cv2

    path = Path(path)
    size, orientation, channels = _header(path)
    if size is not None:
        width, height = size
        if width * height > MAX_DECODE_PIXELS:
            raise ImageReadError(f"the image {path} is {width}x{height} px ({width * height:,} pixels), {_TOO_LARGE}")
        needed, available = width * height * max(channels, 1) * 2, available_bytes("cpu")  # up to 16 bit
        if available is not None and needed > available:
            raise ImageReadError(
                f"the image {path} is {width}x{height} px: decoding it needs up to {format_bytes(needed)}, this "
                f"machine has {format_bytes(available)} free; downscale it"
            )
    try:
        pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # keeps bit depth and alpha, ignores EXIF
    except cv2.error as error:
        raise ImageReadError(f"the image {path} cannot be decoded ({error.err}); re-save or replace it") from None
    if pixels is None:
        raise ImageReadError(
            f"the image {path} cannot be read; replace or delete it (supported: {' '.join(IMAGE_EXTENSIONS)})"
        )
    return DecodedImage(np.ascontiguousarray(upright(pixels, orientation)), orientation)


def read_image_rgb(path: str | Path) -> DecodedImage:
    """:func:`read_image` as RGB uint8 ``[H, W, 3]`` (:func:`to_rgb_uint8`)."""
    decoded = read_image(path)
    return DecodedImage(to_rgb_uint8(decoded.pixels)[0], decoded.orientation)


_ANNOUNCED: set[str] = set()  # folders whose EXIF orientation was already announced (say it once)


def read_frame(path: str | Path) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` of the image file ``path`` (:func:`read_image_rgb`), for the library's readers
    (evaluation, training): an applied EXIF orientation is announced once per folder (a ``UserWarning``)."""
    decoded = read_image_rgb(path)
    folder = str(Path(path).parent)
    if decoded.rotated and folder not in _ANNOUNCED:
        _ANNOUNCED.add(folder)
        warnings.warn(f"{folder}: {decoded.orientation_note()} (applied, as by every reader)", stacklevel=2)
    return decoded.pixels


def to_rgb_uint8(frame: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Any OpenCV-decoded frame -> RGB uint8 ``[H, W, 3]``, plus a note when it was converted.

    Accepts BGR ``[H, W, 3]``, grayscale ``[H, W]`` / ``[H, W, 1]`` (replicated), BGRA ``[H, W, 4]`` (alpha
    composited over white) and 16-bit images (scaled to 8 bit).
    """
    import cv2

    note = None
    if frame.dtype == np.uint16:
        frame, note = (frame / 257.0).round().astype(np.uint8), "16-bit, scaled to 8 bit"
    elif frame.dtype != np.uint8:
        note = f"{frame.dtype} pixels, clipped to 8 bit"
        frame = np.clip(frame.astype(np.float64), 0, 255).astype(np.uint8)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB), "grayscale, replicated to RGB"
    if frame.ndim == 3 and frame.shape[2] == 4:
        alpha = frame[..., 3:4].astype(np.float32) / 255.0
        rgb = cv2.cvtColor(frame[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32)
        return (rgb * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8), "RGBA, alpha composited over white"
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), note
    raise ValueError(f"unsupported frame shape {frame.shape}")
