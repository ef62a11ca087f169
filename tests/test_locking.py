"""The store lock (``yoi.locking``): excludes other processes and other threads, is
reentrant in its thread, is freed by the kernel when its holder is killed, is not shared
with a forked child, and is the same ``flock`` filelock takes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from yoi import locking

ROOT = Path(__file__).resolve().parents[1]

HOLDER = """
import sys, time
from yoi import locking
lock = locking.for_path(sys.argv[1], 5.0)
lock.acquire(poll_interval=0.002)
print("held", flush=True)
time.sleep(60)
"""


def hold_in_another_process(path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def fresh(path: Path, timeout: float) -> locking.FlockLock:
    """A lock object of its own (``for_path`` keeps one per path for the process)."""
    return locking.FlockLock(str(path), timeout)


def test_another_process_waits_and_gets_it_at_once_after_a_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "store.lock"
    holder = hold_in_another_process(path)
    try:
        lock = fresh(path, 0.3)
        with pytest.raises(locking.LockTimeout):
            lock.acquire(poll_interval=0.01)
        assert not lock.is_locked
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        started = time.monotonic()
        fresh(path, 5.0).acquire(poll_interval=0.002)
        assert time.monotonic() - started < 1.0
    finally:
        holder.kill()
        holder.wait()


def test_it_is_reentrant_in_its_thread_and_excludes_the_others(tmp_path: Path) -> None:
    lock = locking.for_path(str(tmp_path / "store.lock"), 0.3)
    assert locking.for_path(str(tmp_path / "store.lock"), 9.0) is lock  # one per path
    lock.acquire(poll_interval=0.002)
    lock.acquire(poll_interval=0.002)  # nested: no deadlock
    seen: list[str] = []

    def other() -> None:
        try:
            lock.acquire(poll_interval=0.002)
        except locking.LockTimeout:
            seen.append("timeout")
            return
        seen.append("held")
        lock.release()

    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    assert seen == ["timeout"]
    lock.release()
    assert lock.is_locked  # still held once
    lock.release()
    assert not lock.is_locked
    worker = threading.Thread(target=other)
    worker.start()
    worker.join()
    assert seen == ["timeout", "held"]
    with pytest.raises(RuntimeError):
        lock.release()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_share_the_parents_hold(tmp_path: Path) -> None:
    """The child inherits the open lock file; taking the lock through it would succeed at
    once (``flock`` belongs to the open file). The child opens its own."""
    lock = locking.for_path(str(tmp_path / "store.lock"), 0.3)
    lock.acquire(poll_interval=0.002)
    try:
        pid = os.fork()
        if pid == 0:  # the child: exit 0 only if the lock is busy for it
            try:
                locking.for_path(str(tmp_path / "store.lock"), 0.3).acquire(poll_interval=0.01)
            except locking.LockTimeout:
                os._exit(0)
            os._exit(1)
        _pid, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert lock.is_locked
    finally:
        lock.release()


def test_it_is_the_lock_filelock_takes(tmp_path: Path) -> None:
    filelock = pytest.importorskip("filelock")
    path = tmp_path / "store.lock"
    holder = hold_in_another_process(path)
    try:
        with pytest.raises(filelock.Timeout):
            filelock.FileLock(str(path), timeout=0.2).acquire()
    finally:
        holder.kill()
        holder.wait()
    theirs = filelock.FileLock(str(path), timeout=1)
    with theirs, pytest.raises(locking.LockTimeout):
        fresh(path, 0.2).acquire(poll_interval=0.01)
