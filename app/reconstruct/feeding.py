"""The model's input, prepared ahead: a background thread turns decoded frames into window tensors on the device.

Threads and bounded queues of a run (the model never waits for the host while they keep up)::

    capture prefetch thread   decode, up to PipelineConfig.prefetch timesteps ahead   (RigCapture.iter_timesteps)
    feeder thread (here)      preprocess each timestep once (overlaps are reused), stack a window, copy it to the
                              device, convert it to float there; at most ``ahead`` windows wait in its queue
    main thread               model call, outputs to the host, Sim(3) stitching               (pipeline.py)
    writer thread             np.save of the previous window while the next one is computed   (writing.py)

On CUDA a window's frames are stacked as uint8 straight into a pinned (page-locked) host buffer, copied with
``non_blocking=True`` on the feeder's own CUDA stream (4x fewer bytes than float32) and converted to float in [0, 1]
on the device; the main thread's stream waits on the copy's event, not the host. So while window ``w`` runs on the
GPU, window ``w + 1`` is already decoded, resized and on its way to the device. On the CPU the same thread builds the
float tensor; there the overlap is with decoding, stitching and writing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from app.capture.calibration.undistort import Undistorter
from app.capture.preprocess import FrameTransform, preprocess_frame
from app.capture.rig import RigCapture
from app.common.timing import StageTimer
from app.common.worker import QueueWorker


@dataclass
class WindowInput:
    """Window ``index`` ready for the model: ``images`` float ``[1, Tw, N, 3, H, W]`` in [0, 1] on the device,
    ``masks`` float ``[1, Tw, N, H, W]`` or None, ``colors`` uint8 ``[Tw, N, H, W, 3]`` on the host (what the
    reconstruction stores), ``ready``: the CUDA event to wait for before using the device tensors (None on CPU)."""

    index: int
    images: torch.Tensor
    masks: torch.Tensor | None
    colors: np.ndarray
    ready: torch.cuda.Event | None = None

    def wait(self) -> None:
        """Make the current CUDA stream wait for this window's copies (no host wait)."""
        if self.ready is not None:
            stream = torch.cuda.current_stream(self.images.device)
            stream.wait_event(self.ready)
            self.images.record_stream(stream)
            if self.masks is not None:
                self.masks.record_stream(stream)


