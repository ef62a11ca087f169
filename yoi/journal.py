"""Journaled multi-file commits.

A transaction's operations are checked first (no path may pass through a symlink: a
refused transaction writes nothing), then written to
``<runtime>/journal/<time>-<id>.json`` (atomic, fsynced) before any store file changes;
then each file is replaced atomically, directory moves are done, and the journal is
removed. The journal is the commit point:

- a failure before it is written changes nothing and says so ("nothing was changed");
- a failure after it is retried once at once (every operation is idempotent); if the
  retry fails too, the error says the change is saved and the next lock holder rolls it
  forward, so the caller must not repeat it;
- a crash after it is rolled forward by the next lock holder (``roll_forward``), in the
  order the journals were written. Rolling forward twice is harmless.

A transaction of a single write needs no journal: the atomic replace is its commit (a
failure after it says "the change is written but not synced").
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from yoi import faults, fsio
from yoi.fsio import StoreIOError

NOTHING_CHANGED = "nothing was changed"
SAVED = "the change is saved and will be completed by the next yoi command"
WRITTEN = "the change is written but not synced to disk"


@dataclass(frozen=True, slots=True)
class Write:
    path: str  # relative to the store dir
    data: bytes
    create: bool = False  # create-if-absent: never overwrite


@dataclass(frozen=True, slots=True)
class Move:
    src: str
    dst: str


@dataclass(frozen=True, slots=True)
class Remove:
    path: str


Op = Write | Move | Remove


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


def _safe_rel(base: Path, rel: str) -> Path:
    # POSIX paths: the same test as Path(rel).is_absolute() and ".." in Path(rel).parts,
    # without making two Path objects per call (it runs a few times per operation)
    if rel.startswith("/") or ".." in rel.split("/"):
        raise ValueError(f"journal path escapes the store: {rel}")
    return base / rel


def preflight(store_dir: Path, ops: Sequence[Op]) -> None:
    """Refuse (``UsageError``) before anything is written if an operation would pass
    through a symlink inside the store (a link planted by a pull request, R21)."""
    checked: set[str] = set()  # paths already found free of symlinks
    for op in ops:
        paths = [op.src, op.dst] if isinstance(op, Move) else [op.path]
        for rel in paths:
            fsio.check_no_symlinks(_safe_rel(store_dir, rel), stop=store_dir, checked=checked)


def apply_ops(store_dir: Path, ops: Sequence[Op], *, crash_prefix: str = "") -> None:
    """Apply ``ops`` in order, idempotently; resume after the last completed move.

    Writes and removals between two moves are applied as a batch (``_apply_batch``): all
    temp files first, then their fsyncs, then the renames in order. A move runs alone,
    so nothing of a later write exists before the move that comes first has happened."""
    start = 0
    for i, op in enumerate(ops):
        if isinstance(op, Move):
            src, dst = _safe_rel(store_dir, op.src), _safe_rel(store_dir, op.dst)
            if not src.exists() and dst.exists():
                start = i + 1  # everything up to this move already happened
    dirs: set[Path] = set()
    known: set[Path] = set()
    i = start
    while i < len(ops):
        op = ops[i]
        if isinstance(op, Move):
            _sync_dirs(dirs)  # what was written inside is durable before it moves
            _move(store_dir, op, dirs)
            known.clear()  # directories moved: check again
            if crash_prefix:
                faults.crashpoint(f"{crash_prefix}.op{i}")
            i += 1
            continue
        j = i
        while j < len(ops) and not isinstance(ops[j], Move):
            j += 1
        _apply_batch(store_dir, ops[i:j], i, dirs, known, crash_prefix)
        i = j
    _sync_dirs(dirs)


def _sync_dirs(dirs: set[Path]) -> None:
    """fsync every directory in ``dirs`` (each entry renamed, linked or removed there)."""
    fsio.fsync_dirs([d for d in sorted(dirs) if d.is_dir()])
    dirs.clear()


def _apply_batch(
    store_dir: Path,
    ops: Sequence[Op],
    first: int,
    dirs: set[Path],
    known: set[Path],
    crash_prefix: str,
) -> None:
    """Writes and removals (no move): stage every write's temp file, sync them all,
    then rename (or link, for create-if-absent) and remove in order."""
    staged: dict[int, tuple[int, str]] = {}
    paths = {k: _safe_rel(store_dir, op.path) for k, op in enumerate(ops) if isinstance(op, Write)}
    try:
        for k, op in enumerate(ops):
            if isinstance(op, Write):
                path = paths[k]
                fsio.ensure_dir(path.parent, stop=store_dir, known=known, made=dirs)
                if not (op.create and path.exists()):
                    staged[k] = fsio.stage(path, op.data)
        fsio.sync_all_staged([fd for fd, _tmp in staged.values()])
        for k, op in enumerate(ops):
            if isinstance(op, Write):
                path = paths[k]
                if k in staged:
                    _place(path, staged[k][1], create=op.create)
                dirs.add(path.parent)
            else:
                assert isinstance(op, Remove)
                _remove(store_dir, op, dirs)
            if crash_prefix:
                faults.crashpoint(f"{crash_prefix}.op{first + k}")
    finally:
        for fd, tmp in staged.values():
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # placed ones were renamed away (or linked: this ends it)


def _place(path: Path, tmp: str, *, create: bool) -> None:
    try:
        if create:
            faults.io("link")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # never overwrites: an existing file is kept
        else:
            faults.io("rename")
            os.replace(tmp, path)
    except OSError as exc:
        raise fsio.io_error("write the file", path, exc) from exc


def _move(store_dir: Path, op: Move, dirs: set[Path]) -> None:
    src, dst = _safe_rel(store_dir, op.src), _safe_rel(store_dir, op.dst)
    if src.exists() and not dst.exists():
        fsio.ensure_dir(dst.parent, stop=store_dir)
        try:
            faults.io("rename")
            os.rename(src, dst)
        except OSError as exc:
            raise fsio.io_error("move the directory", src, exc) from exc
        dirs.update({src.parent, dst.parent})


def _remove(store_dir: Path, op: Remove, dirs: set[Path]) -> None:
    path = _safe_rel(store_dir, op.path)
    _unlink(path, "remove the file")
    dirs.add(path.parent)


def _unlink(path: Path, action: str) -> bool:
    """Remove ``path``; False when it was already gone."""
    try:
        faults.io("rename")
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise fsio.io_error(action, path, exc) from exc
    return True


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
    if len(ops) == 1 and not isinstance(ops[0], Move):
        _apply_retrying(store_dir, ops, None)
        if applied is not None:
            applied()
        return
    path = _write_journal(journal_dir, store_dir, ops)
    faults.crashpoint("txn.journal")
    _apply_retrying(store_dir, ops, path)
    if applied is not None:
        applied()
    try:
        _remove_journal(path)
    except OSError:
        # Applied; a leftover journal is re-applied (same content) and removed by the
        # next lock holder before it changes anything.
        with contextlib.suppress(OSError):
            _remove_journal(path)


def _write_journal(journal_dir: Path, store_dir: Path, ops: Sequence[Op]) -> Path:
    """Write the journal; once its rename is done the change is committed.

    A failed fsync of the journal's directory after the rename does not undo the commit
    (the journal is visible and any lock holder would complete it): the store files are
    synced when they are applied, which is what makes the change durable.
    """
    path = journal_dir / f"{time.time_ns():020d}-{uuid.uuid4().hex}.json"
    body = {"version": 1, "store": str(store_dir), "ops": [_encode(op) for op in ops]}
    try:
        journal_dir.mkdir(parents=True, exist_ok=True)
        fsio.atomic_write(path, json.dumps(body).encode("utf-8"), sync_dir=False)
    except OSError as exc:
        raise _failed(f"cannot write the journal: {_reason(exc)}; {NOTHING_CHANGED}", path) from exc
    with contextlib.suppress(OSError):
        fsio.fsync_dir(journal_dir)
    return path


def _apply_retrying(store_dir: Path, ops: Sequence[Op], journal: Path | None) -> None:
    try:
        apply_ops(store_dir, ops, crash_prefix="txn")
        return
    except OSError:
        pass  # a transient fault: every operation is idempotent, so try once more
    try:
        apply_ops(store_dir, ops)
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
    if _unlink(path, "remove the journal"):
        fsio.fsync_dir(path.parent)


def pending(journal_dir: Path) -> list[Path]:
    """Pending journals, oldest first."""
    if not journal_dir.is_dir():
        return []
    return sorted(p for p in journal_dir.iterdir() if p.suffix == ".json")


def _read(path: Path) -> tuple[Path, list[Op]] | None:
    """The journal's store and operations; None when it is unreadable (never complete)."""
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        ops = [_decode(op) for op in body["ops"]]
        return Path(str(body.get("store", ""))), ops
    except (OSError, ValueError, KeyError, TypeError, binascii.Error):
        return None


def roll_forward(journal_dir: Path, store_dirs: Iterable[Path] = ()) -> int:
    """Complete every pending journal (call with the store lock held). Returns the count.

    Journals live in the common dir and may belong to another worktree's store; each
    names its store. A journal whose store no longer exists is dropped. A journal that
    cannot be completed stops here with an error: nothing newer may be written over it.
    """
    done = 0
    for path in pending(journal_dir):
        found = _read(path)
        if found is None:
            # An unreadable journal was never fully written (atomic_write): nothing ran.
            _remove_journal(path)
            continue
        store, ops = found
        if store.is_dir():
            try:
                apply_ops(store, ops, crash_prefix="roll")
            except OSError as exc:
                raise StoreIOError(
                    f"cannot complete an interrupted change: {_reason(exc)}",
                    where=str(path),
                    hint="fix the disk problem (space, permissions) and retry",
                    code=exc.errno,
                ) from exc
        _remove_journal(path)
        done += 1
    return done
