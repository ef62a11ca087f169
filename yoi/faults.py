"""Test hooks for crash and fault injection (SPEC §9, docs/reliability.md).

- ``YOI_TEST_CRASH_AT=<point>[#k][,...]``: ``crashpoint(name)`` calls ``os._exit(137)``
  (kill -9 right after a durable step) the k-th time ``name`` is reached in this
  process (default: the first time).
- ``YOI_TEST_CRASH_TRACE=<file>``: every crash point reached is appended to ``file``,
  one ``<point>#<k>`` per line, so a harness can enumerate every point an operation
  passes (the crash matrix).
- ``YOI_TEST_FAULT=<op>:<n>[+]``: the n-th file-system operation of kind ``op`` (write,
  fsync, rename, link, mkdir, or ``any``) in this process raises ``OSError(EIO)``; with a
  trailing ``+`` every operation from the n-th on fails (a persistent fault, such as a
  full disk).
- ``YOI_TEST_IO_COUNT=<file>``: at exit, write how many operations of the faulted kind
  this process counted (a harness learns whether the n-th operation was reached).

The environment is read once per process; ``configure`` sets the same knobs in-process
(tests). Each hook costs one truth test when nothing is configured.
"""

from __future__ import annotations

import atexit
import errno
import os
from dataclasses import dataclass, field

OPS = ("write", "fsync", "rename", "link", "mkdir")
CRASH_EXIT = 137


@dataclass(slots=True)
class _Config:
    crash_at: dict[str, int] = field(default_factory=dict)  # point -> occurrence
    trace: str = ""
    fault_op: str = ""
    fault_n: int = 0
    persistent: bool = False
    hits: dict[str, int] = field(default_factory=dict)
    io_count: int = 0

    @property
    def crash_active(self) -> bool:
        return bool(self.crash_at or self.trace)


def _parse_crash(spec: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in spec.split(","):
        name, _, nth = item.strip().partition("#")
        if name:
            out[name] = int(nth) if nth.isdigit() and int(nth) > 0 else 1
    return out


def _build(crash_at: str, trace: str, fault: str) -> _Config:
    op, _, count = fault.partition(":")
    persistent = count.endswith("+")
    count = count.rstrip("+")
    n = int(count) if count.isdigit() else 0
    if op not in (*OPS, "any"):
        n = 0
    return _Config(_parse_crash(crash_at), trace, op, n, persistent)


_cfg = _build(
    os.environ.get("YOI_TEST_CRASH_AT", ""),
    os.environ.get("YOI_TEST_CRASH_TRACE", ""),
    os.environ.get("YOI_TEST_FAULT", ""),
)


def _write_count(path: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(f"{_cfg.io_count}\n")


if os.environ.get("YOI_TEST_IO_COUNT"):
    atexit.register(_write_count, os.environ["YOI_TEST_IO_COUNT"])


def configure(*, crash_at: str = "", trace: str = "", fault: str = "") -> None:
    """Replace the knobs of this process and reset every counter (in-process tests)."""
    global _cfg
    _cfg = _build(crash_at, trace, fault)


def reset() -> None:
    configure()


def _record(line: str) -> None:
    fd = os.open(_cfg.trace, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def crashpoint(name: str) -> None:
    """Exit at once (status 137, no cleanup) if this occurrence of ``name`` is armed."""
    if not _cfg.crash_active:
        return
    k = _cfg.hits[name] = _cfg.hits.get(name, 0) + 1
    if _cfg.trace:
        _record(f"{name}#{k}")
    if _cfg.crash_at.get(name) == k:
        os._exit(CRASH_EXIT)


def io(op: str) -> None:
    """Count one file-system operation; raise EIO on the configured one(s)."""
    if not _cfg.fault_n or _cfg.fault_op not in (op, "any"):
        return
    _cfg.io_count += 1
    n = _cfg.io_count
    if n == _cfg.fault_n or (_cfg.persistent and n > _cfg.fault_n):
        raise OSError(errno.EIO, f"injected fault on {op} #{n}")


def io_count() -> int:
    """How many operations of the configured kind this process has counted."""
    return _cfg.io_count
