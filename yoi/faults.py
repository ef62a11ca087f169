"""Test hooks for crash and fault injection (SPEC §9, reliability harness).

- ``YOI_TEST_CRASH_AT=<point>[,<point>...]``: ``crashpoint(name)`` calls ``os._exit(137)``
  when ``name`` is listed, simulating kill -9 right after a durable step.
- ``YOI_TEST_FAULT=<op>:<n>``: the n-th file-system operation of kind ``op`` (write,
  fsync, rename, link, mkdir, any) in this process raises ``OSError(EIO)``.

Both are read once per process; they cost one dict lookup when unset.
"""

from __future__ import annotations

import errno
import os

_CRASH_AT = frozenset(p for p in os.environ.get("YOI_TEST_CRASH_AT", "").split(",") if p)
_FAULT = os.environ.get("YOI_TEST_FAULT", "")
_fault_op, _, _fault_n = _FAULT.partition(":")
_FAULT_N = int(_fault_n) if _fault_n.isdigit() else 0
_counts: dict[str, int] = {}


def crashpoint(name: str) -> None:
    if name in _CRASH_AT:
        os._exit(137)


def io(op: str) -> None:
    """Count one file-system operation; raise EIO on the configured one."""
    if not _FAULT_N:
        return
    if _fault_op not in (op, "any"):
        return
    _counts[_fault_op] = _counts.get(_fault_op, 0) + 1
    if _counts[_fault_op] == _FAULT_N:
        raise OSError(errno.EIO, f"injected fault on {op} #{_FAULT_N}")
