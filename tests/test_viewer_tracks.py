"""4D tracks in the viewer: the fading tails' geometry (numpy, :mod:`app.viewer.track_tails`) and the scene's
nodes and the Show toggle (server side, no browser; the browser test is in tests/test_viewer_browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.reconstruct.track_store import write_tracks
from app.viewer.server import Viewer, ViewerConfig
from app.viewer.track_tails import TailStyle, fade, query_colors, track_tails
from tests.helpers.viewer import make_reconstruction, serving
from vggt_t_mv.tracks import Queries, Tracks

T, N, HW = 6, 3, (24, 32)
STYLE = TailStyle(length=3, min_opacity=0.1, occluded_opacity=0.5)


def example_tracks() -> tuple[np.ndarray, np.ndarray]:
    """Query 0 moves along x by 1 per timestep from t = 0 and is occluded at t = 3; query 1 starts at t = 2 (NaN
    before) at y = 10, moving along z."""
    points = np.full((2, T, 3), np.nan)
    points[0] = np.stack([np.arange(T), np.zeros(T), np.zeros(T)], axis=1)
    points[1, 2:] = np.stack([np.zeros(T - 2), np.full(T - 2, 10.0), np.arange(T - 2)], axis=1)
    visible = np.isfinite(points).all(-1)
    visible[0, 3] = False
    return points, visible


def test_tail_segments_run_up_to_t_and_fade_with_age() -> None:
    points, visible = example_tracks()
    tails = track_tails(points, visible, 4, STYLE)
    # query 0: segments 1-2, 2-3, 3-4 (length 3); query 1: 2-3, 3-4 (nothing before its start at 2)
    assert tails.segment_query.tolist() == [0, 0, 0, 1, 1]
    np.testing.assert_array_equal(tails.segments[:3, :, 0], [[1, 2], [2, 3], [3, 4]])
    np.testing.assert_array_equal(tails.segments[3:, :, 2], [[0, 1], [1, 2]])
    assert (tails.segments[3:, :, 1] == 10).all()
    # opacity falls linearly from 1 at t to min_opacity at t - length; the occluded step 3 at half of that
    age_opacity = {0: 1.0, 1: 0.7, 2: 0.4, 3: 0.1}
    expected = [
        [age_opacity[3], age_opacity[2]],
        [age_opacity[2], 0.5 * age_opacity[1]],
        [0.5 * age_opacity[1], age_opacity[0]],
        [age_opacity[2], age_opacity[1]],
        [age_opacity[1], age_opacity[0]],
    ]
    np.testing.assert_allclose(tails.opacity, expected, atol=1e-6)
    # the drawn colour is the query's colour blended towards the white background by the opacity
    colors = query_colors(2)
    assert not np.array_equal(colors[0], colors[1])
    for s, q in enumerate(tails.segment_query):
        for end in range(2):
            white = np.array([255.0, 255.0, 255.0])
            blended = white + tails.opacity[s, end] * (colors[q].astype(float) - white)
            np.testing.assert_allclose(tails.colors[s, end], blended, atol=0.51)
    np.testing.assert_array_equal(tails.colors[2, 1], colors[0])  # at t itself: the query's own colour
    # heads: both queries' positions at t, full colour
    assert tails.head_query.tolist() == [0, 1]
    np.testing.assert_array_equal(tails.heads, [[4, 0, 0], [0, 10, 2]])
    np.testing.assert_array_equal(tails.head_colors, colors)


def test_occluded_head_and_steps_before_a_query_starts() -> None:
    points, visible = example_tracks()
    at_3 = track_tails(points, visible, 3, STYLE)
    # query 0 is occluded at t = 3: its head is drawn dimmed, at the carried position
    assert at_3.head_query.tolist() == [0, 1]
    np.testing.assert_allclose(at_3.head_opacity, [0.5, 1.0])
    np.testing.assert_array_equal(at_3.head_colors[0], fade(query_colors(2)[:1], np.array([0.5]), (255, 255, 255))[0])
    at_1 = track_tails(points, visible, 1, STYLE)
    assert at_1.segment_query.tolist() == [0] and at_1.head_query.tolist() == [0]  # query 1 has not started
    at_0 = track_tails(points, visible, 0, STYLE)
    assert at_0.num_segments == 0 and at_0.heads.shape == (1, 3)
    # a gap (NaN: not seen yet after a re-seed) breaks the tail: no segment touches it
    points[0, 4] = np.nan
    at_5 = track_tails(points, visible, 5, STYLE)
    assert at_5.segment_query.tolist() == [0, 1, 1, 1]
    np.testing.assert_array_equal(at_5.segments[0, :, 0], [2, 3])


def test_tail_inputs_are_checked() -> None:
    points, visible = example_tracks()
    with pytest.raises(ValueError, match="outside the tracks"):
        track_tails(points, visible, T, STYLE)
    with pytest.raises(ValueError, match=r"\[Q, T, 3\]"):
        track_tails(points[:, :, :2], visible, 0, STYLE)
    with pytest.raises(ValueError, match="at least 1 timestep"):
        TailStyle(length=0)


def write_example_tracks(root: Path, scale: float = 1.0, offset: tuple[float, float, float] = (0, 0, 0)) -> None:
    """:func:`example_tracks` stored under ``root``, scaled and moved (``scale * p + offset``)."""
    points, visible = example_tracks()
    points = scale * points + np.asarray(offset)
    tracks = Tracks.empty(2, T, N)
    tracks.points[:], tracks.visible[:] = points, visible
    queries = Queries(np.array([[0, 0.0, 0.0, 0.0], [2, 0.0, 10.0, 0.0]]), "3d")
    write_tracks(root, tracks, queries, {"source": "test"})


@pytest.fixture
def viewer(tmp_path: Path) -> Iterator[Viewer]:
    make_reconstruction(tmp_path / "recon", T, N, HW)
    with serving(tmp_path / "recon") as viewer:
        yield viewer


def test_tracks_appear_with_their_toggle_once_stored_and_the_toggle_hides_them(viewer: Viewer) -> None:
    scene, gui = viewer.scene, viewer.gui
    assert scene.num_tracks == 0 and not gui.show_tracks.visible  # no tracks: no control, no nodes
    assert not any("/tracks" in name for name in scene.node_names())
    write_example_tracks(scene.recon.root)  # as `vggt-mv run --track-queries` does after the last window
    assert viewer.wait_until(lambda: scene.num_tracks == 2 and viewer.idle(), 30)
    assert gui.show_tracks.visible and gui.show_tracks.label == "Point tracks (2)"
    names = set(scene.node_names())
    assert {f"/t/{t:05d}/tracks/heads" for t in range(T)} <= names
    assert "/t/00000/tracks/tails" not in names and "/t/00004/tracks/tails" in names  # nothing behind t = 0
    node = scene.timesteps[4]
    tails = next(h for h in node.track_nodes if h.name.endswith("/tails"))
    expected = track_tails(*example_tracks(), 4, scene.tail_style)
    np.testing.assert_allclose(tails.points, expected.segments)
    np.testing.assert_array_equal(tails.colors, expected.colors)
    assert node.tracks is not None and node.tracks.visible
    gui.show_tracks.value = False  # the Show folder's toggle
    assert viewer.wait_until(lambda: not scene.options.show_tracks, 10)
    assert all(n.tracks is not None and not n.tracks.visible for n in scene.timesteps.values())
    gui.show_tracks.value = True
    assert viewer.wait_until(lambda: all(n.tracks.visible for n in scene.timesteps.values()), 10)
    heads = next(h for h in node.track_nodes if h.name.endswith("/heads"))
    np.testing.assert_allclose(heads.points, expected.heads)
    gui.point_size.value = 1.0  # the heads follow the point size
    assert viewer.wait_until(lambda: np.isclose(heads.point_size, 2 * scene.point_size_world()), 10)
    assert scene.options.point_size == 1.0
    gui.show.value = "ground truth"  # the tracks belong to the prediction
    assert viewer.wait_until(lambda: not scene.timesteps[4].tracks.visible, 10)


class Downloads:
    """Stands for a browser: keeps what the export panel sends."""

    def __init__(self) -> None:
        self.files: list[tuple[str, bytes]] = []

    def send_file_download(self, filename: str, content: bytes, save_immediately: bool = False) -> None:
        self.files.append((filename, content))


def test_the_exported_4d_scene_has_the_tracks_while_they_are_shown(viewer: Viewer, tmp_path: Path) -> None:
    from tests.helpers.recording import read_recording

    write_example_tracks(viewer.scene.recon.root)
    assert viewer.wait_until(lambda: viewer.scene.num_tracks == 2 and viewer.idle(), 30)
    viewer.gui.export_format.value = "4D scene (.viser)"
    viewer.gui.export_scope.value = "all loaded timesteps"
    drawn = []
    for shown in (True, False):
        viewer.gui.show_tracks.value = shown
        browser = Downloads()
        viewer.gui._export(browser)
        ((name, content),) = browser.files
        (tmp_path / name).write_bytes(content)
        messages = read_recording(tmp_path / name)["messages"]
        drawn.append({m["name"] for _, m in messages if m["type"] == "PointCloudMessage" and "/tracks" in m["name"]})
    assert drawn == [{f"/t/{t:05d}/tracks/heads" for t in range(T)}, set()]


def test_hidden_tracks_are_built_only_when_shown(tmp_path: Path) -> None:
    make_reconstruction(tmp_path / "recon", T, N, HW)
    write_example_tracks(tmp_path / "recon")
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1)).start()
    try:
        viewer.gui.show_tracks.value = False
        viewer.open(tmp_path / "recon")
        assert viewer.wait_until(lambda: viewer.idle() and viewer.scene.num_tracks == 2, 30)
        assert all(node.tracks is None for node in viewer.scene.timesteps.values())
        viewer.gui.show_tracks.value = True
        assert viewer.wait_until(lambda: viewer.idle() and viewer.scene.options.show_tracks, 30)
        assert all(node.tracks is not None for node in viewer.scene.timesteps.values())
    finally:
        viewer.stop()


def test_a_live_run_with_track_queries_shows_its_tracks_after_the_last_window(tmp_path: Path) -> None:
    """``vggt-mv view CAPTURE --track-queries auto``: the pipeline thread tracks after its windows, and the viewer
    picks the tracks up (the toggle appears, every timestep draws them)."""
    from dataclasses import replace

    from tests.test_viewer_scene import tiny_live_spec

    spec = tiny_live_spec(tmp_path)
    spec = replace(spec, pipeline=replace(spec.pipeline, track_queries="auto"))
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.05)).start()
    try:
        with pytest.warns(UserWarning, match="random-weights"):
            viewer.run_live(spec)
            assert viewer.live is not None
            viewer.live.thread.join(180)
        assert viewer.live.done
        assert viewer.wait_until(lambda: viewer.scene is not None and viewer.scene.num_tracks > 0 and viewer.idle(), 30)
        stored = viewer.scene.recon.tracks()
        assert viewer.gui.show_tracks.visible and viewer.gui.show_tracks.label == f"Point tracks ({stored.num_queries})"
        assert stored.points.shape[1] == 8 and all(node.tracks is not None for node in viewer.scene.timesteps.values())
    finally:
        viewer.stop()
