"""Journaled multi-file commits.

A transaction's operations are checked first (no path may pass through a symlink: a
refused transaction writes nothing). Then, before any store file changes, its journal
``<runtime>/journal/<time>-<id>.json`` and the temp files of its first writes are
written and synced in one round, with the journal directory (the commit point); then
each file is replaced atomically, directory moves are done, and the journal is removed.

- a failure before the commit point changes nothing and says so ("nothing was changed");
  the journal and the temp files are removed;
- a failure after it is retried once at once (every operation is idempotent); if the
  retry fails too, the error says the change is saved and the next lock holder rolls it
  forward, so the caller must not repeat it;
- a crash after it is rolled forward by the next lock holder (``roll_forward``), in the
  order the journals were written. Rolling forward twice is harmless.

The journal is removed without syncing its directory: the next commit's first round
syncs it (every commit's does, a single write's too), and so does the end of the
process (``flush``). So a removed journal can come back after an operating-system crash
only while no later change exists, and rolling it forward again rewrites what it
already wrote. This saves two waits for the disk per commit (docs/reliability.md).

A transaction of a single write needs no journal: the atomic replace is its commit (a
failure after it says "the change is written but not synced").

In a ``checkpoint.deferred()`` block (the engine) every commit, a single write too, is
a record appended to the process's journal segment, only the segment is synced, and the
files are made durable later by one ``syncfs`` for many commits (``checkpoint``). A
record names the boot it was written in; one replayed after the operating system
stopped is replayed with ``rebase`` (a write before a completed move is aimed at where
the move took it; a created file is rewritten unless it holds the record's bytes).
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from yoi import checkpoint, faults, fsio
from yoi.fsio import StoreIOError
from yoi.journal_apply import (
    Move,
    Op,
    Remove,
    Staged,
    Write,
    apply_ops,
    discard,
    preflight,
    stage_first,
    unlink,
)

__all__ = ["Move", "Op", "Remove", "Write", "apply_ops", "commit", "pending", "preflight"]

NOTHING_CHANGED = "nothing was changed"
SAVED = "the change is saved and will be completed by the next yoi command"
WRITTEN = "the change is written but not synced to disk"


def _encode(op: Op) -> dict[str, object]:
    if isinstance(op, Write):
        return {
            "op": "write",
            "path": op.path,
            "create": op.create,
            "data": base64.b64encode(op.data).decode("ascii"),
        }
    if isinstance(op, Move):
        return {"op": "move", "src": op.src, "dst": op.dst}
    return {"op": "remove", "path": op.path}


def _decode(d: dict[str, object]) -> Op:
    kind = d["op"]
    if kind == "write":
        return Write(str(d["path"]), base64.b64decode(str(d["data"])), bool(d["create"]))
    if kind == "move":
        return Move(str(d["src"]), str(d["dst"]))
    return Remove(str(d["path"]))


def commit(
    journal_dir: Path,
    store_dir: Path,
    ops: Sequence[Op],
    applied: Callable[[], object] | None = None,
) -> None:
    """Durably apply ``ops`` (see the module docstring for what a failure means).
    ``applied`` is called once every operation is done, before the journal is removed."""
    if not ops:
        return
    preflight(store_dir, ops)
    if checkpoint.deferring():
        _commit_deferred(journal_dir, store_dir, ops, applied)
        return
    single = len(ops) == 1 and not isinstance(ops[0], Move)
    path, staged = _commit_point(journal_dir, store_dir, ops, single)
    if path is not None:
        faults.crashpoint("txn.journal")
    _apply_retrying(store_dir, ops, path, staged, sync=True)
    if applied is not None:
        applied()
    if path is not None:
        _drop(path)


def _commit_deferred(
    journal_dir: Path, store_dir: Path, ops: Sequence[Op], applied: Callable[[], object] | None
) -> None:
    """A commit whose record goes to the process's segment and whose files are synced
    later, with a batch (``checkpoint``)."""
    checkpoint.check()
    body = _body(store_dir, ops, deferred=True).encode("utf-8")
    try:
        _make_journal_dir(journal_dir)
        segment = checkpoint.append(journal_dir, body, sorted(_unsynced))
    except OSError as exc:
        raise _failed(
            f"cannot write the journal: {_reason(exc)}; {NOTHING_CHANGED}", journal_dir
        ) from exc
    _unsynced.clear()
    faults.crashpoint("txn.journal")
    _apply_retrying(store_dir, ops, segment, {}, sync=False)
    if applied is not None:
        applied()
    checkpoint.mark(journal_dir, store_dir)


def _make_journal_dir(journal_dir: Path) -> None:
    if not journal_dir.is_dir():
        journal_dir.mkdir(parents=True, exist_ok=True)
        _unsynced.add(journal_dir.parent)  # its new entry is synced with the first round


def _body(store_dir: Path, ops: Sequence[Op], *, deferred: bool = False) -> str:
    """A journal's text: its store and operations; a deferred one (a segment's record)
    also its time, for the order of records of several segments, and its boot."""
    head: dict[str, object] = {"version": 1}
    if deferred:
        head.update(seq=time.time_ns(), deferred=checkpoint.boot())
    return json.dumps({**head, "store": str(store_dir), "ops": [_encode(op) for op in ops]})


def _drop(path: Path) -> None:
    """Remove an applied journal, its directory synced later (module docstring). Best
    effort, tried twice: a leftover journal is re-applied (same content) and removed by
    the next lock holder before it changes anything."""
    for _attempt in range(2):
        try:
            unlink(path, "remove the journal")
        except OSError:
            continue
        _unsynced.add(path.parent)
        return


# Journal directories with a removal not yet synced: the next commit's first round
# syncs them, and ``flush`` at the end of the process (module docstring).
_unsynced: set[Path] = set()


def flush() -> None:
    """Sync the journal directories whose removals are not yet synced."""
    dirs = sorted(_unsynced)
    _unsynced.clear()
    with contextlib.suppress(OSError):
        fsio.fsync_dirs([d for d in dirs if d.is_dir()])


atexit.register(flush)


def _commit_point(
    journal_dir: Path, store_dir: Path, ops: Sequence[Op], single: bool
) -> tuple[Path | None, Staged]:
    """Write the journal (none for a single write) and the first writes' temp files, and
    sync them together with the journal directory: once this returns, the change is
    committed. Any failure here changes nothing: what was written is removed."""
    path: Path | None = None
    fd: int | None = None
    staged: Staged = {}
    try:
        if not single:
            path, fd = _open_journal(journal_dir, store_dir, ops)
        staged = stage_first(store_dir, ops)
        fds = [f for f, _tmp in staged.values()] + ([] if fd is None else [fd])
        dirs = sorted({journal_dir, *_unsynced})
        fsio.sync_all_staged(fds, [d for d in dirs if d.is_dir()])  # nothing renamed yet
        _unsynced.clear()
    except OSError as exc:
        discard(staged)
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)
                fsio.fsync_dir(journal_dir)  # it must not come back after an OS crash
        where = store_dir / _target(ops[0]) if single else path or journal_dir
        what = "write the file" if single else "write the journal"
        raise _failed(f"cannot {what}: {_reason(exc)}; {NOTHING_CHANGED}", where) from exc
    finally:
        if fd is not None:
            os.close(fd)
    return path, staged


def _open_journal(journal_dir: Path, store_dir: Path, ops: Sequence[Op]) -> tuple[Path, int]:
    """Create and write the journal under its final name, not yet synced. Only the lock
    holder writes journals, and a journal cut short (a crash before the commit point's
    sync) does not parse: ``roll_forward`` drops it."""
    path = journal_dir / f"{time.time_ns():020d}-{uuid.uuid4().hex}.json"
    body = _body(store_dir, ops)
    _make_journal_dir(journal_dir)
    faults.io("write")
    fd = fsio.create_new(path, 0o644)
    fsio.fill(fd, str(path), body.encode("utf-8"))
    return path, fd


def _apply_retrying(
    store_dir: Path, ops: Sequence[Op], journal: Path | None, staged: Staged, *, sync: bool
) -> None:
    try:
        apply_ops(store_dir, ops, crash_prefix="txn", staged=staged, sync=sync)
        return
    except OSError:
        pass  # a transient fault: every operation is idempotent, so try once more
    try:
        apply_ops(store_dir, ops, sync=sync)
    except OSError as exc:
        raise _unapplied(store_dir, ops, journal, exc) from exc


def _unapplied(
    store_dir: Path, ops: Sequence[Op], journal: Path | None, exc: OSError
) -> StoreIOError:
    """The error for a change that could not be applied, saying what state it left."""
    hint = "fix the disk problem (space, permissions); do not repeat the command"
    if journal is not None:
        return StoreIOError(
            f"cannot apply the change: {_reason(exc)}; {SAVED}",
            where=str(journal),
            hint=hint,
            code=exc.errno,
        )
    target = store_dir / _target(ops[0])
    if _in_place(store_dir, ops[0]):  # only a directory sync failed after the rename
        return StoreIOError(
            f"{WRITTEN}: {_reason(exc)}", where=str(target), hint=hint, code=exc.errno
        )
    return StoreIOError(
        f"cannot write the file: {_reason(exc)}; {NOTHING_CHANGED}",
        where=str(target),
        hint="check free space and permissions, then retry",
        code=exc.errno,
    )


def _in_place(store_dir: Path, op: Op) -> bool:
    path = store_dir / _target(op)
    try:
        if isinstance(op, Write):
            return path.exists() if op.create else path.read_bytes() == op.data
        return not path.exists()
    except OSError:
        return False


def _target(op: Op) -> str:
    return op.src if isinstance(op, Move) else op.path


def _reason(exc: OSError) -> str:
    return str(exc.strerror or exc)


def _failed(message: str, path: Path) -> StoreIOError:
    return StoreIOError(
        message, where=str(path), hint="check free space and permissions, then retry"
    )


def _remove_journal(path: Path) -> None:
    if unlink(path, "remove the journal"):
        fsio.fsync_dir(path.parent)


def pending(journal_dir: Path) -> list[Path]:
    """Journals to roll forward, oldest first: every ``*.json``, and every segment that
    is not in effect (``checkpoint``: of an earlier boot, or with a record cut short)."""
    try:
        names = os.listdir(journal_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    paths = [journal_dir / n for n in sorted(names) if n.endswith((".json", checkpoint.SEGMENT))]
    return [p for p in paths if p.suffix == ".json" or not checkpoint.in_effect(p)]


Body = dict[str, Any]


def _read(path: Path) -> Body | None:
    """A journal file's body; None when it is unreadable (never complete)."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        _ops(body)
    except (OSError, ValueError, KeyError, TypeError, binascii.Error):
        return None
    return body if isinstance(body, dict) else None


