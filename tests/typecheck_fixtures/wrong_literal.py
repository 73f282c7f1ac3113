"""Calls the type checker must refuse (tests/test_typecheck.py checks it does): a plain ``str`` where a mode
``Literal`` is expected. Each wrong line ends with ``# wrong``; nothing here is ever run or collected."""

from __future__ import annotations

from app.export.selection import Selection


def stream_from_a_plain_string(name: str) -> Selection:
    return Selection(stream=name)  # wrong


def motion_from_a_plain_string(name: str) -> Selection:
    return Selection(motion=name)  # wrong


def modes_from_literals() -> Selection:
    return Selection(stream="pose", motion="static")
