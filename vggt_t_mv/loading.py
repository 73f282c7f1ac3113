"""One rule from "which weights" to a model: :func:`load_model`.

Every entry point (``vggt-mv run``, the viewer, ``weights inspect``, training, evaluation, benchmarks) describes its
weights with the same four things and gets the same model for the same description:

* ``config`` -- a :class:`~vggt_t_mv.ModelConfig`, a preset name (:data:`PRESETS`) or a JSON file of
  ``ModelConfig.to_dict()``. ``None``: the config of a :func:`~vggt_t_mv.save_pretrained` folder given as
  ``checkpoint``, else inferred from a VGGT-layout checkpoint's shapes (:func:`~vggt_t_mv.infer_config`), else
  (Pi3 weights only, or nothing) :data:`DEFAULT_PRESET`.
* ``checkpoint`` -- a VGGT-family file (``.pt``/``.pth``/``.safetensors``, layout detected) or a ``save_pretrained``
  folder.
* ``pi3`` -- Pi3 weights, a second source for the tensors the checkpoint does not fill.
* ``random_weights`` -- allow a model with no weights at all (seeded, so reruns get the same model); without it,
  no weights is an error.

The result, :class:`LoadedModel`, carries the :class:`Provenance`: the config and where it came from, each source's
path, kind, layout and sha256 (of the file; of a save_pretrained folder, the sha256 over its weights and config files'
names and digests).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vggt_t_mv.config import ModelConfig
from vggt_t_mv.infer_config import infer_config
from vggt_t_mv.memory import available_bytes, format_bytes
from vggt_t_mv.model import VGGTTMV
from vggt_t_mv.provenance import RANDOM_WEIGHTS_SEED, Provenance, WeightSource
from vggt_t_mv.weights import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    LoadReport,
    detect_layout,
    load_pretrained,
    read_saved_config,
)
from vggt_t_mv.weights import read_state_dict as read_weights

PRESETS = ("vggt_1b", "page4d_fin10", "page4d", "vggt_t_mv", "tiny", "tiny_two_stream")
DEFAULT_PRESET = "vggt_1b"


class ModelLoadError(ValueError):
    """The weights description cannot give a model; the message names the option or file and the fix."""


@dataclass(frozen=True)
class WeightsSpec:
    """Which model and weights (module docstring): what every command's model options turn into."""

    config: str | Path | ModelConfig | None = None
    checkpoint: Path | None = None
    pi3: Path | None = None
    random_weights: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)

    def has_weights(self) -> bool:
        return self.checkpoint is not None or self.pi3 is not None


@dataclass
class LoadedModel:
    """``model`` (eval mode), its ``config``, the per-tensor load ``report`` (``None`` with random weights) and its
    :class:`Provenance` (what a reconstruction's ``meta.json`` stores as ``model``)."""

    model: VGGTTMV
    config: ModelConfig
    report: LoadReport | None
    provenance: Provenance


def sha256_file(path: str | Path, chunk: int = 1 << 24) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_folder(folder: str | Path, names: tuple[str, ...] | None = None) -> str:
    """Hex sha256 over a folder's files (``names`` only, when given): ``"<relative posix path> <file sha256>\\n"``
    lines in sorted order (so it changes when any of those files' name or bytes change, not with timestamps)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    files = [folder / name for name in names] if names else [p for p in folder.rglob("*") if p.is_file()]
    for path in sorted(files):
        digest.update(f"{path.relative_to(folder).as_posix()} {sha256_file(path)}\n".encode())
    return digest.hexdigest()


def sha256_path(path: str | Path) -> str:
    """:func:`sha256_file` of a file; of a folder, :func:`sha256_folder` over what :func:`~vggt_t_mv.save_pretrained`
    writes when it has that (a README or logs beside the weights do not change it), else over all its files."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    saved = (WEIGHTS_FILE, CONFIG_FILE)
    return sha256_folder(path, saved if all((path / name).is_file() for name in saved) else None)


