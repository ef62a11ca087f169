"""Store-wide views a long-running engine keeps between ticks: every ticket, every plan
record, every pending event (``trusting``).

Every yoi writer commits under the store lock through ``Transaction.commit`` (or completes
an interrupted commit, ``journal.roll_forward``), and each commit writes a new random
*generation* token to ``<git-common-dir>/yoi/generation`` before the lock is released
(``bump``). So a view computed while the token read ``g`` is still the view of the files
as long as the token reads ``g``, as far as yoi's writers go; a view computed under the
lock is exact. This process's own commits keep its views: the commit names the ticket
directories it touched, and only those are read again (``committed``).

Files changed by other tools (an editor, ``git pull``) do not change the token, so a view
is trusted for at most ``MAX_AGE_S`` after it was last computed from every file: such an
edit is seen within that time, as if it had been made that much later (no lock orders an
editor and the engine anyway). Outside ``trusting`` (every short-lived command) nothing is
kept and each call reads the files, through the stat-keyed caches.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from yoi import journal
    from yoi.store import Store

GENERATION_FILE = "generation"
TOKEN_BYTES = 32
MAX_AGE_S = 1.0
BUCKETS = ("open", "done")

_T = TypeVar("_T")
Where = tuple[str, str]  # (bucket, slug) of a ticket directory


def _token_path(store: Store) -> str:
    return f"{store.runtime_dir}/{GENERATION_FILE}"


def token(store: Store) -> bytes | None:
    """The current generation token; None when there is none yet (or it is unreadable)."""
    try:
        fd = os.open(_token_path(store), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, TOKEN_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) == TOKEN_BYTES else None


def bump(store: Store) -> bytes | None:
    """A new token (after a commit, with the store lock held). A failure is ignored: the
    token then stays, and views in other processes are bounded by ``MAX_AGE_S``."""
    new = os.urandom(TOKEN_BYTES // 2).hex().encode("ascii")
    with contextlib.suppress(OSError):
        fd = os.open(_token_path(store), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if os.pwrite(fd, new, 0) == TOKEN_BYTES:
                return new
        finally:
            os.close(fd)
    return None


@dataclass(frozen=True)
class Kind(Generic[_T]):
    """One view: how to compute all of it, one ticket directory's part, where an item
    lives, and the order of the whole."""

    name: str
    every: Callable[[Store], list[_T]]
    one: Callable[[Store, str, str], list[_T]]  # (store, bucket, slug)
    where: Callable[[Store, _T], Where]
    order: Callable[[_T], Any]


@dataclass
class _View:
    since: float  # when it was last computed from every file
    parts: dict[Where, list[Any]]
    flat: list[Any] | None
    dirty: set[str] = field(default_factory=set)  # slugs this process wrote since


@dataclass
class _Memo:
    token: bytes
    views: dict[str, _View] = field(default_factory=dict)


_ARMED = 0
_MEMOS: dict[str, _Memo] = {}  # store dir -> what this process keeps for it


@contextmanager
def trusting() -> Iterator[None]:
    """Keep views between calls (``engine run`` and ``watch``); dropped on exit."""
    global _ARMED
    _ARMED += 1
    try:
        yield
    finally:
        _ARMED -= 1
        if not _ARMED:
            _MEMOS.clear()


def armed() -> bool:
    return _ARMED > 0


def get(store: Store, kind: Kind[_T]) -> list[_T]:
    """``kind.every(store)``, or the kept view when it is still the files' (see above)."""
    if not _ARMED:
        return kind.every(store)
    key = str(store.yoi_dir)
    now = token(store)
    memo = _MEMOS.get(key)
    if now is None:  # no commit since the runtime directory was made: keep nothing
        _MEMOS.pop(key, None)
        return list(_compute(store, kind).flat or [])
    if memo is None or memo.token != now:
        memo = _MEMOS[key] = _Memo(now)
    view = memo.views.get(kind.name)
    if view is None or time.monotonic() - view.since > MAX_AGE_S:
        view = memo.views[kind.name] = _compute(store, kind)
    elif view.dirty:
        _refresh(store, kind, view)
    if view.flat is None:
        view.flat = sorted((item for part in view.parts.values() for item in part), key=kind.order)
    return list(view.flat)


def _compute(store: Store, kind: Kind[_T]) -> _View:
    since = time.monotonic()
    items = kind.every(store)
    parts: dict[Where, list[Any]] = {}
    for item in items:
        parts.setdefault(kind.where(store, item), []).append(item)
    return _View(since, parts, items)


def _refresh(store: Store, kind: Kind[_T], view: _View) -> None:
    for slug in view.dirty:
        for bucket in BUCKETS:
            view.parts.pop((bucket, slug), None)
            if os.path.isdir(f"{store.tickets_dir}/{bucket}/{slug}"):
                found = kind.one(store, bucket, slug)
                if found:
                    view.parts[(bucket, slug)] = list(found)
    view.dirty = set()
    view.flat = None


def forget(store: Store) -> None:
    """Drop what this process keeps for ``store``."""
    _MEMOS.pop(str(store.yoi_dir), None)


def committed(
    store: Store, before: bytes | None, after: bytes | None, ops: Iterable[journal.Op]
) -> None:
    """After this process committed ``ops`` (lock held): the views it kept at token
    ``before`` follow the commit, with the ticket directories it touched marked to be read
    again; anything else drops them."""
    key = str(store.yoi_dir)
    memo = _MEMOS.get(key)
    if memo is None:
        return
    slugs = _touched(ops)
    if before is None or after is None or memo.token != before or slugs is None:
        del _MEMOS[key]
        return
    memo.token = after
    for view in memo.views.values():
        view.dirty |= slugs


def _touched(ops: Iterable[journal.Op]) -> set[str] | None:
    """The slugs of the ticket directories ``ops`` change; None when one changes
    anything else (the config, a bucket itself)."""
    from yoi import journal

    slugs: set[str] = set()
    for op in ops:
        for path in (op.src, op.dst) if isinstance(op, journal.Move) else (op.path,):
            parts = path.split("/")
            if len(parts) < 3 or parts[0] != "tickets" or parts[1] not in BUCKETS:
                return None
            if parts[2].startswith("."):
                return None
            slugs.add(parts[2])
    return slugs


def where_of(store: Store, path: str) -> Where:
    """(bucket, slug) of a path inside a ticket directory."""
    rel = path[len(str(store.tickets_dir)) + 1 :]
    bucket, slug, _rest = [*rel.split("/", 2), "", ""][:3]
    return bucket, slug
