"""Reading tickets fast: one ticket.md through the fast parsers, and every ticket of the
store through stat-keyed caches of parsed, validated front matter (``cache.py``
explains the keys).

Two caches, one per use, each one file per bucket:

- ``tickets-<bucket>``: everything a ``Ticket`` holds, for ``Store.list_tickets``
  (the engine, plans, doctor);
- ``rows-<bucket>``: what ``yoi ticket list`` shows and filters on, with the ticket's
  JSON text already written (``output.ticket_json``), so a warm listing builds no
  ``Ticket`` and encodes no JSON.

Either costs one directory scan per bucket and one ``stat`` per ticket when warm: no
YAML, no schema, no file read. A miss reads the file once (``fstat`` before ``read``, so
the key can only be older than the content), parses it with ``fastticket`` (or
``fastyaml`` plus ``fastschema`` for other layouts), and falls back to the full
``Store.load_ticket`` (ruamel.yaml and jsonschema) for anything those do not vouch for,
which also gives invalid tickets their exact error. Results, including the problem of
an invalid ticket, are cached.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import cache, fastticket, forked, frontmatter
from yoi.errors import InvalidRecordError, Problem, YoiError
from yoi.model import BlockerKind, BlockerRef, State, Ticket
from yoi.slug import is_valid_slug

if TYPE_CHECKING:
    from yoi.store import Store

TICKET_FILE = "ticket.md"
BUCKETS = ("open", "done")
_FIELDS = [f.name for f in dataclasses.fields(Ticket)]
_STATE_AT = _FIELDS.index("state")
_BLOCKED_AT = _FIELDS.index("blocked_on")
_PATH_AT = _FIELDS.index("path")
_STATES = {s.value: s for s in State}

# An entry: (mtime_ns, size, ino, ctime_ns, value | None, problem | None)
Entry = tuple[int, int, int, int, Any, tuple[str, str, str] | None]
# A row of `ticket list`: (slug, state, created_at, title, labels, JSON text)
Row = tuple[str, str, str, str, tuple[str, ...], str]
ROW_PAD = "    "  # rows' JSON sits in {"tickets": [...]}: two levels deep


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


def row(t: Ticket, shown: str, complete: bool) -> Row:
    """What ``ticket list`` needs of a ticket (see ``commands/ticket_list.py``). The
    JSON text is written for complete rows only: a listing asks for those of done
    tickets (not shown by default) only when it shows them."""
    from yoi.output import ticket_json

    text = ticket_json(t, shown, ROW_PAD) if complete else ""
    return (t.slug, t.state.value, t.created_at, t.title, t.labels, text)


@dataclass(frozen=True)
class Kind:
    """One cache: its name, and its value made from a validated front matter (the fast
    path) or from a ``Ticket`` (the slow path)."""

    name: str
    from_front: Callable[[_Miss, Front, str], Any]
    from_ticket: Callable[[_Miss, Ticket], Any]


# A validated front matter: fastticket's (values converted on demand) or a mapping.
Front = fastticket.Front | Mapping[str, Any]


def _values(front: Front) -> Mapping[str, Any]:
    return front.values() if isinstance(front, fastticket.Front) else front


def _row_front(miss: _Miss, front: Front, body: str) -> Row:
    if isinstance(front, fastticket.Front):
        state, title, created, labels = front.state, front.title, front.created_at, front.labels
    else:
        state, title, created = front["state"], front["title"], front["created_at"]
        labels = front.get("labels") or []
    if miss.completes(state):
        return _row_ticket(miss, Ticket.from_front(miss.name, miss.tdir, _values(front), body))
    return (miss.name, state, created, title, tuple(labels), "")


def _row_ticket(miss: _Miss, t: Ticket) -> Row:
    return row(t, miss.shown, miss.completes(t.state.value))


def _encode_front(miss: _Miss, front: Front, body: str) -> tuple[Any, ...]:
    return encode(Ticket.from_front(miss.name, miss.tdir, _values(front), body))


TICKETS = Kind("tickets", _encode_front, lambda _miss, t: encode(t))
ROWS = Kind("rows", _row_front, _row_ticket)


def _read(file: str | Path, limit: int) -> tuple[cache.Key, str]:
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


def fast_front(slug: str, text: str) -> tuple[Front, str] | None:
    """The validated front matter and the body of ``text`` when the fast parsers and
    checkers vouch for them (None: take the slow path)."""
    parts = frontmatter.split(text)
    if parts is None or not is_valid_slug(slug):
        return None
    front: Front | None = fastticket.match(parts[0])
    if front is None:
        from yoi import fastschema, fastyaml

        front = fastyaml.load(parts[0]) if parts[0] else None
        if front is None or fastschema.is_valid("ticket", front) is not True:
            return None
    return front, parts[1]


def _fast(slug: str, file: str) -> tuple[tuple[Front, str] | None, cache.Key | None]:
    """The front matter and body through the fast path (None: take the slow one), and
    the file's key taken before the read."""
    from yoi.store import MAX_TICKET_BYTES

    try:
        key, text = _read(file, MAX_TICKET_BYTES)
        return fast_front(slug, text), key
    except (OSError, ValueError):
        return None, None