def resolve_config(
    config: str | Path | ModelConfig | None,
    checkpoint: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[ModelConfig, str]:
    """The model config of a weights description and where it came from (module docstring for the rule)."""
    cfg, origin = _base_config(config, checkpoint)
    if overrides:
        try:
            cfg = ModelConfig.from_dict({**cfg.to_dict(), **overrides})
        except (ValueError, TypeError) as error:
            raise ModelLoadError(f"model overrides {overrides}: {error}") from error
        origin += f" with overrides {sorted(overrides)}"
    return cfg, origin


def _base_config(config: str | Path | ModelConfig | None, checkpoint: Path | None) -> tuple[ModelConfig, str]:
    if isinstance(config, ModelConfig):
        return config, "given"
    if config is not None and str(config) in PRESETS and not Path(config).is_file():
        return getattr(ModelConfig, str(config))(), f"preset {config}"
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise ModelLoadError(f"--config {config} is neither a preset ({', '.join(PRESETS)}) nor a JSON file")
        try:
            return ModelConfig.from_dict(json.loads(path.read_text())), f"file {path.resolve()}"
        except (ValueError, TypeError) as error:
            raise ModelLoadError(f"--config {path}: {error}") from error
    if checkpoint is not None and Path(checkpoint).is_dir():
        try:
            return ModelConfig.from_dict(read_saved_config(checkpoint)), f"saved with {Path(checkpoint).resolve()}"
        except CheckpointError as error:
            raise ModelLoadError(str(error)) from error
        except (ValueError, TypeError) as error:
            raise ModelLoadError(
                f"{Path(checkpoint) / CONFIG_FILE}: not a valid model config ({error}); write the folder again with "
                "save_pretrained, or pass --config PRESET_OR_JSON"
            ) from error
    if checkpoint is not None:
        shapes = read_weights(checkpoint, shapes_only=True)
        if detect_layout(shapes) != "pi3":
            return infer_config(shapes), "inferred from the checkpoint's shapes"
    return getattr(ModelConfig, DEFAULT_PRESET)(), f"preset {DEFAULT_PRESET} (no VGGT-layout checkpoint to size from)"


def model_bytes(cfg: ModelConfig) -> int:
    """Bytes of the parameters and buffers of ``VGGTTMV(cfg)``, counted on the meta device (nothing allocated)."""
    with torch.device("meta"):
        model = VGGTTMV(cfg)
    tensors = [*model.parameters(), *model.buffers()]
    return sum(tensor.numel() * tensor.element_size() for tensor in tensors)


def check_model_fits(cfg: ModelConfig, origin: str, device: str | torch.device) -> None:
    """Raise :class:`ModelLoadError` when ``VGGTTMV(cfg)`` alone needs more memory than ``device`` has free."""
    available = available_bytes(device)
    # The transformer blocks (two per layer pair, ~12 embed_dim^2 weights each) are about half of the model (VGGT-1B:
    # 2.4 of 5.0 GB): when three times them is far below the free memory, the exact count on the meta device (a
    # second or two for VGGT-1B) is not needed.
    if available is None or 3 * 24 * cfg.depth * cfg.embed_dim**2 * 4 < available / 4:
        return
    needed = model_bytes(cfg)
    if needed > available:
        raise ModelLoadError(
            f"the model config ({origin}) describes a model of {format_bytes(needed)} (embed_dim {cfg.embed_dim}, "
            f"depth {cfg.depth}), more than the {format_bytes(available)} free on {torch.device(device)}; check "
            "the config's sizes (a preset such as vggt_1b is 5.0 GB) or use a machine with more memory"
        )


def load_model(
    config: str | Path | ModelConfig | None = None,
    checkpoint: str | Path | None = None,
    pi3: str | Path | None = None,
    *,
    random_weights: bool = False,
    overrides: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    checksums: bool = True,
    seed: int = RANDOM_WEIGHTS_SEED,
) -> LoadedModel:
    """The model of a weights description (module docstring), in eval mode, with its provenance.

    Args:
        config / checkpoint / pi3 / random_weights: see the module docstring.
        overrides: ``ModelConfig`` fields replacing the resolved config's (training).
        device: where the model is built; ``"meta"`` builds it without memory and reads only the checkpoints'
            shapes (``weights inspect``: the report is exact, the tensors hold no data).
        checksums: hash the sources for the provenance (off for a quick inspect of multi-GB files).
        seed: ``torch.manual_seed`` before construction, so the tensors no source fills are reproducible.
    Raises:
        ModelLoadError (a ``ValueError``): no weights without ``random_weights``, a bad config, or a checkpoint
        that cannot be read (the message names the file).
    """
    checkpoint = None if checkpoint is None else Path(checkpoint)
    pi3 = None if pi3 is None else Path(pi3)
    if checkpoint is None and pi3 is None and not random_weights:
        raise ModelLoadError(
            "no weights given: pass --checkpoint FILE_OR_FOLDER (VGGT-family checkpoint or save_pretrained folder) "
            "and/or --pi3 FILE (Pi3 weights); the repository bundles small demo weights in assets/demo_weights (a "
            "save_pretrained folder for the demo rig); the README's Weights section says where VGGT-1B, PAGE-4D and "
            "Pi3 weights come from; --random-weights runs an untrained model (for testing only)"
        )
    try:
        cfg, origin = resolve_config(config, checkpoint, overrides)
        meta_device = torch.device(device).type == "meta"
        torch.manual_seed(seed)
        try:
            if not meta_device:
                check_model_fits(cfg, origin, device)
            with torch.device(device):
                model = VGGTTMV(cfg).eval()
        except (TypeError, ValueError) as error:  # a config whose values do not build a model
            if isinstance(error, ModelLoadError):
                raise
            raise ModelLoadError(f"the model config ({origin}) does not build a model: {error}") from error
        report = None
        if checkpoint is not None or pi3 is not None:
            sources = {
                "checkpoint": read_weights(checkpoint, shapes_only=True) if meta_device and checkpoint else checkpoint,
                "pi3": read_weights(pi3, shapes_only=True) if meta_device and pi3 else pi3,
            }
            report = load_pretrained(model, checkpoint=sources["checkpoint"], pi3=sources["pi3"])
    except CheckpointError as error:
        raise ModelLoadError(str(error)) from error
    if not meta_device:
        check_finite_weights(model, report, {"checkpoint": checkpoint, "pi3": pi3})
    weight_sources = {}
    for label, path in (("checkpoint", checkpoint), ("pi3", pi3)):
        if path is not None:
            weight_sources[label] = WeightSource(
                str(path.resolve()),
                "folder" if path.is_dir() else "file",
                report.layouts.get(label) if report is not None else None,
                sha256_path(path) if checksums else None,
            )
    summary = None if report is None else report.summary()
    provenance = Provenance(cfg, origin, report is None, seed, weight_sources, summary)
    return LoadedModel(model, cfg, report, provenance)


def _has_nonfinite(tensor: torch.Tensor) -> bool:
    # A finite sum proves every element finite (NaN and Inf propagate) and costs a fraction of isfinite(); only a
    # non-finite sum (a NaN, an Inf, or a float32 overflow of large values) needs the exact check.
    total = tensor.sum(dtype=torch.float64 if tensor.dtype == torch.float64 else torch.float32)
    return not bool(torch.isfinite(total)) and not bool(torch.isfinite(tensor).all())


def nonfinite_tensors(model: torch.nn.Module) -> list[str]:
    """Names of the model's floating-point parameters and buffers that hold a NaN or an Inf."""
    return [
        name for name, tensor in model.state_dict().items() if tensor.is_floating_point() and _has_nonfinite(tensor)
    ]


def check_finite_weights(
    model: torch.nn.Module, report: LoadReport | None, paths: dict[str, Path | None], shown: int = 5
) -> None:
    """Raise :class:`ModelLoadError` naming the tensors (and the file each came from) that hold NaN or Inf.

    A model with such weights runs to the end and writes arrays that are NaN everywhere; refusing it here costs one
    pass over the weights."""
    bad = nonfinite_tensors(model)
    if not bad:
        return
    described = []
    for name in bad[:shown]:
        source = "new" if report is None else report.sources.get(name, "new")
        label, _, key = source.partition(":")
        where = f"{paths[label]} key {key}" if key and paths.get(label) is not None else "its initialisation"
        described.append(f"{name} (from {where})")
    more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
    files = sorted({str(p) for p in paths.values() if p is not None})
    raise ModelLoadError(
        f"{len(bad)} weight tensor(s) hold NaN or Inf values: {', '.join(described)}{more}. The weights "
        f"({', '.join(files) or 'random'}) are damaged or come from a diverged training run; use another "
        "checkpoint (an earlier one of the same training, or the file copied again)"
    )


def load_spec(spec: WeightsSpec, **options: Any) -> LoadedModel:
    """:func:`load_model` of a :class:`WeightsSpec` (``options``: ``device``, ``checksums``, ``seed``)."""
    return load_model(
        spec.config,
        spec.checkpoint,
        spec.pi3,
        random_weights=spec.random_weights,
        overrides=dict(spec.overrides),
        **options,
    )
