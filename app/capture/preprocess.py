"""Frame preprocessing as VGGT's ``load_and_preprocess_images`` does it, for frames of any size.

Two modes (``size``: a multiple of the patch size; :data:`DEFAULT_SIZE` unless the weights say otherwise):

* ``crop``: width ``size``, height the frame's aspect ratio times ``size`` rounded to a multiple of 14,
  at most ``size`` (taller frames are centre-cropped). The target size is fixed once per capture (from the
  reference camera, camera 0); a camera of another aspect ratio is scaled to *cover* the target and
  centre-cropped, so it is never distorted.
* ``pad``: the frame is scaled so that its longer side is ``size`` and padded with white to ``size x size``
  (as VGGT's ``pad`` mode), so nothing is cut off.

The default, ``auto``, is ``crop`` unless cropping would remove more than :data:`CROP_TOLERANCE` of some camera's
frame (portrait videos: centre-cropping 1080x1920 to a square loses 44 %), then ``pad``, so a portrait rig keeps
the whole frame; :func:`resolve_preprocess` decides and says why. An explicit ``crop`` that loses more than that
is kept, with a warning naming the camera and the fraction lost.

The mapping from original pixels to model pixels is kept per camera (:class:`FrameTransform`) so
intrinsics and points can be taken back to the original resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from app.common.vocab import PREPROCESS_MODES, PreprocessMode

PATCH_SIZE = 14
DEFAULT_SIZE = 518
MODES = PREPROCESS_MODES
CROP_TOLERANCE = 0.10  # auto pads when a centre crop would remove more than this fraction of a frame's area


@dataclass(frozen=True)
class PreprocessConfig:
    """``size``: model input width (``crop``) or side (``pad``), a multiple of ``patch_size``; ``None``: the size
    the weights were trained at, else :data:`DEFAULT_SIZE`. ``mode``: ``auto`` (module docstring), ``crop``, ``pad``.
    :func:`resolve_preprocess` fills both in for a capture."""

    size: int | None = None
    mode: PreprocessMode = "auto"
    patch_size: int = PATCH_SIZE

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"preprocessing mode must be one of {MODES}, got {self.mode!r}")
        if self.size is not None and (self.size < self.patch_size or self.size % self.patch_size):
            raise ValueError(
                f"--size must be a positive multiple of {self.patch_size} (e.g. 518, 266, 112), got {self.size}"
            )

    def target_hw(self, height: int, width: int) -> tuple[int, int]:
        """Model input ``(H, W)`` for a reference frame of ``height x width`` pixels (a resolved config: a size
        and ``crop`` or ``pad``)."""
        if self.size is None or self.mode == "auto":
            raise ValueError(f"{self} is not resolved: call resolve_preprocess first")
        if self.mode == "pad":
            return self.size, self.size
        rows = round(height * self.size / width / self.patch_size) * self.patch_size
        return int(min(max(rows, self.patch_size), self.size)), self.size


@dataclass(frozen=True)
class FrameTransform:
    """Original pixel ``(u, v)`` -> model pixel ``(scale * u + offset_x, scale * v + offset_y)``.

    Isotropic scale (no distortion); ``offset`` is negative for a crop and positive for padding.
    """

    scale: float
    offset_x: float
    offset_y: float
    source_hw: tuple[int, int]
    target_hw: tuple[int, int]

    def to_dict(self) -> dict:
        return {
            "scale": self.scale,
            "offset_x": self.offset_x,
            "offset_y": self.offset_y,
            "source_hw": list(self.source_hw),
            "target_hw": list(self.target_hw),
        }

    @classmethod
    def from_dict(cls, data: dict) -> FrameTransform:
        """The inverse of :meth:`to_dict` (a reconstruction's meta.json ``preprocess`` entry)."""
        (source_h, source_w), (target_h, target_w) = data["source_hw"], data["target_hw"]
        return cls(
            float(data["scale"]),
            float(data["offset_x"]),
            float(data["offset_y"]),
            (int(source_h), int(source_w)),
            (int(target_h), int(target_w)),
        )

    def intrinsics_to_target(self, intrinsics: np.ndarray) -> np.ndarray:
        """Intrinsics of the original frame ``[..., 3, 3]`` -> the model-resolution intrinsics ``[..., 3, 3]``."""
        out = np.array(intrinsics, dtype=np.float64, copy=True)
        out[..., :2, :] *= self.scale
        out[..., 0, 2] += self.offset_x
        out[..., 1, 2] += self.offset_y
        return out

    def intrinsics_to_source(self, intrinsics: np.ndarray) -> np.ndarray:
        """Model-resolution intrinsics ``[..., 3, 3]`` -> intrinsics of the original frame ``[..., 3, 3]``."""
        out = np.array(intrinsics, dtype=np.float64, copy=True)
        out[..., 0, 2] -= self.offset_x
        out[..., 1, 2] -= self.offset_y
        out[..., :2, :] /= self.scale
        return out


def frame_transform(source_hw: tuple[int, int], target_hw: tuple[int, int], mode: PreprocessMode) -> FrameTransform:
    """The transform ``crop`` (cover + centre crop) or ``pad`` (fit + centre pad) uses for one frame size."""
    (h, w), (th, tw) = source_hw, target_hw
    scale = max(th / h, tw / w) if mode == "crop" else min(th / h, tw / w)
    return FrameTransform(scale, (tw - w * scale) / 2.0, (th - h * scale) / 2.0, (h, w), (th, tw))


def crop_fraction(source_hw: tuple[int, int], target_hw: tuple[float, float]) -> float:
    """Fraction of a ``source_hw`` frame's area that ``crop`` (scale to cover ``target_hw``, centre-crop) removes."""
    (h, w), (th, tw) = source_hw, target_hw
    scale = max(th / h, tw / w)
    return float(1.0 - min(th / scale, h) * min(tw / scale, w) / (h * w))


def resolve_preprocess(
    config: PreprocessConfig,
    source_hws: list[tuple[int, int]],
    camera_names: list[str],
    default_size: int = DEFAULT_SIZE,
) -> tuple[PreprocessConfig, list[str]]:
    """The config a capture runs with (a size, ``crop`` or ``pad``) and what to tell the user about it.

    ``source_hws``: every camera's ``(height, width)``, camera 0 (the reference that sets the target) first;
    ``default_size`` stands in for ``size=None``. ``auto`` pads when a crop would remove more than
    :data:`CROP_TOLERANCE` of some camera's frame; an explicit ``crop`` that does so warns with the fraction."""
    size = config.size or default_size
    cropped = replace(config, size=size, mode="crop")
    target = cropped.target_hw(*source_hws[0])
    # Decided on the aspect ratios alone (the target before its height is rounded to the patch size), so a small
    # --size whose rounding trims a few rows does not switch modes; reported with the real crop.
    (h0, w0) = source_hws[0]
    exact = (min(size * h0 / w0, size), float(size))
    by_aspect = [crop_fraction(hw, exact) for hw in source_hws]
    worst = max(range(len(by_aspect)), key=by_aspect.__getitem__)
    (h, w), lost = source_hws[worst], crop_fraction(source_hws[worst], target)
    what = f"{100 * lost:.0f} % of {camera_names[worst]}'s {w}x{h} frame"
    if config.mode == "auto":
        if by_aspect[worst] <= CROP_TOLERANCE:
            return cropped, []
        return replace(config, size=size, mode="pad"), [
            f"centre-cropping to {target[1]}x{target[0]} px would remove {what}: padding to {size}x{size} px "
            "instead, keeping the whole frame (--mode crop crops)"
        ]
    resolved = replace(config, size=size)
    if config.mode == "crop" and by_aspect[worst] > CROP_TOLERANCE:
        return resolved, [
            f"--mode crop removes {what} (centre crop to {target[1]}x{target[0]} px); --mode pad keeps all"
        ]
    return resolved, []


def area_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-average downscale of ``image [h, w, ...]`` to ``size = (width, height)``.

    Factors below 1/2 first go through exact 2x2 box averages (OpenCV's fast INTER_AREA path for halving) while the
    remaining factor stays below 1/2, then one INTER_AREA: the same area filter up to sub-pixel weights (mean 0.07
    grey levels from a one-step INTER_AREA on 1080p -> 518 px), at half the cost (2.3 against 4.8 ms per frame)."""
    width, height = size
    while image.shape[1] > 2 * width and image.shape[0] > 2 * height and not (image.shape[0] % 2 or image.shape[1] % 2):
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def preprocess_frame(rgb: np.ndarray, transform: FrameTransform, *, interpolation: int | None = None) -> np.ndarray:
    """RGB uint8 ``[h, w, 3]`` (or a mask ``[h, w]``) -> ``[H, W, 3]`` (or ``[H, W]``) at the model size.

    Crop pixels outside the target; pad with white (255) for images and 0 for masks.
    """
    th, tw = transform.target_hw
    if interpolation is None:
        interpolation = cv2.INTER_AREA if transform.scale < 1 else cv2.INTER_CUBIC
    matrix = np.array([[transform.scale, 0, transform.offset_x], [0, transform.scale, transform.offset_y]])
    # Pixel centres: OpenCV maps integer pixel indices, which matches the (u, v) index convention of geometry.py.
    # A scalar borderValue fills the first channel only (OpenCV takes a 4-tuple): give every channel its value.
    border = (255.0, 255.0, 255.0, 255.0) if rgb.ndim == 3 else (0.0, 0.0, 0.0, 0.0)
    if transform.scale < 1 and interpolation == cv2.INTER_AREA:
        # warpAffine has no area filter: resize first, then shift (an integer-ish translation, no further blur).
        h, w = rgb.shape[:2]
        resized = area_resize(rgb, (max(1, round(w * transform.scale)), max(1, round(h * transform.scale))))
        shift = np.array([[1.0, 0, transform.offset_x], [0, 1.0, transform.offset_y]])
        shift[0, 0] = (w * transform.scale) / resized.shape[1]
        shift[1, 1] = (h * transform.scale) / resized.shape[0]
        return cv2.warpAffine(
            resized, shift, (tw, th), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border
        )
    return cv2.warpAffine(
        rgb, matrix, (tw, th), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=border
    )
