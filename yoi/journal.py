"""Journaled multi-file commits.

A transaction's operations are written to ``<runtime>/journal/<txid>.json`` (atomic,
fsynced) before any store file changes; then each file is replaced atomically, directory
moves are done, and the journal is removed. A crash after the journal is durable is
rolled forward by the next lock holder; a crash before it leaves nothing. Every
operation is idempotent, so rolling forward twice is harmless.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Sequence
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
    path = base / rel
    if ".." in Path(rel).parts or Path(rel).is_absolute():
        raise ValueError(f"journal path escapes the store: {rel}")
    return path


def apply_ops(store_dir: Path, ops: Sequence[Op], *, crash_prefix: str = "") -> None:
    """Apply ``ops`` in order, idempotently; resume after the last completed move."""
    start = 0
    for i, op in enumerate(ops):
        if isinstance(op, Move):
            src, dst = _safe_rel(store_dir, op.src), _safe_rel(store_dir, op.dst)
            if not src.exists() and dst.exists():
                start = i + 1  # everything up to this move already happened
    dirs: set[Path] = set()
    for i, op in enumerate(ops[start:], start=start):
        _apply_one(store_dir, op, dirs)
        if crash_prefix:
            faults.crashpoint(f"{crash_prefix}.op{i}")
    for d in sorted(dirs):
        if d.is_dir():
            fsio.fsync_dir(d)


def _apply_one(store_dir: Path, op: Op, dirs: set[Path]) -> None:
    if isinstance(op, Write):
        path = _safe_rel(store_dir, op.path)
        fsio.ensure_dir(path.parent, stop=store_dir)
        if op.create:
            if not path.exists():
                fsio.create_exclusive(path, op.data)
        else:
            fsio.atomic_write(path, op.data, sync_dir=False)
        dirs.add(path.parent)
    elif isinstance(op, Move):
        src, dst = _safe_rel(store_dir, op.src), _safe_rel(store_dir, op.dst)
        if src.exists() and not dst.exists():
            fsio.ensure_dir(dst.parent, stop=store_dir)
            faults.io("rename")
            os.rename(src, dst)
            dirs.update({src.parent, dst.parent})
    else:
        path = _safe_rel(store_dir, op.path)
        with contextlib.suppress(FileNotFoundError):
            faults.io("rename")
            os.unlink(path)
        dirs.add(path.parent)


def commit(journal_dir: Path, store_dir: Path, ops: Sequence[Op]) -> None:
    """Durably apply ``ops``: journal first when there is more than one operation."""
    if not ops:
        return
    if len(ops) == 1 and not isinstance(ops[0], Move):
        apply_ops(store_dir, ops)
        return
    journal_dir.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex}.json"
    body = {"version": 1, "store": str(store_dir), "ops": [_encode(op) for op in ops]}
    fsio.atomic_write(journal_dir / name, json.dumps(body).encode("utf-8"))
    faults.crashpoint("txn.journal")
    apply_ops(store_dir, ops, crash_prefix="txn")
    _remove_journal(journal_dir / name)


def _remove_journal(path: Path) -> None:
    faults.io("rename")
    os.unlink(path)
    fsio.fsync_dir(path.parent)


def pending(journal_dir: Path) -> list[Path]:
    if not journal_dir.is_dir():
        return []
    return sorted(p for p in journal_dir.iterdir() if p.suffix == ".json")


def roll_forward(journal_dir: Path, store_dirs: Iterable[Path] = ()) -> int:
    """Complete every pending journal (call with the store lock held). Returns the count.

    Journals live in the common dir and may belong to another worktree's store; each
    names its store. A journal whose store no longer exists is dropped.
    """
    done = 0
    for path in pending(journal_dir):
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            # An unreadable journal was never fully written (atomic_write): nothing ran.
            _remove_journal(path)
            continue
        store = Path(str(body.get("store", "")))
        if store.is_dir():
            apply_ops(store, [_decode(op) for op in body["ops"]])
        _remove_journal(path)
        done += 1
    return done
