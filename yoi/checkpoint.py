"""Deferred syncs: an engine's commits are durable through one journal file per batch,
and one ``syncfs`` makes the batch durable in place.

In a ``deferred()`` block (``yoi engine run|tick|watch``) a commit appends its record
(the operations, as a journal holds them) to the process's *segment*,
``<journal dir>/<time>-<id>.<boot id>.seg``, and syncs it: that is its commit point (the
segment's directory entry is synced once, when it is made). Its files are then written,
renamed and moved without a sync, and a mark line follows the record: "applied, in
effect, not yet durable in place". Once ``BATCH`` commits are marked, or the oldest has
waited ``MAX_AGE_S`` (a timer thread covers a long run and an idle watch), ``settle``
calls ``syncfs`` on the file systems of the journal directory and of the stores, and
only then removes the segment. So a ticket costs the engine two syncs instead of about
thirty and creates no journal file of its own (docs/performance.md). A thread that
settled each commit at once lost most of that to the interpreter lock.

What a segment means to others (``journal.roll_forward``, under the store lock):

- one of this boot that ends with a mark is in effect: every process sees its files
  (the page cache). A writer outside a ``deferred()`` block settles it first (one
  ``syncfs``), so no change of its own can be overwritten by a replay later; a deferred
  writer's records come after it and replay after it; the janitor settles a killed
  engine's;
- a record without its mark was cut short by a stop: it is replayed (and a record cut
  short before its sync is dropped: nothing of it was applied);
- every record of a segment of an earlier boot (the operating system stopped before its
  ``syncfs``) may have lost any of its files: they are replayed in commit order (records
  of all segments by time), with the writes made before a completed directory move aimed
  at where the move took them, and created files rewritten
  (``journal.apply_ops(rebase=True)``).

If a ``syncfs`` fails, the segment stays (the next lock holder replays what it must and
syncs before removing it) and the error is raised by the next deferred commit or at the
end of the block.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yoi import faults, fsio
from yoi.fsio import StoreIOError

SEGMENT = ".seg"
MARK = b'{"applied": true}\n'
BATCH = 64  # commits settled at once (one syncfs: docs/performance.md)
MAX_AGE_S = 1.0  # nor is one left unsettled longer than this (a long run, an idle watch)
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


@functools.cache
def this_boot() -> str:
    """The end of the name of a segment of this boot."""
    return f".{boot()}{SEGMENT}"


# ---- reading segments -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Record:
    seq: int  # time of the commit (orders records of several segments)
    body: dict[str, Any]  # as a journal file holds it: store, ops, deferred
    applied: bool


def records(path: Path) -> list[Record]:
    """The records of a segment, in order; a line cut short ends it (never synced)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    out: list[Record] = []
    for line in data.split(b"\n")[:-1]:  # the last piece has no newline: cut short
        if line + b"\n" == MARK and out:
            out[-1] = Record(out[-1].seq, out[-1].body, True)
            continue
        try:
            body = json.loads(line)
            seq = int(body["seq"])
        except (ValueError, KeyError, TypeError):
            break
        out.append(Record(seq, body, False))
    return out


def in_effect(path: Path) -> bool:
    """A segment of this boot whose last record is marked (or with no record)."""
    if not path.name.endswith(this_boot()):
        return False
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - len(MARK)))
            return size == 0 or f.read() == MARK
    except FileNotFoundError:
        return False


def segments(journal_dir: Path) -> list[Path]:
    try:
        names = os.listdir(journal_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [journal_dir / n for n in sorted(names) if n.endswith(SEGMENT)]


# ---- the state of this process ----------------------------------------------------------
class _State:
    def __init__(self) -> None:
        self.depth = 0
        self.lock = threading.RLock()  # settle and retire take it inside batches too
        self.open: dict[Path, tuple[Path, int]] = {}  # journal dir -> its segment, open
        self.stores: dict[Path, set[Path]] = {}  # journal dir -> stores written
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
    """Defer the syncs of this process's commits (module docstring); at the end every one
    of them is durable in place. Nothing is deferred where ``available()`` is False."""
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
            "they are kept in the journal and completed by the next yoi command",
            where=str(error.filename or ""),
            hint="fix the disk problem (space, permissions), then run any yoi command",
            code=error.errno,
        )


def append(journal_dir: Path, body: bytes, synced: Iterable[Path]) -> Path:
    """Append a commit's record to this process's segment and sync it: the commit point.
    A failure leaves no record and raises ``OSError``. ``synced``: directories to sync
    with it (a journal removal of this process not yet synced). Returns the segment."""
    with _STATE.lock:
        path, fd, new = _segment(journal_dir)
        size = os.fstat(fd).st_size
        try:
            faults.io("write")
            fsio.write_all(fd, body + b"\n")
            fsio.sync_all_staged([fd], [*([journal_dir] if new else []), *synced])
        except OSError:
            _cut(journal_dir, fd, size)
            raise
        return path


