"""Applying a journal's operations to the store (``journal`` commits and replays them).

- ``preflight``: no operation may pass through a symlink inside the store;
- ``apply_ops``: the operations in order, idempotently, resumed after the last completed
  directory move (a replay); the writes and removals between two moves as a batch: every
  temp file, then their fsyncs, then the renames (or links, for create-if-absent) in
  order, then the directories' fsyncs, all before the next move. Without ``sync`` (a
  deferred commit: ``checkpoint``) nothing is synced; with ``rebase`` (a deferred record
  replayed after the operating system stopped) a write before a completed move is aimed
  at where the move took it, and a created file is rewritten unless it holds its bytes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from yoi import faults, fsio


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


def _safe_rel(base: Path | str, rel: str) -> str:
    """``base/rel`` as a string (the walks below run for every operation of every
    commit; Path objects cost them a third of their time). POSIX paths: the same test
    as Path(rel).is_absolute() and ".." in Path(rel).parts."""
    if rel.startswith("/") or ".." in rel.split("/"):
        raise ValueError(f"journal path escapes the store: {rel}")
    return f"{os.fspath(base)}/{rel}"


def preflight(store_dir: Path, ops: Sequence[Op]) -> None:
    """Refuse (``UsageError``) before anything is written if an operation would pass
    through a symlink inside the store (a link planted by a pull request, R21)."""
    checked: set[str] = set()  # paths already found free of symlinks
    base = os.fspath(store_dir)
    for op in ops:
        paths = [op.src, op.dst] if isinstance(op, Move) else [op.path]
        for rel in paths:
            fsio.check_no_symlinks(_safe_rel(base, rel), stop=base, checked=checked)


Staged = dict[int, tuple[int, str]]  # op index -> (open temp file, its name)


def apply_ops(
    store_dir: Path,
    ops: Sequence[Op],
    *,
    crash_prefix: str = "",
    staged: Staged | None = None,
    sync: bool = True,
    rebase: bool = False,
) -> None:
    """Apply ``ops`` in order, idempotently; resume after the last completed move.

    Writes and removals between two moves are applied as a batch (``_apply_batch``): all
    temp files first, then their fsyncs, then the renames in order. A move runs alone,
    so nothing of a later write exists before the move that comes first has happened.
    ``staged``: temp files already written and synced for writes of the first batch
    (``commit`` stages them before its commit point); they are used or removed here.
    ``sync=False``: nothing is synced (a deferred commit: ``checkpoint``). ``rebase``: a
    replay of a deferred journal after the operating system stopped (module docstring)."""
    if rebase:
        ops, start = _rebased(store_dir, ops), 0
    else:
        start = _after_last_move(store_dir, ops)
    dirs: set[str] = set()
    known: set[str] = set()
    ready: Staged = dict(staged or {})
    i = start
    try:
        while i < len(ops):
            op = ops[i]
            if isinstance(op, Move):
                _sync_dirs(dirs if sync else set())  # what was written inside is durable
                dirs.clear()  # before it moves (deferred: the journal keeps it)
                _move(store_dir, op, dirs)
                known.clear()  # directories moved: check again
                if crash_prefix:
                    faults.crashpoint(f"{crash_prefix}.op{i}")
                i += 1
                continue
            j = i
            while j < len(ops) and not isinstance(ops[j], Move):
                j += 1
            _apply_batch(
                store_dir, ops, range(i, j), dirs, known, crash_prefix, ready, sync, rebase
            )
            i = j
        _sync_dirs(dirs if sync else set())
    finally:
        discard(ready)


def _completed(store_dir: Path | str, op: Move) -> bool:
    src, dst = _safe_rel(store_dir, op.src), _safe_rel(store_dir, op.dst)
    return not os.path.exists(src) and os.path.exists(dst)


def _after_last_move(store_dir: Path, ops: Sequence[Op]) -> int:
    """Where a replay starts: after the last completed move (everything before it was
    synced before the move, so it already happened)."""
    start = 0
    for i, op in enumerate(ops):
        if isinstance(op, Move) and _completed(store_dir, op):
            start = i + 1
    return start


def _rebased(store_dir: Path, ops: Sequence[Op]) -> list[Op]:
    """``ops`` for replaying a deferred journal after the operating system stopped: its
    writes were not synced before its moves, so any of them may be lost. Completed moves
    are dropped, and every write and removal before one is aimed at where it took them."""
    done = {i: op for i, op in enumerate(ops) if isinstance(op, Move) and _completed(store_dir, op)}
    out: list[Op] = []
    for k, op in enumerate(ops):
        if isinstance(op, Move):
            if k not in done:
                out.append(op)
            continue
        path = op.path
        for i, move in done.items():
            if i > k and path.startswith(move.src + "/"):
                path = move.dst + path[len(move.src) :]
        out.append(Write(path, op.data, op.create) if isinstance(op, Write) else Remove(path))
    return out


def _sync_dirs(dirs: set[str]) -> None:
    """fsync every directory in ``dirs`` (each entry renamed, linked or removed there)."""
    fsio.fsync_dirs([d for d in sorted(dirs) if os.path.isdir(d)])
    dirs.clear()


def stage_first(store_dir: Path, ops: Sequence[Op]) -> Staged:
    """Temp files for the writes before the first move whose directory exists already
    (a directory is made only after the commit point, so a failure or crash before it
    leaves no empty directory behind). Not synced: the caller syncs them with the journal."""
    staged: Staged = {}
    seen: dict[str, bool] = {}
    try:
        for k, op in enumerate(ops):
            if isinstance(op, Move):
                break
            if not isinstance(op, Write):
                continue
            path = _safe_rel(store_dir, op.path)
            parent = os.path.dirname(path)
            if parent not in seen:
                seen[parent] = os.path.isdir(parent)  # no symlink on the way (preflight)
            if seen[parent] and not (op.create and os.path.exists(path)):
                staged[k] = fsio.stage(path, op.data)
    except BaseException:
        discard(staged)
        raise
    return staged


def discard(staged: Staged) -> None:
    """Close and remove the temp files left in ``staged`` (placed ones were renamed away,
    or linked: removing the name ends it)."""
    for fd, tmp in staged.values():
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    staged.clear()


def _apply_batch(
    store_dir: Path,
    ops: Sequence[Op],
    batch: range,
    dirs: set[str],
    known: set[str],
    crash_prefix: str,
    ready: Staged,
    sync: bool = True,
    rebase: bool = False,
) -> None:
    """Writes and removals (no move): stage every write's temp file not in ``ready``
    (already synced), sync them all, then rename (or link, for create-if-absent) and
    remove in order. ``rebase``: a created file is rewritten unless it holds the bytes."""
    writes = {k: op for k in batch if isinstance(op := ops[k], Write)}
    base = os.fspath(store_dir)
    paths = {k: _safe_rel(base, op.path) for k, op in writes.items()}
    fresh: list[int] = []
    for k, op in writes.items():
        path = paths[k]
        fsio.ensure_dir(os.path.dirname(path), stop=base, known=known, made=dirs)
        if k not in ready and not (op.create and _kept(path, op.data, rebase)):
            ready[k] = fsio.stage(path, op.data)
            fresh.append(ready[k][0])
    if sync:
        fsio.sync_all_staged(fresh)
    for k in batch:
        op = ops[k]
        if isinstance(op, Write):
            path = paths[k]
            if k in ready:
                placed = {k: ready.pop(k)}
                try:
                    _place(path, placed[k][1], create=op.create and not rebase)
                finally:
                    discard(placed)
            dirs.add(os.path.dirname(path))
        else:
            assert isinstance(op, Remove)
            _remove(store_dir, op, dirs)
        if crash_prefix:
            faults.crashpoint(f"{crash_prefix}.op{k}")


def _kept(path: str, data: bytes, rebase: bool) -> bool:
    """A create-if-absent write finds its file: kept as it is. In a rebased replay only
    when it holds the journal's bytes (the file did not exist when the journal was
    written, so any other content is a write of its own that the stop lost)."""
    if not os.path.exists(path):
        return False
    if not rebase:
        return True
    try:
        with open(path, "rb") as f:
            return f.read(len(data) + 1) == data
    except OSError:
        return False


def _place(path: str, tmp: str, *, create: bool) -> None:
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


def _move(store_dir: Path, op: Move, dirs: set[str]) -> None:
    src, dst = _safe_rel(store_dir, op.src), _safe_rel(store_dir, op.dst)
    if os.path.exists(src) and not os.path.exists(dst):
        fsio.ensure_dir(os.path.dirname(dst), stop=store_dir)
        try:
            faults.io("rename")
            os.rename(src, dst)
        except OSError as exc:
            raise fsio.io_error("move the directory", src, exc) from exc
        dirs.update({os.path.dirname(src), os.path.dirname(dst)})


def _remove(store_dir: Path, op: Remove, dirs: set[str]) -> None:
    path = _safe_rel(store_dir, op.path)
    unlink(path, "remove the file")
    dirs.add(os.path.dirname(path))


def unlink(path: Path | str, action: str) -> bool:
    """Remove ``path``; False when it was already gone."""
    try:
        faults.io("rename")
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise fsio.io_error(action, path, exc) from exc
    return True
