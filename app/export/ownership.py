"""Which existing paths an export may replace: only what this tool wrote, never the reconstruction itself.

Every output gets a marker recording what was written (format, source reconstruction, every file with its size and
sha256):

* a folder output (COLMAP): ``<out>/.vggt-mv-export.json`` inside it;
* a file output (PLY, GLB, mesh, NPZ, ...): ``.<name>.vggt-mv-export.json`` next to it.

``--overwrite`` replaces an existing output only when its marker is there and the output is exactly what the
marker lists (nothing added, removed or changed since); anything else (an unrelated folder, a file someone edited,
an output with files added by other tools) is refused with the reason and the fix. Independently of
``--overwrite``, an output equal to, inside, or containing the reconstruction is always refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from app.common.vocab import ExportFormat, SceneFormat
from app.export.selection import ExportError

MARKER_NAME = ".vggt-mv-export.json"
MARKER_TOOL = "vggt-mv export"


def marker_path(output: Path) -> Path:
    """Where ``output``'s marker lives (inside a folder output, next to a file output)."""
    if output.is_dir():
        return output / MARKER_NAME
    return output.with_name(f".{output.name}{MARKER_NAME}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _contents(output: Path) -> dict[str, dict[str, object]]:
    """``relative path -> {size, sha256}`` of ``output`` (a file: itself under ``"."``), marker excluded."""
    if output.is_file():
        return {".": {"size": output.stat().st_size, "sha256": _sha256(output)}}
    found = {}
    for path in sorted(output.rglob("*")):
        if path.is_file() and path.name != MARKER_NAME:
            found[str(path.relative_to(output))] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    return found


def write_marker(output: Path, fmt: ExportFormat | SceneFormat, source: Path) -> Path:
    """Record ``output`` (just written by this tool from the reconstruction ``source``) as replaceable."""
    marker = marker_path(output)
    record = {"tool": MARKER_TOOL, "format": fmt, "source": str(source.resolve()), "files": _contents(output)}
    marker.write_text(json.dumps(record, indent=1) + "\n")
    return marker


def check_not_the_reconstruction(output: Path, recon_root: Path) -> None:
    """Refuse an output equal to, inside, or containing the reconstruction folder ``recon_root``."""
    out, root = output.resolve(), recon_root.resolve()
    if out == root or root in out.parents:
        raise ExportError(
            f"--out {output} is inside the reconstruction {recon_root}: exports never write there "
            "(choose a path outside it)"
        )
    if out in root.parents:
        raise ExportError(
            f"--out {output} contains the reconstruction {recon_root}: replacing it would delete the "
            "reconstruction (choose another path)"
        )


def replaceable_reason(output: Path) -> str | None:
    """Why the existing ``output`` must not be replaced, or None when this tool wrote exactly what is there."""
    marker = marker_path(output)
    if not marker.is_file():
        kind = "folder" if output.is_dir() else "file"
        return f"{output} is a {kind} this tool did not write (no {marker.name} marker)"
    try:
        record = json.loads(marker.read_text())
        listed = record["files"]
        if record.get("tool") != MARKER_TOOL or not isinstance(listed, dict):
            raise ValueError("not a vggt-mv export marker")
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"{output}: its marker {marker} is unreadable ({error})"
    present = _contents(output)
    if present != listed:
        changed = sorted(set(present) ^ set(listed)) or sorted(k for k in present if present[k] != listed.get(k))
        shown = ", ".join("the file" if name == "." else name for name in changed[:5])
        return f"{output} changed since this tool wrote it ({shown}{', ...' if len(changed) > 5 else ''})"
    return None


def check_replaceable(outputs: list[Path], overwrite: bool) -> None:
    """Refuse (before anything is written) existing outputs unless ``overwrite`` and each is this tool's, unchanged."""
    existing = [p for p in outputs if p.exists() or p.is_symlink()]
    if existing and not overwrite:
        raise ExportError(f"output exists: {', '.join(map(str, existing))}; pass --overwrite to replace it")
    for path in existing:
        reason = replaceable_reason(path)
        if reason is not None:
            raise ExportError(
                f"--overwrite refused: {reason}. --overwrite only replaces exports written by vggt-mv; "
                "choose another --out, or move it away yourself"
            )
