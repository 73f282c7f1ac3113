"""Reconstruction format 3 (issue 28): what is stored, at which precision every array reads back, each timestep
once, the alignment applied on read, the pose stream derived on read; formats 1 and 2 (tests/fixtures/recon_v1,
recon_v2) opening, viewing and exporting unchanged, format 2 resuming in format 2; and a format-2 and a format-3
reconstruction of the same run giving the same points in the viewer and the exports within the stated precision."""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from app.export.api import ExportOptions, export_reconstruction
from app.export.selection import Selection
from app.reconstruct.arrays import SPECS, compressed_stem
from app.reconstruct.pipeline import prepare_output
from app.reconstruct.store import (
    ARRAY_NAMES,
    COMPUTED_ARRAYS,
    DERIVED_ARRAYS,
    FORMAT_VERSION,
    Reconstruction,
    ReconstructionError,
    derive_world_points,
    open_stem,
    stem_name,
)
from app.viewer.data import CloudSettings, filter_timestep
from vggt_t_mv.agreement import views_agree_window
from vggt_t_mv.geometry import depth_to_world_points
from vggt_t_mv.npgeometry import Sim3, camera_centers

FIXTURES = Path(__file__).resolve().parent / "fixtures"
T, N, H, W = 3, 2, 6, 8


def computed_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Float32 arrays as the pipeline computes them for one window ``[T, N, ...]`` (confidences span 1..1e6, so
    some exceed float16's range)."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-0.3, 0.3, (T, N))
    rotation = np.zeros((T, N, 3, 3))
    rotation[..., 0, 0], rotation[..., 0, 2] = np.cos(angle), np.sin(angle)
    rotation[..., 2, 0], rotation[..., 2, 2] = -np.sin(angle), np.cos(angle)
    rotation[..., 1, 1] = 1.0
    extrinsics = np.concatenate([rotation, rng.normal(0, 1, (T, N, 3, 1))], -1).astype(np.float32)
    intrinsics = np.broadcast_to(np.array([[7.0, 0, 4.0], [0, 7.0, 3.0], [0, 0, 1]], np.float32), (T, N, 3, 3))
    return {
        "images": rng.integers(0, 256, (T, N, H, W, 3), dtype=np.uint8),
        "depth": rng.uniform(0.5, 40.0, (T, N, H, W)).astype(np.float32),
        "depth_conf": np.exp(rng.uniform(0, np.log(1e6), (T, N, H, W))).astype(np.float32),
        "world_points": rng.normal(0, 30.0, (T, N, H, W, 3)).astype(np.float32),
        "world_points_conf": np.exp(rng.uniform(0, np.log(1e6), (T, N, H, W))).astype(np.float32),
        "extrinsics": extrinsics,
        "intrinsics": intrinsics.copy(),
        "dynamic_mask": rng.uniform(0, 1, (T, N, H, W)).astype(np.float32),
    }


def written(
    root: Path, arrays: dict[str, np.ndarray], sim3: Sim3 | None = None, format_version: int = FORMAT_VERSION
) -> Reconstruction:
    """One window of ``arrays`` (depth and points in the window's frame, ``sim3`` into the stitched frame)."""
    meta = {"camera_names": ["a", "b"], "image_hw": [H, W], "spans": [[0, T]]}
    recon = Reconstruction.create(root, meta, format_version=format_version)
    recon.write_window(0, arrays, {"alignment": {"kind": "test"}}, sim3)
    return Reconstruction.open(root)


def confidence_tolerance(expected: np.ndarray, actual: np.ndarray) -> None:
    """float16 storage: relative error <= 2**-11 below 65504, saturation at 65504 above."""
    limit = np.float32(65504.0)
    below = expected <= limit
    np.testing.assert_array_less(np.abs(actual[below] - expected[below]), expected[below] * 2.0**-11 + 1e-30)
    assert np.all(actual[~below] == limit) and (~below).any() and np.isfinite(actual).all()


def relative_tolerance(bound: float):
    def check(expected: np.ndarray, actual: np.ndarray, arrays: dict, scale: float) -> None:
        np.testing.assert_array_less(np.abs(actual - expected), np.abs(expected) * bound + 1e-30)

    return check


def exact(expected: np.ndarray, actual: np.ndarray, arrays: dict, scale: float) -> None:
    np.testing.assert_array_equal(actual, expected)


def points_tolerance(expected: np.ndarray, actual: np.ndarray, arrays: dict, scale: float) -> None:
    """Per coordinate <= 2**-11 of the point's distance from its camera, + float32 rounding of the coordinates."""
    centres = camera_centers(arrays["extrinsics"].astype(np.float64))[:, :, None, None, :]
    distance = np.linalg.norm(expected - centres, axis=-1, keepdims=True)
    bound = distance * 2.0**-11 + 2e-7 * (np.abs(expected) + np.abs(centres))
    np.testing.assert_array_less(np.abs(actual - expected), bound)


def mask_tolerance(expected: np.ndarray, actual: np.ndarray, arrays: dict, scale: float) -> None:
    np.testing.assert_array_less(np.abs(actual - expected), 1 / 510 + 1e-7)


def confidence_check(expected: np.ndarray, actual: np.ndarray, arrays: dict, scale: float) -> None:
    confidence_tolerance(expected, actual)


# format 3's precision as documented in app/reconstruct/store.py, one check per array (in the stitched frame)
CHECKS = {
    "images": exact,
    "depth": relative_tolerance(2.0**-11 + 1e-7),  # + the float32 rounding of the move
    "depth_conf": confidence_check,
    "world_points": points_tolerance,
    "world_points_conf": confidence_check,
    "extrinsics": exact,
    "intrinsics": exact,
    "dynamic_mask": mask_tolerance,
    "views_agree": exact,  # of the decoded depth and the stored cameras (the round trip adds that expectation)
}
DISK_DTYPES = {  # format 3
    "images": np.uint8,
    "depth": np.float16,
    "depth_conf": np.float16,
    "world_points": np.float16,
    "world_points_origin": np.float32,
    "world_points_conf": np.float16,
    "extrinsics": np.float32,
    "intrinsics": np.float32,
    "dynamic_mask": np.uint8,
    "views_agree": np.uint8,
}
# .zst files, lossless
COMPRESSED = ["depth", "depth_conf", "world_points", "world_points_conf", "dynamic_mask", "views_agree"]
MOVED = Sim3(1.7, np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]]), np.array([3.0, -2, 5]))


