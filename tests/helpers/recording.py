"""Reading a ``.viser`` scene recording back (tests only): viser's layout is an 8-byte little-endian size of the
inner payload, then the zstd-compressed payload; the payload is an 8-byte little-endian msgpack length, the msgpack
document (``durationSeconds``, ``messages`` as ``[time, message]`` pairs, ``viserVersion``, ``binaryBufferLengths``)
and the binary buffers."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_recording(path: Path) -> dict[str, Any]:
    """The msgpack document of the recording at ``path``."""
    import msgspec
    import zstandard

    data = Path(path).read_bytes()
    inner_size = int.from_bytes(data[:8], "little")
    inner = zstandard.ZstdDecompressor().decompress(data[8:], max_output_size=inner_size)
    length = int.from_bytes(inner[:8], "little")
    return msgspec.msgpack.decode(inner[8 : 8 + length])


def shown_timesteps(recording: dict[str, Any]) -> list[tuple[float, int]]:
    """``(time, timestep)`` each time a timestep frame ``/t/TTTTT`` becomes visible, in playback order."""
    shown = []
    for time, message in recording["messages"]:
        name = message.get("name", "")
        if message["type"] == "SetSceneNodeVisibilityMessage" and name.count("/") == 2 and name.startswith("/t/"):
            if message["visible"]:
                shown.append((float(time), int(name.rsplit("/", 1)[1])))
    return shown


def buffer_size(recording: dict[str, Any], placeholder: dict[str, Any]) -> int:
    """Bytes of the binary array a message property refers to (``{"__binary_index": i, "dtype": ...}``)."""
    return int(recording["binaryBufferLengths"][placeholder["__binary_index"]])
