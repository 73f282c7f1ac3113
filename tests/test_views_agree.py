"""Multi-view agreement (issue 24): the per-pixel count of other cameras that see a pixel's point at a consistent
depth, on a synthetic rig with exact geometry; the ``--min-views`` filter, one and the same in export, eval and the
viewer."""

from __future__ import annotations

import dataclasses
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import app.reconstruct.store as store
from app.capture.rig import CaptureOptions
from app.cli.main import main
from app.export.api import ColmapOptions, ExportOptions, MeshOptions, Selection, export_reconstruction
from app.export.selection import pixel_keep_mask
from app.reconstruct.pipeline import PipelineConfig, RunResult
from app.reconstruct.run import reconstruct
from app.reconstruct.store import Reconstruction, open_stem, stem_file
from app.viewer.data import CloudSettings, filter_timestep
from tests.helpers.export import rig_arrays, write_recon
from tests.helpers.shared import require, shared_dir
from vggt_t_mv import WeightsSpec
from vggt_t_mv.agreement import (
    UNSEEN,
    AgreementConfig,
    match_pair,
    passes_min_views,
    views_agree,
    views_agree_window,
)
from vggt_t_mv.data.synthetic import SyntheticRigConfig, make_synthetic_rig


@pytest.fixture(scope="module")
def rig():
    """2 timesteps x 4 cameras of 60 x 80 pixels, exact depth and cameras."""
    return make_synthetic_rig(
        SyntheticRigConfig(num_timesteps=2, num_cameras=4, height=60, width=80, seed=1, camera_spacing_deg=20.0)
    )


def counts_of(rig, t: int = 0, depth: np.ndarray | None = None, config: AgreementConfig | None = None) -> np.ndarray:
    depth = rig.depth[t] if depth is None else depth
    return views_agree(depth, rig.extrinsics[t], rig.intrinsics[t], config)


def test_exact_geometry_agrees_and_floaters_are_marked(rig) -> None:
    counts = counts_of(rig)
    assert counts.dtype == np.uint8 and counts.shape == rig.depth[0].shape
    valid = rig.valid[0]
    seen = valid & (counts != UNSEEN)
    # the surface: almost every pixel another camera sees agrees with at least one of them
    assert (counts[seen] >= 1).mean() > 0.9
    assert (counts[~valid] == 0).all()
    # floaters: 300 surface pixels of camera 0 moved towards it (30 % off the surface along their rays)
    rng = np.random.default_rng(0)
    candidates = np.flatnonzero(seen[0] & (counts[0] >= 1))
    moved = rng.choice(candidates, 300, replace=False)
    depth = rig.depth[0].copy()
    depth[0].reshape(-1)[moved] *= 0.7
    after = counts_of(rig, depth=depth)
    floaters = after[0].reshape(-1)[moved]
    assert ((floaters == 0) | (floaters == UNSEEN)).mean() > 0.97, np.bincount(floaters)
    assert (floaters == 0).mean() > 0.8  # most are seen by the others, and contradicted: marked, not unchecked
    untouched = np.ones(counts[0].size, bool)
    untouched[moved] = False
    np.testing.assert_array_equal(after[0].reshape(-1)[untouched], counts[0].reshape(-1)[untouched])
    # the filter drops the floaters and keeps the surface
    keep = passes_min_views(after, 1)
    assert keep[0].reshape(-1)[moved][floaters != UNSEEN].mean() < 0.03
    assert keep[0].reshape(-1)[untouched][seen[0].reshape(-1)[untouched]].mean() > 0.9


def test_zero_tolerance_rejects_what_the_default_accepts(rig) -> None:
    counts = counts_of(rig)
    strict = counts_of(rig, config=AgreementConfig(depth_tolerance=0.0, reprojection_px=2.0))
    no_reprojection = counts_of(rig, config=AgreementConfig(depth_tolerance=0.03, reprojection_px=0.0))
    seen = rig.valid[0] & (counts != UNSEEN)
    assert counts[seen].astype(float).mean() > 1.0
    assert strict[seen].astype(float).mean() < 0.05 * counts[seen].astype(float).mean()
    assert no_reprojection[seen].astype(float).mean() < 0.05 * counts[seen].astype(float).mean()
    np.testing.assert_array_equal(strict == UNSEEN, counts == UNSEEN)  # what is seen does not change


