"""4D point tracks as the viewer draws them (numpy alone, no viser): at timestep ``t``, each query's trajectory over
the last :attr:`TailStyle.length` timesteps as line segments that fade with age, in one colour per query, and its
position at ``t`` (the head).

viser's line segments have colours but no opacity, so a fading step is drawn in the query's colour blended towards
the viewer's background (white) by its opacity: ``drawn = background + opacity * (colour - background)``. Opacity
falls linearly from 1 at ``t`` to :attr:`TailStyle.min_opacity` at ``t - length``; a step where no camera sees the
point (``visible`` False: occluded, or outside every camera) is drawn at :attr:`TailStyle.occluded_opacity` times
that, at the position the tracks carry there (the last fused one). Steps without a position (NaN: before the
query's timestep, or before it was first seen) are not drawn, and neither is any segment touching one.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

GOLDEN_RATIO = (np.sqrt(5.0) - 1.0) / 2.0  # hue step between consecutive queries: neighbours far apart on the wheel


@dataclass(frozen=True)
class TailStyle:
    """How a tail looks: ``length`` timesteps of history behind the current one, the opacity of the oldest drawn
    step, the factor for occluded steps, and the ``background`` a faded colour tends to (RGB)."""

    length: int = 8
    min_opacity: float = 0.15
    occluded_opacity: float = 0.3
    background: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"a tail covers at least 1 timestep, got length {self.length}")
        for name in ("min_opacity", "occluded_opacity"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class TrackTails:
    """What is drawn at one timestep: ``segments`` float32 ``[S, 2, 3]`` (start, end), their drawn ``colors`` uint8
    ``[S, 2, 3]`` and ``opacity`` float32 ``[S, 2]`` at each end, the ``segment_query`` int64 ``[S]`` each belongs
    to; ``heads`` float32 ``[K, 3]`` the positions at ``t`` of the queries that have one, ``head_colors`` uint8
    ``[K, 3]``, ``head_opacity`` float32 ``[K]`` and ``head_query`` int64 ``[K]``."""

    segments: np.ndarray
    colors: np.ndarray
    opacity: np.ndarray
    segment_query: np.ndarray
    heads: np.ndarray
    head_colors: np.ndarray
    head_opacity: np.ndarray
    head_query: np.ndarray

    @property
    def num_segments(self) -> int:
        return len(self.segments)


def query_colors(count: int) -> np.ndarray:
    """uint8 ``[count, 3]``: one saturated colour per query, hues spaced by the golden ratio (stable: query ``q``
    has the same colour whatever the count)."""
    hues = (np.arange(count) * GOLDEN_RATIO) % 1.0
    rgb = [colorsys.hsv_to_rgb(float(h), 0.85, 0.9) for h in hues]
    return np.round(np.array(rgb, np.float64).reshape(count, 3) * 255).astype(np.uint8)


def fade(colors: np.ndarray, opacity: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """``colors`` uint8 ``[..., 3]`` blended towards ``background`` by ``opacity [...]`` (1: the colour itself)."""
    base = np.asarray(background, np.float64)
    blended = base + opacity[..., None] * (colors.astype(np.float64) - base)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def step_opacity(age: np.ndarray, visible: np.ndarray, style: TailStyle) -> np.ndarray:
    """float32 opacity of a step ``age`` timesteps before the current one (``visible``: some camera sees it)."""
    fraction = np.clip(np.asarray(age, np.float64) / style.length, 0.0, 1.0)
    opacity = 1.0 - (1.0 - style.min_opacity) * fraction
    return np.where(visible, opacity, opacity * style.occluded_opacity).astype(np.float32)


def track_tails(
    points: np.ndarray, visible: np.ndarray, t: int, style: TailStyle | None = None, colors: np.ndarray | None = None
) -> TrackTails:
    """The tails at timestep ``t`` of tracks ``points [Q, T, 3]`` / ``visible [Q, T]`` (module docstring);
    ``colors`` uint8 ``[Q, 3]`` per query (default :func:`query_colors`)."""
    style = style or TailStyle()
    points = np.asarray(points, np.float64)
    visible = np.asarray(visible, bool)
    count, num_timesteps = visible.shape
    if points.shape != (count, num_timesteps, 3):
        raise ValueError(f"points must be [Q, T, 3] with visible [Q, T] = {list(visible.shape)}, got {points.shape}")
    if not 0 <= t < num_timesteps:
        raise ValueError(f"timestep {t} is outside the tracks' 0..{num_timesteps - 1}")
    colors = query_colors(count) if colors is None else np.asarray(colors, np.uint8)
    ends = np.arange(max(t - style.length + 1, 1), t + 1)  # the end step of each segment: from ends - 1 to ends
    starts = ends - 1
    finite = np.isfinite(points).all(-1)  # [Q, T]
    drawn = finite[:, starts] & finite[:, ends]  # [Q, L]
    queries, which = np.nonzero(drawn)
    start, end = starts[which], ends[which]
    segments = np.stack([points[queries, start], points[queries, end]], axis=1)  # [S, 2, 3]
    opacity = np.stack(
        [step_opacity(t - start, visible[queries, start], style), step_opacity(t - end, visible[queries, end], style)],
        axis=1,
    )  # [S, 2]
    segment_colors = fade(np.repeat(colors[queries][:, None], 2, axis=1), opacity, style.background)
    heads = np.flatnonzero(finite[:, t])
    head_opacity = step_opacity(np.zeros(len(heads)), visible[heads, t], style)
    return TrackTails(
        segments.astype(np.float32),
        segment_colors,
        opacity,
        queries.astype(np.int64),
        points[heads, t].astype(np.float32),
        fade(colors[heads], head_opacity, style.background),
        head_opacity,
        heads.astype(np.int64),
    )
