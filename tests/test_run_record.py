"""The typed record of a reconstruction (issue 22): ``Reconstruction.open(path).record`` round-trips through
meta.json, reads the files older versions wrote, and decides ``--resume`` of a run written before it with a message,
never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from app.capture.preprocess import FrameTransform
from app.cli.main import main
from app.reconstruct.calibrated import CameraAgreement
from app.reconstruct.record import (
    Agreement,
    Alignment,
    CalibratedCameraRecord,
    CalibrationRecord,
    CameraSpread,
    CaptureRecord,
    FrameSelection,
    RecordError,
    RigDiagnostics,
    RigidRig,
    RigReport,
    RunRecord,
    RunSettings,
    SourceDescription,
    TimeSpread,
    TrackSettings,
    WindowEntry,
)
from app.reconstruct.store import Reconstruction
from tests.helpers.capture import write_solid_rig
from vggt_t_mv import ModelConfig, Provenance
from vggt_t_mv.npgeometry import Sim3
from vggt_t_mv.provenance import WeightSource
from vggt_t_mv.tracks import TrackConfig

FIXTURES = Path(__file__).resolve().parent / "fixtures"
RUN = ["--config", "tiny", "--random-weights", "--device", "cpu", "--size", "56", "--window", "4", "--stride", "2"]


def full_record() -> RunRecord:
    """A record with every block filled, as a calibrated run with a rigid rig and a failed window would write."""
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    agreement = [CameraAgreement("a", 0.5, 0.01, False), CameraAgreement("b", 3.0, 0.2, True)]
    return RunRecord(
        camera_names=["a", "b"],
        image_hw=(28, 42),
        spans=[(0, 4), (2, 6), (4, 7)],
        capture=CaptureRecord(
            path="/data/cap",
            form="images",
            layout="per-camera folders",
            camera_names=["a", "b"],
            cameras=[SourceDescription("a", frames=7), SourceDescription("b", frames=7)],
            sync="timestamps",
            num_timesteps=7,
            total_timesteps=9,
            selection=FrameSelection(start=1, end=8, every=1, max_frames=None),
            timestep_ids=list(range(1, 8)),
            frame_index=[[t, t] for t in range(1, 8)],
            times=[[0.1 * t, 0.1 * t + 0.001] for t in range(7)],
            spread_s=TimeSpread(0.001, 0.001, [0.001] * 7),
            warnings=["cam b: one frame repeated"],
        ),
        model=Provenance(
            ModelConfig.tiny(),
            "preset tiny",
            random_weights=False,
            sources={"checkpoint": WeightSource("/w/ckpt.pt", "file", "vggt", "ab" * 32)},
            load_report="10 tensors: 10 from checkpoint",
        ),
        settings=RunSettings(
            window=4, stride=2, size=42, mode="pad", calibration="/data/calib.toml", calibration_units="mm"
        ),
        num_timesteps_planned=7,
        preprocess=[FrameTransform(0.25, 0.0, -3.0, (120, 168), (28, 42))] * 2,
        calibration=CalibrationRecord(
            "/data/calib.toml",
            "caliscope",
            "mm",
            "file",
            None,
            False,
            [CalibratedCameraRecord("a", np.eye(3).tolist())],
        ),
        status="complete",
        alignment=[
            WindowEntry(0, (0, 4), Alignment("reference", metric_scale=2.5, baseline_ratios=[1.0]), 1.5),
            WindowEntry(1, (2, 6), Alignment("sim3", Sim3(1.5, rotation, np.array([1.0, 2.0, 3.0])), overlap=2)),
            WindowEntry(2, (4, 7), Alignment("failed", overlap=2)),
            WindowEntry(
                3, (6, 7), Alignment("calibrated", Sim3(), units="mm", flagged=True, cameras=agreement, rig_spacing=9.0)
            ),
        ],
        rig=RigReport(
            diagnostics=RigDiagnostics([CameraSpread("a", focal_mean=20.0)]),
            rigid=RigidRig([np.eye(3, 4).tolist()] * 2, np.eye(3).tolist()),
            agreement=Agreement(1, 3.0, 1.75, 0.2, 0.105, [3], "mm"),
        ),
        num_timesteps=7,
        run_warnings=["window 2: Sim(3) fit failed"],
    )


def test_record_round_trips_through_json_with_its_types() -> None:
    record = full_record()
    text = json.dumps(record.to_dict())
    back = RunRecord.from_dict(json.loads(text))
    assert json.dumps(back.to_dict()) == text
    assert back.model is not None and back.model.config == ModelConfig.tiny()
    assert back.model.sources["checkpoint"] == WeightSource("/w/ckpt.pt", "file", "vggt", "ab" * 32)
    assert back.settings == record.settings and back.settings is not None and back.settings.cameras == "predicted"
    assert [entry.alignment.kind for entry in back.alignment] == ["reference", "sim3", "failed", "calibrated"]
    fitted = back.alignment[1].alignment.sim3
    assert fitted is not None and fitted.scale == 1.5
    assert np.allclose(fitted.apply(np.array([[1.0, 0.0, 0.0]])), [[1.0, 3.5, 3.0]])
    assert back.alignment[3].alignment.cameras == record.alignment[3].alignment.cameras
    assert back.rig is not None and back.rig.agreement == record.rig.agreement if record.rig else False
    assert back.preprocess == record.preprocess and back.capture == record.capture
    assert back.resume_differences(record) == []


def test_track_settings_round_trip_and_decide_resume() -> None:
    record = full_record()
    record.tracks = TrackSettings("/q/points.npy", "cd" * 32, "3d", 12, 16, 256, TrackConfig(depth_tolerance=0.1))
    text = json.dumps(record.to_dict())
    back = RunRecord.from_dict(json.loads(text))
    assert back.tracks == record.tracks and json.dumps(back.to_dict()) == text
    assert back.resume_differences(record) == []
    other = RunRecord.from_dict(json.loads(text))
    assert other.tracks is not None
    other.tracks.sha256 = "ef" * 32  # the same file name, another content
    assert back.resume_differences(other) == ["tracks"]
    assert "sha256 cdcdcdcdcdcd" in back.tracks_difference(other) and "sha256 efefefefefef" in back.tracks_difference(
        other
    )
    other.tracks.sha256, other.tracks.config = "cd" * 32, TrackConfig()  # other thresholds only: named
    assert back.resume_differences(other) == ["tracks"] and "'depth_tolerance': 0.1" in back.tracks_difference(other)
    other.tracks = None
    assert back.resume_differences(other) == ["tracks"] and "this run has no --track-queries" in back.tracks_difference(
        other
    )
    # a run without tracks (or whose queries were refused after its windows) may be continued with queries
    assert other.resume_differences(back) == []
    # a meta.json written before track settings were recorded reads, and is written back without them
    old = full_record().to_dict()
    assert "tracks" in old and old["tracks"] is None  # recorded since: null = no tracks
    del old["tracks"]
    read = RunRecord.from_dict(old)
    assert read.tracks is None and not read.tracks_recorded and "tracks" not in read.to_dict()


def test_unknown_keys_are_kept_and_a_kind_from_another_writer_is_not_taken_for_one_of_ours() -> None:
    data = full_record().to_dict()
    data["views_agree"] = {"threshold": 0.05}
    data["alignment"][1]["alignment"]["extra_stat"] = 7
    data["alignment"][2]["alignment"]["kind"] = "ground truth"
    data["settings"]["min_views"] = 2
    back = RunRecord.from_dict(json.loads(json.dumps(data)))
    assert back.alignment[2].alignment.kind is None
    assert back.to_dict() == data


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.pop("camera_names"), "camera_names"),
        (lambda d: d.update(image_hw=[28]), "image_hw"),
        (lambda d: d.update(spans=[[4, 2]]), "spans"),
        (lambda d: d.update(alignment={}), "alignment"),
        (lambda d: d["settings"].update(window="4"), "settings.window"),
        (lambda d: d.update(preprocess=[{"scale": 1.0}]), "scale|offset|source_hw|KeyError"),
    ],
)
def test_a_record_that_cannot_be_read_names_the_field(change, field: str) -> None:
    data = full_record().to_dict()
    change(data)
    with pytest.raises(RecordError, match=field):
        RunRecord.from_dict(data)


def test_format_1_fixture_reads_into_the_record(tmp_path: Path) -> None:
    raw = json.loads((FIXTURES / "recon_v1" / "meta.json").read_text())
    recon = Reconstruction.open(shutil.copytree(FIXTURES / "recon_v1", tmp_path / "v1"))
    record = recon.record
    assert record.format_version == 1 and record.is_complete and record.model_problem is None
    assert record.settings is not None and record.settings.cameras == "predicted"  # not recorded before issue 23
    assert record.settings.calibration_units is None and record.calibration is None
    assert record.model is not None and record.model.sources["checkpoint"].kind == "folder"
    assert record.model.sources["checkpoint"].sha256 == raw["model"]["checkpoint_sha256"]
    assert record.alignment[0].alignment.kind == "reference" and record.alignment[1].alignment.kind == "sim3"
    assert record.capture is not None and record.capture.frame_index == raw["capture"]["frame_index"]
    assert [t.to_dict() for t in record.preprocess] == raw["preprocess"]
    # written back, every value the old file has is still there (the record only adds the fields added since)
    raw["model"]["config"] = {k: v for k, v in raw["model"]["config"].items() if k in ModelConfig.tiny().to_dict()}
    assert missing_or_changed(raw, record.to_dict()) == []


def missing_or_changed(old: object, new: object, where: str = "") -> list[str]:
    """Paths of ``old``'s JSON values that ``new`` lacks or holds differently (dicts compared key by key)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [p for k, v in old.items() for p in missing_or_changed(v, new.get(k, KeyError), f"{where}.{k}")]
    return [] if old == new else [where]