def test_dropping_a_camera_removes_exactly_its_agreements(rig) -> None:
    counts = counts_of(rig)
    three = views_agree(rig.depth[0][:3], rig.extrinsics[0][:3], rig.intrinsics[0][:3])
    for n in range(3):
        match = match_pair(
            rig.depth[0][n], rig.extrinsics[0][n], rig.intrinsics[0][n],
            rig.depth[0][3], rig.extrinsics[0][3], rig.intrinsics[0][3], AgreementConfig(),
        )  # fmt: skip
        both = (counts[n] != UNSEEN) & (three[n] != UNSEEN)
        expected = counts[n].astype(int) - match.agree.reshape(counts[n].shape)
        np.testing.assert_array_equal(three[n][both], expected[both])
        # unseen with three cameras: only camera 3 saw it
        lost = (three[n] == UNSEEN) & (counts[n] != UNSEEN)
        assert match.seen.reshape(counts[n].shape)[lost].all()
        assert lost.any() or n == 1  # the outer cameras see parts only camera 3 sees


def test_a_camera_that_cannot_be_used_sees_nothing(rig) -> None:
    """Singular intrinsics of camera 2 (a degenerate prediction): its pixels are unchecked, the others lose exactly
    its agreements, nothing raises."""
    intrinsics = rig.intrinsics[0].copy()
    intrinsics[2] = 0.0
    counts = views_agree(rig.depth[0], rig.extrinsics[0], intrinsics)
    assert (counts[2][rig.valid[0][2]] == UNSEEN).all()
    others = [0, 1, 3]
    three = views_agree(rig.depth[0][others], rig.extrinsics[0][others], rig.intrinsics[0][others])
    np.testing.assert_array_equal(counts[others], three)


# ------------------------------------------------------------------------------------------------ float64 reference
def reference_counts(depth: np.ndarray, extrinsics: np.ndarray, intrinsics: np.ndarray, config: AgreementConfig):
    """The module docstring's steps 1-3, pixel by pixel in float64: what :func:`views_agree` computes in float32."""
    num_cameras, height, width = depth.shape
    depth = depth.astype(np.float64)
    rotation, translation = extrinsics[..., :3].astype(np.float64), extrinsics[..., 3].astype(np.float64)
    k = intrinsics.astype(np.float64)
    k_inv = np.linalg.inv(k)

    def valid(value: float) -> bool:
        return math.isfinite(value) and value > 0

    def lift(c: int, u: float, v: float, d: float) -> np.ndarray:  # pixel of camera c at z-depth d -> world
        return rotation[c].T @ (d * (k_inv[c] @ np.array([u, v, 1.0])) - translation[c])

    def project(c: int, point: np.ndarray) -> tuple[float, float, float]:  # world -> (u, v, z) in camera c
        x = k[c] @ (rotation[c] @ point + translation[c])
        return x[0] / x[2], x[1] / x[2], x[2]

    out = np.zeros(depth.shape, np.uint8)
    for n in range(num_cameras):
        for v in range(height):
            for u in range(width):
                d = depth[n, v, u]
                if not valid(d):
                    continue  # invalid: 0
                point, seen, agreeing = lift(n, u, v, d), False, 0
                for m in range(num_cameras):
                    if m == n:
                        continue
                    u_m, v_m, z = project(m, point)
                    if not (z > 0 and math.isfinite(u_m) and math.isfinite(v_m)):
                        continue  # 1. behind m
                    col, row = round(u_m), round(v_m)  # nearest pixel (ties to even, as np.rint)
                    if not (0 <= col < width and 0 <= row < height and valid(depth[m, row, col])):
                        continue  # 1. outside m, or on invalid depth there
                    seen, d_m = True, depth[m, row, col]
                    if abs(z - d_m) > config.depth_tolerance * d_m:
                        continue  # 2. depth
                    u_n, v_n, z_n = project(n, lift(m, col, row, d_m))
                    agreeing += z_n > 0 and math.hypot(u_n - u, v_n - v) <= config.reprojection_px  # 3. round trip
                out[n, v, u] = agreeing if seen else UNSEEN
    return out


def small_rig(seed: int):
    return make_synthetic_rig(SyntheticRigConfig(num_timesteps=1, num_cameras=4, height=30, width=40, seed=seed,
                                                 camera_spacing_deg=25.0))  # fmt: skip


