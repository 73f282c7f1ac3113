"""Security (issue 15, items 1 and 2): files and connections from others never run code or read the scene.

1. ``vggt-mv train --resume`` reads ``training_state.pt`` with ``weights_only=True``: a crafted file is refused
   with a message naming it, and the code inside never runs.
2. The viewer's websocket refuses cross-origin connections, and on a non-loopback ``--host`` every connection
   without the access token printed at start.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import msgspec
import pytest
import torch
import viser
import zstandard
from click.testing import CliRunner
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from app.cli.train import train_command
from app.viewer.server import Viewer, ViewerConfig
from tests.helpers.files import tree_digest
from tests.helpers.system import CHROMIUM
from tests.helpers.train import tiny_config
from tests.helpers.viewer import make_reconstruction
from tests.test_viewer_browser import LAUNCH_ARGS
from vggt_t_mv import VGGTTMV, ModelConfig, save_pretrained
from vggt_t_mv.train.trainer import CHECKPOINTS, STATE_FILE


class _Payload:
    """Unpickling this creates ``marker`` (what a crafted file could do with any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_resume_refuses_a_crafted_training_state_without_running_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    folder = out / CHECKPOINTS / "step_000002"
    save_pretrained(VGGTTMV(ModelConfig.tiny_two_stream()), folder)
    marker = tmp_path / "marker"
    crafted = {"step": 2, "optimizer": _Payload(marker), "scheduler": {}, "rng": {}}
    torch.save(crafted, folder / STATE_FILE)

    # the payload is real: the same kind of file, unpickled the unsafe way, does create its marker
    torch.save({"x": _Payload(tmp_path / "ran")}, tmp_path / "probe.pt")
    torch.load(tmp_path / "probe.pt", weights_only=False)
    assert (tmp_path / "ran").exists()

    config = tmp_path / "config.json"
    config.write_text(json.dumps(tiny_config(out, tmp_path / "cache", max_steps=4).to_dict()))
    before = tree_digest(out)
    result = CliRunner().invoke(train_command, [str(config), "--resume"])

    assert result.exit_code == 1, result.output
    assert str(folder / STATE_FILE) in result.output and "refusing to load" in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert not marker.exists()
    assert tree_digest(out) == before


# ------------------------------------------------------------------------------------------------ 2. the viewer
def _viewer_on(tmp_path: Path, host: str) -> Viewer:
    make_reconstruction(tmp_path / "recon", 3, 2, (24, 32))
    viewer = Viewer(ViewerConfig(host=host, port=0, open_browser=False, poll_interval_s=0.1)).start()
    viewer.open(tmp_path / "recon")
    assert viewer.wait_until(viewer.idle, 30), "the viewer did not load the reconstruction"
    return viewer


def _scene_nodes(url: str, origin: str | None, headers: dict[str, str] | None = None, seconds: float = 2.0) -> set:
    """``(message type, node name)`` of every scene message the viewer sends a websocket client at ``url`` within
    ``seconds`` (viser's wire format: two little-endian uint64 sizes, zstd-compressed msgpack, raw buffers);
    raises ``InvalidStatus`` when the handshake is refused."""
    nodes = set()
    with connect(
        url, origin=origin, subprotocols=[f"viser-v{viser.__version__}"], additional_headers=headers, open_timeout=10
    ) as socket:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                blob = socket.recv(timeout=max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                break
            size = int.from_bytes(blob[:8], "little")
            compressed = int.from_bytes(blob[8:16], "little")
            inner = zstandard.ZstdDecompressor().decompress(blob[16 : 16 + compressed], max_output_size=size)
            for message in msgspec.msgpack.decode(inner)["messages"]:
                if isinstance(message.get("name"), str):
                    nodes.add((message.get("type"), message["name"]))
    return nodes


def _shows_the_scene(nodes: set) -> bool:
    """A timestep's point cloud and a camera frustum were received."""
    names = {name for kind, name in nodes if kind in ("PointCloudMessage", "CameraFrustumMessage")}
    return any(name.startswith("/t/00000/") for name in names)


def test_websocket_from_a_foreign_origin_gets_no_scene_data(tmp_path: Path) -> None:
    viewer = _viewer_on(tmp_path, "127.0.0.1")
    try:
        own = f"http://127.0.0.1:{viewer.port}"
        assert viewer.url == own and viewer.access.token is None
        assert _shows_the_scene(_scene_nodes(f"ws://127.0.0.1:{viewer.port}", origin=own))
        assert _shows_the_scene(_scene_nodes(f"ws://127.0.0.1:{viewer.port}", origin=None))  # scripts send no Origin
        for foreign in ("http://evil.example", f"http://localhost:{viewer.port + 1}", "null"):
            with pytest.raises(InvalidStatus) as refused:
                _scene_nodes(f"ws://127.0.0.1:{viewer.port}", origin=foreign)
            assert refused.value.response.status_code == 403
            assert b"cross-origin" in refused.value.response.body
        # a foreign DNS name rebound to 127.0.0.1 is not same-origin either
        with pytest.raises(InvalidStatus):
            _scene_nodes(f"ws://127.0.0.1:{viewer.port}", "http://evil.example", {"Host": "evil.example"})
        with urllib.request.urlopen(own, timeout=10) as page:  # the page itself is still served
            assert page.status == 200
    finally:
        viewer.stop()


def test_non_loopback_host_serves_nothing_without_the_token(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="access token"):
        viewer = _viewer_on(tmp_path, "0.0.0.0")
    try:
        token = viewer.access.token
        assert token and len(token) >= 24 and viewer.url == f"http://127.0.0.1:{viewer.port}/?token={token}"
        base = f"127.0.0.1:{viewer.port}"
        for url in (f"ws://{base}", f"ws://{base}/?token=wrong"):
            with pytest.raises(InvalidStatus) as refused:
                _scene_nodes(url, origin=None)
            assert refused.value.response.status_code == 403 and b"token" in refused.value.response.body
        with pytest.raises(urllib.error.HTTPError) as page_refused:
            urllib.request.urlopen(f"http://{base}/", timeout=10)
        assert page_refused.value.code == 403
        # with the token: the page, its cookie, and the websocket (by URL or by that cookie, as a browser does)
        with urllib.request.urlopen(viewer.url, timeout=10) as page:
            cookie = page.headers["Set-Cookie"].split(";")[0]
        assert cookie == f"vggt_mv_token_{viewer.port}={token}"
        assert _shows_the_scene(_scene_nodes(f"ws://{base}/?token={token}", origin=None))
        assert _shows_the_scene(_scene_nodes(f"ws://{base}", origin=f"http://{base}", headers={"Cookie": cookie}))
        with pytest.raises(InvalidStatus):  # the token does not make a foreign origin acceptable
            _scene_nodes(f"ws://{base}/?token={token}", origin="http://evil.example")
    finally:
        viewer.stop()


@pytest.mark.browser
def test_a_browser_with_the_token_url_connects_and_one_without_gets_nothing(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with pytest.warns(UserWarning, match="access token"):
        viewer = _viewer_on(tmp_path, "0.0.0.0")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
            try:
                without = browser.new_page()
                response = without.goto(f"http://127.0.0.1:{viewer.port}/")
                assert response.status == 403 and "token" in without.content()
                time.sleep(1.0)
                assert not viewer.server.get_clients()
                page = browser.new_page()
                page.goto(viewer.url)  # the printed URL: the page sets the cookie its websocket then carries
                assert viewer.wait_until(lambda: bool(viewer.server.get_clients()), 30)
            finally:
                browser.close()
    finally:
        viewer.stop()
