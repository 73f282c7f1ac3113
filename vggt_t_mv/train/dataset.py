"""Training data: sequences with ground truth, cut into ``[T, N]`` windows.

A **sequence** is anything with the arrays of :class:`vggt_t_mv.data.synthetic.SyntheticRig` (``images``
uint8 ``[T, N, H, W, 3]``, ``depth`` float32 ``[T, N, H, W]`` (0 = unknown), ``valid`` bool ``[T, N, H, W]``,
``extrinsics`` ``[T, N, 3, 4]`` OpenCV camera-from-world, ``intrinsics`` ``[T, N, 3, 3]``, ``dynamic_masks`` bool
``[T, N, H, W]``). Three sources make them:

* :func:`synthetic_sequences`: procedural rigs rendered with :func:`vggt_t_mv.data.make_synthetic_rig`, one per
  seed, with the rig's camera spacing, radius, field of view, speed and number of moving objects drawn per seed;
* :func:`~vggt_t_mv.data.recorded.recorded_sequences`: a folder of recorded samples, one sub-folder per sequence
  in the capture format of :func:`vggt_t_mv.data.write_capture` (``cam0.mp4`` or ``cam0/*.png`` ... plus
  ``ground_truth.npz``);
  ``depth`` and ``dynamic_masks`` may be left out of the npz (their losses are then skipped for that sequence:
  ``depth`` missing = nothing valid, masks missing = ``mask_known`` False);
* dataset roots (``images/`` + ``depths/ intrs/ extrs/``, SegAnyMo masks, time- or camera-major): read by the app's
  capture readers (``app.train.data``), which hand the trainer objects of the :class:`SequenceSource` protocol that
  read each window's frames when it is cut (so hundreds of sequences need no memory up front).

:class:`WindowDataset` cuts every sequence into windows of ``T`` timesteps (``time_stride`` apart) and ``N``
cameras (contiguous in the rig's camera order, wrapping), resized (cover + centre crop) to the training size.
Every item is a :class:`Sample` of tensors; the batch dimension comes from :func:`collate`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from vggt_t_mv.data.recorded import Sequence, SequenceSource, WindowArrays, recorded_sequences
from vggt_t_mv.geometry import depth_to_world_points

CameraOffsets = Literal["all", "first"]  # every rotation of the camera order, or camera 0 first only


# ----------------------------------------------------------------------------------------------------------- samples
@dataclass
class Sample:
    """One window (or a batch of them, with a leading ``B`` on every tensor). Shapes without the batch:

    Conventions: OpenCV camera-from-world extrinsics, pixel ``(u, v)`` = integer column / row, z-depth.
    """

    images: Tensor  # float32 [T, N, 3, H, W] in [0, 1]
    depth: Tensor  # float32 [T, N, H, W], 0 where unknown
    valid: Tensor  # bool [T, N, H, W] depth (and world point) known
    world_points: Tensor  # float32 [T, N, H, W, 3] world coordinates (0 where not valid)
    extrinsics: Tensor  # float32 [T, N, 3, 4]
    intrinsics: Tensor  # float32 [T, N, 3, 3]
    dynamic_masks: Tensor  # float32 [T, N, H, W] 1 = the pixel sees something moving
    mask_known: Tensor  # bool [T, N, H, W] the dynamic-mask label exists

    def to(self, device: torch.device | str) -> Sample:
        return Sample(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})


def collate(samples: list[Sample]) -> Sample:
    """Stack samples into a batch (a leading ``B`` on every tensor)."""
    return Sample(**{f.name: torch.stack([getattr(s, f.name) for s in samples]) for f in dataclasses.fields(Sample)})


def noisy_masks(masks: Tensor, noise: float, generator: torch.Generator) -> Tensor:
    """Ground-truth masks ``[..., H, W]`` with a fraction ``noise`` of pixels flipped: a stand-in for the external
    masks of a motion segmenter, so the fusion gate learns how far to trust them."""
    flip = torch.rand(masks.shape, generator=generator) < noise
    return torch.where(flip.to(masks.device), 1 - masks, masks)


# --------------------------------------------------------------------------------------------------------- sequences
@dataclass
class TimeRange:
    """Timesteps ``start .. stop - 1`` of a :class:`SequenceSource`, as a source of its own (held-out timesteps)."""

    source: SequenceSource
    start: int
    stop: int

    @property
    def name(self) -> str:
        return f"{self.source.name}[t={self.start}..{self.stop - 1}]"

    @property
    def num_timesteps(self) -> int:
        return self.stop - self.start

    @property
    def num_cameras(self) -> int:
        return self.source.num_cameras

    @property
    def image_hw(self) -> tuple[int, int]:
        return self.source.image_hw

    def window_arrays(self, times: np.ndarray, cameras: np.ndarray, target_hw: tuple[int, int]) -> WindowArrays:
        return self.source.window_arrays(np.asarray(times) + self.start, cameras, target_hw)


@dataclass
class SyntheticDataConfig:
    """Procedural rigs, one per seed. ``seeds`` is a list or ``"first-last"`` (inclusive). Per seed, the rig
    parameters are drawn uniformly from the ranges below (``randomize=False`` keeps the defaults)."""

    seeds: list[int] | str = "100-139"
    num_timesteps: int = 8
    num_cameras: int = 4
    height: int = 98
    width: int = 140
    randomize: bool = True
    fov_deg: tuple[float, float] = (50.0, 70.0)
    camera_spacing_deg: tuple[float, float] = (12.0, 24.0)
    rig_radius: tuple[float, float] = (4.5, 6.0)
    rig_yaw_speed_deg: tuple[float, float] = (-20.0, 20.0)
    num_moving_objects: tuple[int, int] = (1, 3)
    cache_dir: str | None = None  # rendered rigs are stored here as npz and read back next time

    def seed_list(self) -> list[int]:
        return parse_seeds(self.seeds)


def parse_seeds(seeds: list[int] | str | int) -> list[int]:
    """``[1, 2]``, ``"100-139"`` (inclusive), ``"1,5,7"`` or ``7`` -> a list of ints."""
    if isinstance(seeds, int):
        return [seeds]
    if isinstance(seeds, str):
        out: list[int] = []
        for part in seeds.split(","):
            part = part.strip()
            if "-" in part:
                first, last = part.split("-", 1)
                out.extend(range(int(first), int(last) + 1))
            elif part:
                out.append(int(part))
        return out
    return [int(s) for s in seeds]


def synthetic_rig_config(cfg: SyntheticDataConfig, seed: int):
    """The :class:`~vggt_t_mv.data.SyntheticRigConfig` of one seed (parameters drawn from ``cfg``'s ranges)."""
    from vggt_t_mv.data.synthetic import SyntheticRigConfig

    values: dict[str, Any] = dict(
        num_timesteps=cfg.num_timesteps, num_cameras=cfg.num_cameras, height=cfg.height, width=cfg.width, seed=seed
    )
    if cfg.randomize:
        rng = np.random.default_rng([seed, 7919])
        values.update(
            fov_deg=float(rng.uniform(*cfg.fov_deg)),
            camera_spacing_deg=float(rng.uniform(*cfg.camera_spacing_deg)),
            rig_radius=float(rng.uniform(*cfg.rig_radius)),
            rig_yaw_speed_deg=float(rng.uniform(*cfg.rig_yaw_speed_deg)),
            num_moving_objects=int(rng.integers(cfg.num_moving_objects[0], cfg.num_moving_objects[1] + 1)),
        )
    return SyntheticRigConfig(**values)


def synthetic_sequences(cfg: SyntheticDataConfig) -> list[Sequence]:
    """Render (or read from ``cfg.cache_dir``) one rig per seed."""
    from vggt_t_mv.data.synthetic import make_synthetic_rig

    sequences = []
    for seed in cfg.seed_list():
        rig_cfg = synthetic_rig_config(cfg, seed)
        cache = None
        if cfg.cache_dir:
            key = json.dumps(rig_cfg.to_dict(), sort_keys=True)
            digest = abs(hash_string(key))
            cache = Path(cfg.cache_dir) / f"rig_seed{seed}_{digest:016x}.npz"
        if cache is not None and cache.is_file():
            with np.load(cache) as data:
                arrays = {k: data[k] for k in data.files}
            sequences.append(Sequence(**arrays, name=f"synthetic-{seed}"))
            continue
        sequence = Sequence.from_rig(make_synthetic_rig(rig_cfg), name=f"synthetic-{seed}")
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            arrays = {f: getattr(sequence, f) for f in ("images", "depth", "valid", "extrinsics", "intrinsics")}
            temporary = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")
            np.savez(temporary, dynamic_masks=sequence.dynamic_masks, **arrays)
            temporary.replace(cache)
        sequences.append(sequence)
    return sequences


def hash_string(text: str) -> int:
    """A stable 64-bit hash of a string (Python's ``hash`` is salted per process)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


# ------------------------------------------------------------------------------------------------------------ windows
@dataclass
class WindowConfig:
    """How sequences are cut into training windows.

    ``timesteps`` x ``cameras`` frames of ``height`` x ``width`` (multiples of 14; ``None``: the trainer sets the
    width the weights were trained at, else 518, and the height from camera 0's aspect, as ``vggt-mv run`` crops
    (:func:`resolve_window_size`)); windows start every
    ``window_stride`` timesteps and take every ``time_stride``-th timestep; ``camera_offsets`` rotates the camera
    order (``"all"``: every rotation, so each camera serves as the reference; ``"first"``: only camera 0 first).
    """

    timesteps: int = 2
    cameras: int = 3
    height: int | None = None
    width: int | None = None
    time_stride: int = 1
    window_stride: int = 1
    camera_offsets: CameraOffsets = "all"


@dataclass(frozen=True)
class WindowIndex:
    sequence: int
    start: int
    camera_offset: int


class WindowDataset(Dataset):
    """Map-style dataset of :class:`Sample` windows over a list of :class:`Sequence`. Deterministic: item ``i``
    is always the same tensors."""

    def __init__(self, sequences: list[SequenceSource], cfg: WindowConfig) -> None:
        if cfg.height is None or cfg.width is None:
            raise ValueError("window height and width are not set: resolve them first (resolve_window_size)")
        if cfg.height % 14 or cfg.width % 14:
            raise ValueError(f"window height and width must be multiples of 14, got {cfg.height}x{cfg.width}")
        if cfg.camera_offsets not in ("all", "first"):
            raise ValueError(f"camera_offsets must be 'all' or 'first', got {cfg.camera_offsets!r}")
        self.sequences, self.cfg = sequences, cfg
        span = (cfg.timesteps - 1) * cfg.time_stride + 1
        self.index: list[WindowIndex] = []
        for s, seq in enumerate(sequences):
            if seq.num_cameras < cfg.cameras:
                raise ValueError(f"sequence {seq.name!r} has {seq.num_cameras} cameras, windows need {cfg.cameras}")
            offsets = range(seq.num_cameras) if cfg.camera_offsets == "all" else range(1)
            for start in range(0, seq.num_timesteps - span + 1, cfg.window_stride):
                self.index.extend(WindowIndex(s, start, o) for o in offsets)
        if not self.index:
            lengths = ", ".join(f"{seq.name or 'sequence'}: {seq.num_timesteps}" for seq in sequences[:4])
            raise ValueError(
                f"no window of {cfg.timesteps} timesteps (time stride {cfg.time_stride}) fits the sequences "
                f"({lengths} timesteps); lower data.window.timesteps"
            )

    def __len__(self) -> int:
        return len(self.index)

    @property
    def target_hw(self) -> tuple[int, int]:
        assert self.cfg.height is not None and self.cfg.width is not None
        return self.cfg.height, self.cfg.width

    def __getitem__(self, i: int) -> Sample:
        cfg, where = self.cfg, self.index[i]
        seq = self.sequences[where.sequence]
        times = where.start + cfg.time_stride * np.arange(cfg.timesteps)
        cams = (where.camera_offset + np.arange(cfg.cameras)) % seq.num_cameras
        arrays = seq.window_arrays(times, cams, self.target_hw)
        fields = {f.name: getattr(arrays, f.name) for f in dataclasses.fields(arrays)}
        return window_sample(**fields, target_hw=self.target_hw)


def resolve_window_size(cfg: WindowConfig, image_hw: tuple[int, int], trained_width: int | None) -> WindowConfig:
    """``cfg`` with its size filled in: ``width`` unset -> ``trained_width`` (the size the weights learned at) or
    518; ``height`` unset -> camera 0's aspect ``image_hw`` at that width, rounded to a multiple of 14 and at most
    the width (``vggt-mv run``'s crop)."""
    width = cfg.width or trained_width or 518
    height = cfg.height
    if height is None:
        rows = round(image_hw[0] * width / image_hw[1] / 14) * 14
        height = int(min(max(rows, 14), width))
    return dataclasses.replace(cfg, height=height, width=width)


def window_sample(
    images: np.ndarray,
    depth: np.ndarray,
    valid: np.ndarray,
    extrinsics: np.ndarray,
    intrinsics: np.ndarray,
    dynamic_masks: np.ndarray,
    mask_known: bool,
    target_hw: tuple[int, int],
) -> Sample:
    """Numpy window arrays (shapes as :class:`Sequence`, ``[T, N, ...]``) -> a :class:`Sample` at ``target_hw``.

    Frames of another size are scaled to cover ``target_hw`` and centre-cropped (bilinear for images, nearest for
    depth, validity and masks); the intrinsics follow (focal lengths scaled, principal point shifted by the crop).
    World points are recomputed from the resized depth and cameras.
    """
    images_t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 1, 4, 2, 3).float() / 255.0
    depth_t = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))
    valid_t = torch.from_numpy(np.ascontiguousarray(valid)).bool() & (depth_t > 0)
    masks_t = torch.from_numpy(np.ascontiguousarray(dynamic_masks)).float()
    intrinsics_t = torch.from_numpy(np.ascontiguousarray(intrinsics, dtype=np.float32)).clone()
    extrinsics_t = torch.from_numpy(np.ascontiguousarray(extrinsics, dtype=np.float32))
    if tuple(images_t.shape[-2:]) != tuple(target_hw):
        images_t, depth_t, valid_t, masks_t, intrinsics_t = resize_window(
            images_t, depth_t, valid_t, masks_t, intrinsics_t, target_hw
        )
    depth_t = torch.where(valid_t, depth_t, torch.zeros_like(depth_t))
    points = depth_to_world_points(depth_t.double(), extrinsics_t.double(), intrinsics_t.double()).float()
    points = torch.where(valid_t[..., None], points, torch.zeros_like(points))
    known = torch.full_like(valid_t, bool(mask_known))
    return Sample(images_t, depth_t, valid_t, points, extrinsics_t, intrinsics_t, masks_t, known)


