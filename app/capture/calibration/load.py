"""Which reader reads a calibration path, and the calibration matched to a capture's cameras.

Forms (:data:`FORMS`, named in ``vggt-mv run --help`` and the README): a ``.toml`` (caliscope or anipose /
pose2sim), a ``.json`` (this project's schema), a ``.qca.txt`` (Qualisys QTM), a folder with ``intri.yml`` +
``extri.yml`` (EasyMocap; either file also names the pair), a COLMAP sparse model folder (itself, ``sparse/`` or
``sparse/0``, or one of its ``cameras``/``images`` files) and a dataset root with ``intrs/`` + ``extrs/``.

Matching: by name (a calibration camera named like a capture camera, or numbered like it: ``0`` or ``cam_0`` for
``cam0``), else by order when the counts agree; how is said in :attr:`RigCalibration.match`. Units: the format's
(caliscope m, Qualisys mm, JSON's ``units``, dataset roots and COLMAP ``arbitrary``), else inferred from the spacing
of the cameras (:func:`~app.capture.calibration.rig.infer_units`), else refused: ``--calibration-units`` says.
"""

from __future__ import annotations

from pathlib import Path

from app.capture.calibration.colmap import model_folder, read_colmap
from app.capture.calibration.dataset import is_dataset_root, read_dataset
from app.capture.calibration.easymocap import EXTRINSICS_FILE, INTRINSICS_FILE, read_easymocap
from app.capture.calibration.json_file import read_json
from app.capture.calibration.qualisys import SUFFIX as QUALISYS_SUFFIX
from app.capture.calibration.qualisys import read_qualisys
from app.capture.calibration.rig import (
    FORMAT_NAMES,
    CalibrationError,
    CalibrationFile,
    CameraCalibration,
    RigCalibration,
    camera_spacing,
    check_camera,
    infer_units,
)
from app.capture.calibration.toml_files import read_toml
from app.capture.sync import match_camera
from app.common.vocab import LENGTH_UNITS, LengthUnit

FORMS = (
    "caliscope camera_array.toml, anipose / pose2sim calibration.toml or Calib.toml, JSON (README), Qualisys "
    ".qca.txt, EasyMocap intri.yml + extri.yml (their folder), a COLMAP sparse model (folder), a dataset root with "
    "intrs/ + extrs/"
)


def read_calibration_file(path: str | Path) -> CalibrationFile:
    """The cameras of the calibration at ``path`` in the file's own order (module docstring), unmatched."""
    path = Path(path)
    if not path.exists():
        raise CalibrationError(f"calibration {path} does not exist; pass one of: {FORMS}")
    if path.is_dir():
        if is_dataset_root(path):
            return read_dataset(path)
        if (path / INTRINSICS_FILE).is_file() or (path / EXTRINSICS_FILE).is_file():
            return read_easymocap(path)
        folder = model_folder(path)
        if folder is not None:
            return read_colmap(folder)
        for name in ("camera_array.toml", "calibration.toml", "Calib.toml"):
            if (path / name).is_file():
                return read_toml(path / name)
        raise CalibrationError(
            f"calibration folder {path}: no calibration found in it (intri.yml + extri.yml, a COLMAP sparse model, "
            f"intrs/ + extrs/ beside images/, camera_array.toml, calibration.toml); pass one of: {FORMS}"
        )
    name = path.name.lower()
    if name.endswith(QUALISYS_SUFFIX):
        return read_qualisys(path)
    if path.name in (INTRINSICS_FILE, EXTRINSICS_FILE):
        return read_easymocap(path.parent)
    if path.stem in ("cameras", "images") and path.suffix in (".bin", ".txt") and model_folder(path.parent):
        return read_colmap(path.parent)
    if path.suffix.lower() == ".toml":
        return read_toml(path)
    if path.suffix.lower() == ".json":
        return read_json(path)
    raise CalibrationError(
        f"calibration file {path}: unsupported format {path.suffix or '(no suffix)'!r}. Supported: .toml (caliscope, "
        "anipose / pose2sim), .json, .qca.txt (Qualisys), intri.yml + extri.yml (EasyMocap), a COLMAP sparse model, a "
        "dataset root with intrs/ + extrs/. Convert it to one of them (README: Calibrated rigs)"
    )


CALIBRATIONS_BESIDE_FRAMES = (
    "camera_array.toml, calibration.toml, Calib.toml, calibration.json, a *.qca.txt, intri.yml + extri.yml or a "
    "COLMAP sparse model (sparse/ or sparse/0/) in the capture folder"
)


