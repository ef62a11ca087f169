"""Deferred syncs: an engine's commits are durable through their journals alone, and one
``syncfs`` makes a batch of them durable in place.

In a ``deferred()`` block (``yoi engine run|tick|watch``) every commit is journaled and
syncs only its journal and the journal directory: that is its commit point, as before.
Its files are then written, renamed and moved without a sync, and the journal is renamed
``<name>.<boot id>.applied``: "applied, in effect, not yet durable in place". Once
``BATCH`` commits wait, or the oldest has waited ``MAX_AGE_S`` (a timer thread covers a
long run and an idle watch), ``settle`` calls ``syncfs`` on the file systems of the
journal directory and of the stores, and only then removes them. So a ticket costs the
engine four syncs instead of about thirty, and one ``syncfs`` of 64 commits costs less
than a tenth of their own syncs (docs/performance.md). A thread that settled each commit
at once lost most of that to the interpreter lock it took from the engine.

What an applied journal means to others (``journal.roll_forward``, under the store lock):

- one from this boot is in effect: every process sees its files (the page cache). A
  writer outside a ``deferred()`` block settles them first (one ``syncfs``), so no change
  of its own can be overwritten by a replay later; a deferred writer's own journal comes
  after them and replays after them;
- one from an earlier boot (the operating system stopped before its ``syncfs``) may have
  lost any of its files: it is replayed like an interrupted journal, with the writes made
  before a completed directory move aimed at where the move took them, and created files
  rewritten (``journal.apply_ops(rebase=True)``).

If a ``syncfs`` fails, its journals are renamed back to ``*.json`` (the next lock holder
replays them with a sync per file) and the error is raised by the next deferred commit
or at the end of the block.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from yoi import faults, fsio
from yoi.fsio import StoreIOError

APPLIED = ".applied"
_BOOT_ID = "/proc/sys/kernel/random/boot_id"


@functools.cache
def boot() -> str | None:
    """This boot's id (Linux), None where there is none: then nothing is deferred."""
    try:
        with open(_BOOT_ID, encoding="ascii") as f:
            text = f.read().strip().replace("-", "")
    except OSError:
        return None
    return text if text.isalnum() and 8 <= len(text) <= 64 else None