def in_stitched_frame(arrays: dict[str, np.ndarray], sim3: Sim3) -> dict[str, np.ndarray]:
    """What a reader should get back (as format 2 stored it): depth and points moved by the window's Sim(3)."""
    out = dict(arrays)
    out["depth"] = arrays["depth"].astype(np.float64) * sim3.scale
    out["world_points"] = sim3.apply(arrays["world_points"].astype(np.float64))
    return out


def test_every_array_has_a_documented_precision() -> None:
    assert set(CHECKS) | set(DERIVED_ARRAYS) == set(ARRAY_NAMES)
    assert {stem for spec in SPECS for stem in spec.files()} == set(DISK_DTYPES)


@pytest.mark.parametrize("moved", [False, True], ids=["identity", "sim3"])
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_stored_array_round_trips_to_its_documented_precision(tmp_path: Path, name: str, moved: bool) -> None:
    """Format 3: each array read back (load, get, window_arrays) within its stated bound of what was computed, in
    the stitched frame: depth and points are stored in the window's frame and moved by its Sim(3) on read."""
    arrays, sim3 = computed_arrays(), MOVED if moved else Sim3.identity()
    cameras = {"extrinsics": sim3.apply_to_extrinsics(arrays["extrinsics"]).astype(np.float32)}
    recon = written(tmp_path / "r", {**arrays, **cameras}, sim3)
    folder = tmp_path / "r" / "windows" / "00000"
    files = sorted(p.name for p in folder.iterdir() if p.name != "window.json")
    assert files == sorted(stem_name(stem, compressed_stem(stem)) for stem in DISK_DTYPES)
    assert [stem for stem in DISK_DTYPES if compressed_stem(stem)] == COMPRESSED
    for stem, dtype in DISK_DTYPES.items():
        assert open_stem(folder, stem).dtype == dtype, stem
    expected = in_stitched_frame({**arrays, **cameras}, sim3)
    expected["views_agree"] = views_agree_window(recon.load("depth"), expected["extrinsics"], expected["intrinsics"])
    dtype = np.uint8 if name == "images" else np.float64
    CHECKS[name](expected[name], np.asarray(recon.load(name), dtype), expected, sim3.scale)
    one = {key: value[1:2] for key, value in expected.items()}
    CHECKS[name](one[name], np.asarray(recon.get(name, 1), dtype)[None], one, sim3.scale)
    window = np.asarray(recon.window_arrays(0, [name])[name], dtype)
    CHECKS[name](expected[name], window, expected, sim3.scale)


