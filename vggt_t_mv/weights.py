"""Reading checkpoints, mapping their layouts onto ours, and loading them with a per-tensor report.

Sources in priority order: a VGGT-family checkpoint (``checkpoint=``), then Pi3 (``pi3=``); each model
tensor takes the first source that has a tensor of the right shape for it, everything else keeps its
initialisation and is reported as ``new``.

Layouts (detected from the keys, overridable):

* ``vggt`` -- upstream VGGT: ``aggregator.frame_blocks`` / ``global_blocks`` (-> ``time_blocks`` /
  ``view_blocks``), plus the aliases in :data:`VGGT_ALIASES`.
* ``page4d_fin10`` / ``page4d_official`` -- PAGE-4D (``checkpoint_150.pt`` is fin10): the VGGT layout plus
  ``aggregator.spatial_mask_head.*`` (same name in our model), told apart by ``head0.2.weight``: depthwise
  ``C x 1 x 3 x 3`` in fin10, pointwise ``hidden x C x 1 x 1`` in the official code.
* ``ours`` -- what :func:`save_pretrained` writes (our module names).
* ``pi3`` -- Pi3: ``encoder.*`` is the DINOv2 patch embedding; ``decoder.{2k}`` (per-view "frame"
  attention) -> ``time_blocks.k`` and ``decoder.{2k+1}`` (all-view "global" attention) -> ``view_blocks.k``
  for k < 18; ``register_token`` only where the shapes match; Pi3's heads have no counterpart.

The PAGE-4D mask head loads whole or not at all: a source with only some of its tensors, or with tensors
of an unknown head shape, is a problem in the report (by name), and ``strict=True`` refuses it.

Branched stream copies (``aggregator.pose_time_blocks.12.*``) are filled from the layer they copy
(``aggregator.time_blocks.12.*``) when the source has no copy of its own.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vggt_t_mv.config import PageMaskHeadLayout

Layout = Literal["vggt", "page4d_fin10", "page4d_official", "ours", "pi3"]  # a checkpoint's tensor naming
LAYOUTS: tuple[Layout, ...] = ("vggt", "page4d_fin10", "page4d_official", "ours", "pi3")
LAYOUT_NAMES: dict[Layout, str] = {
    "vggt": "VGGT",
    "page4d_fin10": "PAGE-4D (fin10)",
    "page4d_official": "PAGE-4D (official)",
    "ours": "vggt_t_mv",
    "pi3": "Pi3",
}
PAGE4D_MASK_PREFIX = "aggregator.spatial_mask_head."
# Module groups a model takes from one source completely or not at all.
WHOLE_GROUPS = (PAGE4D_MASK_PREFIX,)
# Upstream VGGT names -> ours. The last two are names of older training branches.
VGGT_ALIASES = (
    ("aggregator.frame_blocks.", "aggregator.time_blocks."),
    ("aggregator.global_blocks.", "aggregator.view_blocks."),
    ("aggregator.pose_token", "aggregator.camera_token"),
    ("aggregator.image_backbone.", "aggregator.patch_embed."),
)
PI3_DECODER_PAIRS = 18
_WRAPPER_KEYS = ("model", "state_dict", "module")
_STRIPPED_PREFIXES = ("module.", "_orig_mod.")
_STREAM_COPY = re.compile(r"^aggregator\.(?:pose|geo)_(time|view)_blocks\.(\d+)\.(.+)$")
_PI3_DECODER = re.compile(r"^decoder\.(\d+)\.(.+)$")
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1
INPUT_HW_KEY = "input_hw"  # config.json: [height, width] of the training images (save_pretrained's input_hw)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or loaded; the message names the file and the fix."""


