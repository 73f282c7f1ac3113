"""The one background-thread helper (app/common/worker.py): items in order through a bounded queue, the body's
exception raised in the caller, a clean stop on close / leaving a ``with`` block (KeyboardInterrupt included), jobs
handed in, and the base thread's stop event and join."""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.common.worker import QueueWorker, TaskPool, Worker
from tests.helpers.shared import REPO_ROOT


def thread_alive(name: str) -> bool:
    return any(t.name == name and t.is_alive() for t in threading.enumerate())


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_items_arrive_in_order_then_stop_iteration_and_the_thread_ends() -> None:
    worker: QueueWorker[None, int] = QueueWorker(lambda _: iter(range(5)), name="t-order", ahead=2)
    assert [worker.get() for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(StopIteration):
        worker.get()
    with pytest.raises(StopIteration):  # and again: it does not wait for more
        worker.get()
    assert worker.join(10) and not thread_alive("t-order")


def test_iterating_gives_every_item() -> None:
    with QueueWorker(lambda _: (i * i for i in range(4)), name="t-iter") as worker:
        assert list(worker) == [0, 1, 4, 9]


def test_the_body_runs_at_most_ahead_items_ahead_of_the_caller() -> None:
    made: list[int] = []

    def body(_: Iterator[None]) -> Iterator[int]:
        for i in range(100):
            made.append(i)
            yield i

    with QueueWorker(body, name="t-ahead", ahead=3) as worker:
        assert wait_for(lambda: len(made) >= 4)
        time.sleep(0.3)
        assert len(made) == 4  # 3 in the queue, the 4th made and waiting for room
        assert worker.get() == 0
        assert wait_for(lambda: len(made) >= 5)
        time.sleep(0.3)
        assert len(made) == 5


def test_the_bodys_exception_is_raised_in_the_caller_after_the_items_before_it() -> None:
    def body(_: Iterator[None]) -> Iterator[int]:
        yield 1
        raise ValueError("frame 2 cannot be decoded")

    with QueueWorker(body, name="t-error") as worker:
        assert worker.get() == 1
        with pytest.raises(ValueError, match="frame 2 cannot be decoded") as raised:
            worker.get()
    frames = [entry.name for entry in raised.traceback]
    assert "body" in frames  # the body's own traceback comes with it
    assert not thread_alive("t-error")


def test_close_stops_a_body_blocked_on_a_full_queue_and_runs_its_finally_in_the_worker_thread() -> None:
    cleaned: list[str] = []

    def body(_: Iterator[None]) -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            cleaned.append(threading.current_thread().name)

    worker: QueueWorker[None, int] = QueueWorker(body, name="t-close", ahead=1)
    assert worker.get() == 0
    worker.close()
    assert not thread_alive("t-close") and cleaned == ["t-close"]
    with pytest.raises(StopIteration):
        worker.get()


def test_a_keyboard_interrupt_in_the_caller_stops_the_worker() -> None:
    with pytest.raises(KeyboardInterrupt):
        with QueueWorker(lambda _: iter(range(1000)), name="t-interrupt", ahead=1) as worker:
            worker.get()
            raise KeyboardInterrupt
    assert not thread_alive("t-interrupt")


def test_a_generator_consumer_that_is_closed_early_stops_the_worker() -> None:
    def frames() -> Iterator[int]:
        with QueueWorker(lambda _: iter(range(1000)), name="t-gen", ahead=2) as worker:
            yield from worker

    it = frames()
    assert [next(it), next(it)] == [0, 1]
    it.close()
    assert not thread_alive("t-gen")


def test_submitted_jobs_are_handled_in_order_and_answered() -> None:
    def body(jobs: Iterator[int]) -> Iterator[str]:
        for job in jobs:
            yield f"done {job} in {threading.current_thread().name}"

    with QueueWorker(body, name="t-jobs", ahead=1, pending=1) as worker:
        answers = []
        for job in range(3):
            worker.submit(job)
            answers.append(worker.get())
    assert answers == [f"done {job} in t-jobs" for job in range(3)]
    assert not thread_alive("t-jobs")


def test_submitting_to_a_stopped_worker_is_refused() -> None:
    worker: QueueWorker[int, int] = QueueWorker(lambda jobs: jobs, name="t-refuse")
    worker.close()
    with pytest.raises(RuntimeError, match="'t-refuse' has stopped"):
        worker.submit(1)


def test_a_worker_sees_its_stop_request_and_cannot_join_itself() -> None:
    seen: dict[str, bool] = {}

    def target(stop: threading.Event) -> None:
        seen["joined itself"] = worker.join(0.01)
        seen["stopped"] = stop.wait(10)

    worker = Worker(target, name="t-base")
    assert not worker.alive
    worker.start()
    assert worker.alive and not worker.stopping
    worker.request_stop()
    assert worker.join(10) and not worker.alive
    assert seen == {"joined itself": False, "stopped": True}


def thread_and_queue_uses(path: Path) -> list[str]:
    """Where ``path`` makes a thread or a queue itself: ``threading.Thread``, ``from threading import Thread``,
    ``import queue`` / ``from queue import ...``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "Thread":
            found.append(f"{path}:{node.lineno}: .Thread")
        elif isinstance(node, ast.ImportFrom) and node.module in ("threading", "queue"):
            names = {alias.name for alias in node.names}
            if node.module == "queue" or "Thread" in names:
                found.append(f"{path}:{node.lineno}: from {node.module} import {', '.join(sorted(names))}")
        elif isinstance(node, ast.Import) and any(alias.name == "queue" for alias in node.names):
            found.append(f"{path}:{node.lineno}: import queue")
    return found


def test_only_the_worker_module_makes_threads_and_queues() -> None:
    worker = REPO_ROOT / "app" / "common" / "worker.py"
    assert thread_and_queue_uses(worker), "the scan finds the worker's own thread and queue"
    others = [
        use
        for package in ("app", "vggt_t_mv")
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
        if path != worker
        for use in thread_and_queue_uses(path)
    ]
    assert others == [], "start background threads with app.common.worker (Worker / QueueWorker):\n" + "\n".join(others)


# ------------------------------------------------------------------------------------------------- TaskPool
def test_task_pool_returns_results_in_item_order_and_counts_the_tasks_cpu_time() -> None:
    def work(n: int) -> int:
        end = time.thread_time() + 0.02
        while time.thread_time() < end:
            pass
        time.sleep(0.01 * (3 - n))  # later items finish first
        return n * n

    with TaskPool(2, name="test-pool") as pool:
        assert pool.map_all(work, range(4)) == [0, 1, 4, 9]
        assert 0.08 <= pool.cpu_seconds < 0.5  # four tasks of 20 ms CPU, in the pool's threads


def test_task_pool_waits_for_every_task_before_raising_the_first_error_in_item_order() -> None:
    finished: list[int] = []

    def work(n: int) -> int:
        if n == 1:
            raise OSError("disk full at item 1")
        if n == 2:
            raise ValueError("item 2")
        time.sleep(0.05)
        finished.append(n)
        return n

    with TaskPool(2, name="test-pool") as pool, pytest.raises(OSError, match="item 1"):
        pool.map_all(work, range(5))
    assert sorted(finished) == [0, 3, 4]  # nothing was still running when the error was raised


def test_a_one_thread_pool_runs_its_tasks_in_the_callers_thread() -> None:
    """...where the caller's own timing sees their CPU time: the pool does not count it a second time."""
    caller = threading.get_ident()
    pool = TaskPool(1, name="test-pool")

    def work(_: int) -> int:
        end = time.thread_time() + 0.02
        while time.thread_time() < end:
            pass
        return threading.get_ident()

    assert pool.map_all(work, range(3)) == [caller] * 3
    assert pool.cpu_seconds == 0.0
    with pytest.raises(ValueError, match="at least one thread"):
        TaskPool(0, name="test-pool")


def test_a_stop_wakes_a_body_waiting_for_a_job_without_waiting_for_the_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline closes its writer after the last window: that must not wait out a poll interval (it did: 0.1 s
    at the end of every run)."""
    import app.common.worker as worker_module

    monkeypatch.setattr(worker_module, "POLL_S", 30.0)  # a body that only polled would keep close() for 30 s

    def body(jobs: Iterator[int]) -> Iterator[int]:
        yield from jobs

    worker: QueueWorker[int, int] = QueueWorker(body, name="waiting-for-jobs")
    worker.submit(7)
    assert worker.get() == 7
    time.sleep(0.05)  # the body is now waiting for the next job
    started = time.perf_counter()
    worker.close()
    assert not worker.alive
    assert time.perf_counter() - started < 5.0
