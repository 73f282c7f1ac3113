"""Cameras as the app draws and exports them: one colour per camera (the viewer's frustums and trajectories and
the GLB export use the same palette)."""

from __future__ import annotations

import numpy as np

# Okabe-Ito (colour-blind safe) + extras, RGB uint8; camera n gets CAMERA_COLORS[n % len(CAMERA_COLORS)]
CAMERA_COLORS = np.array(
    [
        [230, 159, 0],
        [86, 180, 233],
        [0, 158, 115],
        [240, 228, 66],
        [0, 114, 178],
        [213, 94, 0],
        [204, 121, 167],
        [120, 120, 120],
    ],
    dtype=np.uint8,
)


def camera_color(n: int) -> tuple[int, int, int]:
    """RGB of camera ``n`` (index in the capture's camera order)."""
    r, g, b = CAMERA_COLORS[n % len(CAMERA_COLORS)]
    return int(r), int(g), int(b)