# --------------------------------------------------------------------------------------------- reading
def read_state_dict(path: str | Path, shapes_only: bool = False) -> dict[str, Tensor]:
    """Read a state dict from ``.safetensors`` or a ``torch.save`` file (always ``weights_only=True``).

    Accepts wrappers ``{"model": ...}``, ``{"state_dict": ...}``, ``{"module": ...}`` and strips the
    ``module.`` (DDP) and ``_orig_mod.`` (torch.compile) prefixes. A folder written by
    :func:`save_pretrained` is read through its ``model.safetensors``. ``shapes_only`` returns meta
    tensors (names, shapes, dtypes) without reading the data, for inspecting large checkpoints.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; check the path")
    if path.is_dir():
        if (path / WEIGHTS_FILE).is_file():
            return read_state_dict(path / WEIGHTS_FILE, shapes_only)
        raise CheckpointError(f"checkpoint {path} is a directory; pass the .pt/.pth/.safetensors file inside it")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        state: object
        try:
            state = _safetensors_shapes(path) if shapes_only else load_file(str(path))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(
                f"checkpoint {path} is not a readable safetensors file ({error}); "
                "the file may be truncated: copy or download it again"
            ) from error
    else:
        state = _torch_load(path, mmap=shapes_only)
    tensors = _unwrap(state, path)
    return {k: v.to("meta") for k, v in tensors.items()} if shapes_only else tensors


def _safetensors_shapes(path: Path) -> dict[str, Tensor]:
    from safetensors import safe_open

    dtypes = {
        "F64": torch.float64,
        "F32": torch.float32,
        "F16": torch.float16,
        "BF16": torch.bfloat16,
        "I64": torch.int64,
        "I32": torch.int32,
        "I16": torch.int16,
        "I8": torch.int8,
        "U8": torch.uint8,
        "BOOL": torch.bool,
    }
    state = {}
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():
            piece = handle.get_slice(key)
            state[key] = torch.empty(
                piece.get_shape(), dtype=dtypes.get(piece.get_dtype(), torch.float32), device="meta"
            )
    return state


def _torch_load(path: Path, mmap: bool = False) -> object:
    """``torch.load(weights_only=True)``; ``mmap`` only for the zip format (a legacy, pre-1.6 ``torch.save`` file is
    read whole: PyTorch cannot memory-map it)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and zipfile.is_zipfile(path))
    except Exception as error:  # truncation and unpickling errors come in many types
        if "Weights only load failed" in str(error):
            raise CheckpointError(
                f"checkpoint {path} contains pickled Python objects, which are never loaded (they could run "
                "code). Convert it once where you trust the file: sd = torch.load(path, weights_only=False); "
                "safetensors.torch.save_file(sd['model'], 'model.safetensors'), then pass model.safetensors"
            ) from error
        kind = "truncated" if isinstance(error, (zipfile.BadZipFile, EOFError)) else "not a PyTorch checkpoint"
        raise CheckpointError(
            f"checkpoint {path} could not be read ({kind}: {error}); pass a .pt/.pth/.safetensors state dict"
        ) from error


def _unwrap(state: object, path: Path) -> dict[str, Tensor]:
    while isinstance(state, dict) and not _is_tensor_dict(state):
        inner = next((state[key] for key in _WRAPPER_KEYS if isinstance(state.get(key), dict)), None)
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


# --------------------------------------------------------------------------------------------- layouts
def page4d_head_layout(state: Mapping[str, Tensor] | list[str]) -> PageMaskHeadLayout | None:
    """``"fin10"`` or ``"official"`` for a state dict (or key list) with a PAGE-4D mask head whose layout the
    names and shapes identify; None without one or when they fit neither (an unknown head)."""
    keys = list(state)
    if not any(k.startswith(PAGE4D_MASK_PREFIX) for k in keys):
        return None
    middle = f"{PAGE4D_MASK_PREFIX}head0.2.weight"
    scalars = {f"{PAGE4D_MASK_PREFIX}alpha_logit", f"{PAGE4D_MASK_PREFIX}tau_logit"}
    if isinstance(state, Mapping) and middle in state:
        shape = tuple(state[middle].shape)
        if len(shape) == 4 and shape[1:] == (1, 3, 3):
            return "fin10"
        if len(shape) == 4 and shape[2:] == (1, 1) and shape[1] > 1:
            return "official"
        return None
    if scalars & set(keys):
        return "fin10"
    return "official" if middle in keys else None


def detect_layout(keys: list[str] | Mapping[str, Tensor]) -> Layout:
    """``"pi3"``, ``"vggt"``, ``"page4d_fin10"``, ``"page4d_official"`` or ``"ours"`` from a state dict's key
    names (and, given a state dict, the PAGE-4D mask head's shapes)."""
    state = keys
    keys = list(keys)
    if not any(k.startswith("aggregator.") for k in keys) and any(k.startswith(("decoder.", "encoder.")) for k in keys):
        return "pi3"
    if any(k.startswith(("aggregator.frame_blocks.", "aggregator.global_blocks.")) for k in keys):
        page = page4d_head_layout(state)
        if page is None:
            return "vggt"
        return "page4d_fin10" if page == "fin10" else "page4d_official"
    if any(k.startswith("aggregator.") for k in keys):
        return "ours"
    raise CheckpointError(
        "cannot tell the checkpoint layout: no aggregator.* (VGGT) or encoder./decoder.* (Pi3) keys; "
        f"first keys: {keys[:5]}"
    )


