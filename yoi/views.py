"""Store-wide views a long-running engine keeps between ticks: every ticket, every plan
record, every pending event (``trusting``).

Every yoi writer commits under the store lock through ``Transaction.commit`` (or completes
an interrupted commit, ``journal.roll_forward``), and each commit appends a line to the
*generation log* ``<git-common-dir>/yoi/generation`` (``bump``): a new random token and
the ticket directories the commit touched (``*``: it touched something else, or it is
not known what). The line is written once the commit's files are, before its journal is
removed (a crash in between leaves the journal, whose roll-forward logs ``*``) and
before the lock is released. A view computed while the log ended at
token ``g`` is still the view of the files as long as the log ends at ``g``, as far as
yoi's writers go; when it has grown, only the ticket directories named since ``g`` are read
again (this process's own commits and other processes' alike). A view computed under the
lock is exact. When ``g`` has left the log (it keeps the last ``LOG_LINES`` commits), or a
line says ``*``, the view is computed again from every file.

Files changed by other tools (an editor, ``git pull``) do not change the log, so a view is
trusted for at most ``MAX_AGE_S`` after it was last computed from every file, or
``COST_FACTOR`` times what the latest full computations of all the views kept for the
store took together, when that is longer (so a big store spends at most about
1/``COST_FACTOR`` of an engine's time on full passes, however many views it keeps): such
an edit is seen within that time, as if it had been made that much later (no lock orders
an editor and the engine anyway). Outside ``trusting`` (every short-lived command) nothing is
kept and each call reads the files, through the stat-keyed caches.

The log is rewritten in place by the lock holder (header: magic, length, CRC-32). A reader
does not take the lock: a torn or damaged log fails its checksum and counts as "unknown",
which only costs a full computation.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from yoi.store import BUCKETS

if TYPE_CHECKING:
    from yoi import journal
    from yoi.store import Store

GENERATION_FILE = "generation"
TOKEN_BYTES = 32
MAX_AGE_S = 1.0
COST_FACTOR = 20  # views are trusted for at least this many times their full passes' cost
LOG_LINES = 32  # commits a reader can catch up with
MAX_LINE_NAMES = 512  # a commit that touched more (as text) is logged as "*"
MAX_LOG_BYTES = LOG_LINES * (TOKEN_BYTES + 2 + MAX_LINE_NAMES)
MAGIC = b"yoi-gen1"
_HEADER = struct.Struct("<8sII")  # magic, body length, crc32 of the body


class _InTicket(Protocol):
    """An item of a view: its ``path`` lies in (or is) a ticket directory."""

    @property
    def path(self) -> Path: ...


_T = TypeVar("_T", bound=_InTicket)
Where = tuple[str, str]  # (bucket, slug) of a ticket directory


def _log_path(store: Store) -> str:
    return f"{store.runtime_dir}/{GENERATION_FILE}"


Log = tuple[tuple[bytes, frozenset[str] | None], ...]  # (token, slugs touched; None: anything)
_LAST_LOG: list[tuple[bytes, Log]] = []  # the last log parsed, with its file's bytes


def _line(token: bytes, slugs: Iterable[str] | None) -> bytes:
    names = b"*" if slugs is None else " ".join(sorted(slugs)).encode("ascii", "replace")
    return token + b" " + (names if len(names) <= MAX_LINE_NAMES else b"*") + b"\n"


def read_log(store: Store) -> Log | None:
    """The generation log, oldest first; None when there is none or it does not check."""
    try:
        fd = os.open(_log_path(store), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, MAX_LOG_BYTES + _HEADER.size)
    except OSError:
        return None
    finally:
        os.close(fd)
    if _LAST_LOG and _LAST_LOG[0][0] == data:  # an engine reads it several times a tick
        return _LAST_LOG[0][1]
    if len(data) < _HEADER.size or not data.startswith(MAGIC):
        return None
    _magic, length, crc = _HEADER.unpack_from(data)
    body = data[_HEADER.size : _HEADER.size + length]
    if len(body) != length or zlib.crc32(body) != crc:
        return None
    log: list[tuple[bytes, frozenset[str] | None]] = []
    for line in body.splitlines():
        token, _sep, rest = line.partition(b" ")
        names = rest.decode("ascii", "replace").split()
        log.append((token, None if names == ["*"] else frozenset(names)))
    if not log:
        return None
    _LAST_LOG[:] = [(data, tuple(log))]
    return _LAST_LOG[0][1]


def token(store: Store) -> bytes | None:
    """The current generation token (the log's last); None when there is none."""
    log = read_log(store)
    return None if log is None else log[-1][0]


def bump(store: Store, slugs: Iterable[str] | None) -> bytes | None:
    """Append a commit to the log (with the store lock held): a new token and the ticket
    directories it touched (None: anything). When the log cannot be written it is
    removed, so that no process keeps a view (None is returned)."""
    new = os.urandom(TOKEN_BYTES // 2).hex().encode("ascii")
    kept = [_line(t, names) for t, names in (read_log(store) or [])[-(LOG_LINES - 1) :]]
    body = b"".join([*kept, _line(new, slugs)])
    data = _HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body
    with contextlib.suppress(OSError):
        fd = os.open(_log_path(store), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if os.pwrite(fd, data, 0) == len(data):
                os.ftruncate(fd, len(data))
                return new
        finally:
            os.close(fd)
    # Not logged: no process may keep a view across this commit. Without a log, nothing
    # is kept anywhere (``get``); this process drops its own views too.
    _MEMOS.clear()
    with contextlib.suppress(OSError):
        os.unlink(_log_path(store))
    return None


@dataclass(frozen=True)
class Kind(Generic[_T]):
    """One view: how to compute all of it, one ticket directory's part, and the order of
    the whole (None: by ticket directory, open bucket first, by slug, as the buckets list
    them). An item belongs to the ticket directory its ``path`` lies in. ``buckets``: the
    ones the view covers (``every`` reads only those; a refresh looks only there)."""

    name: str
    every: Callable[[Store], list[_T]]
    one: Callable[[Store, str, str], list[_T]]  # (store, bucket, slug)
    order: Callable[[_T], Any] | None
    buckets: tuple[str, ...] = BUCKETS


@dataclass
class _View:
    since: float  # when it was last computed from every file
    parts: dict[Where, list[Any]]
    flat: list[Any] | None
    dirty: set[str] = field(default_factory=set)  # slugs this process wrote since
    cost: float = 0.0  # seconds the computation from every file took
    # ``parts``' keys in ticket-directory order (kinds without ``order``), kept sorted
    # as parts come and go, so a refresh of one ticket is not a sort of every ticket
    ranked: list[_Rank] | None = None

    def expired(self, now: float, budget: float) -> bool:
        """Older than ``MAX_AGE_S``, or than ``budget`` when that is longer."""
        return now - self.since > max(MAX_AGE_S, budget)


@dataclass
class _Memo:
    token: bytes
    views: dict[str, _View] = field(default_factory=dict)

    def budget(self) -> float:
        """How long a view is trusted: ``COST_FACTOR`` times what the full passes of every
        view kept here took together (each view's pass is one of several per period)."""
        return COST_FACTOR * sum(v.cost for v in self.views.values())


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


def get(store: Store, kind: Kind[_T]) -> list[_T]:
    """``kind.every(store)``, or the kept view when it is still the files' (see above)."""
    if not _ARMED:
        return kind.every(store)
    key = str(store.yoi_dir)
    log = read_log(store)
    if log is None:  # no commit yet, or a damaged log: keep nothing
        _MEMOS.pop(key, None)
        return list(_compute(store, kind).flat or [])
    memo = _catch_up(_MEMOS.get(key), log)
    if memo is None:
        memo = _MEMOS[key] = _Memo(log[-1][0])
    view = memo.views.get(kind.name)
    if view is None or view.expired(time.monotonic(), memo.budget()):
        view = memo.views[kind.name] = _compute(store, kind)
    elif view.dirty:
        _refresh(store, kind, view)
    if view.flat is None:
        view.flat = _flat(kind, view)
    return list(view.flat)


def _catch_up(memo: _Memo | None, log: Log) -> _Memo | None:
    """``memo`` moved to the end of ``log`` (the ticket directories named since its token
    marked dirty), or None when it cannot follow (its token left the log, or a line
    touched anything)."""
    if memo is None or memo.token == log[-1][0]:
        return memo
    tokens = [t for t, _names in log]
    if memo.token not in tokens:
        return None
    dirty: set[str] = set()
    for _token, names in log[tokens.index(memo.token) + 1 :]:
        if names is None:
            return None
        dirty |= names
    memo.token = log[-1][0]
    for view in memo.views.values():
        view.dirty |= dirty
    return memo


def _flat(kind: Kind[_T], view: _View) -> list[Any]:
    parts = view.parts
    if kind.order is not None:
        return sorted((item for part in parts.values() for item in part), key=kind.order)
    if view.ranked is None:
        view.ranked = sorted(_rank(where) for where in parts)
    return [item for i, slug in view.ranked for item in parts[(BUCKETS[i], slug)]]


_Rank = tuple[int, str]  # (the bucket's place in BUCKETS, slug): the listing order


def _rank(where: Where) -> _Rank:
    return BUCKETS.index(where[0]), where[1]


def _compute(store: Store, kind: Kind[_T]) -> _View:
    since = time.monotonic()
    items = kind.every(store)
    parts: dict[Where, list[Any]] = {}
    for item in items:
        parts.setdefault(_where(store, str(item.path)), []).append(item)
    return _View(since, parts, items, cost=time.monotonic() - since)


def _refresh(store: Store, kind: Kind[_T], view: _View) -> None:
    ranked = view.ranked
    for slug in view.dirty:
        for bucket in kind.buckets:
            had = view.parts.pop((bucket, slug), None) is not None
            found = None
            if os.path.isdir(f"{store.tickets_dir}/{bucket}/{slug}"):
                found = kind.one(store, bucket, slug)
                if found:
                    view.parts[(bucket, slug)] = list(found)
            if ranked is not None and had != bool(found):
                rank = _rank((bucket, slug))
                if had:
                    del ranked[bisect.bisect_left(ranked, rank)]
                else:
                    bisect.insort(ranked, rank)
    view.dirty = set()
    view.flat = None


def touched(ops: Iterable[journal.Op]) -> set[str] | None:
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


def _where(store: Store, path: str) -> Where:
    """(bucket, slug) of a path inside a ticket directory."""
    rel = path[len(str(store.tickets_dir)) + 1 :]
    bucket, slug, _rest = [*rel.split("/", 2), "", ""][:3]
    return bucket, slug