def test_format_2_still_written_exactly_where_it_was(tmp_path: Path) -> None:
    """Reconstruction.create(..., format_version=2): depth and points float32 in the stitched frame (exact), the
    whole span stored, float16 mask."""
    arrays = computed_arrays()
    recon = written(tmp_path / "r", arrays, MOVED, format_version=2)
    folder = tmp_path / "r" / "windows" / "00000"
    assert (
        np.load(folder / "depth.npy").dtype == np.float32 and np.load(folder / "dynamic_mask.npy").dtype == np.float16
    )
    assert not (folder / "world_points_origin.npy").exists() and "stored" not in recon.windows()[0].info
    np.testing.assert_array_equal(recon.load("world_points"), MOVED.apply(arrays["world_points"]))
    np.testing.assert_array_equal(recon.load("depth"), arrays["depth"] * np.float32(MOVED.scale))


def test_each_timestep_is_stored_once_by_the_merge_rule(tmp_path: Path) -> None:
    """Windows [0, 3) and [1, 3): window 0 stores timesteps 0 and 1 (it owns the first half of the overlap, rounded
    up), window 1 timestep 2; a reader gets every timestep from the window that stores it."""
    spans = [[0, T], [1, T]]
    recon = Reconstruction.create(tmp_path / "r", {"camera_names": ["a", "b"], "image_hw": [H, W], "spans": spans})
    first, second = computed_arrays(0), {k: v[1:] for k, v in computed_arrays(1).items()}
    recon.write_window(0, first, {"alignment": {}})
    recon.write_window(1, second, {"alignment": {}}, MOVED)
    reader = Reconstruction.open(tmp_path / "r")
    assert [r.held for r in reader.windows()] == [(0, 2), (2, 3)]
    assert [r.info["stored"] for r in reader.windows()] == [[0, 2], [2, 3]]
    assert np.load(tmp_path / "r" / "windows" / "00001" / "images.npy").shape[0] == 1
    np.testing.assert_array_equal(reader.load("images"), np.concatenate([first["images"][:2], second["images"][1:]]))
    expected = MOVED.apply(second["world_points"][1].astype(np.float64))
    np.testing.assert_allclose(reader.get("world_points", 2), expected, rtol=2.0**-10, atol=1e-3)


