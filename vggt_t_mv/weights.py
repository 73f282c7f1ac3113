"""Reading checkpoints and loading them into a :class:`~vggt_t_mv.VGGTTMV`."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

# Upstream VGGT names of the two attention kinds -> ours.
VGGT_RENAMES = (
    ("aggregator.frame_blocks.", "aggregator.time_blocks."),
    ("aggregator.global_blocks.", "aggregator.view_blocks."),
)
_WRAPPER_KEYS = ("model", "state_dict", "module")
_STRIPPED_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read; the message names the file and the fix."""


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    ``missing``: model tensors the checkpoint did not provide (they keep their initialisation);
    ``unexpected``: checkpoint tensors the model has no place for; ``mismatched``: name -> (expected
    shape, found shape); ``loaded``: model tensor -> checkpoint key it came from.
    """

    loaded: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        return (
            f"{len(self.loaded)} tensors loaded, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected, {len(self.mismatched)} shape mismatches"
        )


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read a state dict from ``.safetensors`` or a ``torch.save`` file (``weights_only=True``).

    Accepts wrappers ``{"model": ...}``, ``{"state_dict": ...}``, ``{"module": ...}`` and strips the
    ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; pass the .pt/.pth/.safetensors file inside it")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(
                f"checkpoint {path} is not a readable safetensors file ({error}); "
                "the file may be truncated, download or copy it again"
            ) from error
    else:
        state = _torch_load(path)
    return _unwrap(state, path)


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (zipfile.BadZipFile, EOFError, RuntimeError) as error:
        if "Weights only load failed" in str(error):
            raise CheckpointError(
                f"checkpoint {path} contains pickled Python objects that are not loaded for safety. Convert it "
                "once in a trusted environment: sd = torch.load(path, weights_only=False)['model']; "
                "safetensors.torch.save_file(sd, 'model.safetensors')"
            ) from error
        raise CheckpointError(f"checkpoint {path} is truncated or not a PyTorch checkpoint ({error})") from error
    except Exception as error:  # unpickling errors have many types
        if "Weights only load failed" in str(error):
            raise CheckpointError(
                f"checkpoint {path} contains pickled Python objects that are not loaded for safety. Convert it "
                "once in a trusted environment: sd = torch.load(path, weights_only=False)['model']; "
                "safetensors.torch.save_file(sd, 'model.safetensors')"
            ) from error
        raise CheckpointError(f"checkpoint {path} could not be read as a PyTorch checkpoint ({error})") from error


def _unwrap(state: object, path: Path) -> dict[str, Tensor]:
    while isinstance(state, dict) and not _is_tensor_dict(state):
        inner = next((state[key] for key in _WRAPPER_KEYS if key in state and isinstance(state[key], dict)), None)
        if inner is None:
            raise CheckpointError(
                f"checkpoint {path} holds no state dict: top-level keys {sorted(map(str, state))[:10]}; "
                f"expected tensors or one of the wrappers {_WRAPPER_KEYS}"
            )
        state = inner
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    cleaned: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            continue
        for prefix in _STRIPPED_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        cleaned[key] = value
    return cleaned


def _is_tensor_dict(state: dict) -> bool:
    return bool(state) and all(isinstance(v, Tensor) for v in state.values())


def rename_vggt_keys(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Upstream VGGT names -> ours: ``frame_blocks`` -> ``time_blocks``, ``global_blocks`` -> ``view_blocks``."""
    renamed = {}
    for key, value in state.items():
        for old, new in VGGT_RENAMES:
            if key.startswith(old):
                key = new + key[len(old) :]
                break
        renamed[key] = value
    return renamed


_STREAM_COPY = re.compile(r"^aggregator\.(?:pose|geo)_(time|view)_blocks\.(\d+)\.(.+)$")


def source_key_for(name: str, source: dict[str, Tensor]) -> str | None:
    """The source key that fills model tensor ``name``: the same name, or for a branched stream copy
    (``aggregator.pose_time_blocks.12.*``) the single-stream layer it copies (``aggregator.time_blocks.12.*``)."""
    if name in source:
        return name
    match = _STREAM_COPY.match(name)
    if match:
        kind, index, rest = match.groups()
        trunk_name = f"aggregator.{kind}_blocks.{index}.{rest}"
        if trunk_name in source:
            return trunk_name
    return None


def load_pretrained(model: nn.Module, checkpoint: str | Path | None = None, strict: bool = False) -> LoadReport:
    """Load a VGGT-layout (or our own) checkpoint into ``model``.

    Every model tensor with a same-named, same-shaped checkpoint tensor is overwritten (cast to the
    model tensor's dtype); branched stream copies are filled from the single-stream layer they copy;
    the rest keep their initialisation. ``strict=True`` raises if anything is
    missing, unexpected or mismatched.
    """
    report = LoadReport()
    target = model.state_dict()
    if checkpoint is None:
        report.missing = sorted(target)
        return report
    source = rename_vggt_keys(read_state_dict(checkpoint))
    used: set[str] = set()
    with torch.no_grad():
        for name, tensor in target.items():
            key = source_key_for(name, source)
            if key is None:
                report.missing.append(name)
                continue
            used.add(key)
            found = source[key]
            if tuple(found.shape) != tuple(tensor.shape):
                report.mismatched[name] = (tuple(tensor.shape), tuple(found.shape))
            else:
                tensor.copy_(found.to(dtype=tensor.dtype))
                report.loaded[name] = key
    report.unexpected = sorted(set(source) - used)
    if strict and not report.ok:
        raise ValueError(
            f"strict load of {checkpoint} failed: {report.summary()}; "
            f"missing {report.missing[:5]}, unexpected {report.unexpected[:5]}, "
            f"mismatched {list(report.mismatched.items())[:5]}"
        )
    return report