def layout_name(layout: str) -> str:  # any string: a layout read from a file may be unknown
    """A layout's id with its name for people: ``page4d_fin10 [PAGE-4D (fin10)]``."""
    name = next((people for known, people in LAYOUT_NAMES.items() if known == layout), layout)
    return f"{layout} [{name}]"


def rename_vggt_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Upstream VGGT names -> ours (:data:`VGGT_ALIASES`)."""
    return {_vggt_to_ours(key): value for key, value in state.items()}


def _vggt_to_ours(key: str) -> str:
    for old, new in VGGT_ALIASES:
        if key.startswith(old):
            return new + key[len(old) :]
    return key


def _pi3_to_ours(key: str) -> str | None:
    if key.startswith("encoder."):
        return "aggregator.patch_embed." + key[len("encoder.") :]
    if key == "register_token":
        return "aggregator.register_token"
    match = _PI3_DECODER.match(key)
    if match:
        index, rest = int(match.group(1)), match.group(2)
        pair, kind = divmod(index, 2)
        if pair < PI3_DECODER_PAIRS:
            return f"aggregator.{'view' if kind else 'time'}_blocks.{pair}.{rest}"
    return None  # Pi3's heads, image_mean / image_std: no counterpart


def model_names(state: Mapping[str, Tensor], layout: Layout) -> dict[str, str]:
    """Our tensor name -> the source key it maps to, for every source key that has a counterpart."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {LAYOUTS}")
    mapping: dict[str, str] = {}
    rename = {"ours": lambda k: k, "pi3": _pi3_to_ours}.get(layout, _vggt_to_ours)
    for key in state:
        ours = rename(key)
        if ours is not None:
            mapping.setdefault(ours, key)
    return mapping


def source_key_for(name: str, available: Mapping[str, object]) -> str | None:
    """The name in ``available`` (our names) that fills model tensor ``name``: itself, or for a branched
    stream copy (``aggregator.pose_time_blocks.12.*``) the layer it copies (``aggregator.time_blocks.12.*``)."""
    if name in available:
        return name
    match = _STREAM_COPY.match(name)
    if match:
        kind, index, rest = match.groups()
        trunk_name = f"aggregator.{kind}_blocks.{index}.{rest}"
        if trunk_name in available:
            return trunk_name
    return None


# ---------------------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class Mismatch:
    target: str
    source: str  # "checkpoint" or "pi3"
    key: str  # the source's own key
    expected: tuple[int, ...]
    found: tuple[int, ...]


