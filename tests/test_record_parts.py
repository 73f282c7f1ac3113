"""The record's rig diagnostics, calibration comparison and source descriptions are typed (app/reconstruct/record.py):
the format-1 and format-2 fixtures' blocks read into them and write back as they were, a malformed entry is a
RecordError naming it, and the calibrated windows' agreement is summarised from the typed alignments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.capture.calibration.rig import CameraCalibration, Distortion
from app.reconstruct.calibrated import CameraAgreement, agreement_summary
from app.reconstruct.record import (
    Alignment,
    CalibratedCameraRecord,
    CalibrationComparison,
    CalibrationRecord,
    CameraSpread,
    CaptureRecord,
    RecordError,
    RigDiagnostics,
    RigError,
    RigReport,
    SourceDescription,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize("folder", ["recon_v1", "recon_v2"])
def test_an_old_reconstructions_rig_and_sources_read_typed_and_write_back_unchanged(folder: str) -> None:
    meta = json.loads((FIXTURES / folder / "meta.json").read_text())
    rig = RigReport.from_dict(meta["rig"])
    assert isinstance(rig.diagnostics, RigDiagnostics)
    first, second = rig.diagnostics.cameras[:2]
    assert isinstance(first, CameraSpread) and first.name == "cam0" and first.baseline_mean is None
    assert second.baseline_mean == meta["rig"]["diagnostics"]["cameras"][1]["baseline_mean"]
    assert rig.to_dict() == meta["rig"]
    capture = CaptureRecord.from_dict(meta["capture"])
    assert all(isinstance(camera, SourceDescription) for camera in capture.cameras)
    assert capture.cameras[0].kind == "video" and capture.cameras[0].fps == 10.0
    assert capture.to_dict()["cameras"] == meta["capture"]["cameras"]
    assert capture.same_source(CaptureRecord.from_dict(meta["capture"]))


def test_a_calibration_comparison_round_trips() -> None:
    data = {
        "file": "/c/calib.toml",
        "units": "mm",
        "intrinsics": [{"name": "a", "focal_predicted_px": 500.0, "focal_calibrated_px": 510.0, "focal_error_pct": -2}],
        "rig": [{"name": "b", "rotation_error_deg": 1.5, "translation_error": 3.0, "baseline_calibrated": 100.0,
                 "baseline_predicted": 98.0, "by_a_newer_writer": 1}],
    }  # fmt: skip
    comparison = CalibrationComparison.from_dict(data)
    assert comparison.units == "mm" and comparison.intrinsics[0].focal_error_pct == -2
    assert comparison.rig == [RigError("b", 1.5, 3.0, 100.0, 98.0, {"by_a_newer_writer": 1})]
    assert comparison.to_dict() == data
    assert "rig" not in CalibrationComparison("/c/k.json").to_dict()  # one camera / no extrinsics: no rig errors


def test_a_malformed_entry_is_a_record_error_naming_it() -> None:
    with pytest.raises(RecordError, match="rig.calibration.rig entry"):
        CalibrationComparison.from_dict({"file": "f", "rig": [{"name": "b"}]})
    with pytest.raises(RecordError, match="capture.cameras entry"):
        CaptureRecord.from_dict({"cameras": ["cam0"]})
    with pytest.raises(RecordError, match="rig diagnostics"):
        RigReport.from_dict({"diagnostics": [1, 2]})


def test_the_agreement_summary_reads_typed_alignments() -> None:
    windows = [
        Alignment("reference"),
        Alignment("calibrated", units="mm", flagged=False, cameras=[CameraAgreement("a", 1.0, 2.0, False)]),
        Alignment("calibrated", units="mm", flagged=True, cameras=[CameraAgreement("a", 9.0, 4.0, True)]),
    ]
    summary = agreement_summary(windows)
    assert summary is not None and summary.windows == 2 and summary.flagged_windows == [2]
    assert (summary.rotation_error_deg_max, summary.center_error_median, summary.units) == (9.0, 3.0, "mm")
    assert agreement_summary(windows[:1]) is None


def test_the_calibrations_lenses_round_trip_typed_through_json() -> None:
    intrinsics = np.array([[500.0, 0.0, 319.5], [0.0, 510.0, 239.5], [0.0, 0.0, 1.0]])
    lens = CameraCalibration("cam_A", intrinsics, (640, 480), Distortion("opencv", np.array([-0.2, 0.05, 1e-3, 0.0])))
    record = CalibrationRecord(
        "/c.toml", "anipose", "mm", "file", None, False, [CalibratedCameraRecord.of("view0", lens)]
    )
    back = CalibrationRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert isinstance(back.cameras[0], CalibratedCameraRecord) and back.cameras[0].name == "view0"
    (read,) = back.lenses()
    assert read.name == "cam_A" and read.size == (640, 480) and read.distortion.model == "opencv"
    np.testing.assert_array_equal(read.intrinsics, intrinsics)
    np.testing.assert_array_equal(read.distortion.coefficients, lens.distortion.coefficients)
    assert back.to_dict() == record.to_dict()


def test_a_calibration_camera_with_an_unknown_lens_model_is_a_record_error_naming_it() -> None:
    entry = {"name": "view2", "intrinsics": np.eye(3).tolist(), "distortion": {"model": "kannala", "coefficients": []}}
    with pytest.raises(RecordError, match="view2.*kannala"):
        CalibrationRecord.from_dict({"path": "/c.toml", "cameras": [entry]}).lenses()