def test_float32_counts_equal_a_float64_reference_on_exact_depth() -> None:
    """On exact depth and cameras the float32 arithmetic decides every pixel as float64 does."""
    rig = small_rig(3)
    config = AgreementConfig()
    counts = views_agree(rig.depth[0], rig.extrinsics[0], rig.intrinsics[0], config)
    expected = reference_counts(rig.depth[0], rig.extrinsics[0], rig.intrinsics[0], config)
    assert ((expected >= 1) & (expected < UNSEEN)).mean() > 0.5 and (expected == UNSEEN).any()
    np.testing.assert_array_equal(counts, expected)


def test_float32_counts_follow_a_float64_reference_on_noisy_depth() -> None:
    """Noisy depth (3 % noise: many pixels near the depth tolerance), invalid pixels (NaN, inf, 0, negative), and a
    camera moved forward into the scene (points behind it, its own depth half invalid): the counts equal the float64
    reference except where a float32 rounding lands on the other side of a threshold or a rounding tie (module
    docstring): under 0.1 % of the pixels (measured: none in these rigs)."""
    config = AgreementConfig()
    for seed in (4, 5):
        rig = small_rig(seed)
        rng = np.random.default_rng(seed)
        depth = rig.depth[0] * (1 + 0.03 * rng.standard_normal(rig.depth[0].shape)).astype(np.float32)
        extrinsics = rig.extrinsics[0].copy()
        extrinsics[3, 2, 3] -= np.float32(np.median(depth[3]))  # camera 3 moved forward along its axis
        depth[3] -= np.float32(np.median(depth[3]))
        for value in (np.nan, np.inf, 0.0, -1.0):
            depth.reshape(-1)[rng.choice(depth.size, depth.size // 50, replace=False)] = value
        counts = views_agree(depth, extrinsics, rig.intrinsics[0], config)
        expected = reference_counts(depth, extrinsics, rig.intrinsics[0], config)
        for kind in (expected == 0, expected == UNSEEN, (expected >= 1) & (expected < UNSEEN)):
            assert kind.mean() > 0.05  # every outcome is exercised
        assert (expected[~(np.isfinite(depth) & (depth > 0))] == 0).all()
        assert (counts != expected).mean() < 1e-3, np.argwhere(counts != expected)
        for n, m in ((0, 1), (3, 0)):  # match_pair's projection: float64, as the reference
            match = match_pair(depth[n], extrinsics[n], rig.intrinsics[0][n], depth[m], extrinsics[m],
                               rig.intrinsics[0][m], config)  # fmt: skip
            assert ((match.agree <= match.seen) & (match.seen <= (counts[n] != UNSEEN).ravel())).all()
            k, pose = rig.intrinsics[0].astype(np.float64), extrinsics.astype(np.float64)
            v, u = np.indices(depth[n].shape)
            rays = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3) @ np.linalg.inv(k[n]).T
            seen = match.seen
            points = (rays[seen] * depth[n].reshape(-1, 1)[seen] - pose[n, :, 3]) @ pose[n, :, :3]
            projected = (points @ pose[m, :, :3].T + pose[m, :, 3]) @ k[m].T
            np.testing.assert_allclose(match.pixel[seen], projected[:, :2] / projected[:, 2:], atol=1e-5)


def test_reconstructions_compute_it_on_read(rig, tmp_path: Path) -> None:
    recon = write_recon(tmp_path / "r", rig_arrays(rig), rig.camera_names)
    np.testing.assert_array_equal(recon.views_agree(1), counts_of(rig, 1))
    assert recon.views_agree(1) is recon.views_agree(1)  # once per timestep


def rig_root() -> Path:
    return require(shared_dir() / "realdata" / "mv_page4d_rig", "mv_page4d_rig")


# ------------------------------------------------------------------------------------------------ stored by the run
DEMO_WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "demo_weights"


def run_rig(out: Path, on_window=None, resume: bool = False, **settings) -> RunResult | None:
    """mv_page4d_rig's first 5 timesteps with the demo weights in its calibration's frame (unless ``settings`` say
    otherwise), windows [0, 3) and [2, 5) (format 3 stores timestep 2 once, from window 0)."""
    config = PipelineConfig(window=3, stride=2, device="cpu", **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reconstruct(
            rig_root(), out, WeightsSpec(checkpoint=DEMO_WEIGHTS), config, CaptureOptions(max_frames=5),
            resume=resume, on_window=on_window,
        )  # fmt: skip


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunResult]:
    out = tmp_path_factory.mktemp("stored") / "recon"
    result = run_rig(out)
    assert result is not None
    return out, result


def without_stored_agreement(source: Path, out: Path, windows: tuple[int, ...] = (0, 1)) -> Reconstruction:
    """A copy of ``source`` whose ``windows`` lack the views_agree file (as written before the pipeline stored it)."""
    shutil.copytree(source, out)
    for index in windows:
        stem_file(out / "windows" / f"{index:05d}", "views_agree").unlink()
    return Reconstruction.open(out)


def on_read(recon: Reconstruction) -> np.ndarray:
    """The agreement of every timestep from the depth and cameras the reconstruction reads back."""
    return views_agree_window(recon.load("depth"), recon.load("extrinsics"), recon.load("intrinsics"))


def test_the_pipeline_stores_the_agreement_of_what_it_stores(stored_run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each window stores views_agree [Ts, N, H, W] uint8 for the timesteps it stores, equal to the agreement of the
    depth and cameras read back for them (the calibration's cameras, depth moved into its frame), and read back as
    stored (nothing computed on read)."""
    out, result = stored_run
    recon = Reconstruction.open(out)
    assert [record.held for record in recon.windows()] == [(0, 3), (3, 5)]
    for record in recon.windows():
        stored = np.asarray(open_stem(record.path, "views_agree"))
        assert stored.dtype == np.uint8 and stored.shape == (record.held[1] - record.held[0], 4, *recon.image_hw)
    expected = on_read(recon)
    np.testing.assert_array_equal(recon.load("views_agree"), expected)
    assert (expected == 0).any() and (expected == UNSEEN).any() and ((expected >= 1) & (expected < UNSEEN)).any()
    assert result.stage_seconds["agreement"] > 0  # timed in the writer's thread

    def refuse(*args, **kwargs):
        raise AssertionError("computed on read although the run stored it")

    monkeypatch.setitem(store.COMPUTE, "views_agree", refuse)
    reader = Reconstruction.open(out)
    for t in range(reader.num_timesteps):
        np.testing.assert_array_equal(reader.views_agree(t), expected[t])
    np.testing.assert_array_equal(reader.window_arrays(1, ["views_agree"])["views_agree"], expected[3:])


def test_runs_without_it_compute_it_on_read(stored_run, tmp_path: Path) -> None:
    """Format-3 runs written before the pipeline stored it (all windows, or the first ones of a run resumed since),
    and the committed format-2 fixture, compute it on read: the same values."""
    out, _ = stored_run
    expected = Reconstruction.open(out).load("views_agree")
    for windows in ((0, 1), (0,)):
        old = without_stored_agreement(out, tmp_path / f"old{len(windows)}", windows)
        assert old.has("views_agree") and "views_agree" in old.array_names()
        np.testing.assert_array_equal(old.load("views_agree"), expected)
        np.testing.assert_array_equal(np.stack([old.views_agree(t) for t in range(5)]), expected)
        np.testing.assert_array_equal(old.window_arrays(0)["views_agree"], expected[:3])
    fixture = Path(__file__).resolve().parent / "fixtures" / "recon_v2"
    shutil.copytree(fixture, tmp_path / "v2")
    v2 = Reconstruction.open(tmp_path / "v2")
    assert v2.format_version == 2 and not list((tmp_path / "v2").rglob("views_agree.*"))
    np.testing.assert_array_equal(v2.load("views_agree"), on_read(v2))
    for t in range(v2.num_timesteps):
        depth = np.asarray(v2.get("depth", t), np.float32)
        np.testing.assert_array_equal(
            v2.views_agree(t), views_agree(depth, v2.get("extrinsics", t), v2.get("intrinsics", t))
        )


def test_min_views_keeps_the_same_pixels_stored_or_computed(stored_run, tmp_path: Path) -> None:
    out, _ = stored_run
    stored = Reconstruction.open(out)
    computed = without_stored_agreement(out, tmp_path / "old")
    selection = Selection(stream="pose", conf_percentile=0.0, min_views=1)
    masks = [npz_mask(recon, selection, tmp_path / f"{i}.npz") for i, recon in enumerate((stored, computed))]
    np.testing.assert_array_equal(masks[0], masks[1])
    everything = npz_mask(stored, Selection(stream="pose", conf_percentile=0.0), tmp_path / "all.npz")
    assert masks[0].sum() < everything.sum()
    for t in range(stored.num_timesteps):
        np.testing.assert_array_equal(viewer_mask(stored, t, "pose", 0.0, 1), viewer_mask(computed, t, "pose", 0.0, 1))


def test_kill_and_resume_keeps_it(stored_run, tmp_path: Path) -> None:
    """A run killed after its first window keeps that window's stored agreement; the resume stores the rest (also
    when the kept window was written before the pipeline stored it): the same values as an uninterrupted run."""
    out, _ = stored_run
    full = Reconstruction.open(out).load("views_agree")

    def kill(index: int) -> None:
        if index == 0:
            raise KeyboardInterrupt

    for strip in (False, True):
        part = tmp_path / f"part{int(strip)}"
        with pytest.raises(KeyboardInterrupt):
            run_rig(part, on_window=kill)
        first = stem_file(part / "windows" / "00000", "views_agree")
        kept = np.asarray(open_stem(first.parent, "views_agree"))
        np.testing.assert_array_equal(kept, full[:3])
        if strip:
            first.unlink()
        run_rig(part, resume=True)
        resumed = Reconstruction.open(part)
        assert resumed.is_complete and first.is_file() != strip
        assert stem_file(part / "windows" / "00001", "views_agree").is_file()
        if not strip:
            np.testing.assert_array_equal(np.asarray(open_stem(first.parent, "views_agree")), kept)
        np.testing.assert_array_equal(resumed.load("views_agree"), full)


def test_a_rigid_rig_run_stores_the_agreement_of_its_final_cameras(tmp_path: Path) -> None:
    """``--rigid-rig`` replaces every window's cameras after the last window: the stored agreement follows them."""
    run_rig(tmp_path / "rigid", cameras="predicted", rigid_rig=True)
    recon = Reconstruction.open(tmp_path / "rigid")
    assert recon.record.rig is not None and recon.record.rig.rigid is not None
    assert all(stem_file(record.path, "views_agree").is_file() for record in recon.windows())
    np.testing.assert_array_equal(recon.load("views_agree"), on_read(recon))


def test_replaced_cameras_replace_the_stored_agreement(rig, tmp_path: Path) -> None:
    """A pass that replaces a window's cameras (``--rigid-rig``) stores the agreement of the new ones; writers
    cannot hand the store an agreement of their own."""
    recon = write_recon(tmp_path / "r", rig_arrays(rig), rig.camera_names, format_version=3)
    before = recon.load("views_agree")
    extrinsics = rig.extrinsics.copy()
    extrinsics[:, 1, :, 3] += np.float32(0.2)  # camera 1 moved: its depth no longer agrees with the others
    recon.replace_arrays(0, {"extrinsics": extrinsics})
    after = Reconstruction.open(tmp_path / "r")
    stored = np.asarray(open_stem(tmp_path / "r" / "windows" / "00000", "views_agree"))
    np.testing.assert_array_equal(stored, on_read(after))
    assert (stored[:, 1] != before[:, 1]).mean() > 0.2
    with pytest.raises(ValueError, match="views_agree is computed by the store"):
        recon.replace_arrays(0, {"views_agree": before})
    arrays = rig_arrays(rig) | {"views_agree": before}
    with pytest.raises(ValueError, match="views_agree is computed by the store"):
        write_recon(tmp_path / "given", arrays, rig.camera_names, format_version=3)


def npz_mask(recon: Reconstruction, selection: Selection, out: Path) -> np.ndarray:
    [path] = export_reconstruction(recon, "npz", selection, out, ExportOptions(merge=True))
    return np.load(path)["mask"]


def viewer_mask(recon: Reconstruction, t: int, stream, conf: float, min_views: int) -> np.ndarray:
    cloud = filter_timestep(
        recon, t, stream, CloudSettings(conf_percentile=conf, point_budget=10**9, min_views=min_views)
    )
    height, width = recon.image_hw
    out = np.zeros((recon.num_cameras, height * width), bool)
    for n, camera in enumerate(cloud.cameras):
        out[n, camera.static_pixels] = True
        out[n, camera.dynamic_pixels] = True
    return out.reshape(recon.num_cameras, height, width)


def test_min_views_keeps_the_same_pixels_in_export_and_viewer(rig, tmp_path: Path) -> None:
    recon = write_recon(tmp_path / "r", rig_arrays(rig), rig.camera_names)
    for stream, conf, k in (("geo", 10.0, 1), ("pose", 0.0, 2), ("geo", 0.0, 3)):
        selection = Selection(timesteps=(0, 1), stream=stream, conf_percentile=conf, min_views=k)
        exported = npz_mask(recon, selection, tmp_path / f"{stream}{k}.npz").reshape(2, recon.num_cameras, 60, 80)
        for t in (0, 1):
            shown = viewer_mask(recon, t, stream, conf, k)
            np.testing.assert_array_equal(shown, exported[t])
            without = pixel_keep_mask(recon, Selection(stream=stream, conf_percentile=conf), t, [0, 1, 2, 3])
            assert shown.sum() < without.sum() and (shown <= without).all()
            np.testing.assert_array_equal(shown, without & passes_min_views(recon.views_agree(t), k))


def test_min_views_keeps_the_same_pixels_in_eval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``vggt-mv eval RECON --min-views K`` evaluates exactly the pixels the export keeps for the same settings."""
    import app.reconstruct.frame_metrics as frame_metrics

    recon_path = tmp_path / "recon"
    run = CliRunner().invoke(
        main,
        ["run", str(rig_root()), "--out", str(recon_path), "--random-weights", "--device", "cpu", "--size", "42",
         "--max-frames", "2", "--window", "2"],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    recon = Reconstruction.open(recon_path)
    seen: dict[str, object] = {}
    original = frame_metrics.frame_report

    def spy(recon_, truth, calibrated, units, keep=None):
        seen["keep"] = keep
        return original(recon_, truth, calibrated, units, keep)

    monkeypatch.setattr(frame_metrics, "frame_report", spy)
    result = CliRunner().invoke(main, ["eval", str(recon_path), "--gt", str(rig_root()), "--min-views", "1"])
    assert result.exit_code == 0, result.output
    keep = seen["keep"]
    assert callable(keep)
    exported = npz_mask(recon, Selection(stream="pose", conf_percentile=0.0, min_views=1), tmp_path / "e.npz")
    exported = exported.reshape(recon.num_timesteps, recon.num_cameras, *recon.image_hw)
    for t in range(recon.num_timesteps):
        np.testing.assert_array_equal(keep(t), exported[t])
        np.testing.assert_array_equal(keep(t), viewer_mask(recon, t, "pose", 0.0, 1))
    refused = CliRunner().invoke(main, ["eval", "--random-weights", "--gt", "synthetic:1000", "--min-views", "1"])
    assert refused.exit_code != 0 and "reconstruction folder" in refused.output


# ------------------------------------------------------------------------------------------------ TSDF fusion
@pytest.mark.needs_open3d
def test_tsdf_mesh_lies_on_the_ground_truth_surface(tmp_path: Path) -> None:
    """The fused surface of one timestep (4 exact depth maps, no moving objects) lies on the true surface (a 4x finer
    rendering of the same scene) within about a voxel, and covers what the cameras see."""
    import trimesh

    from vggt_t_mv.eval.metrics import nearest_distances

    config = SyntheticRigConfig(num_timesteps=1, num_cameras=4, height=90, width=120, seed=2, num_moving_objects=0)
    rig = make_synthetic_rig(config)
    fine = make_synthetic_rig(dataclasses.replace(config, height=360, width=480))
    np.testing.assert_array_equal(fine.extrinsics, rig.extrinsics)  # the same scene and cameras
    recon = write_recon(tmp_path / "r", rig_arrays(rig), rig.camera_names)
    voxel = 0.05
    out = tmp_path / "fused.ply"
    export_reconstruction(recon, "mesh", Selection(conf_percentile=0.0, voxel=voxel), out,
                          ExportOptions(mesh=MeshOptions(method="tsdf")))  # fmt: skip
    mesh = trimesh.load(out, process=False)
    rng = np.random.default_rng(0)
    vertices = np.asarray(mesh.vertices, np.float64)
    surface = fine.world_points[0][fine.valid[0]].astype(np.float64)  # 690k points, spaced 0.2-0.6 voxel
    surface = surface[rng.choice(len(surface), 250_000, replace=False)]
    error = nearest_distances(vertices[rng.choice(len(vertices), 600, replace=False)], surface, chunk=32)
    assert np.median(error) < 0.5 * voxel and np.percentile(error, 95) < 1.5 * voxel, np.percentile(error, [50, 95])
    # coverage: the true surface points the cameras see are near a mesh vertex
    truth = rig.world_points[0][rig.valid[0]].astype(np.float64)
    sample = truth[np.random.default_rng(0).choice(len(truth), 2000, replace=False)]
    coverage = nearest_distances(sample, np.asarray(mesh.vertices))
    assert np.percentile(coverage, 90) < 2 * voxel, np.percentile(coverage, [50, 90])
    assert (np.asarray(mesh.visual.vertex_colors)[:, :3].std(0) > 5).all()  # the images' colours, not one colour


@pytest.mark.needs_open3d
def test_tsdf_over_several_timesteps_needs_the_static_part(rig, tmp_path: Path) -> None:
    """A merged TSDF over moving objects would smear them: refused without --static-only, with the fix."""
    recon = write_recon(tmp_path / "r", rig_arrays(rig), rig.camera_names)
    args = ["export", str(recon.root), "--format", "mesh", "--mesh-method", "tsdf", "--merge", "--conf-percentile", "0"]
    refused = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "all.ply")])
    assert refused.exit_code != 0 and "--static-only" in refused.output and not (tmp_path / "all.ply").exists()
    done = CliRunner().invoke(main, [*args, "--static-only", "--min-views", "1", "--out", str(tmp_path / "static.ply")])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "static.ply").stat().st_size > 1000


# ------------------------------------------------------------------------------------------------ COLMAP tracks
def test_colmap_tracks_join_the_agreeing_pixels_of_one_instant(rig, tmp_path: Path) -> None:
    import pycolmap

    recon = write_recon(tmp_path / "r", rig_arrays(rig), rig.camera_names)
    selection = Selection(timesteps=(0, 1), stream="pose", conf_percentile=0.0)
    (out,) = export_reconstruction(recon, "colmap", selection, tmp_path / "c", ExportOptions(merge=True))
    model = pycolmap.Reconstruction(str(out / "sparse" / "0"))
    assert model.compute_mean_track_length() > 1.5  # exact geometry: most pixels are seen by other cameras
    assert model.num_cameras() == 4 and model.num_rigs() == 1 and model.num_frames() == 2
    checked = 0
    for point in list(model.points3D.values())[::20]:
        timesteps = {model.image(e.image_id).name[:6] for e in point.track.elements}
        assert len(timesteps) == 1  # one instant
        assert len({e.image_id for e in point.track.elements}) == point.track.length()  # one pixel per image
        for element in point.track.elements:
            image = model.image(element.image_id)
            np.testing.assert_allclose(
                image.points2D[element.point2D_idx].xy, image.project_point(point.xyz), atol=1e-3
            )
            checked += 1
    assert checked > 1000
    single = export_reconstruction(
        recon, "colmap", selection, tmp_path / "one", ExportOptions(merge=True, colmap=ColmapOptions(tracks=False))
    )[0]
    assert pycolmap.Reconstruction(str(single / "sparse" / "0")).compute_mean_track_length() == 1.0


def test_colmap_cameras_follow_what_is_constant(rig, tmp_path: Path) -> None:
    """Intrinsics that change over time: one COLMAP camera (and trivial rig, frame) per image; constant intrinsics
    but poses that do not keep the rig rigid: one camera per physical camera, each its own rig, a frame per image."""
    import pycolmap

    selection = Selection(timesteps=(0, 1), stream="pose", conf_percentile=0.0)
    zoomed, moved = rig_arrays(rig), rig_arrays(rig)
    zoomed["intrinsics"] = zoomed["intrinsics"].copy()
    zoomed["intrinsics"][1, :, 0, 0] *= 1.02  # every camera's focal at timestep 1
    moved["extrinsics"] = moved["extrinsics"].copy()
    moved["extrinsics"][1, 2, :, 3] += np.float32(0.1)  # camera 2 alone moved at timestep 1
    expected = {"zoomed": (8, 8, 8), "moved": (4, 4, 8)}  # cameras, rigs, frames
    for name, arrays in (("zoomed", zoomed), ("moved", moved)):
        recon = write_recon(tmp_path / name, arrays, rig.camera_names)
        (out,) = export_reconstruction(recon, "colmap", selection, tmp_path / f"{name}_c", ExportOptions(merge=True))
        model = pycolmap.Reconstruction(str(out / "sparse" / "0"))
        assert (model.num_cameras(), model.num_rigs(), model.num_frames()) == expected[name], name
        assert model.num_images() == 8 and model.num_reg_images() == 8
        for image in model.images.values():
            t, n = int(image.name[1:6]), rig.camera_names.index(image.name[7:-4])
            k = arrays["intrinsics"][t, n]
            np.testing.assert_allclose(image.camera.params, [k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5], rtol=1e-6)
            np.testing.assert_allclose(image.cam_from_world().matrix(), arrays["extrinsics"][t, n], atol=1e-5)


@pytest.fixture(scope="module")
def calibrated_rig_recon(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mv_page4d_rig's first 3 timesteps with the demo weights, in its calibration's frame (the default there)."""
    out = tmp_path_factory.mktemp("calibrated") / "recon"
    weights = Path(__file__).resolve().parents[1] / "assets" / "demo_weights"
    result = CliRunner().invoke(
        main, ["run", str(rig_root()), "--out", str(out), "--checkpoint", str(weights), "--device", "cpu",
               "--max-frames", "3", "--window", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert Reconstruction.open(out).meta["settings"]["cameras"] == "calibrated"
    return out


def test_colmap_export_of_a_calibrated_rig_is_ready_for_bundle_adjustment(calibrated_rig_recon, tmp_path) -> None:
    import cv2
    import pycolmap

    out = tmp_path / "colmap"
    args = ["export", str(calibrated_rig_recon), "--format", "colmap", "--out", str(out), "--merge",
            "--stream", "pose", "--conf-percentile", "0"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    model = pycolmap.Reconstruction(str(out / "sparse" / "0"))
    assert model.num_images() == 12 and model.num_cameras() == 4 and model.num_rigs() == 1 and model.num_frames() == 3
    for camera_id, camera in model.cameras.items():
        name = next(image.name for image in model.images.values() if image.camera_id == camera_id)[7:-4]
        calibration = np.load(rig_root() / "intrs" / "time_00" / f"{name}.npy").astype(np.float64)
        assert (camera.width, camera.height) == (640, 480)
        expected = [calibration[0, 0], calibration[1, 1], calibration[0, 2] + 0.5, calibration[1, 2] + 0.5]
        np.testing.assert_allclose(camera.params, expected, rtol=1e-5)
    for image in model.images.values():
        picture = cv2.imread(str(out / "images" / image.name))
        assert picture.shape == (480, 640, 3)
        original = cv2.imread(
            str(rig_root() / "images" / f"time_{int(image.name[1:6]):02d}" / f"{image.name[7:-4]}.png")
        )
        np.testing.assert_array_equal(picture, original)  # no distortion in this calibration: the frame itself
    assert model.compute_mean_track_length() > 1.0
    # the multi-view points alone, as a bundle adjustment takes them
    ba_out = tmp_path / "ba"
    result = CliRunner().invoke(main, [*args[:5], str(ba_out), *args[6:], "--colmap-min-track", "2"])
    assert result.exit_code == 0, result.output
    model = pycolmap.Reconstruction(str(ba_out / "sparse" / "0"))
    assert model.num_points3D() > 100 and model.compute_mean_track_length() >= 2.0
    summary = pycolmap.bundle_adjustment(model, pycolmap.BundleAdjustmentOptions())
    model.update_point_3d_errors()
    error = model.compute_mean_reprojection_error()
    assert np.isfinite(error) and error < 2.0, (error, summary)


@pytest.mark.needs_colmap
def test_colmap_reads_the_export_with_multi_view_tracks(calibrated_rig_recon, tmp_path: Path) -> None:
    """COLMAP's own command line (Debian's colmap 3.8, older than pycolmap) reads the calibrated rig's merged export:
    4 cameras, every image registered, a mean track length above 1 (``colmap model_analyzer``)."""
    import subprocess

    out = tmp_path / "colmap"
    args = ["export", str(calibrated_rig_recon), "--format", "colmap", "--out", str(out), "--merge",
            "--stream", "pose", "--conf-percentile", "0"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    analyzed = subprocess.run(
        ["colmap", "model_analyzer", "--path", str(out / "sparse" / "0")], capture_output=True, text=True, timeout=300
    )
    assert analyzed.returncode == 0, analyzed.stdout + analyzed.stderr
    report = {}
    for line in (analyzed.stdout + analyzed.stderr).splitlines():
        key, _, value = line.rpartition("]")[2].partition(":")
        if value.strip():
            report[key.strip()] = value.strip().removesuffix("px")
    assert report["Cameras"] == "4" and report["Images"] == report["Registered images"] == "12", report
    assert float(report["Mean track length"]) > 1.0 and int(report["Points"]) > 1000, report
