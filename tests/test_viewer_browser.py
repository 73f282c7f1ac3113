"""The viewer in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by playwright's Python
package, offline (viser serves its client from the installed package).

Also the README screenshot's maker (same code path)::

    python -m tests.test_viewer_browser --screenshot docs/viewer.png            # runs the demo rig first
    python -m tests.test_viewer_browser --screenshot docs/viewer.png --recon R  # an existing reconstruction
    python -m tests.test_viewer_browser --screenshot docs/viewer.png --ground-truth  # the demo rig's true geometry
    python -m tests.test_viewer_browser --screenshot docs/splats.png --render splats  # the demo rig as splats
    python -m tests.test_viewer_browser --screenshot shot.png --compare-to assets/demo_rig --coloring error
    python -m tests.test_viewer_browser --screenshot docs/tracks.png --recon R --timestep 7 --motion "dynamic only"
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.reconstruct.store import Reconstruction
from app.viewer.gui import UNTRAINED_NOTICE
from app.viewer.server import Viewer, ViewerConfig
from tests.helpers.system import CHROMIUM, browser_missing
from tests.helpers.viewer import make_reconstruction

LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
GUI_PANEL_WIDTH = 340  # px at the right edge of the viewport (viser's floating panel)


@dataclass
class BrowserRun:
    """What :func:`drive_viewer` saw."""

    screenshot: bytes
    labels_found: list[str]
    timesteps_seen: list[list[int]]
    camera_after_view_from: np.ndarray | None = None  # the browser camera's position after "View from camera"
    splat_screenshot: bytes | None = None  # after choosing "splats" in the Render dropdown
    export_button: dict | None = None  # bounding box of "Export and download" on load, and whether it is on top


def choose_splats(viewer: Viewer, page) -> bytes:
    """Pick "splats" in the GUI's Render dropdown (a click on it, then on the option), wait until the server draws
    the current timestep's splats, and return a screenshot."""
    page.get_by_label("Render").first.click()
    page.get_by_role("option", name="splats").first.click()
    assert viewer.wait_until(lambda: viewer.scene.visible_splats() != [] and viewer.idle(), 30), "no splats drawn"
    page.mouse.move(10, VIEWPORT["height"] - 10)
    time.sleep(2.0)  # let the splats arrive, sort and render
    return page.screenshot()