@functools.cache
def _libc_syncfs() -> Any:
    """libc's ``syncfs``, None where it is missing (then nothing is deferred)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).syncfs
    except (ImportError, OSError, AttributeError):
        return None


def available() -> bool:
    return boot() is not None and _libc_syncfs() is not None


def applied_name(path: Path) -> Path:
    """``<time>-<id>.json`` -> ``<time>-<id>.<boot>.applied``."""
    return path.with_name(f"{path.stem}.{boot()}{APPLIED}")


@functools.cache
def this_boot() -> str:
    """The end of the name of an applied journal of this boot."""
    return f".{boot()}{APPLIED}"


def in_effect(journal_dir: Path) -> list[Path]:
    """This boot's applied journals, oldest first."""
    try:
        names = os.listdir(journal_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    mine = this_boot()
    return [journal_dir / n for n in sorted(names) if n.endswith(mine)]


# ---- the state of this process ----------------------------------------------------------
BATCH = 64  # applied journals settled at once (one syncfs: docs/performance.md)
MAX_AGE_S = 1.0  # nor is one left unsettled longer than this (a long run, an idle watch)


class _State:
    def __init__(self) -> None:
        self.depth = 0
        self.lock = threading.Lock()
        self.work: dict[Path, set[Path]] = {}  # journal dir -> stores written
        self.count = 0
        self.since = 0.0  # monotonic time of the oldest unsettled commit
        self.error: OSError | None = None
        self.timer: threading.Thread | None = None
        self.wake = threading.Event()


_STATE = _State()


def deferring() -> bool:
    return _STATE.depth > 0


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Defer the syncs of this process's journaled commits (module docstring); at the end
    every one of them is durable in place. Nothing is deferred where ``available()`` is
    False."""
    if not available():
        yield
        return
    _STATE.depth += 1
    ended = False
    try:
        yield
        ended = True
    finally:
        _STATE.depth -= 1
        if _STATE.depth == 0:
            _STATE.wake.set()  # the timer ends
            with _STATE.lock:
                _settle_all()
            if ended:  # an error already on its way is not replaced by a sync's
                check()


def check() -> None:
    """Raise the error of a failed sync (once)."""
    with _STATE.lock:
        error, _STATE.error = _STATE.error, None
    if error is not None:
        raise StoreIOError(
            f"cannot sync the engine's changes to disk: {error.strerror or error}; "
            "they are kept in journals and completed by the next yoi command",
            where=str(error.filename or ""),
            hint="fix the disk problem (space, permissions), then run any yoi command",
            code=error.errno,
        )


def applied(journal: Path, store_dir: Path) -> None:
    """Mark ``journal`` applied (its files are all written); the batch is settled once it
    has ``BATCH`` commits or its oldest is ``MAX_AGE_S`` old. If the rename fails, the
    journal cannot be renamed (tried twice), its files are synced now and it is removed;
    if even that fails, it stays pending: the next lock holder replays it."""
    if not _mark(journal):
        with contextlib.suppress(OSError):
            syncfs([journal.parent, store_dir])
            faults.io("rename")
            os.unlink(journal)
        return
    now = time.monotonic()
    with _STATE.lock:
        _STATE.work.setdefault(journal.parent, set()).add(store_dir)
        _STATE.count += 1
        if _STATE.count == 1:
            _STATE.since = now
        if _STATE.count >= BATCH or now - _STATE.since >= MAX_AGE_S:
            _settle_all()
        if _STATE.timer is None or not _STATE.timer.is_alive():
            _STATE.wake.clear()
            _STATE.timer = threading.Thread(target=_timer, name="yoi-checkpoint", daemon=True)
            _STATE.timer.start()


def _mark(journal: Path) -> bool:
    for _attempt in range(2):
        try:
            faults.io("rename")
            os.rename(journal, applied_name(journal))
        except OSError:
            continue
        return True
    return False


def _timer() -> None:
    """Settle what waits longer than ``MAX_AGE_S`` while the engine does not commit (a
    runner at work, an idle watch). It wakes once a period: no contention."""
    while not _STATE.wake.wait(MAX_AGE_S / 2):
        with _STATE.lock:
            if _STATE.count and time.monotonic() - _STATE.since >= MAX_AGE_S:
                _settle_all()


def _settle_all() -> None:
    """Settle the batch (call with ``_STATE.lock`` held); a failure is kept for ``check``."""
    work, _STATE.work, _STATE.count = _STATE.work, {}, 0
    for journal_dir, stores in work.items():
        try:
            settle(journal_dir, stores)
        except OSError as exc:
            _STATE.error = _STATE.error or exc


# ---- settling ---------------------------------------------------------------------------
def settle(journal_dir: Path, stores: Iterable[Path] = ()) -> int:
    """Make this boot's applied journals in ``journal_dir`` durable in place and remove
    them; returns how many. ``stores``: the store dirs they wrote (each journal's own
    store is added from its body). On a failed sync they are renamed back to pending."""
    found = in_effect(journal_dir)
    if not found:
        return 0
    dirs = {journal_dir, *stores, *(_store_of(p) for p in found)}
    try:
        syncfs(d for d in dirs if d is not None)
    except OSError:
        for path in found:
            with contextlib.suppress(OSError):
                os.rename(path, path.with_name(path.name.split(".")[0] + ".json"))
        raise
    for path in found:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    fsio.fsync_dir(journal_dir)
    return len(found)


def _store_of(path: Path) -> Path | None:
    """The store an applied journal names (the start of its body)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        start = head.index(b'"store": ') + len(b'"store": ')
        value, _end = json.JSONDecoder().raw_decode(head[start:].decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None
    return Path(value) if isinstance(value, str) and value else None


def syncfs(dirs: Iterable[Path]) -> None:
    """``syncfs`` once per file system holding one of ``dirs`` (those that exist)."""
    call = _libc_syncfs()
    seen: set[int] = set()
    for directory in dirs:
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            continue
        try:
            dev = os.fstat(fd).st_dev
            if dev in seen:
                continue
            seen.add(dev)
            faults.io("fsync")
            if call is None:
                os.sync()
            elif call(fd) != 0:
                import ctypes

                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code), str(directory))
        finally:
            os.close(fd)
