"""The lines a command prints about what it understood of a capture: its layout, a dataset root's ground truth and
SegAnyMo masks (and how to use them)."""

from __future__ import annotations

from pathlib import Path

from app.capture.ground_truth import ground_truth_folders
from app.capture.masks import MASKS_AUTO, SEGANYMO_FOLDER, segany_labels
from app.capture.rig import RigCapture
from vggt_t_mv.data.recorded import GROUND_TRUTH_FILE


def capture_notes(capture: RigCapture, masks: Path | str | None = None) -> list[str]:
    """``4 cameras x 8 timesteps, time-major (images/time_TT/viewV.png)`` and, for a dataset root, where its
    ground truth and SegAnyMo masks are (``masks``: the run's ``--masks``)."""
    lines = [capture.layout_line()]
    root = capture.dataset_root
    if root is None:
        return lines
    found = ground_truth_folders(root)
    if found:
        lines.append(
            f"ground truth beside the images ({', '.join(f'{n}/' for n in found)}): evaluate with "
            f"`vggt-mv eval OUT --gt {root}`"
        )
    labels = segany_labels(root)
    if labels is not None:
        where = labels.relative_to(root)
        if masks is None:
            lines.append(f"{SEGANYMO_FOLDER} masks found ({where}); use them with --masks {MASKS_AUTO}")
        elif str(masks) == MASKS_AUTO:
            lines.append(f"masks: {where}")
    return lines


def ground_truth_of(capture: RigCapture, path: Path) -> Path | None:
    """Where the ground truth of the capture at ``path`` is, when it carries its own: a dataset root with
    ``depths/``, ``intrs/`` or ``extrs/`` beside the images, or a folder holding ``ground_truth.npz`` (None: none)."""
    root = capture.dataset_root
    if root is not None and ground_truth_folders(root):
        return Path(root)
    if Path(path).is_dir() and (Path(path) / GROUND_TRUTH_FILE).is_file():
        return Path(path)
    return None