def _ops(body: Body) -> list[Op]:
    return [_decode(op) for op in body["ops"]]


def _replay(body: Body, where: Path) -> None:
    """Apply a journal's operations again (a deferred one of an earlier boot: rebased)."""
    store = Path(str(body.get("store", "")))
    if not store.is_dir():
        return  # its store is gone: nothing to complete
    lost = body.get("deferred") not in (None, checkpoint.boot())
    try:
        apply_ops(store, _ops(body), crash_prefix="roll", rebase=lost)
    except OSError as exc:
        raise StoreIOError(
            f"cannot complete an interrupted change: {_reason(exc)}",
            where=str(where),
            hint="fix the disk problem (space, permissions) and retry",
            code=exc.errno,
        ) from exc


def roll_forward(journal_dir: Path, store_dirs: Iterable[Path] = ()) -> int:
    """Complete every pending journal (call with the store lock held). Returns the count.

    Journals live in the common dir and may belong to another worktree's store; each
    names its store. A journal whose store no longer exists is dropped. A journal that
    cannot be completed stops here with an error: nothing newer may be written over it.
    Outside a deferred block, engines' journal segments in effect are then settled
    (``checkpoint``): nothing this process writes can be replayed over later.
    """
    done = 0
    items: list[tuple[int, Path, Body | None]] = []  # (time, file, a segment's record)
    segments: list[Path] = []
    for path in pending(journal_dir):
        if path.suffix == ".json":
            items.append((int(path.name.split("-")[0] or 0), path, None))
            continue
        segments.append(path)
        lost = not path.name.endswith(checkpoint.this_boot())
        items += [(r.seq, path, r.body) for r in checkpoint.records(path) if lost or not r.applied]
    for _seq, path, record in sorted(items, key=lambda item: item[0]):
        body = record if record is not None else _read(path)
        if body is not None:  # an unreadable journal was cut short before its commit point
            _replay(body, path)
            done += 1
        if record is None:
            _remove_journal(path)
    if segments:  # their applied records are in effect: synced before they go
        checkpoint.sync_for(journal_dir, segments, store_dirs)
        checkpoint.retire(segments)
    if not checkpoint.deferring():
        checkpoint.settle(journal_dir, store_dirs)
    return done
