"""Per-process slots in a shared directory: ``claim(home)`` takes the first of
``home/<n>`` whose ``home/<n>.lock`` no other process holds (``flock``, kept until the
process exits: the kernel releases it on any exit, kill -9 included), so long-lived
scratch state (``git.IndexOnly``) is reused by one process at a time and taken over,
never cleaned up, after a crash. No pygit2 here: the caller fills the slot."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_SLOTS = 256


@dataclass(frozen=True, slots=True)
class Slot:
    path: Path  # the slot's directory (may not exist yet)
    fd: int  # the held lock; closing it frees the slot


def claim(home: Path) -> Slot:
    """The first free slot under ``home`` (made if needed); ``OSError`` if all are held."""
    home.mkdir(parents=True, exist_ok=True)
    for n in range(MAX_SLOTS):
        fd = _open_lock(home / f"{n}.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        return Slot(home / str(n), fd)
    raise OSError(f"all {MAX_SLOTS} slots in {home} are in use")


def release(slot: Slot) -> None:
    with contextlib.suppress(OSError):
        os.close(slot.fd)


@contextlib.contextmanager
def held(lock_path: Path) -> Iterator[None]:
    """Hold ``lock_path``'s ``flock`` (waiting for it) for the block: a short critical
    section between processes that the kernel ends on any exit, kill -9 included."""
    fd = _open_lock(lock_path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _open_lock(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
