"""4D point tracks across a rig: 2D tracks of every camera lifted to 3D with depth and cameras, fused across cameras
per timestep, chained across windows (numpy; the model's track head is one source of 2D tracks, :mod:`.head`).

Modules, one job each: :mod:`.lift` (depth at sub-pixel positions, pixels to 3D), :mod:`.visibility` (a 3D point
projected into every camera, visible or not), :mod:`.fuse` (robust weighted fusion of the cameras' 3D estimates),
:mod:`.chain` (queries, one window's tracking, windows chained by re-seeding in the overlap).
"""

from vggt_t_mv.tracks.chain import (
    QUERY_COLUMNS,
    DepthSampler,
    Queries,
    QueryKind,
    TrackConfig,
    Tracker2D,
    Tracks,
    View2D,
    WindowGeometry,
    map_depth_sampler,
    track_windows,
)
from vggt_t_mv.tracks.fuse import fuse_views
from vggt_t_mv.tracks.lift import lift_pixels, sample_depth
from vggt_t_mv.tracks.visibility import visible_in_cameras

__all__ = [
    "QUERY_COLUMNS",
    "DepthSampler",
    "Queries",
    "QueryKind",
    "TrackConfig",
    "Tracker2D",
    "Tracks",
    "View2D",
    "WindowGeometry",
    "fuse_views",
    "lift_pixels",
    "map_depth_sampler",
    "sample_depth",
    "track_windows",
    "visible_in_cameras",
]