def resize_window(
    images: Tensor, depth: Tensor, valid: Tensor, masks: Tensor, intrinsics: Tensor, target_hw: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Cover-resize + centre-crop ``images [T, N, 3, h, w]``, ``depth / valid / masks [T, N, h, w]`` to
    ``target_hw``; returns them and the adjusted ``intrinsics [T, N, 3, 3]``."""
    height, width = images.shape[-2:]
    th, tw = target_hw
    scale = max(th / height, tw / width)
    rh, rw = max(th, round(height * scale)), max(tw, round(width * scale))
    top, left = (rh - th) // 2, (rw - tw) // 2
    lead = images.shape[:2]

    def resize(x: Tensor, mode: Literal["nearest", "bilinear"]) -> Tensor:
        flat = x.reshape(-1, *x.shape[2:]) if x.dim() == 5 else x.reshape(-1, 1, *x.shape[2:])
        kwargs = {"align_corners": False, "antialias": True} if mode == "bilinear" else {}
        out = F.interpolate(flat.float(), size=(rh, rw), mode=mode, **kwargs)[..., top : top + th, left : left + tw]
        return out.reshape(*lead, *out.shape[1:]) if x.dim() == 5 else out.reshape(*lead, th, tw)

    intrinsics = intrinsics.clone()
    sx, sy = rw / width, rh / height
    intrinsics[..., 0, 0] *= sx
    intrinsics[..., 1, 1] *= sy
    intrinsics[..., 0, 2] = intrinsics[..., 0, 2] * sx - left
    intrinsics[..., 1, 2] = intrinsics[..., 1, 2] * sy - top
    return (
        resize(images, "bilinear").clamp(0, 1),
        resize(depth, "nearest"),
        resize(valid.float(), "nearest") > 0.5,
        resize(masks, "nearest"),
        intrinsics,
    )


DataKind = Literal["synthetic", "folder", "roots"]
DATA_KINDS: tuple[DataKind, ...] = ("synthetic", "folder", "roots")


@dataclass
class DataConfig:
    """The training data of a run: ``kind`` ``"synthetic"`` (procedural rigs), ``"folder"`` (recorded samples in
    ``folder``) or ``"roots"`` (``roots``: dataset roots or folders of them, read by the app: ``vggt-mv train --data
    ROOT``), windows as ``window`` says, ``batch_size`` windows per step and process, cut by ``num_workers``
    loader processes (0: in the training process)."""

    kind: DataKind = "synthetic"
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)
    folder: str | None = None
    roots: list[str] = field(default_factory=list)
    window: WindowConfig = field(default_factory=WindowConfig)
    batch_size: int = 1
    num_workers: int = 2
    external_mask_prob: float = 0.0  # fraction of steps that feed noisy GT masks as the external mask input
    external_mask_noise: float = 0.05  # fraction of their pixels flipped


def build_sequences(cfg: DataConfig) -> list[SequenceSource]:
    """The sequences a :class:`DataConfig` of kind ``synthetic`` or ``folder`` describes (``roots`` are read by the
    app, which passes its sequences to the trainer)."""
    if cfg.kind == "synthetic":
        return list(synthetic_sequences(cfg.synthetic))
    if cfg.kind == "folder":
        if not cfg.folder:
            raise ValueError("data.kind 'folder' needs data.folder")
        return list(recorded_sequences(cfg.folder))
    if cfg.kind == "roots":
        raise ValueError(
            "data.kind 'roots' (dataset roots) is read by the app's capture readers: train with `vggt-mv train --data "
            "ROOT` (or app.train.train_on_roots), or pass the sequences to vggt_t_mv.train.trainer.train"
        )
    raise ValueError(f"data.kind must be one of {', '.join(DATA_KINDS)}, got {cfg.kind!r}")


def build_dataset(cfg: DataConfig) -> WindowDataset:
    """The :class:`WindowDataset` a :class:`DataConfig` of kind ``synthetic`` or ``folder`` describes."""
    return WindowDataset(build_sequences(cfg), cfg.window)