def drive_viewer(
    viewer: Viewer, profile: Path, screenshot: Path | None = None, step: bool = True, splats: bool = False
) -> BrowserRun:
    """Open the viewer in headless Chromium, wait for the canvas and the GUI, save a screenshot (of the splats
    when ``splats``), then move the timestep slider with the keyboard (ArrowRight, then End) and record the
    server's visible timesteps; with ``step`` and ``splats``, also switch to splats through the GUI."""
    from playwright.sync_api import sync_playwright

    labels = ["Timestep", "Stream", "Conf. percentile", "View from camera"]
    seen: list[list[int]] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS, viewport=VIEWPORT
        )
        try:
            page = context.new_page()
            page.goto(viewer.url)
            page.wait_for_selector("canvas", timeout=30_000)
            found = []
            for label in labels:
                page.get_by_text(label, exact=True).first.wait_for(timeout=30_000)
                found.append(label)
            page.wait_for_function(  # the stream toggle (a select) shows the geo stream
                "() => [...document.querySelectorAll('input')].some(i => i.value === 'geo stream: point map')",
                timeout=30_000,
            )
            found.append("geo stream: point map")
            close = page.locator(".mantine-Notification-closeButton")  # "software WebGL" notice (no GPU here)
            for index in range(close.count()):
                close.nth(index).click()
            page.mouse.move(10, VIEWPORT["height"] - 10)
            time.sleep(2.0)  # let the point clouds arrive and render a few frames
            export = page.get_by_text("Export and download", exact=True).first
            box = export.bounding_box()
            if box is not None:  # is the button itself what a click at its centre hits (not clipped or covered)?
                box["on_top"] = page.evaluate(
                    "([x, y]) => document.elementFromPoint(x, y)?.closest('button')?.textContent ?? null",
                    [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
                )
            image = page.screenshot()
            splat_image = choose_splats(viewer, page) if splats else None
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                screenshot.write_bytes(image if splat_image is None else splat_image)
            seen.append(viewer.scene.visible_timesteps())
            if step:
                slider = page.get_by_role("slider").first  # the timestep slider is the panel's first slider
                slider.focus()
                page.keyboard.press("ArrowRight")
                viewer.wait_until(lambda: viewer.scene.visible_timesteps() != seen[0], 10)
                seen.append(viewer.scene.visible_timesteps())
                page.keyboard.press("End")
                viewer.wait_until(lambda: viewer.scene.visible_timesteps() != seen[1], 10)
                seen.append(viewer.scene.visible_timesteps())
                target = viewer.scene.camera_view(0).position
                page.get_by_text("View from camera", exact=True).first.click()
                clients = lambda: list(viewer.server.get_clients().values())  # noqa: E731
                viewer.wait_until(lambda: bool(clients()) and np.allclose(clients()[0].camera.position, target), 10)
                camera = np.array(clients()[0].camera.position) if clients() else None
        finally:
            context.close()
    return BrowserRun(image, found, seen, camera if step else None, splat_image, box)


def decode_png(data: bytes) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


@pytest.mark.browser
def test_viewer_in_headless_chromium(tmp_path: Path) -> None:
    num_timesteps = 4
    make_reconstruction(tmp_path / "recon", num_timesteps, 3, (48, 64))
    notice = UNTRAINED_NOTICE  # the tallest panel: with the notice line
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1, notice=notice)).start()
    try:
        viewer.open(tmp_path / "recon")
        assert viewer.wait_until(viewer.idle, 30)
        run = drive_viewer(viewer, tmp_path / "profile", splats=True)
        pose = viewer.scene.camera_view(0)
        splats_at_the_end = {t for t, *_ in viewer.scene.visible_splats()}
    finally:
        viewer.stop()
    assert run.labels_found == ["Timestep", "Stream", "Conf. percentile", "View from camera", "geo stream: point map"]
    image = decode_png(run.screenshot)
    assert image.shape[:2] == (VIEWPORT["height"], VIEWPORT["width"])
    assert image.reshape(-1, 3).std(axis=0).max() > 10  # not uniform
    scene_part = image[:, : VIEWPORT["width"] - GUI_PANEL_WIDTH - 40].reshape(-1, 3)
    assert len(np.unique(scene_part, axis=0)) > 50  # the 3D view drew the points and images, not just a background
    # the Render dropdown switched to splats: the browser drew them (not uniform, not the points' picture)
    splat_image = decode_png(run.splat_screenshot)
    assert splat_image.reshape(-1, 3).std(axis=0).max() > 10
    splat_part = splat_image[:, : VIEWPORT["width"] - GUI_PANEL_WIDTH - 40]
    assert len(np.unique(splat_part.reshape(-1, 3), axis=0)) > 50
    assert np.abs(splat_part.astype(int) - image[:, : VIEWPORT["width"] - GUI_PANEL_WIDTH - 40]).mean() > 1
    assert splats_at_the_end == {num_timesteps - 1}  # splats follow the time slider like the points
    # the slider moved through the GUI (keyboard): the server shows timestep 1, then the last one
    assert run.timesteps_seen == [[0], [1], [num_timesteps - 1]]
    # "View from camera" put the browser's camera at camera 0 of the current timestep
    assert run.camera_after_view_from is not None
    assert np.allclose(run.camera_after_view_from, pose.position, atol=1e-3)
    # the export panel is in view on load, without scrolling the panel, in a 1280x800 window
    box = run.export_button
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], box
    assert box["on_top"] is not None and "Export and download" in box["on_top"], box