def test_pose_stream_points_are_derived_on_read_not_stored(tmp_path: Path) -> None:
    arrays = computed_arrays()
    recon = written(tmp_path / "r", arrays)
    assert not (tmp_path / "r" / "windows" / "00000" / "world_points_from_depth.npy").exists()
    assert recon.has("world_points_from_depth") and "world_points_from_depth" in recon.array_names()
    depth = torch.from_numpy(recon.load("depth"))  # the decoded depth (float16 precision)
    cameras = (torch.from_numpy(arrays[k]) for k in ("extrinsics", "intrinsics"))
    expected = depth_to_world_points(depth, *cameras).numpy()
    np.testing.assert_array_equal(recon.load("world_points_from_depth"), expected)
    np.testing.assert_array_equal(recon.get("world_points_from_depth", 2), expected[2])
    np.testing.assert_array_equal(recon.window_arrays(0)["world_points_from_depth"], expected)
    points, conf = recon.stream(1, "pose")
    np.testing.assert_array_equal(points, expected[1])
    np.testing.assert_array_equal(conf, recon.get("depth_conf", 1))


def test_derived_points_match_format_1s_unproject_then_move_order() -> None:
    """Format 1 unprojected in the window's frame, then applied the window's Sim(3); formats 2 and 3 derive from the
    moved depth and cameras: the same points up to float32 rounding (1e-5 of the scene's extent)."""
    arrays = computed_arrays()
    before = derive_world_points(arrays["depth"], arrays["extrinsics"], arrays["intrinsics"])
    format_1 = MOVED.apply(before)
    moved_depth = arrays["depth"] * np.float32(MOVED.scale)
    format_2 = derive_world_points(moved_depth, MOVED.apply_to_extrinsics(arrays["extrinsics"]), arrays["intrinsics"])
    extent = float(np.abs(format_1).max())
    np.testing.assert_allclose(format_2, format_1, rtol=0, atol=1e-5 * extent)


def test_derived_array_cannot_be_written(tmp_path: Path) -> None:
    arrays = computed_arrays()
    arrays["world_points_from_depth"] = np.zeros((T, N, H, W, 3), np.float32)
    recon = Reconstruction.create(tmp_path / "r", {"camera_names": ["a", "b"], "image_hw": [H, W], "spans": [[0, T]]})
    with pytest.raises(ValueError, match="world_points_from_depth is derived on read"):
        recon.write_window(0, arrays, {})
    assert recon.num_timesteps == 0 and FORMAT_VERSION == 3


def as_uncompressed(folder: Path) -> None:
    """Window ``folder`` as format 3 wrote it before compression: every ``.zst`` file as the ``.npy`` of its array."""
    for path in sorted(folder.glob("*.zst")):
        np.save(path.with_suffix(".npy"), np.asarray(open_stem(folder, path.stem)))
        path.unlink()


def test_format_3_windows_written_before_compression_read_the_same(tmp_path: Path) -> None:
    """A format-3 reconstruction whose first window has ``.npy`` files (written before compression) and whose second
    has ``.zst`` files (a resumed run) reads every array exactly as the all-compressed one."""
    spans = [[0, T], [1, T]]
    for name in ("new", "mixed"):
        recon = Reconstruction.create(tmp_path / name, {"camera_names": ["a", "b"], "image_hw": [H, W], "spans": spans})
        recon.write_window(0, computed_arrays(0), {"alignment": {}})
        recon.write_window(1, {k: v[1:] for k, v in computed_arrays(1).items()}, {"alignment": {}}, MOVED)
    as_uncompressed(tmp_path / "mixed" / "windows" / "00000")
    assert not list((tmp_path / "mixed" / "windows" / "00000").glob("*.zst"))
    new, mixed = Reconstruction.open(tmp_path / "new"), Reconstruction.open(tmp_path / "mixed")
    assert mixed.array_names() == new.array_names() == list(ARRAY_NAMES)
    for name in ARRAY_NAMES:
        np.testing.assert_array_equal(mixed.load(name), new.load(name), err_msg=name)
        for t in range(T):
            np.testing.assert_array_equal(mixed.get(name, t), new.get(name, t), err_msg=name)
    mixed.replace_arrays(0, {"world_points": new.window_arrays(0, ["world_points"])["world_points"]})
    assert (tmp_path / "mixed" / "windows" / "00000" / "world_points.npy").is_file()  # keeps its container
    assert not (tmp_path / "mixed" / "windows" / "00000" / "world_points.zst").exists()
    np.testing.assert_array_equal(
        Reconstruction.open(tmp_path / "mixed").load("world_points"), new.load("world_points")
    )


