"""A video frame FFmpeg reports as damaged is used as decoded, with a warning that names the camera, the file and the
frame (issue 26); the decoder's raw log lines do not reach the user, and an intact video gives no warning."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.capture.sources import CaptureWarning, VideoSource
from tests.helpers.shared import REPO_ROOT
from tests.test_bad_inputs import RUN

SIZE = (64, 48)  # width, height
FRAMES = 6


def write_noise_video(path: Path, seed: int) -> list[np.ndarray]:
    """An MPEG-4 video of random frames; returns the frames written (BGR)."""
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8) for _ in range(FRAMES)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, SIZE)
    for frame in frames:
        writer.write(frame)
    writer.release()
    return frames


def damage(path: Path) -> None:
    """Flip 300 bytes in the middle of the file (inside one frame's data, not the container's index)."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 300] = bytes(b ^ 0x5A for b in data[middle : middle + 300])
    path.write_bytes(bytes(data))


def damaged_frames_by_pixels(intact: list[np.ndarray], path: Path) -> set[int]:
    """The frames whose decoded pixels are far from what was written (independent of any decoder log)."""
    capture = cv2.VideoCapture(str(path))
    errors = []
    for written in intact:
        ok, frame = capture.read()
        assert ok
        errors.append(float(np.abs(frame.astype(float) - written.astype(float)).mean()))
    capture.release()
    clean = np.median(errors)
    return {index for index, error in enumerate(errors) if error > clean + 10}


@pytest.fixture
def damaged_video(tmp_path: Path) -> tuple[Path, set[int]]:
    path = tmp_path / "cam1.mp4"
    intact = write_noise_video(path, seed=1)
    damage(path)
    spoiled = damaged_frames_by_pixels(intact, path)
    assert spoiled, "the damage must spoil at least one frame"
    return path, spoiled


def test_the_warning_names_the_first_damaged_frame(damaged_video: tuple[Path, set[int]]) -> None:
    path, spoiled = damaged_video
    source = VideoSource("cam1", path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(source.frames(range(FRAMES)))
    assert len(frames) == FRAMES  # used as decoded, not dropped
    messages = [str(w.message) for w in caught if issubclass(w.category, CaptureWarning)]
    assert messages and all(str(path) in message and "'cam1'" in message for message in messages)
    assert f"in frame {min(spoiled)} of" in messages[0]


def test_a_skipped_damaged_frame_is_named_at_the_next_frame_used(damaged_video: tuple[Path, set[int]]) -> None:
    path, spoiled = damaged_video
    first = min(spoiled)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(VideoSource("cam1", path).frames([first + 1]))
    messages = [str(w.message) for w in caught if issubclass(w.category, CaptureWarning)]
    assert messages and f"skipped before frame {first + 1}" in messages[0]


def test_an_intact_video_gives_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "cam0.mp4"
    write_noise_video(path, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(list(VideoSource("cam0", path).frames(range(FRAMES)))) == FRAMES
    assert not [w for w in caught if issubclass(w.category, CaptureWarning)]


def test_run_warns_once_per_damaged_frame_and_keeps_the_decoder_log_to_itself(
    tmp_path: Path, damaged_video: tuple[Path, set[int]]
) -> None:
    video, spoiled = damaged_video
    capture = video.parent
    write_noise_video(capture / "cam0.mp4", seed=0)
    # a fresh process, as a user runs it (FFmpeg's logging is process state other tests may have changed)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "app.cli", "run", str(capture), "--out", str(tmp_path / "recon"), *RUN]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"damaged data in frame {min(spoiled)} of {video}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert "[mpeg4 @" not in result.stderr, result.stderr  # said by the warning, not by FFmpeg's raw lines
