"""``vggt-mv-view`` / ``vggt-mv view``: binding, ports, the no-argument demo, Ctrl-C, options."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli.main import main as cli_main
from app.cli.view import view_command
from app.viewer.server import Viewer, ViewerConfig, is_loopback
from tests.helpers.viewer import make_reconstruction


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if int(hex_port, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    words = [bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, 32, 8)]
                    found.add(socket.inet_ntop(socket.AF_INET6, b"".join(words)))
    return found


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads /proc/net/tcp (Linux)")


@needs_proc
def test_listens_on_loopback_only_by_default() -> None:
    viewer = Viewer(ViewerConfig(port=0, open_browser=False)).start()
    try:
        assert viewer.url.startswith("http://127.0.0.1:")
        assert listening_addresses(viewer.port) == {"127.0.0.1"}
        with urllib.request.urlopen(viewer.url, timeout=10) as response:
            assert response.status == 200 and b"<html" in response.read().lower()
    finally:
        viewer.stop()


@needs_proc
def test_host_option_binds_elsewhere_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="access token"):
        viewer = Viewer(ViewerConfig(host="0.0.0.0", port=0, open_browser=False)).start()
    try:
        assert listening_addresses(viewer.port) == {"0.0.0.0"}
    finally:
        viewer.stop()
    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_taken_port_moves_to_the_next_free_one() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        viewer = Viewer(ViewerConfig(port=taken, open_browser=False)).start()
        try:
            assert viewer.port != taken and viewer.port > taken
        finally:
            viewer.stop()


def test_view_subcommand_is_registered() -> None:
    result = CliRunner().invoke(cli_main, ["view", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--no-browser", "--point-budget", "--checkpoint", "--out"):
        assert option in result.output


def test_opens_a_reconstruction_folder_without_a_model(tmp_path: Path) -> None:
    make_reconstruction(tmp_path / "recon")
    args = [str(tmp_path / "recon"), "--no-browser", "--port", "0", "--exit-after", "0.5"]
    result = CliRunner().invoke(view_command, args)
    assert result.exit_code == 0, result.output
    assert "vggt-mv viewer: http://127.0.0.1:" in result.output
    assert "reconstruction goes to" not in result.output


def test_capture_without_weights_is_a_usage_error(tmp_path: Path) -> None:
    from tests.helpers.capture import write_solid_rig

    capture = write_solid_rig(tmp_path / "rig", num_cameras=2, num_timesteps=4)
    result = CliRunner().invoke(view_command, [str(capture), "--no-browser", "--port", "0", "--exit-after", "0"])
    assert result.exit_code == 2 and "--random-weights" in result.output


def test_no_arguments_serves_the_demo_and_ctrl_c_keeps_the_windows(tmp_path: Path) -> None:
    """``vggt-mv-view --no-browser``: the demo rig streams into the viewer; Ctrl-C stops after the current window,
    keeps what is written and exits 0."""
    script = Path(sys.executable).with_name("vggt-mv-view")
    # the installed console script when it is this tree's entry point (an older install names another module)
    current = script.exists() and "from app.cli import view_main" in script.read_text()
    command = [str(script)] if current else [sys.executable, "-m", "app.cli", "view"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(
        [*command, "--no-browser", "--exit-after", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Ctrl-C as in a terminal even when this suite runs in the background (nohup ... &), whose children start
        # with SIGINT ignored, so Python would install no KeyboardInterrupt handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if "vggt-mv viewer: " in line:
                url = line.split("vggt-mv viewer: ")[1].split()[0]
        assert url and url.startswith("http://127.0.0.1:"), "no URL printed"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
        recons = []
        while time.monotonic() < deadline + 60 and not recons:
            recons = list(tmp_path.glob("vggt-mv-view-*/windows/00000/window.json"))
            time.sleep(0.2)
        assert recons, "the demo pipeline wrote no window"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "demo:" in err and "assets/demo_rig" in err
    weights = Path(__file__).resolve().parents[1] / "assets" / "demo_weights" / "model.safetensors"
    if weights.exists():
        assert "with " in err and "demo_weights" in err and "untrained" not in err.lower()
    else:
        assert "untrained" in err
    assert "stopping: the pipeline finishes its current window" in err or "reconstruction:" in err
    meta = json.loads((recons[0].parents[2] / "meta.json").read_text())
    assert meta["status"] == "complete" or ("continue it with: vggt-mv run " in err and "--resume" in err), err
    assert (recons[0].parents[2] / "meta.json").is_file()


def leave_in_time_wait() -> int:
    """A loopback port whose last connection was closed by the listening side first: that side's socket stays in
    TIME-WAIT (about a minute on Linux) after the listener is gone, as after a viewer that just stopped."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: it is the one that waits
        client.recv(1)  # the FIN arrived
        client.close()
    time.sleep(0.1)
    return port


@pytest.mark.skipif(os.name != "posix", reason="SO_REUSEADDR means something else on Windows")
def test_a_port_only_in_time_wait_is_reused() -> None:
    port = leave_in_time_wait()
    with socket.socket() as plain, pytest.raises(OSError):  # the precondition: a plain bind is refused
        plain.bind(("127.0.0.1", port))
    from app.viewer.server import free_port

    assert free_port("127.0.0.1", port) == port
    viewer = Viewer(ViewerConfig(port=port, open_browser=False)).start()
    try:
        assert viewer.port == port
    finally:
        viewer.stop()
