"""A 4D scene to share: ``export --format viser`` (viser's timed recording) and ``--format web`` (a folder a static
file server plays in a browser, viser's packaged client included)."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from app.cli.main import main
from app.viewer.recording import CLIENT_NAME, RECORDING_NAME, VISER_CLIENT
from app.viewer.track_tails import TailStyle, track_tails
from tests.helpers.recording import buffer_size, read_recording, shown_timesteps
from tests.helpers.viewer import make_reconstruction


@pytest.fixture(scope="module")
def recon(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scene") / "recon"
    make_reconstruction(root, 6, 3, (48, 64))
    return root


def export(*args: object) -> object:
    return CliRunner().invoke(main, ["export", *(str(a) for a in args)])


@pytest.mark.parametrize("render", ["points", "splats"])
def test_the_recording_plays_the_selected_timesteps_one_per_frame(recon: Path, tmp_path: Path, render: str) -> None:
    out = tmp_path / "scene.viser"
    result = export(recon, "--format", "viser", "--out", out, "--t", "1:5", "--fps", 4, "--render", render)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    recording = read_recording(out)
    assert shown_timesteps(recording) == [(0.0, 1), (0.25, 2), (0.5, 3), (0.75, 4)]
    assert recording["durationSeconds"] == pytest.approx(1.0)
    kinds = {message["type"] for _, message in recording["messages"]}
    drawn = "PointCloudMessage" if render == "points" else "GaussianSplatsMessage"
    assert drawn in kinds and "CameraFrustumMessage" in kinds and "CatmullRomSplineMessage" in kinds
    nodes = [m["name"] for _, m in recording["messages"] if m["type"] == drawn]
    assert nodes == [f"/t/{t:05d}/{render}" for t in (1, 2, 3, 4)]


def test_the_recording_takes_the_selection_and_drawing_options(recon: Path, tmp_path: Path) -> None:
    out = tmp_path / "few.viser"
    args = ["--t", "0,2", "--cameras", "cam1", "--point-budget", 50, "--no-frustums", "--no-trajectory"]
    result = export(recon, "--format", "viser", "--out", out, *args)
    assert result.exit_code == 0, result.output
    recording = read_recording(out)
    assert [t for _, t in shown_timesteps(recording)] == [0, 2]
    kinds = {message["type"] for _, message in recording["messages"]}
    assert "CameraFrustumMessage" not in kinds and "CatmullRomSplineMessage" not in kinds
    clouds = [m["props"] for _, m in recording["messages"] if m["type"] == "PointCloudMessage"]
    assert len(clouds) == 2
    # one camera's 48x64 pixels, the least confident 10 % dropped: 2765 points, of which the budget draws 50
    assert [buffer_size(recording, cloud["colors"]) for cloud in clouds] == [50 * 3, 50 * 3]


def track_nodes(recording: dict) -> dict[str, dict]:
    """The props of the recording's nodes under ``/t/TTTTT/tracks``, by name."""
    return {m["name"]: m["props"] for _, m in recording["messages"] if "/tracks" in m.get("name", "") and "props" in m}


def test_the_recording_draws_the_point_tracks_of_each_timestep_when_there_are_some(tmp_path: Path) -> None:
    from tests.test_viewer_tracks import example_tracks, write_example_tracks

    root = tmp_path / "recon"
    make_reconstruction(root, 6, 3, (48, 64))
    plain = tmp_path / "plain.viser"
    assert export(root, "--format", "viser", "--out", plain).exit_code == 0
    assert track_nodes(read_recording(plain)) == {}  # no tracks stored: none drawn
    write_example_tracks(root)  # as `vggt-mv run --track-queries` stores them
    out = tmp_path / "tracks.viser"
    result = export(root, "--format", "viser", "--out", out, "--t", "1:5")
    assert result.exit_code == 0, result.output
    recording = read_recording(out)
    nodes = track_nodes(recording)
    expected = {f"/t/{t:05d}/tracks{leaf}" for t in (1, 2, 3, 4) for leaf in ("", "/tails", "/heads")}
    assert set(nodes) == expected
    points, visible = example_tracks()
    clouds = {m["name"]: m["props"] for _, m in recording["messages"] if m["type"] == "PointCloudMessage"}
    point_size = clouds["/t/00001/points"]["point_size"]
    for t in (1, 2, 3, 4):  # the viewer's tails at t (the whole history behind it, not only the selection's)
        tails = track_tails(points, visible, t, TailStyle())
        drawn = nodes[f"/t/{t:05d}/tracks/tails"]
        assert buffer_size(recording, drawn["points"]) == tails.segments.nbytes == tails.num_segments * 2 * 3 * 4
        assert buffer_size(recording, drawn["colors"]) == tails.colors.nbytes
        heads = nodes[f"/t/{t:05d}/tracks/heads"]
        assert buffer_size(recording, heads["colors"]) == len(tails.heads) * 3
        assert heads["point_size"] == pytest.approx(2.0 * point_size)  # TRACK_HEAD_SIZE times the points'
    hidden = tmp_path / "hidden.viser"
    assert export(root, "--format", "viser", "--out", hidden, "--no-tracks").exit_code == 0
    assert track_nodes(read_recording(hidden)) == {}


