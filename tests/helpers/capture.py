"""Tiny captures written with OpenCV for the ingestion and pipeline tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def solid_color(t: int, k: int) -> tuple[int, int, int]:
    """A distinct RGB colour for camera k at timestep t (channels 40 apart, far from each other)."""
    return (40 + 40 * (t % 5), 40 + 50 * (k % 4), 200 - 30 * ((t // 5) % 5))


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """RGB uint8 frames ``[H, W, 3]`` -> an .mp4 (mp4v) or .avi (MJPG) file."""
    height, width = frames[0].shape[:2]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if path.suffix == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (width, height))
    assert writer.isOpened(), path
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def solid_frames(k: int, num_timesteps: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    return [np.full((height, width, 3), solid_color(t, k), np.uint8) for t in range(num_timesteps)]


def write_solid_rig(
    folder: Path,
    num_cameras: int = 3,
    num_timesteps: int = 10,
    fmt: str = "video",
    names: list[str] | None = None,
    sizes: list[tuple[int, int]] | None = None,
    counts: list[int] | None = None,
    fps: list[float] | None = None,
) -> Path:
    """Camera k shows ``solid_color(t, k)`` at timestep t. ``fmt``: ``video`` (cam*.mp4) or ``images``."""
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"cam{k}" for k in range(num_cameras)]
    for k, name in enumerate(names):
        height, width = sizes[k] if sizes else (48, 64)
        frames = solid_frames(k, counts[k] if counts else num_timesteps, height, width)
        if fmt == "video":
            write_video(folder / f"{name}.mp4", frames, fps[k] if fps else 10.0)
        else:
            (folder / name).mkdir(exist_ok=True)
            for t, frame in enumerate(frames):
                cv2.imwrite(str(folder / name / f"{t:06d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder
