"""The store lock: an exclusive ``flock`` on ``<git-common-dir>/yoi/locks/store.lock``,
reentrant per thread, one object per path per process.

It is the lock ``filelock.FileLock`` takes (the same ``flock`` on the same file, so the
two exclude each other), with only what yoi uses of it, at a fraction of the cost:
filelock 4.2 spends about 60 µs of Python per acquire and release (fork tracking, a
registry of descriptors, thread-local contexts), twice per ticket in an engine run; this
keeps the file open and spends a few µs (docs/performance.md).

- between processes: ``flock(LOCK_EX | LOCK_NB)``, polled every ``poll_interval`` until
  ``timeout``; the kernel releases it on any exit, kill -9 included (notes/reliability.md
  R15). The file is opened once (no symlink followed) and kept open: ``flock`` belongs
  to the open file, so releasing is ``LOCK_UN``, never a close;
- between threads: a ``threading.Lock`` (a lease's heartbeat thread takes the store lock
  too); a thread that holds it may take it again (nested blocks);
- after ``fork``: the child forgets the parent's file and state (an inherited open file
  would share the parent's ``flock`` and let both in);
- a file system without ``flock`` is refused (never a silent fallback to no lock).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time

_OPEN = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)


class LockTimeout(Exception):
    """The lock stayed busy for the whole timeout."""


class LockUnsupported(OSError):
    """The file system holding the lock file has no ``flock``."""


class FlockLock:
    """See the module docstring. Use ``for_path``: one object per path per process."""

    def __init__(self, path: str, timeout: float):
        self.path = path
        self.timeout = timeout
        self._fd: int | None = None
        self._threads = threading.Lock()
        self._local = threading.local()

    @property
    def is_locked(self) -> bool:
        """True when the calling thread holds it."""
        depth: int = getattr(self._local, "depth", 0)
        return depth > 0

    def acquire(self, poll_interval: float) -> None:
        depth: int = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            return
        deadline = time.monotonic() + self.timeout
        if not self._threads.acquire(timeout=max(self.timeout, 0.0)):
            raise LockTimeout(self.path)
        try:
            self._take(deadline, poll_interval)
        except BaseException:
            self._threads.release()
            raise
        self._local.depth = 1

    def _take(self, deadline: float, poll_interval: float) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, _OPEN, 0o644)
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno in (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK):
                    raise LockUnsupported(exc.errno, exc.strerror, self.path) from exc
                raise
            if time.monotonic() >= deadline:
                raise LockTimeout(self.path)
            time.sleep(poll_interval)

    def release(self) -> None:
        depth: int = getattr(self._local, "depth", 0)
        if depth <= 0:
            raise RuntimeError(f"release of a lock this thread does not hold: {self.path}")
        self._local.depth = depth - 1
        if depth == 1:
            assert self._fd is not None
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._threads.release()

    def _forget(self) -> None:
        """In a forked child: the parent's open file and state are not this process's."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # the parent's flock stays: it has its own descriptor
        self._fd = None
        self._threads = threading.Lock()
        self._local = threading.local()


_LOCKS: dict[str, FlockLock] = {}
_LOCKS_GUARD = threading.Lock()


def for_path(path: str, timeout: float) -> FlockLock:
    """The process's lock object for ``path`` (made once; its directory must exist)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(path)
        if lock is None:
            lock = _LOCKS[path] = FlockLock(path, timeout)
        return lock


def _after_fork_in_child() -> None:
    global _LOCKS_GUARD
    _LOCKS_GUARD = threading.Lock()
    for lock in _LOCKS.values():
        lock._forget()


os.register_at_fork(after_in_child=_after_fork_in_child)
