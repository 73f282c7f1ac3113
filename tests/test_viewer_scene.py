"""The viewer's scene, server side (no browser): nodes per timestep and camera, stream toggle, filters, masks,
playback, background, and a capture streaming into a running viewer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.reconstruct.store import Reconstruction
from app.viewer.scene import STREAM_LABELS
from app.viewer.server import Viewer, ViewerConfig
from tests.helpers.viewer import make_reconstruction, serving

T, N, HW = 6, 3, (24, 32)


@pytest.fixture
def viewer(tmp_path: Path) -> Iterator[Viewer]:
    make_reconstruction(tmp_path / "recon", T, N, HW)
    with serving(tmp_path / "recon") as viewer:
        yield viewer


def tiny_live_spec(tmp_path: Path):
    """A live run of the tiny untrained model on a 2-camera, 8-timestep capture, windows of 4 every 2."""
    from app.capture.preprocess import PreprocessConfig
    from app.reconstruct.pipeline import PipelineConfig
    from app.viewer.live import LiveRunSpec
    from tests.helpers.capture import write_solid_rig
    from vggt_t_mv import WeightsSpec

    return LiveRunSpec(
        capture=write_solid_rig(tmp_path / "rig", num_cameras=2, num_timesteps=8),
        out=tmp_path / "recon",
        model=WeightsSpec(config="tiny", random_weights=True),
        pipeline=PipelineConfig(window=4, stride=2, device="cpu", preprocess=PreprocessConfig(size=56)),
    )


def total_points(handles) -> int:
    return sum(len(h.points) for h in handles)


def test_scene_holds_the_expected_nodes(viewer: Viewer) -> None:
    scene = viewer.scene
    assert sorted(scene.timesteps) == list(range(T))
    names = set(scene.node_names())
    for t in range(T):
        base = f"/t/{t:05d}"
        for n in range(N):
            for stream in ("geo", "pose"):
                assert {f"{base}/{stream}/static/points/cam{n}", f"{base}/{stream}/dynamic/points/cam{n}"} <= names
            assert {f"{base}/cameras/plain/cam{n}", f"{base}/cameras/image/cam{n}"} <= names
        assert len(scene.timesteps[t].clouds) == 2 * 2 * N
    assert {f"/trajectories/cam{n}" for n in range(N)} <= names
    # only timestep 0, geo stream, is drawn at first
    assert scene.visible_timesteps() == [0]
    assert {(t, s) for t, s, _, _ in scene.visible_clouds()} == {(0, "geo")}
    assert scene.visible_splats() == [] and not any(node.splats for node in scene.timesteps.values())  # lazy
    assert viewer.gui.timestep.max == T - 1
    assert viewer.gui.status.content.startswith("6 timesteps · 3 cameras · complete")


def test_frustums_use_the_predicted_intrinsics(viewer: Viewer) -> None:
    recon = Reconstruction.open(viewer.recon.root)
    k = np.asarray(recon.get("intrinsics", 2))
    height, width = HW
    for n in range(N):
        fx, fy = k[n, 0, 0], k[n, 1, 1]
        for kind in ("plain", "image"):
            frustum = viewer.scene.frustums(2)[(kind, n)]
            assert frustum.fov == pytest.approx(2 * np.arctan(height / (2 * fy)), rel=1e-5)
            assert frustum.aspect == pytest.approx((width / fx) / (height / fy), rel=1e-5)
            assert np.allclose(frustum.position, [0.3 * n, 0.0, -0.2], atol=1e-5)  # camera centre at t = 2
        assert viewer.scene.frustums(2)[("image", n)].image is not None
        assert viewer.scene.frustums(2)[("plain", n)].image is None


def test_stream_toggle_switches_visible_clouds_without_resending(viewer: Viewer) -> None:
    scene = viewer.scene
    before = {key: id(handle) for key, handle in scene.timesteps[0].clouds.items()}
    viewer.gui.stream.value = STREAM_LABELS["pose"]
    assert {(t, s) for t, s, _, _ in scene.visible_clouds()} == {(0, "pose")}
    viewer.gui.stream.value = STREAM_LABELS["geo"]
    assert {(t, s) for t, s, _, _ in scene.visible_clouds()} == {(0, "geo")}
    assert viewer.wait_until(viewer.idle, 10)
    assert {key: id(handle) for key, handle in scene.timesteps[0].clouds.items()} == before  # same nodes


def test_pose_stream_shows_the_depth_unprojected_points(viewer: Viewer) -> None:
    geo = viewer.scene.cloud_handles(1, "geo")[("static", 0)].points.astype(np.float32)
    pose = viewer.scene.cloud_handles(1, "pose")[("static", 0)].points.astype(np.float32)
    assert np.allclose(geo - pose, 0.05, atol=2e-3)  # the helper's geo stream is the depth unprojection + 0.05


def test_confidence_filter_removes_the_expected_fraction(viewer: Viewer) -> None:
    scene, t = viewer.scene, 0
    all_pixels = N * HW[0] * HW[1]
    assert scene.counts(t, "geo")[0] == all_pixels
    viewer.gui.conf.value = 0.0
    assert viewer.wait_until(viewer.idle, 10)
    assert total_points(scene.cloud_handles(t, "geo").values()) == all_pixels
    viewer.gui.conf.value = 40.0
    assert viewer.wait_until(viewer.idle, 10)
    conf = np.asarray(Reconstruction.open(viewer.recon.root).get("world_points_conf", t))
    expected = int((conf >= np.percentile(conf, 40)).sum())
    kept = total_points(scene.cloud_handles(t, "geo").values())
    assert kept == expected == scene.counts(t, "geo")[1]
    assert abs(kept / all_pixels - 0.6) < 0.01
    # every other timestep and the other stream were rebuilt too
    assert all(total_points(scene.cloud_handles(s, "pose").values()) == expected for s in range(T))


def test_point_budget_caps_each_timestep(viewer: Viewer) -> None:
    viewer.gui.budget.value = 500
    assert viewer.wait_until(viewer.idle, 10)
    for t in range(T):
        assert total_points(viewer.scene.cloud_handles(t, "geo").values()) == 500


def test_motion_filter_and_mask_tint(viewer: Viewer) -> None:
    scene = viewer.scene
    viewer.gui.conf.value = 0.0
    assert viewer.wait_until(viewer.idle, 10)
    handles = scene.cloud_handles(0, "geo")
    dynamic = total_points(h for (m, _), h in handles.items() if m == "dynamic")
    assert dynamic == N * HW[0] * (HW[1] // 4)  # the helper's mask: the left quarter of each image
    viewer.gui.motion.value = "dynamic only"
    assert {m for _, _, m, _ in scene.visible_clouds()} == {"dynamic"}
    viewer.gui.motion.value = "static only"
    assert {m for _, _, m, _ in scene.visible_clouds()} == {"static"}
    viewer.gui.motion.value = "all"
    assert {m for _, _, m, _ in scene.visible_clouds()} == {"static", "dynamic"}

    image = np.asarray(Reconstruction.open(viewer.recon.root).get("images", 0))[0]
    original = image[:, : HW[1] // 4].reshape(-1, 3)
    static_before = id(handles[("static", 0)])
    tinted = handles[("dynamic", 0)].colors.copy()
    assert not np.array_equal(tinted, original)
    viewer.gui.show_masks.value = False
    assert viewer.wait_until(viewer.idle, 10)
    assert np.array_equal(handles[("dynamic", 0)].colors, original)
    assert id(scene.cloud_handles(0, "geo")[("static", 0)]) == static_before  # static points not re-sent


def splat_count(handles) -> int:
    return sum(len(h.centers) for h in handles)


def test_splat_mode_draws_the_kept_points_as_splats_per_timestep(viewer: Viewer) -> None:
    scene, gui = viewer.scene, viewer.gui
    scene.limits.splat_timesteps = T  # all of them (the default holds fewer)
    gui.render.value = "splats"
    assert viewer.wait_until(viewer.idle, 30)
    assert scene.visible_clouds() == []
    assert {(t, s) for t, s, _, _ in scene.visible_splats()} == {(0, "geo")}
    every_node = {(m, n) for m in ("static", "dynamic") for n in range(N)}
    assert {(m, n) for _, _, m, n in scene.visible_splats()} == every_node
    for t in range(T):  # every timestep holds the same points as splats (active stream)
        clouds, splats = scene.cloud_handles(t, "geo"), scene.splat_handles(t, "geo")
        assert set(splats) == set(clouds)
        for key, handle in splats.items():
            points = clouds[key].points.astype(np.float32)  # viser keeps points as float16
            np.testing.assert_allclose(handle.centers, points, rtol=2e-3, atol=1e-3)
            assert (handle.opacities > 0).all()
        assert scene.splat_handles(t, "pose") == {}  # only the active stream holds splats
    before = {key: id(h) for key, h in scene.splat_handles(4, "geo").items()}
    gui.timestep.value = 4
    assert {t for t, *_ in scene.visible_splats()} == {4}
    assert {key: id(h) for key, h in scene.splat_handles(4, "geo").items()} == before  # shown, not re-sent
    gui.motion.value = "dynamic only"
    assert {m for _, _, m, _ in scene.visible_splats()} == {"dynamic"}
    gui.stream.value = STREAM_LABELS["pose"]
    assert viewer.wait_until(viewer.idle, 30)
    assert {(t, s) for t, s, _, _ in scene.visible_splats()} == {(4, "pose")}
    assert all(scene.splat_handles(t, "geo") == {} for t in range(T))  # the hidden stream's splats are removed
    gui.render.value = "points"
    assert {(t, s) for t, s, _, _ in scene.visible_clouds()} == {(4, "pose")}
    assert viewer.wait_until(viewer.idle, 10)
    assert not any(node.splats for node in scene.timesteps.values())  # points mode holds no splats


def test_splats_are_held_only_near_the_current_timestep(viewer: Viewer) -> None:
    scene, gui = viewer.scene, viewer.gui
    scene.limits.splat_timesteps = 2
    gui.timestep.value = 3
    gui.render.value = "splats"
    assert viewer.wait_until(viewer.idle, 30)
    holding = lambda: sorted(t for t, node in scene.timesteps.items() if node.splats)  # noqa: E731
    assert holding() == [2, 3]  # the nearest two, ties to the earlier timestep
    gui.timestep.value = 5
    assert viewer.wait_until(viewer.idle, 30)
    assert holding() == [4, 5] and {t for t, *_ in scene.visible_splats()} == {5}


def test_splats_follow_the_point_budget_and_widen_with_it(viewer: Viewer) -> None:
    scene, gui = viewer.scene, viewer.gui
    scene.limits.splat_timesteps = T
    gui.conf.value = 0.0
    gui.render.value = "splats"
    assert viewer.wait_until(viewer.idle, 30)
    full = scene.splat_handles(0, "geo")[("static", 1)]
    full_variance = np.median(np.trace(full.covariances.astype(np.float64), axis1=1, axis2=2))
    gui.budget.value = 500
    assert viewer.wait_until(viewer.idle, 30)
    for t in range(T):
        assert splat_count(scene.splat_handles(t, "geo").values()) == 500
    thin = scene.splat_handles(0, "geo")[("static", 1)]
    thin_variance = np.median(np.trace(thin.covariances.astype(np.float64), axis1=1, axis2=2))
    # a random 500 of the N * H * W pixels: sigma grows by sqrt(N * H * W / 500), the variance by its square
    assert thin_variance / full_variance == pytest.approx(N * HW[0] * HW[1] / 500, rel=0.05)


def test_dynamic_splats_are_tinted_while_masks_are_shown(viewer: Viewer) -> None:
    scene, gui = viewer.scene, viewer.gui
    gui.conf.value = 0.0
    gui.render.value = "splats"
    assert viewer.wait_until(viewer.idle, 30)
    image = np.asarray(Reconstruction.open(viewer.recon.root).get("images", 0))[0]
    original = image[:, : HW[1] // 4].reshape(-1, 3)
    dynamic, static = (scene.splat_handles(0, "geo")[(m, 0)] for m in ("dynamic", "static"))
    static_colors = static.rgbs.copy()
    assert np.abs(dynamic.rgbs.astype(int) - original).max() > 20
    gui.show_masks.value = False
    assert viewer.wait_until(viewer.idle, 10)
    assert np.abs(dynamic.rgbs.astype(int) - original).max() <= 1
    np.testing.assert_array_equal(static.rgbs, static_colors)


def test_timestep_slider_playback_and_loop(viewer: Viewer) -> None:
    scene, gui = viewer.scene, viewer.gui
    gui.timestep.value = 4
    assert scene.visible_timesteps() == [4]
    assert {t for t, *_ in scene.visible_clouds()} == {4}
    gui.fps.value = 50.0
    seen = set()
    gui.set_playing(True)
    assert viewer.wait_until(lambda: seen.add(scene.visible_timesteps()[0]) or len(seen) == T, 10)
    gui.set_playing(False)
    gui.loop.value = False
    gui.timestep.value = T - 2
    gui.set_playing(True)
    assert viewer.wait_until(lambda: not gui.playing, 5)  # stops at the end without loop
    assert scene.visible_timesteps() == [T - 1]


def test_cameras_images_and_point_size(viewer: Viewer) -> None:
    node = viewer.scene.timesteps[3]
    viewer.gui.show_images.value = False
    assert not node.camera_kinds["image"].visible and node.camera_kinds["plain"].visible
    viewer.gui.show_cameras.value = False
    assert not node.cameras.visible
    viewer.gui.point_size.value = 1.0
    size = viewer.scene.point_size_world()
    assert size == pytest.approx(viewer.scene.scale / 100)
    assert all(h.point_size == pytest.approx(size) for h in node.clouds.values())


def test_background_is_accumulated_static_and_voxel_downsampled(viewer: Viewer) -> None:
    scene = viewer.scene
    viewer.gui.conf.value = 0.0
    viewer.gui.show_background.value = True
    assert viewer.wait_until(viewer.idle, 30)
    background = scene._background
    assert background is not None and background.visible
    static_pixels = T * N * HW[0] * (HW[1] - HW[1] // 4)
    assert 0 < len(background.points) < static_pixels
    # camera 0's dynamic left quarter is the leftmost part of the scene: x < local x of column W/4; the static
    # points all lie right of it (averaging within a voxel cannot move a point left of its voxel's points)
    height, width = HW
    first_static_x = (width // 4 - width / 2) / (0.8 * width) * 2.0
    assert background.points[:, 0].astype(np.float64).min() >= first_static_x - 0.01
    assert scene.timesteps[0].clouds[("geo", "dynamic", 0)].points[:, 0].min() < first_static_x - 0.1
    viewer.gui.show_background.value = False
    assert not background.visible


def test_camera_view_is_the_camera_pose_at_the_current_timestep(viewer: Viewer) -> None:
    assert np.allclose(viewer.scene.camera_view(1).position, [0.3, 0.0, 0.0], atol=1e-6)
    viewer.gui.timestep.value = 3
    assert np.allclose(viewer.scene.camera_view(1).position, [0.3, 0.0, -0.3], atol=1e-6)


def test_reconstruction_being_written_grows_in_the_viewer(tmp_path: Path) -> None:
    from app.reconstruct.stitching import owned_ranges
    from tests.helpers.viewer import spans_for, window_arrays

    recon = make_reconstruction(tmp_path / "recon", 8, 2, (12, 16), windows=1)
    stored = owned_ranges(spans_for(8))  # format 3: each window stores its own timesteps, [0, 3) [3, 5) [5, 8)
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.05)).start()
    try:
        viewer.open(tmp_path / "recon")
        assert viewer.wait_until(lambda: viewer.idle() and viewer.scene.num_available == stored[0][1], 20)
        counts = [len(viewer.scene.node_names())]
        for index in range(1, len(spans_for(8))):
            span = spans_for(8)[index]
            recon.write_window(index, window_arrays(span, 2, (12, 16), True), {"alignment": {}})
            end = stored[index][1]
            assert viewer.wait_until(lambda e=end: viewer.idle() and viewer.scene.num_available == e, 20)
            counts.append(len(viewer.scene.node_names()))
        assert counts == sorted(set(counts)) and len(counts) == 3
        assert viewer.gui.timestep.max == 7
    finally:
        viewer.stop()


def test_capture_streams_windows_into_a_running_viewer(tmp_path: Path) -> None:
    """The pipeline (tiny model, random weights) runs in the viewer's background thread; each window shows up
    as it is written: the node count grows window by window while the pipeline runs."""
    from app.viewer.live import LiveRun

    spec = tiny_live_spec(tmp_path)
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.05)).start()
    counts: list[tuple[int, int]] = []

    def window_done() -> None:  # called by the pipeline thread after each window (and once at the end)
        viewer.wake()
        state = live.state
        if state.get("windows") and state["state"] == "running":
            done = state["windows"][0]
            end = Reconstruction.open(spec.out).windows()[done - 1].owned[1]  # what the complete windows store
            assert viewer.wait_until(lambda: viewer.idle() and viewer.scene.num_available == end, 20)
            counts.append((end, len(viewer.scene.node_names())))

    live = LiveRun(spec, on_ready=viewer.open, on_window=window_done)
    viewer.live = live
    try:
        with pytest.warns(UserWarning, match="random-weights"):
            live.start()
            live.thread.join(120)
        assert live.state["state"] == "complete", live.state
        assert [end for end, _ in counts] == [3, 5, 8]  # windows [0, 4) [2, 6) [4, 8), each timestep stored once
        assert [c for _, c in counts] == sorted({c for _, c in counts})  # strictly growing
        assert sorted(viewer.scene.timesteps) == list(range(8))
        assert viewer._status().startswith("8 timesteps · 2 cameras · complete")
    finally:
        viewer.stop()


def test_stop_keeps_the_windows_written(tmp_path: Path) -> None:

    spec = tiny_live_spec(tmp_path)
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.05)).start()
    try:
        with pytest.warns(UserWarning, match="random-weights"):
            live = viewer.run_live(spec)
            assert viewer.wait_until(lambda: viewer.num_timesteps() > 0, 60)
            viewer.stop(pipeline_timeout=60)  # as on Ctrl-C: stops after the window being computed
        assert live.done and live.state["state"].startswith("stopped"), live.state
        kept = Reconstruction.open(spec.out)
        assert 1 <= len(kept.windows()) < 3 and kept.meta["status"] == "running"
    finally:
        viewer.stop()


class _FakeClient:
    """Records what the export panel sends to a browser."""

    def __init__(self) -> None:
        self.files: list[tuple[str, bytes]] = []

    def send_file_download(self, filename: str, content: bytes, save_immediately: bool = False) -> None:
        self.files.append((filename, content))


@pytest.mark.parametrize("label", ["PLY points", "Gaussian splats (PLY)", "COLMAP (zip)"])
def test_export_panel_sends_the_file_to_the_browser(viewer: Viewer, label: str) -> None:
    pytest.importorskip("app.export.api")
    client = _FakeClient()
    viewer.gui.timestep.value = 2
    viewer.gui.motion.value = "static only"
    viewer.gui.export_format.value = label
    viewer.gui._export(client)
    assert "exported" in viewer.gui.export_status.content, viewer.gui.export_status.content
    ((name, content),) = client.files
    expected_name = {"PLY points": "points.ply", "Gaussian splats (PLY)": "splats.ply", "COLMAP (zip)": "colmap.zip"}
    assert name == f"recon_t00002_geo_{expected_name[label]}"
    if label != "COLMAP (zip)":
        assert content.startswith(b"ply")
        header = content[: content.index(b"end_header")].decode()
        splat_properties = ("f_dc_0", "opacity", "scale_2", "rot_3")
        assert all((f"property float {p}" in header) == (label != "PLY points") for p in splat_properties)
        conf = np.asarray(Reconstruction.open(viewer.recon.root).get("world_points_conf", 2))
        static = np.zeros(conf.shape, bool)
        static[:, :, HW[1] // 4 :] = True
        expected = int(((conf >= np.percentile(conf, 10)) & static).sum())
        assert f"element vertex {expected}" in header
    else:
        assert content.startswith(b"PK")


def test_export_panel_sends_a_4d_scene_of_the_loaded_timesteps(viewer: Viewer, tmp_path: Path) -> None:
    from tests.helpers.recording import read_recording, shown_timesteps

    client = _FakeClient()
    viewer.gui.export_format.value = "4D scene (.viser)"
    viewer.gui.export_scope.value = "all loaded timesteps"
    viewer.gui._export(client)
    assert "exported" in viewer.gui.export_status.content, viewer.gui.export_status.content
    ((name, content),) = client.files
    assert name == "recon_all_geo_scene4d.viser"
    (tmp_path / name).write_bytes(content)
    assert [t for _, t in shown_timesteps(read_recording(tmp_path / name))] == list(range(viewer.num_timesteps()))


def test_every_export_format_downloads_under_its_own_name() -> None:
    from app.viewer.gui import EXPORT_FORMATS, download_stem

    names = {download_stem("recon", 12, "geo", choice) + choice.suffix for choice in EXPORT_FORMATS.values()}
    assert len(names) == len(EXPORT_FORMATS)
    names_all = {download_stem("recon", None, "geo", choice) + choice.suffix for choice in EXPORT_FORMATS.values()}
    assert len(names_all) == len(EXPORT_FORMATS) and not names & names_all


def test_untrained_weights_show_a_notice_in_the_gui() -> None:
    from app.viewer.launch import UNTRAINED_NOTICE

    untrained = Viewer(ViewerConfig(port=0, open_browser=False, notice=UNTRAINED_NOTICE)).start()
    trained = Viewer(ViewerConfig(port=0, open_browser=False)).start()
    try:
        assert untrained.gui.notice.visible and UNTRAINED_NOTICE in untrained.gui.notice.content
        assert not trained.gui.notice.visible
    finally:
        untrained.stop()
        trained.stop()


def test_a_reconstruction_made_with_random_weights_shows_the_notice_when_opened_later(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from app.cli.main import main
    from app.viewer.gui import UNTRAINED_NOTICE
    from tests.helpers.capture import write_solid_rig

    capture = write_solid_rig(tmp_path / "cap", num_cameras=2, num_timesteps=2, fmt="images")
    args = ["run", str(capture), "--out", str(tmp_path / "random"), "--config", "tiny", "--random-weights"]
    result = CliRunner().invoke(main, [*args, "--device", "cpu", "--size", "56"])
    assert result.exit_code == 0, result.output
    make_reconstruction(tmp_path / "trained")  # no random weights in its provenance
    for name, expected in (("random", True), ("trained", False)):
        viewer = Viewer(ViewerConfig(port=0, open_browser=False)).start()  # no notice asked for by the command
        try:
            viewer.open(tmp_path / name)
            assert viewer.gui.notice.visible is expected, name
            assert (UNTRAINED_NOTICE in viewer.gui.notice.content) is expected, name
        finally:
            viewer.stop()