def mark(journal_dir: Path, store_dir: Path) -> None:
    """The last record of the segment is applied; the batch is settled once it has
    ``BATCH`` commits or its oldest is ``MAX_AGE_S`` old. If the mark cannot be written
    (tried twice), the batch is synced and its segment removed now; if even that fails,
    the unmarked record is replayed by the next lock holder: the same files again."""
    with _STATE.lock:
        kept = _STATE.open.get(journal_dir)
        if kept is None:
            return
        _STATE.stores.setdefault(journal_dir, set()).add(store_dir)
        if not _write_mark(kept[1]):
            with contextlib.suppress(OSError):
                sync_for(journal_dir, [kept[0]], _STATE.stores.pop(journal_dir, ()))
                retire([kept[0]])
            return
        _STATE.count += 1
        now = time.monotonic()
        if _STATE.count == 1:
            _STATE.since = now
        if _STATE.count >= BATCH or now - _STATE.since >= MAX_AGE_S:
            _settle_all()
        _start_timer()


def _write_mark(fd: int) -> bool:
    for _attempt in range(2):
        try:
            faults.io("write")
            os.write(fd, MARK)
        except OSError:
            continue
        return True
    return False


def _segment(journal_dir: Path) -> tuple[Path, int, bool]:
    """The open segment for ``journal_dir`` (a new one when it was settled meanwhile,
    by this process or another)."""
    kept = _STATE.open.get(journal_dir)
    if kept is not None and os.fstat(kept[1]).st_nlink > 0:
        return kept[0], kept[1], False
    if kept is not None:
        os.close(kept[1])
    path = journal_dir / f"{time.time_ns():020d}-{os.urandom(8).hex()}{this_boot()}"
    faults.io("write")
    fd = fsio.create_new(path, 0o644)
    _STATE.open[journal_dir] = (path, fd)
    return path, fd, True


def _cut(journal_dir: Path, fd: int, size: int) -> None:
    """Take back a record whose commit point failed (nothing of it may be replayed)."""
    try:
        os.ftruncate(fd, size)
    except OSError:
        path, _fd = _STATE.open.pop(journal_dir)
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)


def _start_timer() -> None:
    if _STATE.timer is None or not _STATE.timer.is_alive():
        _STATE.wake.clear()
        _STATE.timer = threading.Thread(target=_timer, name="yoi-checkpoint", daemon=True)
        _STATE.timer.start()


def _timer() -> None:
    """Settle what waits longer than ``MAX_AGE_S`` while the engine does not commit (a
    runner at work, an idle watch). It wakes once a period: no contention."""
    while not _STATE.wake.wait(MAX_AGE_S / 2):
        with _STATE.lock:
            if _STATE.count and time.monotonic() - _STATE.since >= MAX_AGE_S:
                _settle_all()


def _settle_all() -> None:
    """Settle this process's segments (call with ``_STATE.lock`` held); a failure is kept
    for ``check``."""
    stores, _STATE.stores, _STATE.count = _STATE.stores, {}, 0
    for journal_dir in list(_STATE.open):
        try:
            settle(journal_dir, stores.get(journal_dir, ()))
        except OSError as exc:
            _STATE.error = _STATE.error or exc


# ---- settling ---------------------------------------------------------------------------
def settle(journal_dir: Path, stores: Iterable[Path] = ()) -> int:
    """Make the segments in effect in ``journal_dir`` durable in place and remove them
    (this process's own included: its next commit starts a new one); returns how many.
    On a failed sync they stay and ``OSError`` is raised."""
    with _STATE.lock:
        found = [p for p in segments(journal_dir) if in_effect(p)]
        if not found:
            return 0
        sync_for(journal_dir, found, stores)
        retire(found)
        return len(found)


def sync_for(journal_dir: Path, found: Iterable[Path], stores: Iterable[Path] = ()) -> None:
    """``syncfs`` for the segments ``found`` (the file systems of their stores too)."""
    dirs = {journal_dir, *stores, *(_store_of(p) for p in found)}
    syncfs(d for d in dirs if d is not None)


def retire(paths: Iterable[Path]) -> None:
    """Remove segments whose records are durable in place (and sync their directory)."""
    removed = set()
    with _STATE.lock:
        for path in paths:
            kept = _STATE.open.get(path.parent)
            if kept is not None and kept[0] == path:
                del _STATE.open[path.parent]
                os.close(kept[1])
            with contextlib.suppress(FileNotFoundError):
                faults.io("rename")
                os.unlink(path)
            removed.add(path.parent)
    fsio.fsync_dirs(sorted(removed))


def _store_of(path: Path) -> Path | None:
    """The store the first record of a segment names (a segment of another process)."""
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