def test_damaged_stored_range_is_named(tmp_path: Path) -> None:
    written(tmp_path / "r", computed_arrays())
    info_path = tmp_path / "r" / "windows" / "00000" / "window.json"
    info = json.loads(info_path.read_text())
    info["stored"] = [0, T + 1]
    info_path.write_text(json.dumps(info))
    with pytest.raises(ReconstructionError, match="window.json: 'stored' must be"):
        Reconstruction.open(tmp_path / "r")


# ------------------------------------------------------------------------------------------------ formats 1, 2
def digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(array.tobytes()).hexdigest()[:16] + f" {array.dtype} {list(array.shape)}"


@pytest.fixture()
def recon_v1(tmp_path: Path) -> Reconstruction:
    shutil.copytree(FIXTURES / "recon_v1", tmp_path / "recon_v1")
    return Reconstruction.open(tmp_path / "recon_v1")


def open_fixture(name: str, tmp_path: Path) -> Reconstruction:
    shutil.copytree(FIXTURES / name, tmp_path / name)
    return Reconstruction.open(tmp_path / name)


@pytest.mark.parametrize("version", [1, 2])
def test_old_formats_read_every_stored_array_as_written(tmp_path: Path, version: int) -> None:
    recon = open_fixture(f"recon_v{version}", tmp_path)
    assert recon.format_version == version and recon.num_timesteps == 3 and recon.is_complete
    assert recon.array_names() == list(ARRAY_NAMES)
    owned = [(0, 0, 2), (1, 1, 2)]  # (window, first local index, end local index) by the merge rule
    for name in ARRAY_NAMES:
        if recon.is_derived(name) or name in COMPUTED_ARRAYS:  # computed on read (tests/test_views_agree.py)
            continue
        parts = [np.load(recon.root / "windows" / f"{w:05d}" / f"{name}.npy")[start:end] for w, start, end in owned]
        np.testing.assert_array_equal(recon.load(name), np.concatenate(parts), err_msg=name)
        assert recon.get(name, 2).dtype == parts[0].dtype, name
    if version == 1:  # the pose stream is the stored file (format 1), not a derivation
        stored = np.load(recon.root / "windows" / "00000" / "world_points_from_depth.npy")[0]
        assert recon.get("world_points_from_depth", 0).dtype == np.float32
        np.testing.assert_array_equal(recon.stream(0, "pose")[0], stored)


def viewer_and_export_digests(recon: Reconstruction, folder: Path) -> dict[str, str]:
    """sha256 prefixes of the viewer's clouds (10th confidence percentile) and the ply / npz exports (every valid
    pixel, all timesteps merged) of both streams (tests/fixtures/README.md)."""
    plyfile = pytest.importorskip("plyfile")
    found = {}
    for stream in ("geo", "pose"):
        for t in range(recon.num_timesteps):
            cloud = filter_timestep(recon, t, stream, CloudSettings(conf_percentile=10.0))
            cameras = [np.concatenate([c.static_points, c.dynamic_points]) for c in cloud.cameras]
            found[f"view {stream} t={t}"] = digest(np.concatenate(cameras))
        merged = ExportOptions(merge=True)
        everything = Selection(stream=stream, conf_percentile=0.0)  # the digests were taken with every valid pixel
        (ply,) = export_reconstruction(recon, "ply", everything, folder / f"{stream}.ply", merged)
        vertex = plyfile.PlyData.read(str(ply))["vertex"].data
        found[f"ply {stream}"] = digest(np.stack([vertex[k].astype(np.float64) for k in vertex.dtype.names], -1))
        (npz,) = export_reconstruction(recon, "npz", everything, folder / f"{stream}.npz", merged)
        with np.load(npz) as data:
            found.update({f"npz {stream} {key}": digest(data[key]) for key in data.files})
    return found


