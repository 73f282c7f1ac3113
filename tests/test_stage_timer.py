"""app/common/timing.py: per-stage wall and CPU seconds, the CPU being the measuring thread's own."""

from __future__ import annotations

import threading
import time

import pytest

from app.common.timing import STAGES, StageTimer


def busy(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_sleeping_stage_costs_wall_time_but_no_cpu_time() -> None:
    timer = StageTimer()
    with timer.measure("write"):
        time.sleep(0.2)
    assert timer.to_dict()["write"] >= 0.2
    assert timer.cpu_dict()["write"] < 0.05


def test_a_busy_stage_costs_its_cpu_time_and_other_threads_do_not_count() -> None:
    timer = StageTimer()
    other = threading.Thread(target=busy, args=(0.3,))
    other.start()
    with timer.measure("agreement"):
        busy(0.1)
    other.join()
    cpu = timer.cpu_dict()["agreement"]
    assert 0.1 <= cpu < 0.25  # its own 0.1 s, not the other thread's 0.3 s
    assert timer.to_dict()["agreement"] >= cpu


def test_add_takes_an_optional_cpu_time_and_every_stage_is_reported() -> None:
    timer = StageTimer()
    timer.add("decode", 1.5, 0.5)
    timer.add("model", 2.0)
    assert set(timer.to_dict()) == set(timer.cpu_dict()) == set(STAGES)
    assert (timer.to_dict()["decode"], timer.cpu_dict()["decode"]) == (1.5, 0.5)
    assert (timer.to_dict()["model"], timer.cpu_dict()["model"]) == (2.0, 0.0)
    assert timer.calls["decode"] == 1
    with pytest.raises(ValueError, match="unknown pipeline stage"):
        timer.add("nonsense", 1.0)  # type: ignore[arg-type]  # the check under test