def read_ticket(store: Store, slug: str, tdir: Path) -> Ticket:
    """One ticket, fast when possible; raises like ``Store.load_ticket`` otherwise."""
    got, _key = _fast(slug, f"{tdir}/{TICKET_FILE}")
    if got is not None:
        return Ticket.from_front(slug, tdir, _values(got[0]), got[1])
    return store.load_ticket(slug, tdir, edit=False).ticket


def _problem(store: Store, tdir: Path, exc: Exception) -> Problem:
    path = store.rel(tdir / TICKET_FILE)
    if isinstance(exc, InvalidRecordError):
        first = exc.problems[0] if exc.problems else Problem(exc.path, "", exc.message)
        return Problem(path, first.pointer, first.message)
    return Problem(path, "", str(exc))


class _Bucket:
    """One bucket's cache file: entries by slug, and whether it must be rewritten."""

    def __init__(self, store: Store, name: str, names: list[str]):
        self.path = cache.cache_path(store.runtime_dir, store.yoi_dir, name)
        loaded = cache.load(self.path)
        self.entries: dict[str, Entry] = loaded if isinstance(loaded, dict) else {}
        self.dirty = len(self.entries) != len(names)
        if self.dirty:
            present = set(names)
            for slug in [s for s in self.entries if s not in present]:
                del self.entries[slug]

    def save(self) -> None:
        if self.dirty:
            cache.save(self.path, self.entries)


def child(base: Path, name: str) -> Path:
    """``base / name`` for a plain name, without pathlib's parsing (10,000 times)."""
    make = getattr(base, "_make_child_relpath", None)
    return make(name) if make is not None else base / name


def list_tickets(
    store: Store, buckets: Sequence[str] = BUCKETS
) -> tuple[list[Ticket], list[Problem]]:
    """Every valid ticket (open first, by slug), and one problem per ticket that does
    not load: exactly what reading every ticket.md gives, from the cache when the
    files did not change. ``buckets``: only the tickets of these."""
    tickets: list[Ticket] = []
    invalid: list[Problem] = []
    for base, slug, value, problem, key in scan(store, TICKETS, None, buckets):
        if value is not None:
            tickets.append(_decoded(base, slug, value, key))
        elif problem is not None:
            invalid.append(Problem(*problem))
    return tickets, invalid


# Tickets this process made from cache entries, by ticket directory and the key of the
# entry's ticket.md: an engine run lists every ticket a few times per tick, and an
# unchanged file then costs its ``stat`` (in ``scan``), not a new ``Ticket``.
_DECODED: dict[str, tuple[cache.Key, Ticket]] = {}


def _decoded(base: Path, slug: str, value: tuple[Any, ...], key: cache.Key | None) -> Ticket:
    where = f"{base}/{slug}"
    held = _DECODED.get(where)
    if held is not None and key is not None and held[0] == key:
        return held[1]
    ticket = decode(value, child(base, slug))
    if key is not None:
        _DECODED[where] = (key, ticket)
    return ticket


def load_one(store: Store, bucket: str, name: str) -> list[Ticket]:
    """The ticket in ``tickets/<bucket>/<name>`` as ``list_tickets`` gives it (none when
    it does not load), read now."""
    base = store.tickets_dir / bucket
    shown = f"{store.rel(base)}/{name}"
    entry, stable = _Miss(store, name, base, TICKETS, shown, None).load(cache.now_ns())
    if entry[4] is None:
        return []
    key = (entry[0], entry[1], entry[2], entry[3]) if stable else None
    return [_decoded(base, name, entry[4], key)]


def list_rows(store: Store, states: set[str]) -> tuple[list[Row], list[Problem]]:
    """``list_tickets`` as ``ticket list`` rows (see ``row``); rows in ``states`` are
    complete (with their JSON text)."""
    rows: list[Row] = []
    invalid: list[Problem] = []
    for _base, _slug, value, problem, _key in scan(store, ROWS, states):
        if value is not None:
            rows.append(value)
        elif problem is not None:
            invalid.append(Problem(*problem))
    return rows, invalid


PARALLEL_MIN = forked.PARALLEL_MIN  # misses worth a second process


def scan(
    store: Store, kind: Kind, complete: set[str] | None, buckets: Sequence[str] = BUCKETS
) -> list[tuple[Path, str, Any, tuple[str, str, str] | None, cache.Key | None]]:
    """``(bucket dir, slug, make(...) | None, problem | None, key)`` for every ticket
    directory, open bucket first, by slug; from the ``kind`` cache where the ticket.md
    did not change (``key``: the file's, when the value may be kept under it). With
    ``complete``, a cached row of a state in it without its JSON text is made again.
    Many misses (a cold cache) are read by two processes."""
    with cache.gc_paused():
        read_at = cache.now_ns()
        found: list[tuple[_Bucket, Path, list[str], list[Entry | None]]] = []
        misses: list[tuple[str, Path, str]] = []  # (slug, bucket dir, dir as shown)
        for bucket in buckets:
            base = store.tickets_dir / bucket
            names = _ticket_dirs(base)
            if names is None:
                continue
            state = _Bucket(store, f"{kind.name}-{bucket}", names)
            entries, prefix, shown = state.entries, f"{base}/", f"{store.rel(base)}/"
            got: list[Entry | None] = []
            for name in names:
                entry = entries.get(name)
                if (
                    entry is None
                    or not _unchanged(entry, prefix + name)
                    or (complete and entry[4] and not entry[4][5] and entry[4][1] in complete)
                ):
                    misses.append((name, base, shown))
                    got.append(None)
                else:
                    got.append(entry)
            found.append((state, base, names, got))

        def load(miss: tuple[str, Path, str]) -> tuple[Entry, bool]:
            name, base, shown = miss  # the _Miss is made where it is read (maybe a child)
            return _Miss(store, name, base, kind, shown + name, complete).load(read_at)

        loaded = forked.split_map(load, misses, min_items=PARALLEL_MIN)
        fresh = iter(loaded)
        out: list[tuple[Path, str, Any, tuple[str, str, str] | None, cache.Key | None]] = []
        for state, base, names, got in found:
            for name, known in zip(names, got, strict=True):
                stable = True
                if known is None:
                    known, stable = next(fresh)
                    if stable:
                        state.entries[name] = known
                        state.dirty = True
                key = (known[0], known[1], known[2], known[3]) if stable else None
                out.append((base, name, known[4], known[5], key))
            state.save()
        return out


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


def _unchanged(entry: Entry, tdir_text: str) -> bool:
    try:
        st = os.stat(tdir_text + "/" + TICKET_FILE, follow_symlinks=False)
    except OSError:
        return False
    return (
        entry[0] == st.st_mtime_ns
        and entry[1] == st.st_size
        and entry[2] == st.st_ino
        and entry[3] == st.st_ctime_ns
    )


class _Miss:
    """One ticket to read (not cached, changed, or cached incomplete)."""

    __slots__ = ("base", "complete", "kind", "name", "shown", "store")

    def __init__(
        self,
        store: Store,
        name: str,
        base: Path,
        kind: Kind,
        shown: str,
        complete: set[str] | None,
    ):
        self.store: Store = store
        self.name: str = name
        self.base: Path = base
        self.kind: Kind = kind
        self.shown: str = shown
        self.complete: set[str] | None = complete

    @property
    def tdir(self) -> Path:
        return child(self.base, self.name)

    def completes(self, state: str) -> bool:
        return self.complete is None or state in self.complete

    def load(self, read_at: int) -> tuple[Entry, bool]:
        """The entry read now, and whether its key is stable enough to remember."""
        got, key = _fast(self.name, f"{self.base}/{self.name}/{TICKET_FILE}")
        if got is not None and key is not None:
            value = self.kind.from_front(self, got[0], got[1])
            return (*key, value, None), not cache.is_racy(key, read_at)
        tdir = self.tdir
        before = _key_of(tdir)  # the slow path: exact errors, or a slow success
        value = None
        shown: tuple[str, str, str] | None = None
        try:
            value = self.kind.from_ticket(
                self, self.store.load_ticket(self.name, tdir, edit=False).ticket
            )
        except (YoiError, OSError) as exc:  # invalid, too large, a symlink, unreadable
            problem = _problem(self.store, tdir, exc)
            shown = (problem.path, problem.pointer, problem.message)
        if before is not None and before == _key_of(tdir):
            return (*before, value, shown), not cache.is_racy(before, read_at)
        return (0, -1, 0, 0, value, shown), False


def _key_of(tdir: Path) -> cache.Key | None:
    try:
        return cache.stat_key(os.stat(tdir / TICKET_FILE, follow_symlinks=False))
    except OSError:
        return None