@pytest.mark.parametrize("version", [1, 2])
def test_old_formats_view_and_export_unchanged(tmp_path: Path, version: int) -> None:
    """The viewer's clouds and the ply / npz exports are bit for bit what the code of that format produced
    (tests/fixtures/README.md)."""
    recon = open_fixture(f"recon_v{version}", tmp_path)
    expected = json.loads((FIXTURES / f"recon_v{version}_expected.json").read_text())
    assert viewer_and_export_digests(recon, tmp_path) == expected


def test_format_1_is_not_resumed_or_written(recon_v1: Reconstruction) -> None:
    with pytest.raises(ReconstructionError, match="format version 1.*--overwrite"):
        prepare_output(recon_v1.root, recon_v1.record, resume=True, overwrite=False)
    with pytest.raises(ReconstructionError, match="writes version 2 or 3 only"):
        recon_v1.replace_arrays(0, {"depth": np.zeros((2, 4, 14, 28), np.float32)})


# ------------------------------------------------------------------------------------------------ runs
DEMO = Path(__file__).resolve().parents[1] / "assets"


def demo_run(out: Path, version: int, on_window=None) -> Reconstruction:
    """The fixture's command (tests/fixtures/README.md) through the API, in format ``version``."""
    from app.capture.preprocess import PreprocessConfig
    from app.capture.rig import CaptureOptions
    from app.reconstruct.pipeline import PipelineConfig
    from app.reconstruct.run import reconstruct
    from vggt_t_mv.loading import WeightsSpec

    config = PipelineConfig(
        window=2, stride=1, device="cpu", preprocess=PreprocessConfig(size=28), format_version=version
    )
    weights = WeightsSpec(checkpoint=DEMO / "demo_weights")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reconstruct(DEMO / "demo_rig", out, weights, config, CaptureOptions(max_frames=3), on_window=on_window)
    return Reconstruction.open(out)


@pytest.mark.parametrize("version", [2, 3])
def test_killed_run_resumes_in_its_format_to_the_same_arrays(tmp_path: Path, version: int) -> None:
    full = demo_run(tmp_path / "full", version)

    def stop_after_first(index: int) -> None:
        if index == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        demo_run(tmp_path / "part", version, stop_after_first)
    part = Reconstruction.open(tmp_path / "part")
    assert len(part.windows()) == 1 and not part.is_complete and part.format_version == version
    resumed = demo_run_resume(tmp_path / "part")  # no format asked: the folder's is kept
    assert resumed.format_version == version and resumed.is_complete
    for name in full.array_names():
        assert np.array_equal(full.load(name), resumed.load(name)), name
    for a, b in zip(full.windows(), resumed.windows(), strict=True):
        assert a.info["alignment"] == b.info["alignment"]


def test_format_3_run_written_before_compression_resumes_to_the_same_arrays(tmp_path: Path) -> None:
    """A killed format-3 run whose window is in ``.npy`` files (written before compression): ``--resume`` keeps that
    window as it is, writes the rest compressed, and reads back what an uninterrupted run gives."""
    full = demo_run(tmp_path / "full", 3)

    def stop_after_first(index: int) -> None:
        if index == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        demo_run(tmp_path / "part", 3, stop_after_first)
    kept = tmp_path / "part" / "windows" / "00000"
    as_uncompressed(kept)
    before = {p.name: p.read_bytes() for p in kept.iterdir()}
    resumed = demo_run_resume(tmp_path / "part")
    assert resumed.is_complete and {p.name: p.read_bytes() for p in kept.iterdir()} == before
    assert (tmp_path / "part" / "windows" / "00001" / "depth.zst").is_file()
    for name in full.array_names():
        assert np.array_equal(full.load(name), resumed.load(name)), name


