"""Capture layouts: which axis of a folder tree is the camera and which is time.

Two layouts (:data:`CaptureLayout`):

* ``camera-major`` (one video or image folder per camera, frames inside: ``cam0/000000.png``, ``cam0.mp4``);
* ``time-major`` (one folder per timestep, one image per camera inside, the same camera names in every folder:
  ``time_00/view0.png``, ``0001/cam_left.jpg``, ``t0000/left.png``).

``auto`` decides from the names: sub-folders named like timesteps (digits, optionally after ``t``, ``time``,
``frame``, ``step`` ...) holding files *not* named like frames are time-major; everything else is camera-major, as
before. A time-major tree must be complete (every camera in every timestep folder) or it is refused with the folders
named; a tree that reads either way (frame-numbered folders of frame-numbered files, more folders than files) is read
camera-major with a warning that says how to read it the other way. Nothing is ever transposed silently.

A **dataset root** is a folder whose images live in an ``images/`` (or ``rgb/``, ``frames/``) sub-folder, next to
other data (ground truth, masks); :func:`dataset_images` finds that sub-folder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from app.capture.sources import CameraEntry, CaptureError, discover_cameras, images_in, is_video, natural_key
from app.common.vocab import CaptureForm

CaptureLayout = Literal["camera-major", "time-major"]
LayoutChoice = Literal["auto", "camera-major", "time-major"]
LAYOUT_CHOICES: tuple[LayoutChoice, ...] = get_args(LayoutChoice)
IMAGE_ROOT_NAMES = ("images", "rgb", "frames")
_TIME_NAME = re.compile(r"(?:t|ts|time|timestep|step|f|frame|img|image)?[_-]?\d+", re.IGNORECASE)


def subfolders(folder: Path) -> list[Path]:
    """The sub-folders of ``folder``, in natural order."""
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))


def is_time_name(name: str) -> bool:
    """Whether a folder or file stem is named like a timestep / frame: ``0001``, ``t0000``, ``time_00``,
    ``frame_12``."""
    return _TIME_NAME.fullmatch(name) is not None


def name_pattern(names: list[str], letter: str) -> str:
    """One display pattern for similar names: the digit runs of the first replaced by ``letter`` when the names
    differ only there (``time_00``, ``time_07`` -> ``time_TT``), else ``<camera>`` / ``<time>``."""
    shape = {re.sub(r"\d", "#", n) for n in names}
    if len(shape) == 1:
        return re.sub(r"\d", letter, names[0])
    return "<camera>" if letter == "V" else "<time>"


def dataset_images(path: Path) -> Path | None:
    """The images folder of a dataset root, or None when ``path`` is not one.

    ``path`` is a dataset root when it holds an ``images/`` (or ``rgb/``, ``frames/``) folder with images (directly
    or in sub-folders), no video and no other folder of images beside it (those would be cameras themselves)."""
    if not path.is_dir():
        return None
    children = list(path.iterdir())
    if any(is_video(child) for child in children):
        return None
    for name in IMAGE_ROOT_NAMES:
        candidate = path / name
        if not candidate.is_dir():
            continue
        holds_images = bool(images_in(candidate)) or any(images_in(sub) for sub in subfolders(candidate))
        others = [c for c in children if c.is_dir() and c.name not in IMAGE_ROOT_NAMES and images_in(c)]
        if holds_images and not others:
            return candidate
    return None


@dataclass(frozen=True)
class TimeMajorTree:
    """A complete time-major tree: ``time_folders [T]`` and ``files[n][t]``, the image of camera ``n`` at timestep
    ``t``; cameras are the file stems, in natural order."""

    folder: Path
    time_folders: list[Path]
    camera_names: list[str]
    files: list[list[Path]]

    def pattern(self) -> str:
        """``images/time_TT/viewV.png``: how the tree was read, for the one-line announcement."""
        suffixes = {f.suffix for column in self.files for f in column}
        suffix = suffixes.pop() if len(suffixes) == 1 else ".*"
        times = name_pattern([f.name for f in self.time_folders], "T")
        return f"{self.folder.name}/{times}/{name_pattern(self.camera_names, 'V')}{suffix}"


def read_time_major(folder: Path) -> TimeMajorTree:
    """Read ``folder`` as time-major: every sub-folder one timestep, every image in it one camera (by file stem).

    Raises :class:`CaptureError` naming the folders when a camera is missing at some timesteps, a folder has two
    images of one camera, or there is no sub-folder of images."""
    times = [sub for sub in subfolders(folder) if images_in(sub) or is_time_name(sub.name)]
    if not times:
        raise CaptureError(
            f"--layout time-major: {folder} has no timestep folder with images; expected one folder per timestep "
            "holding one image per camera (time_00/view0.png, ...)"
        )
    per_time: list[dict[str, Path]] = []
    for sub in times:
        stems: dict[str, Path] = {}
        for file in images_in(sub):
            if file.stem in stems:
                raise CaptureError(
                    f"time-major capture {folder}: {sub.name}/ holds two images of camera {file.stem!r} "
                    f"({stems[file.stem].name}, {file.name}); keep one"
                )
            stems[file.stem] = file
        per_time.append(stems)
    names = sorted(set().union(*per_time), key=natural_key)
    gaps = []
    for name in names:
        lacking = [sub.name for sub, stems in zip(times, per_time, strict=True) if name not in stems]
        if lacking:
            shown = ", ".join(lacking[:6]) + (f" and {len(lacking) - 6} more" if len(lacking) > 6 else "")
            gaps.append(f"camera {name!r} is missing in {shown}")
    if gaps:
        raise CaptureError(
            f"time-major capture {folder} (one folder per timestep, one image per camera): {'; '.join(gaps[:6])}. "
            "Every timestep folder needs one image per camera, named the same in every folder; add the images or "
            "remove those folders (or pass --layout camera-major if each folder is one camera)"
        )
    files = [[stems[name] for stems in per_time] for name in names]
    return TimeMajorTree(folder, times, names, files)


@dataclass(frozen=True)
class LayoutDecision:
    """How a folder of image folders is read: the layout, the time-major tree (when time-major) and a warning when
    the tree could be read the other way."""

    layout: CaptureLayout
    tree: TimeMajorTree | None = None
    warning: str | None = None


def decide_layout(folder: Path, choice: LayoutChoice = "auto") -> LayoutDecision:
    """The layout of the capture folder ``folder`` (module docstring): ``choice`` forces one, ``auto`` detects."""
    if choice not in LAYOUT_CHOICES:
        raise CaptureError(f"--layout must be one of {', '.join(LAYOUT_CHOICES)}, got {choice!r}")
    if choice == "camera-major" or not folder.is_dir():
        return LayoutDecision("camera-major")
    if choice == "time-major":
        videos = [p.name for p in folder.iterdir() if is_video(p)]
        if videos:
            raise CaptureError(
                f"--layout time-major: {folder} holds videos ({', '.join(videos[:4])}); a time-major capture is one "
                "folder of images per timestep. Videos are one camera each: use --layout camera-major"
            )
        return LayoutDecision("time-major", read_time_major(folder))
    if any(is_video(p) for p in folder.iterdir()):
        return LayoutDecision("camera-major")
    entries = [(sub, images_in(sub)) for sub in subfolders(folder)]
    entries = [(sub, files) for sub, files in entries if files]
    if not entries or not all(is_time_name(sub.name) for sub, _ in entries):
        return LayoutDecision("camera-major")
    if not all(is_time_name(f.stem) for _, files in entries for f in files):
        return LayoutDecision("time-major", read_time_major(folder))
    most = max(len(files) for _, files in entries)
    if len(entries) > most:
        shown = ", ".join(sub.name for sub, _ in entries[:3])
        return LayoutDecision(
            "camera-major",
            warning=(
                f"{folder}: read as camera-major, one camera per folder ({len(entries)} cameras: {shown}, ...), but "
                f"the folders and files are both numbered and there are more folders than files ({most}); if each "
                "folder is one timestep, pass --layout time-major"
            ),
        )
    return LayoutDecision("camera-major")


@dataclass
class Discovery:
    """What :func:`discover` found: the capture's ``form``, its cameras ``(name, path, image files or None for a
    video)`` in natural order, the ``layout``, the ``folder`` the cameras were read from (``images/`` of a dataset
    root), the dataset ``root`` (when the capture is, or is the images folder of, one), the time-major ``tree``
    and warnings."""

    form: CaptureForm
    cameras: list[CameraEntry]
    layout: CaptureLayout
    folder: Path
    root: Path | None = None
    tree: TimeMajorTree | None = None
    warnings: list[str] = field(default_factory=list)

    def pattern(self) -> str:
        """How the files were read, e.g. ``images/time_TT/viewV.png`` or ``one video per camera: cam0.mp4, ...``."""
        if self.tree is not None:
            return self.tree.pattern()
        names = [p.name + ("/" if p.is_dir() else "") for _, p, _ in self.cameras]
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        what = {
            "videos": "one video per camera",
            "image_folders": "one image folder per camera",
            "mixed": "one video or image folder per camera",
            "static_images": "one image per camera",
            "single_video": "a single video",
        }[self.form]
        return f"{what}: {shown}"


def discover(path: Path, layout: LayoutChoice = "auto") -> Discovery:
    """The cameras of the capture at ``path`` (the forms of the module docstring, a time-major tree, or a dataset
    root's ``images/``), read in ``layout`` (``auto``: detected, :mod:`app.capture.layout`)."""
    path = Path(path)
    if not path.exists():
        raise CaptureError(f"capture {path} does not exist; pass a folder of camera videos or image folders")
    root = None
    images = dataset_images(path)
    if images is not None:
        root, folder = path, images
    else:
        folder = path
        if path.is_dir() and dataset_images(path.parent) == path:
            root = path.parent
    decision = decide_layout(folder, layout)
    notes = [decision.warning] if decision.warning else []
    if decision.tree is not None:
        tree = decision.tree
        cameras: list[CameraEntry] = [
            (name, folder, files) for name, files in zip(tree.camera_names, tree.files, strict=True)
        ]
        return Discovery("time_major", cameras, "time-major", folder, root, tree, notes)
    form, cameras = discover_cameras(folder)
    return Discovery(form, cameras, "camera-major", folder, root, None, notes)
