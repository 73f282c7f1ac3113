"""What FFmpeg (inside OpenCV) says about the frames it decodes.

A damaged frame is reported only on the process's standard error, as FFmpeg log lines such as
``[h264 @ 0x55d0...] error while decoding MB 12 3``; OpenCV returns the frame as if nothing happened. To name the frame
in a warning, :class:`DecoderLog` points file descriptor 2 at a temporary file for the length of one decoder call and
hands back the FFmpeg lines written meanwhile; anything else written then (another thread's output) is passed on to
the real standard error as soon as the call returns.

The attribution is exact only when the decoder runs on the calling thread: FFmpeg's frame threads decode ahead and
log after ``read()`` has returned. :data:`SINGLE_THREAD_DECODING` is the ``VideoCapture`` parameter list that asks
for that (it costs about a quarter of the decoding speed of a 1080p H.264 video on 2 cores: see the README).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable
from typing import TypeVar

import cv2

T = TypeVar("T")

FFMPEG_LOG_LINE = re.compile(r"^\[[\w-]+ @ 0x[0-9a-fA-F]+\] ")  # "[h264 @ 0x55d0...] error while decoding ..."
SINGLE_THREAD_DECODING: list[int] = [cv2.CAP_PROP_N_THREADS, 1]


class DecoderLog:
    """A sink for file descriptor 2 around decoder calls (one per reader; not for concurrent use by two threads)."""

    def __init__(self) -> None:
        self._sink = tempfile.TemporaryFile()

    def around(self, call: Callable[[], T]) -> tuple[T, list[str]]:
        """``(call(), the FFmpeg log lines written during the call, prefix removed)``."""
        sys.stderr.flush()
        start = self._sink.seek(0, os.SEEK_END)
        saved = os.dup(2)
        os.dup2(self._sink.fileno(), 2)
        try:
            result = call()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        self._sink.seek(start)
        text = self._sink.read().decode(errors="replace")
        if not text:
            return result, []
        lines = text.splitlines(keepends=True)
        others = "".join(line for line in lines if not FFMPEG_LOG_LINE.match(line))
        if others:
            os.write(2, others.encode())
        reported = [FFMPEG_LOG_LINE.sub("", line).strip() for line in lines if FFMPEG_LOG_LINE.match(line)]
        return result, [line for line in reported if line]

    def close(self) -> None:
        self._sink.close()

    def __enter__(self) -> DecoderLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