def close_notifications(page) -> None:
    close = page.locator(".mantine-Notification-closeButton")  # "software WebGL" notice (no GPU here)
    for index in range(close.count()):
        close.nth(index).click()


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the GUI dropdown labelled ``label`` (a click on it, then on the option)."""
    page.get_by_label(label, exact=True).first.click()
    page.get_by_role("option", name=option, exact=True).first.click()


def settled_screenshot(viewer: Viewer, page, done=lambda: True) -> np.ndarray:
    """A screenshot once the server is idle and ``done()`` holds, and the browser had time to draw."""
    assert viewer.wait_until(lambda: viewer.idle() and done(), 30)
    page.mouse.move(10, VIEWPORT["height"] - 10)
    time.sleep(1.5)
    return decode_png(page.screenshot())[:, : VIEWPORT["width"] - GUI_PANEL_WIDTH - 40]


@pytest.fixture(scope="module")
def rig_with_truth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A reconstruction of mv_page4d_rig's first 2 timesteps by the bundled demo weights, and the rig (its ground
    truth)."""
    from click.testing import CliRunner

    from app.cli.main import main as cli
    from app.viewer.live import DEMO_WEIGHTS
    from tests.helpers.shared import require, shared_dir

    rig = require(shared_dir() / "realdata" / "mv_page4d_rig", "mv_page4d_rig")
    out = tmp_path_factory.mktemp("browser_truth") / "recon"
    args = ["run", rig, "--out", out, "--checkpoint", DEMO_WEIGHTS, "--device", "cpu", "--size", 154,
            "--max-frames", 2, "--window", 2]  # fmt: skip
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return out, rig