def test_scene_exports_refuse_bad_outputs(recon: Path, tmp_path: Path) -> None:
    result = export(recon, "--format", "viser", "--out", tmp_path / "scene.ply")
    assert result.exit_code == 1 and "writes a .viser file" in result.output
    result = export(recon, "--format", "web", "--out", tmp_path / "page.html")
    assert result.exit_code == 1 and "writes a folder" in result.output
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = export(recon, "--format", "web", "--out", tmp_path / "mine", "--overwrite")
    assert result.exit_code == 1 and "did not write" in result.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    result = export(recon, "--format", "viser", "--out", recon / "inside.viser")
    assert result.exit_code == 1 and "inside the reconstruction" in result.output


def test_the_web_folder_is_self_contained(recon: Path, tmp_path: Path) -> None:
    out = tmp_path / "web"
    result = export(recon, "--format", "web", "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [".vggt-mv-export.json", CLIENT_NAME, "index.html", RECORDING_NAME]
    assert (out / CLIENT_NAME).read_bytes() == VISER_CLIENT.read_bytes()  # viser's packaged client, as installed
    page = (out / "index.html").read_text()
    assert f'src="{CLIENT_NAME}?playbackPath={RECORDING_NAME}"' in page and "http" not in page
    again = export(recon, "--format", "web", "--out", out, "--overwrite", "--fps", 2)  # its own output: replaced
    assert again.exit_code == 0, again.output
    assert read_recording(out / RECORDING_NAME)["durationSeconds"] == pytest.approx(3.0)


@pytest.mark.browser
def test_the_web_folder_plays_in_chromium_from_a_static_server(recon: Path, tmp_path: Path) -> None:
    from tests.test_viewer_browser import CHROMIUM, LAUNCH_ARGS, browser_missing, decode_png

    reason = browser_missing()
    if reason is not None:
        pytest.skip(reason)
    out = tmp_path / "web"
    result = export(recon, "--format", "web", "--out", out, "--fps", 2)
    assert result.exit_code == 0, result.output
    handler = functools.partial(QuietHandler, directory=str(out))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
            try:
                page = browser.new_page(viewport={"width": 640, "height": 480})
                page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/index.html")
                player = page.frame_locator("iframe")
                player.locator("canvas").first.wait_for(timeout=30_000)
                player.get_by_text("1x").first.wait_for(state="attached", timeout=30_000)  # the playback bar is up
                time.sleep(1.0)
                shots = []
                for _ in range(3):  # 2 timesteps per second: frames 0.7 s apart show different timesteps
                    shots.append(decode_png(page.screenshot(clip={"x": 0, "y": 140, "width": 640, "height": 280})))
                    time.sleep(0.7)
            finally:
                browser.close()
    finally:
        httpd.shutdown()
    first = shots[0]
    assert first.reshape(-1, 3).std(axis=0).max() > 10 and len(np.unique(first.reshape(-1, 3), axis=0)) > 50
    changes = [np.abs(a.astype(int) - b.astype(int)).mean() for a, b in zip(shots, shots[1:], strict=False)]
    assert max(changes) > 1.0, changes  # the scene moves on its own: the time axis plays


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass
