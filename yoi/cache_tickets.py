"""Reading tickets fast: a fast parse of one ticket.md, and ``list_tickets`` over a
stat-keyed cache of parsed, validated front matter (``cache.py`` explains the keys).

A warm ``list_tickets`` costs one directory scan per bucket and one ``stat`` per ticket:
no YAML, no schema. A miss reads the file once (``fstat`` before ``read``, so the key
can only be older than the content), parses it with ``fastyaml``, checks it with
``fastschema``, and falls back to the full ``Store.load_ticket`` (ruamel.yaml and
jsonschema) for anything those do not vouch for, which also gives invalid tickets
their exact error. Results, including the problem of an invalid ticket, are cached per
bucket (``tickets-<store>-open.bin``, ``...-done.bin``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import cache, fastschema, fastyaml, frontmatter
from yoi.errors import InvalidRecordError, Problem, YoiError
from yoi.model import BlockerKind, BlockerRef, State, Ticket
from yoi.slug import is_valid_slug

if TYPE_CHECKING:
    from yoi.store import Store

TICKET_FILE = "ticket.md"
_FIELDS = [f.name for f in dataclasses.fields(Ticket)]
_STATE_AT = _FIELDS.index("state")
_BLOCKED_AT = _FIELDS.index("blocked_on")
_PATH_AT = _FIELDS.index("path")
_STATES = {s.value: s for s in State}

# An entry: (mtime_ns, size, ino, ctime_ns, fields | None, problem | None)
Entry = tuple[int, int, int, int, tuple[Any, ...] | None, tuple[str, str, str] | None]


def encode(t: Ticket) -> tuple[Any, ...]:
    """A ticket as marshal-able plain values (see ``decode``)."""
    values: list[Any] = [getattr(t, name) for name in _FIELDS]
    values[_PATH_AT] = None
    values[_STATE_AT] = t.state.value
    values[_BLOCKED_AT] = tuple(
        (b.blocker_id, b.kind.value, b.description, b.resolved) for b in t.blocked_on
    )
    return tuple(values)


def decode(values: tuple[Any, ...], path: Path) -> Ticket:
    """``Ticket(...)`` from ``encode``'s values: equal to ``Ticket.from_front``'s."""
    args = list(values)
    args[_PATH_AT] = path
    args[_STATE_AT] = _STATES[args[_STATE_AT]]
    if args[_BLOCKED_AT]:
        args[_BLOCKED_AT] = tuple(
            BlockerRef(bid, BlockerKind(kind), desc, resolved)
            for bid, kind, desc, resolved in args[_BLOCKED_AT]
        )
    return Ticket(*args)


def _read(file: Path, limit: int) -> tuple[cache.Key, str]:
    """The file's stat key (taken before the read) and its text."""
    fd = os.open(file, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        st = os.fstat(fd)
        if st.st_size > limit:
            raise ValueError("too large")
        data = os.read(fd, st.st_size + 1)  # a buffer the size of the file: no mmap
        if len(data) != st.st_size:
            raise ValueError("short read")  # changing under us: take the slow path
    finally:
        os.close(fd)
    return cache.stat_key(st), data.decode("utf-8")


def fast_ticket(slug: str, tdir: Path, text: str) -> Ticket | None:
    """The ticket from ``text`` when the fast parser and checker vouch for it."""
    parts = frontmatter.split(text)
    if parts is None:
        return None
    front = fastyaml.load(parts[0]) if parts[0] else None
    if front is None or fastschema.is_valid("ticket", front) is not True:
        return None
    if not is_valid_slug(slug):
        return None
    return Ticket.from_front(slug, tdir, front, parts[1])


def _fast(slug: str, tdir: Path) -> tuple[Ticket | None, cache.Key | None]:
    """The ticket through the fast path (None: take the slow one), and the file's key
    taken before the read."""
    from yoi.store import MAX_TICKET_BYTES

    try:
        key, text = _read(tdir / TICKET_FILE, MAX_TICKET_BYTES)
        return fast_ticket(slug, tdir, text), key
    except (OSError, ValueError):
        return None, None


def read_ticket(store: Store, slug: str, tdir: Path) -> Ticket:
    """One ticket, fast when possible; raises like ``Store.load_ticket`` otherwise."""
    ticket, _key = _fast(slug, tdir)
    return ticket if ticket is not None else store.load_ticket(slug, tdir).ticket


def _problem(store: Store, tdir: Path, exc: Exception) -> Problem:
    path = store.rel(tdir / TICKET_FILE)
    if isinstance(exc, InvalidRecordError):
        first = exc.problems[0] if exc.problems else Problem(exc.path, "", exc.message)
        return Problem(path, first.pointer, first.message)
    return Problem(path, "", str(exc))


class _Bucket:
    """One bucket's cache file: entries by slug, and whether it must be rewritten."""

    def __init__(self, store: Store, bucket: str):
        self.path = cache.cache_path(store.runtime_dir, store.yoi_dir, f"tickets-{bucket}")
        loaded = cache.load(self.path)
        self.entries: dict[str, Entry] = loaded if isinstance(loaded, dict) else {}
        self.seen: set[str] = set()
        self.dirty = False

    def save(self) -> None:
        stale = self.entries.keys() - self.seen
        if stale:
            for slug in stale:
                del self.entries[slug]
            self.dirty = True
        if self.dirty:
            cache.save(self.path, self.entries)


def child(base: Path, name: str) -> Path:
    """``base / name`` for a plain name, without pathlib's parsing (10,000 times)."""
    make = getattr(base, "_make_child_relpath", None)
    return make(name) if make is not None else base / name


def list_tickets(store: Store) -> tuple[list[Ticket], list[Problem]]:
    """Every valid ticket (open first, by slug), and one problem per ticket that does
    not load: exactly what reading every ticket.md gives, from the cache when the
    files did not change."""
    with cache.gc_paused():
        return _list(store)


def _list(store: Store) -> tuple[list[Ticket], list[Problem]]:
    tickets: list[Ticket] = []
    invalid: list[Problem] = []
    read_at = cache.now_ns()
    for bucket in ("open", "done"):
        base = store.tickets_dir / bucket
        names = _ticket_dirs(base)
        if names is None:
            continue
        state = _Bucket(store, bucket)
        prefix = f"{base}/"
        for name in names:
            tdir = child(base, name)
            state.seen.add(name)
            entry = state.entries.get(name)
            ticket = _cached(entry, prefix + name, tdir) if entry is not None else None
            if ticket is None:
                ticket = _load(store, state, name, tdir, read_at)
            if isinstance(ticket, Ticket):
                tickets.append(ticket)
            else:
                invalid.append(ticket)
        state.save()
    return tickets, invalid


def _ticket_dirs(base: Path) -> list[str] | None:
    try:
        with os.scandir(base) as it:
            names = [
                e.name for e in it if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
            ]
    except FileNotFoundError:
        return None
    names.sort()
    return names


def _cached(entry: Entry, tdir_text: str, tdir: Path) -> Ticket | Problem | None:
    try:
        st = os.stat(tdir_text + "/" + TICKET_FILE, follow_symlinks=False)
    except OSError:
        return None
    if (
        entry[0] != st.st_mtime_ns
        or entry[1] != st.st_size
        or entry[2] != st.st_ino
        or entry[3] != st.st_ctime_ns
    ):
        return None
    if entry[4] is not None:
        return decode(entry[4], tdir)
    return Problem(*entry[5]) if entry[5] is not None else None


def _load(store: Store, state: _Bucket, name: str, tdir: Path, read_at: int) -> Ticket | Problem:
    """Read one ticket (a cache miss); remember the result when its key is stable."""
    ticket, key = _fast(name, tdir)
    if ticket is not None and key is not None:
        _remember(state, name, key, encode(ticket), None, read_at)
        return ticket
    before = _key_of(tdir)  # the slow path: exact errors, or a slow success
    try:
        ticket = store.load_ticket(name, tdir).ticket
        result: Ticket | Problem = ticket
    except (YoiError, OSError) as exc:  # invalid, too large, a symlink, unreadable
        result = _problem(store, tdir, exc)
    if before is not None and before == _key_of(tdir):
        if isinstance(result, Ticket):
            _remember(state, name, before, encode(result), None, read_at)
        else:
            _remember(state, name, before, None, result, read_at)
    return result


def _key_of(tdir: Path) -> cache.Key | None:
    try:
        return cache.stat_key(os.stat(tdir / TICKET_FILE, follow_symlinks=False))
    except OSError:
        return None


def _remember(
    state: _Bucket,
    name: str,
    key: cache.Key,
    fields: tuple[Any, ...] | None,
    problem: Problem | None,
    read_at: int,
) -> None:
    if cache.is_racy(key, read_at):
        return
    shown = None if problem is None else (problem.path, problem.pointer, problem.message)
    state.entries[name] = (*key, fields, shown)
    state.dirty = True