@pytest.mark.browser
def test_ground_truth_show_modes_error_colouring_and_view_from_camera(
    rig_with_truth: tuple[Path, Path], tmp_path: Path
) -> None:
    """On the real rig with ``--ground-truth``: each Show mode draws something else, the error colouring recolours
    the cloud, and "View from camera" shows the reconstruction through the camera, not the camera's photo."""
    reason = browser_missing()
    if reason is not None:
        if os.environ.get("VGGT_MV_REQUIRE_SHARED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    recon, rig = rig_with_truth
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1, ground_truth=rig)).start()
    shots: dict[str, np.ndarray] = {}
    try:
        viewer.open(recon)
        assert viewer.wait_until(viewer.idle, 60)
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS,
                viewport=VIEWPORT,
            )  # fmt: skip
            try:
                page = context.new_page()
                page.goto(viewer.url)
                page.wait_for_selector("canvas", timeout=30_000)
                page.get_by_text("Colour", exact=True).first.wait_for(timeout=30_000)
                close_notifications(page)
                for mode in ("both", "prediction", "ground truth"):
                    choose(page, "Show", mode)
                    assert viewer.wait_until(lambda m=mode: viewer.scene.options.show == m, 10), mode
                    shots[mode] = settled_screenshot(viewer, page)
                choose(page, "Show", "prediction")
                before = {key: h.colors.copy() for key, h in viewer.scene.cloud_handles(0, "geo").items()}
                choose(page, "Colour", "error vs ground truth")
                shots["error"] = settled_screenshot(viewer, page, lambda: viewer.scene.error_legend() is not None)
                after = {key: h.colors.copy() for key, h in viewer.scene.cloud_handles(0, "geo").items()}
                legend = viewer.gui.error_legend.content
                choose(page, "Colour", "image")
                assert viewer.wait_until(lambda: viewer.scene.error_legend() is None and viewer.idle(), 30)
                pose = viewer.scene.camera_view(0)
                page.get_by_text("View from camera", exact=True).first.click()
                clients = lambda: list(viewer.server.get_clients().values())  # noqa: E731
                assert viewer.wait_until(lambda: np.allclose(clients()[0].camera.position, pose.position), 10)
                shots["camera"] = settled_screenshot(viewer, page)
                looking = viewer.scene.looking_through
                images_hidden = not viewer.scene.timesteps[0].camera_kinds["image"].visible
            finally:
                context.close()
    finally:
        viewer.stop()
    if os.environ.get("VGGT_MV_SAVE_SHOTS"):  # for a look at what the test saw
        for name, shot in shots.items():
            cv2.imwrite(str(Path(os.environ["VGGT_MV_SAVE_SHOTS"]) / f"{name}.png"), shot)
    differences = {
        (a, b): float(np.abs(shots[a].astype(int) - shots[b].astype(int)).mean())
        for a, b in (("both", "prediction"), ("both", "ground truth"), ("prediction", "ground truth"))
    }
    assert all(value > 1.0 for value in differences.values()), differences
    # the error colouring recoloured the cloud (server side: the colours sent; browser side: the picture)
    assert any(not np.array_equal(colors, before[key]) for key, colors in after.items() if len(colors))
    assert "scene units" in legend
    assert float(np.abs(shots["error"].astype(int) - shots["prediction"].astype(int)).mean()) > 1.0
    # looking through camera 0: its photo does not fill the view, the points do
    assert looking == 0 and images_hidden
    view = shots["camera"]
    photo = np.asarray(Reconstruction.open(recon).get("images", 0)[0])[..., ::-1]  # RGB -> BGR as the screenshot
    height = view.shape[0]
    width = round(photo.shape[1] * height / photo.shape[0])
    photo = cv2.resize(photo, (width, height), interpolation=cv2.INTER_LINEAR)
    centre = VIEWPORT["width"] // 2
    patch = view[height // 4 : 3 * height // 4, centre - 300 : min(centre + 100, view.shape[1])]
    left = centre - width // 2
    photo_patch = photo[height // 4 : 3 * height // 4, centre - 300 - left : min(centre + 100, view.shape[1]) - left]
    assert float(np.abs(patch.astype(int) - photo_patch.astype(int)).mean()) > 15
    assert len(np.unique(patch.reshape(-1, 3), axis=0)) > 50  # something drawn, not a blank view


@pytest.mark.browser
def test_point_tracks_appear_in_show_and_toggle_in_headless_chromium(tmp_path: Path) -> None:
    """A reconstruction without tracks has no "Point tracks" control; once tracks are stored it appears in Show, the
    browser draws the tails, and clicking it hides them (server side: the nodes; browser side: the picture)."""
    from playwright.sync_api import sync_playwright

    from tests.test_viewer_tracks import T, write_example_tracks

    make_reconstruction(tmp_path / "recon", T, 3, (48, 64))
    viewer = Viewer(ViewerConfig(port=0, open_browser=False, poll_interval_s=0.1)).start()
    shots: dict[str, np.ndarray] = {}
    try:
        viewer.open(tmp_path / "recon")
        assert viewer.wait_until(viewer.idle, 30)
        viewer.gui.timestep.value = 4
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS,
                viewport=VIEWPORT,
            )  # fmt: skip
            try:
                page = context.new_page()
                page.goto(viewer.url)
                page.wait_for_selector("canvas", timeout=30_000)
                page.get_by_text("Trajectories", exact=True).first.wait_for(timeout=30_000)
                close_notifications(page)
                without = page.get_by_text("Point tracks", exact=False).count()
                write_example_tracks(
                    tmp_path / "recon", 0.1, (0.0, -0.5, 1.5)
                )  # in front of the wall; what `vggt-mv run --track-queries` stores at the end
                toggle = page.get_by_text("Point tracks (2)", exact=True).first
                toggle.wait_for(timeout=30_000)
                shots["shown"] = settled_screenshot(viewer, page, lambda: viewer.scene.timesteps[4].tracks is not None)
                toggle.click()
                assert viewer.wait_until(lambda: not viewer.scene.options.show_tracks, 10), "the click did not toggle"
                shots["hidden"] = settled_screenshot(viewer, page)
                hidden_nodes = [node.tracks.visible for node in viewer.scene.timesteps.values()]
            finally:
                context.close()
    finally:
        viewer.stop()
    if os.environ.get("VGGT_MV_SAVE_SHOTS"):  # for a look at what the test saw
        for name, shot in shots.items():
            cv2.imwrite(str(Path(os.environ["VGGT_MV_SAVE_SHOTS"]) / f"tracks_{name}.png"), shot)
    assert without == 0  # no tracks: no control
    assert not any(hidden_nodes)
    # the browser drew the tails and heads: hiding them changed the picture where they are (a few hundred pixels)
    changed = np.abs(shots["shown"].astype(int) - shots["hidden"].astype(int)).max(-1) > 30
    assert changed.sum() > 100, changed.sum()


def _demo_reconstruction(out: Path) -> Path:
    """Run the demo rig through the pipeline as ``vggt-mv-view`` with no arguments does."""
    from app.capture.preprocess import PreprocessConfig
    from app.reconstruct.pipeline import PipelineConfig
    from app.viewer.launch import DEMO_SIZE
    from app.viewer.live import DEMO_RIG, DEMO_WEIGHTS, LiveRun, LiveRunSpec, demo_weights_available
    from vggt_t_mv import WeightsSpec

    model = (
        WeightsSpec(checkpoint=DEMO_WEIGHTS) if demo_weights_available() else WeightsSpec("tiny", random_weights=True)
    )

    spec = LiveRunSpec(
        DEMO_RIG, out, model, PipelineConfig(preprocess=PreprocessConfig(size=DEMO_SIZE)), overwrite=True
    )
    live = LiveRun(spec, on_ready=lambda _: None).start()
    live.thread.join()
    if live.state["state"] != "complete":
        raise SystemExit(f"demo run failed: {live.state}")
    return out


def _ground_truth_reconstruction(out: Path) -> Path:
    """The demo rig's ground truth (``assets/demo_rig/ground_truth.npz``) written as a Reconstruction in the
    frame of camera 0 at timestep 0: what the viewer shows for a perfect model."""
    from app.reconstruct.store import Reconstruction
    from app.viewer.live import DEMO_RIG
    from vggt_t_mv.data import load_ground_truth

    rig = load_ground_truth(DEMO_RIG)
    num_timesteps, num_cameras, height, width = rig.depth.shape
    first = np.eye(4)
    first[:3] = rig.extrinsics[0, 0]
    to_cam0 = first.astype(np.float32)  # world -> camera 0 at t = 0
    points = rig.world_points.astype(np.float32) @ to_cam0[:3, :3].T + to_cam0[:3, 3]
    extrinsics = np.concatenate(
        [rig.extrinsics, np.broadcast_to([0, 0, 0, 1], (*rig.extrinsics.shape[:2], 1, 4))], axis=2
    ) @ np.linalg.inv(to_cam0)
    conf = 1.0 + rig.valid.astype(np.float32)
    recon = Reconstruction.create(
        out,
        {"camera_names": rig.camera_names, "image_hw": [height, width], "spans": [[0, num_timesteps]]},
        overwrite=True,
    )
    recon.write_window(
        0,
        {
            "images": rig.images,
            "depth": rig.depth,
            "depth_conf": conf,
            "world_points": points,
            "world_points_conf": conf,
            "extrinsics": extrinsics[:, :, :3].astype(np.float32),
            "intrinsics": rig.intrinsics,
            "dynamic_mask": rig.dynamic_masks.astype(np.float16),
        },
        {"alignment": {"kind": "ground truth"}},
    )
    recon.record.status = "complete"
    recon.save_record()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Save a screenshot of the viewer (the browser test's code path).")
    parser.add_argument("--screenshot", type=Path, required=True)
    parser.add_argument("--recon", type=Path, help="reconstruction to show (default: run the demo rig)")
    parser.add_argument("--ground-truth", action="store_true", help="show the demo rig's ground truth")
    parser.add_argument("--timestep", type=int, default=0)
    parser.add_argument("--render", choices=("points", "splats"), default="points", help="what the picture shows")
    parser.add_argument("--compare-to", type=Path, help="a ground truth to open next to it (as --ground-truth)")
    parser.add_argument("--show", choices=("prediction", "ground truth", "both"), default="both")
    parser.add_argument("--coloring", choices=("image", "error"), default="image", help="error: needs --compare-to")
    parser.add_argument("--motion", choices=("all", "static only", "dynamic only"), default="all")
    args = parser.parse_args()
    reason = browser_missing()
    if reason:
        raise SystemExit(reason)
    work = Path(tempfile.mkdtemp(prefix="vggt-mv-shot-"))
    try:
        if args.ground_truth:
            recon = _ground_truth_reconstruction(work / "recon")
        else:
            recon = args.recon or _demo_reconstruction(work / "recon")
        viewer = Viewer(ViewerConfig(port=0, open_browser=False, ground_truth=args.compare_to)).start()
        try:
            viewer.open(recon)
            viewer.wait_until(viewer.idle, 120)
            viewer.gui.timestep.value = args.timestep
            viewer.gui.show.value = args.show
            viewer.gui.motion.value = args.motion
            viewer.gui.coloring.value = {"image": "image", "error": "error vs ground truth"}[args.coloring]
            coloured = lambda: (args.coloring == "image") == (viewer.scene.error_legend() is None)  # noqa: E731
            viewer.wait_until(lambda: viewer.idle() and coloured(), 120)
            drive_viewer(viewer, work / "profile", args.screenshot, step=False, splats=args.render == "splats")
        finally:
            viewer.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from PIL import Image  # with matplotlib's dependencies

    # 256 colours, no dithering: a third of the size, the same picture to the eye (docs stay small)
    picture = Image.open(args.screenshot).convert("RGB")
    small = picture.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(args.screenshot, optimize=True)
    print(f"wrote {args.screenshot} ({args.screenshot.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
