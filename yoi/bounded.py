"""Bounded process-wide memos: plain dicts emptied when they are full.

What they hold is cheap to make again (a parsed record, a joined path, a regex answer),
so clearing now and then is all the eviction they need."""

from __future__ import annotations

from typing import TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


def put(memo: dict[_K, _V], key: _K, value: _V, limit: int) -> _V:
    """``memo[key] = value``, ``memo`` emptied first when it holds ``limit`` entries;
    returns ``value``."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value