def prepare_timestep(
    raw: list[np.ndarray],
    transforms: list[FrameTransform],
    masks: list[np.ndarray] | None = None,
    undistorters: list[Undistorter | None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """N original RGB frames -> uint8 ``[N, H, W, 3]`` at the model size; N mask frames -> float32 ``[N, H, W]``.

    ``undistorters[n]`` (None: nothing to undo) removes camera ``n``'s lens distortion first (masks: nearest)."""
    if undistorters is not None:
        raw = [frame if u is None else u.image(frame) for frame, u in zip(raw, undistorters, strict=True)]
    colors = np.stack([preprocess_frame(frame, tf) for frame, tf in zip(raw, transforms, strict=True)])
    return colors, None if masks is None else prepare_masks(masks, transforms, undistorters)


def prepare_masks(
    masks: list[np.ndarray], transforms: list[FrameTransform], undistorters: list[Undistorter | None] | None = None
) -> np.ndarray:
    """N external mask frames (original resolution, 0..255) -> float32 ``[N, H, W]`` in {0, 1} at the model size,
    as the run feeds them: lens distortion undone (nearest), then cropped / padded and resized (nearest)."""
    if undistorters is not None:
        masks = [mask if u is None else u.nearest(mask) for mask, u in zip(masks, undistorters, strict=True)]
    resized = [
        preprocess_frame(mask, tf, interpolation=cv2.INTER_NEAREST) > 127
        for mask, tf in zip(masks, transforms, strict=True)
    ]
    return np.stack(resized).astype(np.float32)


def to_model_input(colors: torch.Tensor) -> torch.Tensor:
    """uint8 ``[Tw, N, H, W, 3]`` (any device) -> float32 ``[1, Tw, N, 3, H, W]`` in [0, 1] (x / 255 in float32)."""
    out = torch.empty((1, colors.shape[0], colors.shape[1], 3, *colors.shape[2:4]), device=colors.device)
    out[0].copy_(colors.permute(0, 1, 4, 2, 3))
    return out.div_(255.0)


class WindowFeeder:
    """Prepares the windows ``spans[w]`` for ``w in windows`` (increasing) in a background thread.

    ``read_masks(t)`` gives the N external mask frames of timestep ``t`` (or None without masks). :meth:`get`
    returns the next window; errors of the thread (decoding, preprocessing) are raised there. :meth:`close` stops it.
    """

    def __init__(
        self,
        capture: RigCapture,
        spans: list[tuple[int, int]],
        windows: list[int],
        transforms: list[FrameTransform],
        device: torch.device,
        timer: StageTimer,
        *,
        prefetch: int = 8,
        ahead: int = 1,
        read_masks: Callable[[int], list[np.ndarray]] | None = None,
        undistorters: list[Undistorter | None] | None = None,
    ) -> None:
        self.capture, self.spans, self.windows = capture, spans, list(windows)
        self.transforms, self.device, self.timer = transforms, device, timer
        self.prefetch, self.read_masks = prefetch, read_masks
        self.undistorters = undistorters if undistorters and any(u is not None for u in undistorters) else None
        self._worker: QueueWorker[None, WindowInput] = QueueWorker(
            lambda _: self._produce(), name="window-feeder", ahead=ahead
        )

    # ------------------------------------------------------------------ consumer side
    def get(self) -> WindowInput:
        try:
            return self._worker.get()
        except StopIteration:
            raise StopIteration("no more windows") from None

    def close(self) -> None:
        self._worker.close()

    # ------------------------------------------------------------------ producer side (the worker's thread)
    def _produce(self) -> Iterator[WindowInput]:
        if not self.windows:
            return
        start = self.spans[self.windows[0]][0]
        timesteps = range(start, self.capture.num_timesteps)
        frames = self.capture.iter_timesteps(timesteps, prefetch=self.prefetch, timer=self.timer)
        try:
            stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
            cache: dict[int, tuple[np.ndarray, np.ndarray | None]] = {}
            for w in self.windows:
                begin, end = self.spans[w]
                while not cache or max(cache) < end - 1:
                    step = next(frames, None)
                    if step is None:  # (a StopIteration would end this generator as a RuntimeError)
                        raise RuntimeError(f"the capture ended before timestep {end - 1} of window {w}")
                    t, raw = step
                    if t < begin:  # a timestep between this rank's windows (torchrun): not needed here
                        continue
                    with self.timer.measure("preprocess"):
                        cache[t] = prepare_timestep(
                            raw, self.transforms, self.read_masks and self.read_masks(t), self.undistorters
                        )
                for t in [t for t in cache if t < begin]:
                    del cache[t]
                yield self._window(w, [cache[t] for t in range(begin, end)], stream)
        finally:
            frames.close()

    def _window(self, index: int, steps: list, stream: torch.cuda.Stream | None) -> WindowInput:
        shape = (len(steps), *steps[0][0].shape)
        has_masks = steps[0][1] is not None
        if stream is None:
            with self.timer.measure("preprocess"):
                colors = np.stack([s[0] for s in steps])
                masks = torch.from_numpy(np.stack([s[1] for s in steps]))[None] if has_masks else None
                images = to_model_input(torch.from_numpy(colors))
            return WindowInput(index, images, masks, colors)
        with self.timer.measure("preprocess"):
            pinned = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
            colors = pinned.numpy()
            np.stack([s[0] for s in steps], out=colors)
            pinned_masks = None
            if has_masks:
                pinned_masks = torch.empty((1, *shape[:4]), dtype=torch.float32, pin_memory=True)
                np.stack([s[1] for s in steps], out=pinned_masks.numpy()[0])
        with self.timer.measure("to_device"), torch.cuda.stream(stream):
            images = to_model_input(pinned.to(self.device, non_blocking=True))
            masks = None if pinned_masks is None else pinned_masks.to(self.device, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record(stream)
        return WindowInput(index, images, masks, colors, ready)
