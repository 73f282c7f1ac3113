"""Small text helpers for what the app prints (console and viewer status)."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """``count`` and ``noun``, the noun in the plural unless the count is 1: ``"1 camera"``, ``"2 cameras"``,
    ``"0 windows"`` (regular plurals only)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
