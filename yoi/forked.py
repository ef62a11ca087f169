"""CPU-bound work over two processes: ``split_map`` forks once and joins through a pipe.

Reading 10,000 ticket files from cold is pure-Python parsing; a second core halves it.
Threads would not (the GIL), and a fresh interpreter (multiprocessing's spawn) costs
more to start than the work saves, so the second half of the items goes to a forked
child that sends back ``marshal`` data. Forking is done only where it is safe and
pays: on Linux, with more than one usable CPU, from a process that runs a single
thread (a fork from a process with other threads can inherit a lock one of them held),
for at least ``min_items`` items, and unless ``YOI_PARALLEL=0``. Any failure of the
child (it died, was killed, wrote something unreadable) only means the parent computes
that half itself: the result is always ``[fn(x) for x in items]``.
"""

from __future__ import annotations

import marshal
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from yoi import fsio

T = TypeVar("T")

PARALLEL_MIN = 2000  # items (files to parse) worth a second process: ``min_items`` of callers


def can_fork() -> bool:
    if os.environ.get("YOI_PARALLEL", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        if len(os.sched_getaffinity(0)) < 2:
            return False
    except (AttributeError, OSError):
        return False
    threading = sys.modules.get("threading")
    return threading is None or threading.active_count() == 1


def split_map(fn: Callable[[T], Any], items: Sequence[T], *, min_items: int) -> list[Any]:
    """``[fn(x) for x in items]``, every other item computed in a forked child when
    that is safe and the list is long enough. ``fn``'s results must be marshal-able, and
    ``fn`` must not depend on state it changes (the child's changes are lost)."""
    if len(items) < min_items or not can_fork():
        return [fn(x) for x in items]
    mine, theirs = items[0::2], items[1::2]  # interleaved: costly items are often adjacent
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: compute, send, leave without running any exit handler
        code = 1
        try:
            os.close(read_fd)
            fsio.write_all(write_fd, marshal.dumps([fn(x) for x in theirs]))
            code = 0
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        first = [fn(x) for x in mine]
        data = _read_all(read_fd)
    finally:
        os.close(read_fd)  # a child still writing gets EPIPE and exits
        _pid, status = os.waitpid(pid, 0)
    second = _decode(data, len(theirs)) if status == 0 else None
    if second is None:
        second = [fn(x) for x in theirs]
    out: list[Any] = [None] * len(items)
    out[0::2], out[1::2] = first, second
    return out


def _decode(data: bytes, count: int) -> list[Any] | None:
    try:
        values = marshal.loads(data)
    except (ValueError, EOFError, TypeError):
        return None
    return values if isinstance(values, list) and len(values) == count else None


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)
