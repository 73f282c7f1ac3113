"""A live run's state is a typed value (app/viewer/live.py LiveState): fields, a copy for readers, and the read-only
mapping access kept for callers written when it was a dict."""

from __future__ import annotations

import ast

import pytest

from app.viewer.live import LiveState
from tests.helpers.shared import REPO_ROOT


def test_a_new_state_is_loading_with_nothing_done() -> None:
    state = LiveState()
    assert (state.state, state.windows, state.frames_per_s, state.eta_s, state.error) == (
        "loading model",
        None,
        0.0,
        0.0,
        None,
    )


def test_mapping_access_reads_the_fields_and_nothing_else() -> None:
    state = LiveState(state="running", windows=(2, 8), frames_per_s=3.5)
    assert state["state"] == "running" and state["windows"] == (2, 8) and state.get("frames_per_s") == 3.5
    assert state.get("error") is None and state.get("elsewhere", "x") == "x"
    with pytest.raises(KeyError):
        state["elsewhere"]
    with pytest.raises(TypeError):
        state["state"] = "complete"  # type: ignore[index]  # read-only: write the attribute


def test_product_code_reads_the_live_state_by_attribute() -> None:
    """No ``.state[...]`` or ``.state.get(...)`` in app/: the mapping access is for old callers only."""
    found = []
    for path in sorted((REPO_ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            target = None
            if isinstance(node, ast.Subscript):
                target = node.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
                target = node.func.value
            if isinstance(target, ast.Attribute) and target.attr == "state":
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert found == []