@dataclass
class LoadReport:
    """Where every model tensor came from.

    ``sources[name]`` is ``"checkpoint:<key>"``, ``"pi3:<key>"`` or ``"new"`` (kept its initialisation);
    ``unused[source]`` lists a source's keys that filled nothing; ``mismatches`` lists same-named tensors
    whose shapes differ (expected vs found); ``layouts`` the detected (or given) layout per source;
    ``problems`` names modules that must load whole (the PAGE-4D mask head) but came partly or not at all.
    """

    sources: dict[str, str] = field(default_factory=dict)
    unused: dict[str, list[str]] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    layouts: dict[str, Layout] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def new(self) -> list[str]:
        return [name for name, source in self.sources.items() if source == "new"]

    @property
    def loaded(self) -> dict[str, str]:
        return {name: source for name, source in self.sources.items() if source != "new"}

    # Names of the first load_pretrained, kept for callers that use them.
    @property
    def missing(self) -> list[str]:
        return self.new

    @property
    def unexpected(self) -> list[str]:
        return [f"{source}:{key}" for source, keys in self.unused.items() for key in keys]

    @property
    def mismatched(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
        return {m.target: (m.expected, m.found) for m in reversed(self.mismatches)}

    @property
    def ok(self) -> bool:
        """Nothing unused, no shape mismatch, no partly loaded module (new tensors are fine: the model's own)."""
        return not self.unexpected and not self.mismatches and not self.problems

    def summary(self) -> str:
        counts: dict[str, int] = defaultdict(int)
        for source in self.sources.values():
            counts[source.split(":", 1)[0]] += 1
        filled = ", ".join(f"{counts[s]} from {s}" for s in ("checkpoint", "pi3") if counts[s])
        return (
            f"{len(self.sources)} tensors: {filled or 'none loaded'}, {counts['new']} new; "
            f"{len(self.unexpected)} unused source tensors, {len(self.mismatches)} shape mismatches"
            + (f", {len(self.problems)} problems" if self.problems else "")
        )

    def table(self) -> str:
        """A readable table: per module, how many tensors came from each source; then leftovers."""
        rows: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for name, source in self.sources.items():
            rows[module_group(name)][source.split(":", 1)[0]] += 1
        columns = ("checkpoint", "pi3", "new")
        lines = [f"{'module':<42} " + " ".join(f"{c:>10}" for c in columns)]
        for module in sorted(rows):
            lines.append(f"{module:<42} " + " ".join(f"{rows[module][c] or '':>10}" for c in columns))
        totals = [sum(r[c] for r in rows.values()) for c in columns]
        lines.append(f"{'total':<42} " + " ".join(f"{t:>10}" for t in totals))
        for source, keys in self.unused.items():
            if keys:
                groups: dict[str, int] = defaultdict(int)
                for key in keys:
                    groups[module_group(key)] += 1
                listed = ", ".join(f"{g} ({n})" for g, n in sorted(groups.items()))
                lines.append(f"unused in {source} ({len(keys)}): {listed}")
        for m in self.mismatches:
            lines.append(
                f"shape mismatch: {m.target} expects {list(m.expected)}, {m.source}:{m.key} has {list(m.found)}"
            )
        if self.new:
            lines.append(f"new ({len(self.new)}): " + ", ".join(sorted({module_group(n) for n in self.new})))
        lines.extend(f"problem: {problem}" for problem in self.problems)
        return "\n".join(lines)


def module_group(name: str) -> str:
    """The module a tensor belongs to in the report: ``aggregator.time_blocks``, ``track_head.tracker``,
    ``camera_head``, ``decoder`` ... (two name parts inside the aggregator and the track head, else one)."""
    parts = name.split(".")
    if parts[0] in ("aggregator", "track_head") and len(parts) >= 3:
        return ".".join(parts[:2])
    return parts[0]


# ----------------------------------------------------------------------------------------------- load
@dataclass
class _Source:
    label: str
    tensors: Mapping[str, Tensor]
    layout: Layout
    names: dict[str, str]  # our name -> source key
    used: set[str] = field(default_factory=set)


def _open_source(label: str, spec: str | Path | Mapping[str, Tensor], layout: Layout | None) -> _Source:
    tensors = dict(spec) if isinstance(spec, Mapping) else read_state_dict(spec)
    if isinstance(spec, Mapping):
        tensors = _unwrap(tensors, Path(f"<{label} state dict>"))
    layout = layout or detect_layout(tensors)
    return _Source(label, tensors, layout, model_names(tensors, layout))


def load_pretrained(
    model: nn.Module,
    checkpoint: str | Path | Mapping[str, Tensor] | None = None,
    pi3: str | Path | Mapping[str, Tensor] | None = None,
    strict: bool = False,
    checkpoint_layout: Layout | None = None,
    pi3_layout: Layout | None = None,
) -> LoadReport:
    """Fill ``model`` from a VGGT-family checkpoint first and Pi3 second.

    Args:
        model: a :class:`~vggt_t_mv.VGGTTMV` (any module with our tensor names works).
        checkpoint: path (``.pt``, ``.pth``, ``.safetensors``, or a :func:`save_pretrained` folder) or a
            state dict; layout detected unless ``checkpoint_layout`` says (``vggt``, ``ours``, ``pi3``).
        pi3: Pi3 weights (``model.safetensors`` or ``.pt``) or a state dict; layout ``pi3`` unless
            ``pi3_layout`` says otherwise.
        strict: raise :class:`CheckpointError` if any source tensor is unused or any shape mismatches.
    Returns:
        :class:`LoadReport`. Tensors are cast to the model tensor's dtype and copied in place.
    """
    sources = []
    if checkpoint is not None:
        sources.append(_open_source("checkpoint", checkpoint, checkpoint_layout))
    if pi3 is not None:
        sources.append(_open_source("pi3", pi3, pi3_layout or "pi3"))
    report = LoadReport(layouts={s.label: s.layout for s in sources})
    with torch.no_grad():
        for name, target in model.state_dict().items():
            report.sources[name] = "new"
            for source in sources:
                ours = source_key_for(name, source.names)
                if ours is None:
                    continue
                key = source.names[ours]
                found = source.tensors[key]
                if tuple(found.shape) != tuple(target.shape):
                    report.mismatches.append(Mismatch(name, source.label, key, tuple(target.shape), tuple(found.shape)))
                    continue
                target.copy_(found.to(dtype=target.dtype))
                source.used.add(key)
                report.sources[name] = f"{source.label}:{key}"
                break
    report.unused = {s.label: sorted(set(s.tensors) - s.used) for s in sources}
    report.problems = [p for s in sources for p in _whole_group_problems(s, report, model.state_dict())]
    if strict and not report.ok:
        raise CheckpointError(f"strict load failed: {report.summary()}\n{report.table()}")
    return report


def _whole_group_problems(source: _Source, report: LoadReport, targets: Mapping[str, Tensor]) -> list[str]:
    """Why a module of :data:`WHOLE_GROUPS` came from ``source`` only partly (or its tensors fit nowhere)."""
    problems = []
    for prefix in WHOLE_GROUPS:
        offered = sorted(key for ours, key in source.names.items() if ours.startswith(prefix))
        if not offered:
            continue
        wanted = [name for name in targets if name.startswith(prefix)]
        filled = [n for n in wanted if report.sources.get(n, "").startswith(f"{source.label}:")]
        module = prefix.rstrip(".")
        left = [key for key in offered if key not in source.used]
        layout = page4d_head_layout(source.tensors)
        known = f"layout {layout}" if layout else "no known PAGE-4D head layout" + _middle_shape(source.tensors)
        if not wanted:
            problems.append(
                f"{source.label} has a {module} ({known}; {len(offered)} tensors: {', '.join(offered)}) but the "
                "model has none: build the model from this checkpoint (infer_config) or with a PAGE-4D config"
            )
            continue
        missing = [n for n in wanted if n not in filled]
        if filled and missing or left:
            problems.append(
                f"{source.label} {module} is incomplete or of another shape ({known})"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; not loadable: {', '.join(left)}" if left else "")
                + ". Use the checkpoint the mask head was trained in, or one without any mask head tensors"
            )
    return problems


def _middle_shape(state: Mapping[str, Tensor]) -> str:
    key = f"{PAGE4D_MASK_PREFIX}head0.2.weight"
    return f": {key} has shape {list(state[key].shape)}" if key in state else f": no {key}"


# ---------------------------------------------------------------------------------------- save / load
def save_pretrained(model: nn.Module, folder: str | Path, input_hw: tuple[int, int] | None = None) -> Path:
    """Write ``model`` as ``folder/model.safetensors`` + ``folder/config.json``; returns the folder.

    ``input_hw``: the ``(height, width)`` of the images the weights were trained on, stored as config.json's
    ``input_hw`` (:func:`read_saved_input_hw`; the app runs at that size unless told otherwise)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    temporary = folder / f".{WEIGHTS_FILE}.tmp"
    save_file(state, str(temporary), metadata={"format": "vggt_t_mv", "format_version": str(FORMAT_VERSION)})
    temporary.replace(folder / WEIGHTS_FILE)
    cfg: Any = model.cfg  # a VGGTTMV's ModelConfig
    config: dict[str, Any] = {"format_version": FORMAT_VERSION, "model": cfg.to_dict()}
    if input_hw is not None:
        config[INPUT_HW_KEY] = [int(input_hw[0]), int(input_hw[1])]
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return folder


def read_saved_input_hw(folder: str | Path) -> tuple[int, int] | None:
    """The training input ``(height, width)`` a :func:`save_pretrained` folder records (``None``: not recorded, or
    not such a folder)."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text()).get(INPUT_HW_KEY)
    except (ValueError, AttributeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}); rewrite it with save_pretrained") from error
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
        raise CheckpointError(f"{path}: {INPUT_HW_KEY} must be [height, width] in pixels, got {value!r}")
    return int(value[0]), int(value[1])


def read_saved_config(folder: str | Path) -> dict:
    """The ``model`` entry of a :func:`save_pretrained` folder's config.json."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_FILE}; it was not written by save_pretrained")
    fix = "write the folder again with save_pretrained, or pass --config PRESET_OR_JSON with the weights file"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"{path} is not a readable JSON file ({error}); {fix}") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a JSON {type(data).__name__}, not an object; {fix}")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {data.get('format_version')!r}; this vggt_t_mv reads {FORMAT_VERSION}"
        )
    if not isinstance(data.get("model"), dict):
        raise CheckpointError(f'{path} has no "model" object (the ModelConfig fields); {fix}')
    return data["model"]