def demo_run_resume(out: Path) -> Reconstruction:
    from app.capture.preprocess import PreprocessConfig
    from app.capture.rig import CaptureOptions
    from app.reconstruct.pipeline import PipelineConfig
    from app.reconstruct.run import reconstruct
    from vggt_t_mv.loading import WeightsSpec

    config = PipelineConfig(window=2, stride=1, device="cpu", preprocess=PreprocessConfig(size=28))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reconstruct(
            DEMO / "demo_rig", out, WeightsSpec(checkpoint=DEMO / "demo_weights"), config,
            CaptureOptions(max_frames=3), resume=True,
        )  # fmt: skip
    return Reconstruction.open(out)


def test_format_2_and_3_of_one_run_view_and_export_the_same_points(tmp_path: Path) -> None:
    """Both formats of the same run: the viewer keeps the same pixels (identical float16 confidences), their points
    agree within the stated precision (2**-11 of each point's distance from its camera per coordinate, for the
    fitted Sim(3) too), colours exactly; the exports likewise."""
    plyfile = pytest.importorskip("plyfile")
    old, new = demo_run(tmp_path / "v2", 2), demo_run(tmp_path / "v3", 3)
    assert (old.format_version, new.format_version) == (2, 3) and new.num_timesteps == old.num_timesteps == 3
    disk = {r.root: sum(f.stat().st_size for f in (r.root / "windows").rglob("*.*")) for r in (old, new)}
    assert disk[new.root] < 0.6 * disk[old.root]
    for t in range(3):
        centres = camera_centers(old.get("extrinsics", t).astype(np.float64))
        for stream in ("geo", "pose"):
            clouds = [filter_timestep(r, t, stream, CloudSettings(conf_percentile=10.0)) for r in (old, new)]
            for n, (a, b) in enumerate(zip(clouds[0].cameras, clouds[1].cameras, strict=True)):
                pixels = [np.concatenate([c.static_pixels, c.dynamic_pixels]) for c in (a, b)]
                order = [np.argsort(p) for p in pixels]
                np.testing.assert_array_equal(pixels[0][order[0]], pixels[1][order[1]])
                points = [
                    np.concatenate([c.static_points, c.dynamic_points])[o] for c, o in zip((a, b), order, strict=True)
                ]
                colors = [
                    np.concatenate([c.static_colors, c.dynamic_colors])[o] for c, o in zip((a, b), order, strict=True)
                ]
                np.testing.assert_array_equal(colors[0], colors[1])
                distance = np.linalg.norm(points[0] - centres[n], axis=-1, keepdims=True)
                bound = np.broadcast_to(2.0**-10 * distance + 1e-6, points[0].shape)
                np.testing.assert_array_less(np.abs(points[1] - points[0]), bound)
    for stream in ("geo", "pose"):
        everything, merged = Selection(stream=stream, conf_percentile=0.0), ExportOptions(merge=True)
        plys = [
            export_reconstruction(r, "ply", everything, tmp_path / f"{stream}-{r.format_version}.ply", merged)[0]
            for r in (old, new)
        ]
        vertices = [plyfile.PlyData.read(str(p))["vertex"].data for p in plys]
        assert vertices[0].dtype == vertices[1].dtype and len(vertices[0]) == len(vertices[1])
        xyz = [np.stack([v[k] for k in ("x", "y", "z")], -1).astype(np.float64) for v in vertices]
        scale = np.abs(xyz[0]).max()
        np.testing.assert_allclose(xyz[1], xyz[0], rtol=0, atol=2.0**-10 * scale)
        for key in vertices[0].dtype.names:  # the mask: uint8 (1/510) against float16 (2**-12)
            tolerance = {"atol": 1 / 510 + 2.0**-12} if key == "dynamic" else {"rtol": 1e-3}
            if key not in ("x", "y", "z"):
                np.testing.assert_allclose(vertices[1][key], vertices[0][key], err_msg=key, **tolerance)