def test_a_model_block_this_version_cannot_read_still_opens(tmp_path: Path) -> None:
    root = shutil.copytree(FIXTURES / "recon_v1", tmp_path / "v1")
    meta = json.loads((root / "meta.json").read_text())
    meta["model"]["config"]["a_field_from_the_future"] = 1
    (root / "meta.json").write_text(json.dumps(meta))
    record = Reconstruction.open(root).record
    assert record.model is None and "a_field_from_the_future" in (record.model_problem or "")
    assert record.to_dict()["model"] == meta["model"]  # kept as written


# ------------------------------------------------------------------------------------------------ --resume
def run_cli(*args: object) -> Result:
    return CliRunner().invoke(main, ["run", *map(str, args)])


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    return write_solid_rig(tmp_path_factory.mktemp("rig") / "cap", num_cameras=2, num_timesteps=6, fmt="images")


@pytest.fixture(scope="module")
def finished(capture: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "recon"
    result = run_cli(capture, "--out", out, *RUN)
    assert result.exit_code == 0, result.output
    return out


def as_written_before_the_record(meta: dict) -> dict:
    """meta.json as vggt-mv wrote it before the typed record (and before issue 23's settings): the reference window
    says ``metric_scale: null`` when it had none, ``settings`` has no ``calibration_units`` / ``cameras``."""
    old = json.loads(json.dumps(meta))
    for key in ("calibration_units", "cameras"):
        old["settings"].pop(key)
    old["alignment"][0]["alignment"]["metric_scale"] = None
    return old


def interrupted_copy(finished: Path, folder: Path, change) -> Path:
    """``finished`` with its last window gone (a run that stopped), meta.json rewritten by ``change``."""
    out = shutil.copytree(finished, folder)
    shutil.rmtree(out / "windows" / "00001")
    meta = json.loads((out / "meta.json").read_text())
    meta["status"] = "running"
    meta["alignment"] = meta["alignment"][:1]
    (out / "meta.json").write_text(json.dumps(change(meta)))
    return out


def test_resume_of_a_run_written_before_the_record_continues_it(capture: Path, finished: Path, tmp_path) -> None:
    out = interrupted_copy(finished, tmp_path / "old", as_written_before_the_record)
    result = run_cli(capture, "--out", out, *RUN, "--resume")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "1 of 2 windows already on disk" in result.output
    full, resumed = Reconstruction.open(finished), Reconstruction.open(out)
    assert resumed.is_complete and resumed.record.settings == full.record.settings
    for name in full.array_names():
        assert np.array_equal(full.load(name), resumed.load(name)), name


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda m: {**m, "model": {**m["model"], "config": {**m["model"]["config"], "gone_field": 1}}}, "gone_field"),
        (lambda m: {k: v for k, v in m.items() if k != "settings"}, "differs in: settings"),
        (lambda m: {**m, "format_version": 1}, "format version 1"),
        (lambda m: {**m, "spans": "all"}, "spans must be"),
    ],
)
def test_resume_of_a_run_it_cannot_continue_says_why(capture, finished, tmp_path, change, why: str) -> None:
    out = interrupted_copy(finished, tmp_path / "old", change)
    before = (out / "meta.json").read_bytes()
    result = run_cli(capture, "--out", out, *RUN, "--resume")
    assert result.exit_code != 0 and "Traceback" not in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert why in result.output and "--overwrite" in result.output, result.output
    assert (out / "meta.json").read_bytes() == before


def test_create_takes_the_json_form_and_refuses_a_broken_one(tmp_path: Path) -> None:
    recon = Reconstruction.create(tmp_path / "r", {"camera_names": ["a"], "image_hw": [2, 3], "spans": [(0, 2)]})
    assert Reconstruction.open(tmp_path / "r").record.spans == [(0, 2)] and recon.record.status == "running"
    with pytest.raises(ValueError, match="image_hw"):
        Reconstruction.create(tmp_path / "s", {"camera_names": ["a"], "image_hw": [0, 3], "spans": []})
    assert not (tmp_path / "s").exists()  # refused before anything was written
