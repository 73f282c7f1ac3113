"""The pipeline's background threads (issue 16), on the CPU: the window feeder (decode -> preprocess -> window tensor,
prepared ahead) and the window writer (one window in flight, errors surfaced, order kept)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from app.capture.preprocess import frame_transform, preprocess_frame
from app.common.timing import StageTimer
from app.common.worker import TaskPool
from app.reconstruct.feeding import WindowFeeder, to_model_input
from app.reconstruct.store import Reconstruction
from app.reconstruct.writing import WindowWriter

N, SOURCE_HW, TARGET_HW = 2, (30, 40), (14, 28)


class FakeCapture:
    """``num_timesteps`` timesteps of N cameras; frame (t, n) is filled with ``10 t + n``; counts what it decodes."""

    def __init__(self, num_timesteps: int, fail_at: int | None = None) -> None:
        self.num_timesteps, self.fail_at = num_timesteps, fail_at
        self.decoded: list[int] = []

    def iter_timesteps(self, timesteps, prefetch: int = 8, timer: StageTimer | None = None):
        for t in timesteps:
            if t == self.fail_at:
                raise ValueError(f"frame {t} cannot be decoded")
            self.decoded.append(t)
            if timer is not None:
                timer.add("decode", 0.0)
            yield t, [np.full((*SOURCE_HW, 3), 10 * t + n, np.uint8) for n in range(N)]


def feeder_for(capture: FakeCapture, spans, windows, **options) -> WindowFeeder:
    transforms = [frame_transform(SOURCE_HW, TARGET_HW, "crop")] * N
    return WindowFeeder(capture, spans, windows, transforms, torch.device("cpu"), StageTimer(), **options)


def test_model_input_is_the_frames_over_255_in_t_n_c_h_w_order() -> None:
    colors = np.random.default_rng(0).integers(0, 256, (3, N, *TARGET_HW, 3), dtype=np.uint8)
    images = to_model_input(torch.from_numpy(colors))
    expected = colors.transpose(0, 1, 4, 2, 3).astype(np.float32) / 255.0
    assert images.shape == (1, 3, N, 3, *TARGET_HW) and images.is_contiguous()
    np.testing.assert_array_equal(images[0].numpy(), expected)


def test_feeder_gives_each_window_in_order_decoding_every_timestep_once() -> None:
    spans = [(0, 4), (3, 7), (6, 10)]
    capture = FakeCapture(10)
    feeder = feeder_for(capture, spans, [0, 1, 2])
    try:
        transform = frame_transform(SOURCE_HW, TARGET_HW, "crop")
        for w, (begin, end) in enumerate(spans):
            window = feeder.get()
            assert window.index == w and window.ready is None and window.masks is None
            assert window.colors.shape == (end - begin, N, *TARGET_HW, 3)
            for i, t in enumerate(range(begin, end)):
                for n in range(N):
                    frame = np.full((*SOURCE_HW, 3), 10 * t + n, np.uint8)
                    np.testing.assert_array_equal(window.colors[i, n], preprocess_frame(frame, transform))
            np.testing.assert_array_equal(window.images.numpy(), to_model_input(torch.from_numpy(window.colors)))
        with pytest.raises(StopIteration):
            feeder.get()
    finally:
        feeder.close()
    assert capture.decoded == list(range(10))  # overlaps are reused, not decoded again


def test_feeder_for_one_ranks_windows_skips_the_others() -> None:
    spans = [(0, 3), (2, 5), (4, 7), (6, 9)]
    feeder = feeder_for(FakeCapture(9), spans, [1, 3])
    try:
        assert [feeder.get().index, feeder.get().index] == [1, 3]
    finally:
        feeder.close()


def test_feeder_reraises_a_decoding_error_in_the_caller() -> None:
    feeder = feeder_for(FakeCapture(10, fail_at=5), [(0, 4), (3, 7)], [0, 1])
    try:
        assert feeder.get().index == 0
        with pytest.raises(ValueError, match="frame 5 cannot be decoded"):
            feeder.get()
    finally:
        feeder.close()


def test_feeder_close_stops_a_thread_blocked_on_a_full_queue() -> None:
    spans = [(s, s + 2) for s in range(0, 40, 1)]
    feeder = feeder_for(FakeCapture(41), spans, list(range(len(spans))), ahead=1)
    feeder.get()
    feeder.close()
    assert not any(t.name == "window-feeder" and t.is_alive() for t in threading.enumerate())


def window(length: int) -> dict[str, np.ndarray]:
    shape = (length, 1, 2, 3)
    return {
        "images": np.zeros((*shape, 3), np.uint8),
        "depth": np.ones(shape, np.float32),
        "depth_conf": np.ones(shape, np.float32),
        "world_points": np.zeros((*shape, 3), np.float32),
        "world_points_conf": np.ones(shape, np.float32),
        "extrinsics": np.zeros((length, 1, 3, 4), np.float32),
        "intrinsics": np.zeros((length, 1, 3, 3), np.float32),
    }


def test_writer_keeps_one_window_in_flight_and_commits_in_order(tmp_path: Path) -> None:
    spans = [[0, 2], [1, 3]]
    recon = Reconstruction.create(tmp_path / "r", {"camera_names": ["a"], "image_hw": [2, 3], "spans": spans})
    writer = WindowWriter(recon, StageTimer())
    try:
        assert writer.flush() is None
        writer.submit(0, window(2), {"alignment": {}})
        with pytest.raises(RuntimeError, match="still being written"):
            writer.submit(1, window(2), {"alignment": {}})
        assert writer.flush() == 0 and len(Reconstruction.open(tmp_path / "r").windows()) == 1
        writer.submit(1, window(2), {"alignment": {}})
        assert writer.flush() == 1
    finally:
        writer.close()
    assert len(Reconstruction.open(tmp_path / "r").windows()) == 2


def test_writer_raises_a_failed_write_at_the_next_flush(tmp_path: Path) -> None:
    recon = Reconstruction.create(tmp_path / "r", {"camera_names": ["a"], "image_hw": [2, 3], "spans": [[0, 2]]})
    writer = WindowWriter(recon, StageTimer())
    try:
        writer.submit(0, window(3), {})  # wrong length
        with pytest.raises(ValueError, match="depth has shape|images has shape"):
            writer.flush()
    finally:
        writer.close()
    assert Reconstruction.open(tmp_path / "r").num_timesteps == 0


def test_the_writers_task_threads_give_the_agreement_computed_in_one_thread(tmp_path: Path) -> None:
    """A window's agreement is computed timestep by timestep on the writer's task threads: the same array as one
    call over the window, and a window that stores no timestep (a resumed run planned otherwise) gets an empty one."""
    spans = [[0, 3], [2, 5]]
    recon = Reconstruction.create(tmp_path / "r", {"camera_names": ["a", "b"], "image_hw": [6, 8], "spans": spans})
    rng = np.random.default_rng(3)
    arrays = {
        "images": np.zeros((3, 2, 6, 8, 3), np.uint8),
        "depth": rng.uniform(2.0, 3.0, (3, 2, 6, 8)).astype(np.float32),
        "depth_conf": np.ones((3, 2, 6, 8), np.float32),
        "world_points": np.zeros((3, 2, 6, 8, 3), np.float32),
        "world_points_conf": np.ones((3, 2, 6, 8), np.float32),
        "extrinsics": np.tile(np.eye(3, 4, dtype=np.float32), (3, 2, 1, 1)),
        "intrinsics": np.tile(np.array([[8, 0, 4], [0, 8, 3], [0, 0, 1]], np.float32), (3, 2, 1, 1)),
    }
    arrays["extrinsics"][:, 1, 0, 3] = -0.1  # camera b 0.1 to the side
    encoded = recon.encode_window(0, arrays, start=0)
    with TaskPool(2, name="test-writer-tasks") as tasks:
        parallel = recon.complete_window(encoded, tasks)
        empty = recon.complete_window(recon.encode_window(1, arrays, start=5), tasks)
    serial = recon.complete_window(encoded)
    assert parallel.files["views_agree"].shape == (encoded.held[1] - encoded.held[0], 2, 6, 8)
    assert {0, 1} <= set(np.unique(serial.files["views_agree"]).tolist())  # some pixels agree, some do not
    np.testing.assert_array_equal(parallel.files["views_agree"], serial.files["views_agree"])
    assert empty.files["views_agree"].shape == (0, 2, 6, 8)
