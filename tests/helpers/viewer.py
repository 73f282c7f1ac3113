"""Helpers for the viewer tests (no tests here): small synthetic Reconstructions with known content."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from app.reconstruct.store import Reconstruction
from app.viewer.server import Viewer, ViewerConfig


def spans_for(num_timesteps: int, window: int = 4, stride: int = 2) -> list[tuple[int, int]]:
    spans, start = [], 0
    while True:
        end = min(start + window, num_timesteps)
        spans.append((start, end))
        if end == num_timesteps:
            return spans
        start += stride


def window_arrays(span: tuple[int, int], num_cameras: int, hw: tuple[int, int], dynamic: bool) -> dict:
    """Camera n at timestep t sits at x = 0.3 n, z = -0.1 t, looking down +z at a wall 2 m ahead; the geo stream
    is the depth unprojected + 0.05 (the pose stream, derived on read, is the exact unprojection); every pixel's
    confidence is ``1 + its index within the image`` (all distinct: a percentile keeps an exact share); the
    dynamic mask is 1 on the left quarter of each image."""
    height, width = hw
    length = span[1] - span[0]
    fx = fy = 0.8 * width
    k = np.array([[fx, 0, width / 2], [0, fy, height / 2], [0, 0, 1]], np.float32)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = np.full((height, width), 2.0, np.float32)
    local = np.stack([(cols - width / 2) / fx * depth, (rows - height / 2) / fy * depth, depth], -1)
    out = {name: [] for name in ("images", "depth", "depth_conf", "world_points", "world_points_conf")}
    out.update(extrinsics=[], intrinsics=[], dynamic_mask=[])
    conf = (1.0 + np.arange(height * width, dtype=np.float32)).reshape(height, width)
    for i in range(length):
        t = span[0] + i
        for key in out:
            out[key].append([])
        for n in range(num_cameras):
            centre = np.array([0.3 * n, 0.0, -0.1 * t], np.float32)
            ext = np.concatenate([np.eye(3, dtype=np.float32), -centre[:, None]], 1)
            image = np.zeros((height, width, 3), np.uint8)
            image[..., 0] = (cols * 255 / max(width - 1, 1)).astype(np.uint8)
            image[..., 1] = (rows * 255 / max(height - 1, 1)).astype(np.uint8)
            image[..., 2] = (40 * n + 20 * t) % 256
            points = local + centre
            mask = np.zeros((height, width), np.float16)
            mask[:, : width // 4] = 1.0
            for key, value in (
                ("images", image),
                ("depth", depth),
                ("depth_conf", conf),
                ("world_points", points + np.float32(0.05)),
                ("world_points_conf", conf),
                ("extrinsics", ext),
                ("intrinsics", k),
                ("dynamic_mask", mask),
            ):
                out[key][-1].append(value)
    arrays = {key: np.array(value) for key, value in out.items()}
    if not dynamic:
        del arrays["dynamic_mask"]
    return arrays


def make_reconstruction(
    root: Path,
    num_timesteps: int = 6,
    num_cameras: int = 3,
    hw: tuple[int, int] = (24, 32),
    windows: int | None = None,
    dynamic: bool = True,
) -> Reconstruction:
    """A reconstruction with ``windows`` (default: all) of its windows written."""
    spans = spans_for(num_timesteps)
    recon = Reconstruction.create(
        root,
        {
            "camera_names": [f"cam{n}" for n in range(num_cameras)],
            "image_hw": list(hw),
            "spans": [list(s) for s in spans],
            "num_timesteps_planned": num_timesteps,
        },
    )
    for index in range(len(spans) if windows is None else windows):
        recon.write_window(index, window_arrays(spans[index], num_cameras, hw, dynamic), {"alignment": {}})
    if windows is None:
        recon.record.status = "complete"
        recon.save_record()
    return recon


@contextmanager
def serving(root: Path) -> Iterator[Viewer]:
    """A started viewer (any free port, no browser) with the reconstruction at ``root`` loaded; stopped on exit."""
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1)).start()
    try:
        viewer.open(root)
        assert viewer.wait_until(viewer.idle, 30), "the viewer did not load the reconstruction"
        yield viewer
    finally:
        viewer.stop()