def calibration_beside(folder: str | Path) -> Path | None:
    """The calibration file (or folder) that a capture keeps beside its frames (:data:`CALIBRATIONS_BESIDE_FRAMES`),
    else None. A dataset root's ``intrs/`` + ``extrs/`` are not looked for here: they are ground truth of their own."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    for name in ("camera_array.toml", "calibration.toml", "Calib.toml", "calibration.json"):
        if (folder / name).is_file():
            return folder / name
    qualisys = sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(QUALISYS_SUFFIX))
    if qualisys:
        return qualisys[0]
    if (folder / INTRINSICS_FILE).is_file() and (folder / EXTRINSICS_FILE).is_file():
        return folder
    for candidate in (folder / "sparse", folder / "sparse" / "0"):
        if model_folder(candidate) == candidate:
            return candidate
    return None


def match_cameras(found: CalibrationFile, camera_names: list[str]) -> tuple[list[CameraCalibration], str]:
    """The calibration's cameras in capture order and how they were matched (one line)."""
    names = [c.name for c in found.cameras]
    by_name: dict[int, CameraCalibration] = {}
    for camera in found.cameras:
        index = match_camera(camera.name, camera_names)
        if index is None:
            digits = "".join(ch for ch in camera.name if ch.isdigit())
            index = match_camera(digits, camera_names) if digits and digits != camera.name else None
        if index is not None and index not in by_name:
            by_name[index] = camera
    if len(by_name) == len(camera_names):
        pairs = [f"{by_name[n].name}->{name}" for n, name in enumerate(camera_names) if by_name[n].name != name]
        line = "cameras matched by name" + (f" ({', '.join(pairs)})" if pairs else "")
        if len(found.cameras) > len(camera_names):
            line += f"; {len(found.cameras) - len(camera_names)} calibrated camera(s) not in the capture are unused"
        return [by_name[n] for n in range(len(camera_names))], line
    if len(found.cameras) == len(camera_names):
        order = ", ".join(f"{c.name}->{name}" for c, name in zip(found.cameras, camera_names, strict=True))
        return list(found.cameras), f"cameras matched by order (names differ): {order}"
    missing = [name for n, name in enumerate(camera_names) if n not in by_name]
    raise CalibrationError(
        f"calibration {found.path} has no entry for camera(s) {', '.join(missing)} (it has {len(names)}: "
        f"{', '.join(names) or 'none'}; the capture has {len(camera_names)}); key each camera by its name or number, "
        "or give exactly one calibrated camera per capture camera, in the capture's order"
    )


def load_calibration(
    path: str | Path,
    camera_names: list[str],
    source_sizes: list[tuple[int, int]] | None = None,
    units: LengthUnit | None = None,
    unstated_units: LengthUnit | None = None,
) -> RigCalibration:
    """Read the calibration at ``path`` and match it to the capture's ``camera_names``.

    ``source_sizes``: each capture camera's frame ``(width, height)``; a calibration of another size is refused
    naming both. ``units`` (``--calibration-units``) overrides the file's or the inferred unit; ``unstated_units``
    is taken, instead of inferring one from the camera spacing, when the file states no unit.
    """
    found = read_calibration_file(path)
    cameras, match = match_cameras(found, camera_names)
    for camera in cameras:
        check_camera(camera, found.path)
    if units is not None and units not in LENGTH_UNITS:
        raise CalibrationError(f"--calibration-units must be one of {', '.join(LENGTH_UNITS)}, got {units!r}")
    if units is not None:
        chosen, source = units, "--calibration-units"
    elif found.units is not None:
        chosen, source = (
            found.units,
            "the dataset's own" if found.format == "dataset" else f"as {FORMAT_NAMES[found.format]} states",
        )
    elif unstated_units is not None:
        chosen, source = unstated_units, "the file states none"
    elif not all(c.extrinsics is not None for c in cameras):
        chosen, source = "arbitrary", "no extrinsics"
    else:
        inferred = infer_units(cameras)
        if inferred is None:
            spacing = camera_spacing(cameras)
            raise CalibrationError(
                f"calibration {found.path} ({FORMAT_NAMES[found.format]}): units are not determinable (the file does "
                f"not state them and its cameras are {spacing:.4g} units apart, neither a plausible metre nor "
                "millimetre spacing); pass --calibration-units m, cm, mm or arbitrary"
            )
        chosen, source = inferred, f"inferred from the camera spacing, {camera_spacing(cameras):.4g} apart"
    if source_sizes is not None:
        check_sizes(found.path, cameras, camera_names, source_sizes)
    return RigCalibration(cameras, list(camera_names), chosen, found.format, found.path, match, source)


def check_sizes(
    path: Path, cameras: list[CameraCalibration], camera_names: list[str], source_sizes: list[tuple[int, int]]
) -> None:
    """Refuse a calibrated camera whose image size is not its capture camera's frame size, naming both."""
    for camera, name, (width, height) in zip(cameras, camera_names, source_sizes, strict=True):
        if camera.size is None or tuple(camera.size) == (width, height):
            continue
        cw, ch = camera.size
        aspect = "the same aspect" if abs(cw * height - ch * width) <= max(cw, width) else "another aspect"
        raise CalibrationError(
            f"calibration {path}: camera {camera.name!r} was calibrated at {cw}x{ch} px but the capture's camera "
            f"{name} is {width}x{height} px ({aspect}); the intrinsics belong to one frame size: calibrate at the "
            "capture's resolution, or record at the calibrated one"
        )
