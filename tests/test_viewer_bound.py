"""The viewer's memory bound: only ``max_loaded_timesteps`` timesteps around the slider are held; the others are
evicted (their scene nodes removed) and loaded again when the slider gets there; the status line says so."""

from __future__ import annotations

from pathlib import Path

from app.viewer.scene import SceneLimits
from app.viewer.server import Viewer, ViewerConfig
from tests.helpers.viewer import make_reconstruction


def test_only_a_window_of_timesteps_around_the_slider_is_held(tmp_path: Path) -> None:
    make_reconstruction(tmp_path / "recon", 12, 2, (24, 32))
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1)).start()
    try:
        viewer.open(tmp_path / "recon")
        scene = viewer.scene
        scene.limits = SceneLimits(max_loaded_timesteps=4)
        assert viewer.wait_until(viewer.idle, 30)
        assert sorted(scene.timesteps) == [0, 1, 2, 3] and scene.num_evicted == 8
        status = viewer._status()
        assert "memory bound: 4 timesteps around the slider are held, 8 others" in status
        viewer.set_timestep(9)
        assert viewer.wait_until(viewer.idle, 30)
        assert sorted(scene.timesteps) == [7, 8, 9, 10] and scene.visible_timesteps() == [9]
        names = scene.node_names()
        assert not any(name.startswith("/t/00000") for name in names)  # evicted nodes are gone from the scene
        viewer.set_timestep(0)
        assert viewer.wait_until(viewer.idle, 30)
        assert sorted(scene.timesteps) == [0, 1, 2, 3] and scene.visible_timesteps() == [0]  # loaded again
    finally:
        viewer.stop()


def test_short_reconstructions_are_held_whole(tmp_path: Path) -> None:
    make_reconstruction(tmp_path / "recon", 6, 2, (24, 32))
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1)).start()
    try:
        viewer.open(tmp_path / "recon")
        assert viewer.wait_until(viewer.idle, 30)
        assert sorted(viewer.scene.timesteps) == list(range(6)) and viewer.scene.num_evicted == 0
        assert "memory bound" not in viewer._status()
    finally:
        viewer.stop()
