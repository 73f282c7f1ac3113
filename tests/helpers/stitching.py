"""Whole-sequence stitching in memory, for tests: the pipeline itself aligns window by window against what is on
disk (:mod:`app.reconstruct.pipeline`); these run the same :func:`~app.reconstruct.stitching.align_window` over
windows held in memory, so the tests can check stitching on synthetic rigs without a model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.reconstruct.stitching import align_window, owned_ranges
from vggt_t_mv.npgeometry import Sim3, Sim3Fit


@dataclass
class WindowGeometry:
    """One window's outputs (``Tw`` timesteps, ``N`` cameras), in the window's own frame unless aligned.

    ``points [Tw, N, H, W, 3]`` (or any ``[Tw, N, M, 3]``) with ``conf [Tw, N, H, W]``; ``extrinsics
    [Tw, N, 3, 4]`` camera-from-world; optional ``depth [Tw, N, H, W]`` and ``extra_points`` (other
    point maps that move with the window, e.g. the pose stream's unprojected depth).
    """

    points: np.ndarray
    conf: np.ndarray
    extrinsics: np.ndarray
    depth: np.ndarray | None = None
    extra_points: dict[str, np.ndarray] = field(default_factory=dict)

    def transformed(self, sim3: Sim3) -> WindowGeometry:
        """The same window moved by ``sim3`` (points, cameras and depth; depth scales by ``s``)."""
        return WindowGeometry(
            sim3.apply(self.points),
            self.conf,
            sim3.apply_to_extrinsics(self.extrinsics),
            None if self.depth is None else (self.depth * np.asarray(sim3.scale, self.depth.dtype)),
            {k: sim3.apply(v) for k, v in self.extra_points.items()},
        )


def stitch_windows(
    windows: list[WindowGeometry], spans: list[tuple[int, int]], **fit_options
) -> tuple[list[WindowGeometry], list[Sim3Fit | None]]:
    """Bring every window into the first window's frame, one after the other, by :func:`align_window`.

    Window ``w`` is aligned on the timesteps it shares with window ``w - 1`` (already aligned). Returns the
    aligned windows and the fits (None for the first window).
    """
    aligned, fits = [windows[0]], [None]
    for w in range(1, len(windows)):
        (prev_start, prev_end), (start, _) = spans[w - 1], spans[w]
        if start >= prev_end:
            raise ValueError(f"windows {w - 1} {spans[w - 1]} and {w} {spans[w]} do not overlap")
        prev_slice, cur_slice = slice(start - prev_start, prev_end - prev_start), slice(0, prev_end - start)
        fit = align_window(
            aligned[-1].points[prev_slice],
            aligned[-1].conf[prev_slice],
            windows[w].points[cur_slice],
            windows[w].conf[cur_slice],
            **fit_options,
        )
        aligned.append(windows[w].transformed(fit.sim3))
        fits.append(fit)
    return aligned, fits


def merge_windows(values: list[np.ndarray], spans: list[tuple[int, int]]) -> np.ndarray:
    """Concatenate per-window arrays ``[Tw, ...]`` into ``[T, ...]`` by the overlap merge rule."""
    parts = []
    for value, (start, _), (own_start, own_end) in zip(values, spans, owned_ranges(spans), strict=True):
        parts.append(value[own_start - start : own_end - start])
    return np.concatenate(parts, axis=0)
