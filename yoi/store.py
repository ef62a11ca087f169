"""The ticket store: paths, the lock, transactions, and reading/validating records.

Every read and write under ``.yoi/`` goes through here. Writes happen only inside
``Store.transaction()``, which holds the one store lock, rolls forward any interrupted
commit, and applies its own operations as one journaled commit.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import bounded, fsio
from yoi.errors import InvalidRecordError, LockTimeoutError, NotFoundError, Problem
from yoi.fsio import StoreIOError
from yoi.model import Ticket
from yoi.paths import Layout, discover
from yoi.slug import SlugIndex, is_valid_slug
from yoi.slug import resolve as resolve_name
from yoi.thread import Entry, parse_thread

if TYPE_CHECKING:
    from yoi import journal
    from yoi.locking import FlockLock

# yamlio (ruamel.yaml), schema (jsonschema) and journal are imported where they are
# used: reading a store that yoi wrote needs neither (fastyaml, fastschema, the cache).

BUCKETS = ("open", "done")
TICKET_FILE = "ticket.md"
THREAD_FILE = "thread.md"
MAX_TICKET_BYTES = 256 * 1024
MAX_THREAD_BYTES = 8 * 1024 * 1024
MAX_RECORD_BYTES = 20 * 1024 * 1024
LOCK_TIMEOUT_S = float(os.environ.get("YOI_LOCK_TIMEOUT", "60"))
LOCK_POLL_S = 0.002
_PATHS_MAX = 4096  # entries of each of a store's path memos

CONFIG_DEFAULTS: dict[str, Any] = {
    "capacity": 1,
    "base_ref": "HEAD",
    "branch_prefix": "yoi/",
    "lease_seconds": 60,
}


@dataclass(frozen=True, slots=True)
class TicketDoc:
    """A ticket as loaded for editing: round-trip front matter plus the validated view."""

    ticket: Ticket
    front: Any  # ruamel CommentedMap (keeps comments and key order)
    body: str


class Store:
    def __init__(self, layout: Layout):
        self.layout = layout
        self.yoi_dir = layout.yoi_dir
        self.root = layout.root
        self.tickets_dir = self.yoi_dir / "tickets"
        self.runtime_dir = layout.runtime_dir
        self._root_text = str(self.root)
        self._yoi_text = str(self.yoi_dir)
        self._lock: FlockLock | None = None
        self._config: dict[str, Any] | None = None
        # paths joined once (an engine asks for the same few many times a ticket)
        self._runtime_paths: dict[tuple[str, ...], Path] = {}
        self._ticket_paths: dict[tuple[str, str], Path] = {}

    @classmethod
    def discover(cls, start: Path | None = None) -> Store:
        return cls(discover(start))

    # ---- paths -------------------------------------------------------------------
    def rel(self, path: Path) -> str:
        """A path as shown to users: relative to the repository root when possible."""
        text, root = str(path), self._root_text
        if len(root) > 1 and text.startswith(root) and text[len(root) : len(root) + 1] == "/":
            return text[len(root) + 1 :]  # what relative_to gives, without its cost
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return text

    def runtime(self, *parts: str) -> Path:
        path = self._runtime_paths.get(parts)
        if path is None:
            path = bounded.put(
                self._runtime_paths, parts, self.runtime_dir.joinpath(*parts), _PATHS_MAX
            )
        if not os.path.isdir(path):
            path.mkdir(parents=True, exist_ok=True)
        return path

    def bucket_names(self, bucket: str) -> list[str]:
        """The ticket directory names of one bucket, sorted (no hidden names, no symlinks,
        no files; one directory scan, no stat per entry)."""
        try:
            with os.scandir(self.tickets_dir / bucket) as it:
                names = [
                    e.name
                    for e in it
                    if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
                ]
        except FileNotFoundError:
            return []
        names.sort()
        return names

    def iter_ticket_dirs(self) -> Iterator[tuple[str, str, Path]]:
        """(bucket, slug, dir) for every ticket directory, open first, sorted by slug."""
        for bucket in BUCKETS:
            base = self.tickets_dir / bucket
            for name in self.bucket_names(bucket):
                yield bucket, name, base / name

    def slug_index(self) -> SlugIndex:
        return SlugIndex([*self.bucket_names("open"), *self.bucket_names("done")])

    def resolve(self, name: str) -> str:
        """The slug ``name`` names (exact, unique prefix or unique word-suffix): one pass
        over the directory names, without building an index."""
        return resolve_name(name, [*self.bucket_names("open"), *self.bucket_names("done")])

    def ticket_dir(self, slug: str) -> Path:
        for bucket in BUCKETS:
            path = self._ticket_paths.get((bucket, slug))
            if path is None:
                path = bounded.put(
                    self._ticket_paths, (bucket, slug), self.tickets_dir / bucket / slug, _PATHS_MAX
                )
            if os.path.isdir(path):
                return path
        raise NotFoundError(
            f"no ticket '{slug}'", hint="`yoi ticket list --state all` shows every ticket"
        )

    # ---- the lock and transactions ------------------------------------------------
    def lock(self) -> FlockLock:
        """The store lock (``locking``: one object per path per process)."""
        if self._lock is None:
            from yoi import locking

            path = self.runtime("locks") / "store.lock"
            self._lock = locking.for_path(str(path), LOCK_TIMEOUT_S)
        return self._lock

    def journal_pending(self) -> bool:
        """True when an interrupted multi-file change waits for the next writer to
        complete it (``journal.roll_forward``), or an engine's journal segment waits to
        be synced (``checkpoint``); read without the lock."""
        try:
            with os.scandir(self.runtime_dir / "journal") as entries:
                return any(e.name.endswith((".json", ".seg")) for e in entries)
        except (FileNotFoundError, NotADirectoryError):
            return False

    @contextmanager
    def locked(self) -> Iterator[None]:
        from yoi import journal
        from yoi.locking import LockTimeout, LockUnsupported

        try:
            lock = self.lock()
            if lock.is_locked:  # (per thread) nested: a fence check inside a transaction
                yield
                return
            # A waiter polls every LOCK_POLL_S (filelock's default, 50 ms, is several
            # times a whole commit: two engines on one store then mostly slept).
            lock.acquire(poll_interval=LOCK_POLL_S)
            try:  # the outermost acquisition completes interrupted changes
                if journal.roll_forward(self.runtime("journal")):
                    self.touch_done()  # a completed commit may have written into done/
                    from yoi import views

                    views.bump(self, None)
                yield
            finally:
                lock.release()
        except LockUnsupported as exc:
            raise StoreIOError(
                "cannot lock the store: its file system has no flock",
                where=exc.filename,
                hint="keep the repository's .git directory on a local file system",
                code=exc.errno,
            ) from exc
        except LockTimeout as exc:
            raise LockTimeoutError(
                f"the store lock is busy after {LOCK_TIMEOUT_S:.0f}s",
                where=str(self.runtime_dir / "locks" / "store.lock"),
                hint="another yoi process is writing; retry, or set YOI_LOCK_TIMEOUT",
            ) from exc

    @contextmanager
    def transaction(self, fence: Callable[[], None] | None = None) -> Iterator[Transaction]:
        with self.locked():
            tx = Transaction(self)
            yield tx
            if fence is not None:
                fence()
            tx.commit()

    # ---- reading -----------------------------------------------------------------
    def read_text(self, path: Path, *, limit: int = MAX_RECORD_BYTES) -> str:
        data = fsio.read_bytes(path, limit=limit)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRecordError(
                self.rel(path), [Problem(self.rel(path), "", f"not UTF-8 text: {exc.reason}")]
            ) from exc

    def read_record(self, path: Path, kind: str) -> dict[str, Any]:
        """Load a YAML record, validate it against its schema, return plain data.

        Records as yoi writes them take the fast path (``fastyaml`` + ``fastschema``);
        anything else, and every invalid record, goes through ruamel.yaml and jsonschema,
        which give the exact problems."""
        from yoi import fastschema, fastyaml

        text = self.read_text(path)
        known = remembered(kind, text)
        if known is not None:
            return known
        data = fastyaml.load(text)
        if data is not None and fastschema.is_valid(kind, data) is True:
            remember(kind, text, data)  # a copy: the caller may edit its own
            return data
        from yoi import schema, yamlio

        rel = self.rel(path)
        data = yamlio.load_plain(text, path=rel)
        schema.check(kind, data, rel)
        assert isinstance(data, dict)
        return data

    def config(self) -> dict[str, Any]:
        if self._config is None:
            path = self.yoi_dir / "config.yaml"
            data: dict[str, Any] = (
                self.read_record(path, "config") if path.exists() else {"version": 1}
            )
            engine = {**CONFIG_DEFAULTS, **(data.get("engine") or {})}
            self._config = {**data, "engine": engine}
        return self._config

    def load_ticket(self, slug: str, path: Path | None = None, *, edit: bool = True) -> TicketDoc:
        """A ticket for editing (round-trip front matter); validated like every read.
        ``edit=False`` (readers): a front matter whose comments the round-trip loader
        cannot place (``yamlio.CommentLayoutError``) is read as plain data, which is all a
        reader needs; for an edit that is the error, and nothing is written.

        A front matter that is exactly what yoi writes for its own data (no comment, no
        quoting of a person's choosing: dumping the parsed data gives the text back)
        comes back as plain data: edited and dumped, it holds the same data as ruamel's
        round-trip objects would (``tests/test_store.py``), in yoi's own layout, at a
        fraction of the cost. Any other front matter is loaded round-trip, so the
        comments and quoting a person chose survive the edit."""
        from yoi import frontmatter

        tdir = path or self.ticket_dir(slug)
        file = tdir / TICKET_FILE
        rel = self.rel(file)
        if not file.exists():
            raise InvalidRecordError(rel, [Problem(rel, "", "ticket.md is missing")])
        text = self.read_text(file, limit=MAX_TICKET_BYTES)
        parts = frontmatter.split(text)
        if parts is None:
            from yoi import yamlio

            parts = yamlio.split_front_matter(text, path=rel)  # raises, with the reason
        front_text, body = parts
        if is_valid_slug(slug):
            plain = _canonical_ticket(front_text)
            if plain is not None:
                return TicketDoc(Ticket.from_front(slug, tdir, plain, body), plain, body)
        from yoi import schema, yamlio  # ruamel.yaml: a front matter yoi did not write as is

        try:
            front = yamlio.load_rt(front_text, path=rel, first_line=yamlio.FRONT_LINE)
        except yamlio.CommentLayoutError:
            if edit:
                raise
            front = yamlio.load_plain(front_text, path=rel, first_line=yamlio.FRONT_LINE)
        plain = yamlio.to_plain(front)
        schema.check("ticket", plain, rel)
        if not is_valid_slug(slug):
            raise InvalidRecordError(rel, [Problem(rel, "", f"'{slug}' is not a valid slug")])
        return TicketDoc(Ticket.from_front(slug, tdir, plain, body), front, body)

    def read_ticket(self, slug: str) -> Ticket:
        """The validated ticket (read-only view): fast for files as yoi writes them."""
        from yoi import cache_tickets

        return cache_tickets.read_ticket(self, slug, self.ticket_dir(slug))

    def list_tickets(self) -> tuple[list[Ticket], list[Problem]]:
        """Every valid ticket (open first, by slug), and one problem per ticket that does
        not load. Served from the stat-keyed cache (``cache_tickets``) where files did not
        change; the result is the same as loading every ticket.md."""
        from yoi import cache_tickets

        return cache_tickets.list_tickets(self)

    def touch_done(self) -> None:
        """Move the mtime of ``tickets/done`` forward: the pending-event index re-reads
        the done bucket (``cache_events``). Called around every commit that writes an
        event under done/ or moves a ticket there."""
        done = self.tickets_dir / "done"
        with contextlib.suppress(OSError):
            st = os.stat(done)
            mtime = max(time.time_ns(), st.st_mtime_ns + 1)
            os.utime(done, ns=(st.st_atime_ns, mtime))

    def read_thread(self, slug: str, path: Path | None = None) -> list[Entry]:
        file = (path or self.ticket_dir(slug)) / THREAD_FILE
        if not file.exists():
            return []
        return parse_thread(self.read_text(file, limit=MAX_THREAD_BYTES), path=self.rel(file))

    def record_files(self, tdir: Path, sub: str) -> list[Path]:
        base = tdir / sub
        try:
            names = os.listdir(base)
        except FileNotFoundError:
            return []
        return [base / n for n in record_names(names)]

    def run_dirs(self, tdir: Path) -> list[Path]:
        base = tdir / "runs"
        try:
            names = sorted(os.listdir(base))
        except FileNotFoundError:
            return []
        return [base / n for n in names if not n.startswith(".") and (base / n).is_dir()]


class Transaction:
    """Writes queued under the store lock and committed as one journaled unit."""

    def __init__(self, store: Store):
        self.store = store
        self.ops: list[journal.Op] = []
        self._pending_text: dict[str, str] = {}

    def _rel(self, path: Path) -> str:
        """``path`` relative to the store dir (``relative_to``'s answer, and its error)."""
        text, base = str(path), self.store._yoi_text
        if text.startswith(base) and text[len(base) : len(base) + 1] == "/":
            return text[len(base) + 1 :]
        return str(path.relative_to(self.store.yoi_dir))

    def write_bytes(self, path: Path, data: bytes, *, create: bool = False) -> bool:
        from yoi import journal

        rel = self._rel(path)
        if create and (
            path.exists() or any(isinstance(o, journal.Write) and o.path == rel for o in self.ops)
        ):
            return False
        self.ops.append(journal.Write(rel, data, create))
        return True

    def write_text(self, path: Path, text: str, *, create: bool = False) -> bool:
        self._pending_text[self._rel(path)] = text
        return self.write_bytes(path, text.encode("utf-8"), create=create)

    def write_record(
        self, path: Path, kind: str, data: dict[str, Any], *, create: bool = False
    ) -> bool:
        """Validate ``data`` against its schema, then queue the write (the text is what
        ``yamlio.dump`` gives; ``fastdump`` writes the common records without ruamel's
        emitter)."""
        from yoi import fastdump, schema

        vouched = schema.check(kind, data, self.store.rel(path))
        text, fast = fastdump.text(data)
        if fast and vouched and kind in _READ_AGAIN:
            remember(kind, text, data)
        return self.write_text(path, text, create=create)

    def current_text(self, path: Path) -> str | None:
        """The file's text as this transaction will leave it (pending writes included)."""
        rel = self._rel(path)
        if rel in self._pending_text:
            return self._pending_text[rel]
        if not path.exists():
            return None
        return self.store.read_text(path, limit=MAX_THREAD_BYTES)

    def move(self, src: Path, dst: Path) -> None:
        from yoi import journal

        self.ops.append(journal.Move(self._rel(src), self._rel(dst)))

    def remove(self, path: Path) -> None:
        from yoi import journal

        self.ops.append(journal.Remove(self._rel(path)))

    def commit(self) -> None:
        from yoi import views

        ops, self.ops = _last_writes(self.ops), []
        if not ops:
            return
        touched = views.touched(ops)
        try:
            # Logged once the files are written and before the journal is removed: a
            # crash in between leaves the journal, whose roll-forward logs "anything".
            self._commit(ops, partial(views.bump, self.store, touched))
        except BaseException:  # even a failed commit may have changed some of these files
            views.bump(self.store, touched)
            raise

    def _commit(self, ops: list[journal.Op], applied: Callable[[], object]) -> None:
        from yoi import journal

        slugs = {slug for op in ops if (slug := _done_slug(op)) is not None}
        if not slugs:
            journal.commit(self.store.runtime("journal"), self.store.yoi_dir, ops, applied)
            return
        from yoi import cache_events

        before = cache_events.done_key(self.store)
        self.store.touch_done()
        journal.commit(self.store.runtime("journal"), self.store.yoi_dir, ops, applied)
        self.store.touch_done()
        cache_events.note_done_writes(self.store, slugs, before)


def record_names(names: Iterable[str]) -> list[str]:
    """The record files among directory entry ``names`` (``*.yaml``, not hidden: temp
    files are), sorted."""
    return sorted(n for n in names if n.endswith(".yaml") and not n.startswith("."))


def _last_writes(ops: list[journal.Op]) -> list[journal.Op]:
    """``ops`` without the replacing writes that a later replacing write of the same file
    makes moot (a thread that gets three entries in one transaction is written once).
    Only within a stretch without moves and removals, so the order of effects holds."""
    from yoi import journal

    later: set[str] = set()
    kept: list[journal.Op] = []
    for op in reversed(ops):
        if not isinstance(op, journal.Write):
            later.clear()
        elif not op.create:
            if op.path in later:
                continue
            later.add(op.path)
        kept.append(op)
    kept.reverse()
    return kept


def _done_slug(op: journal.Op) -> str | None:
    """The done ticket whose events ``op`` may change: a write or removal under
    ``tickets/done/<slug>/events/``, or a move to ``tickets/done/<slug>``."""
    from yoi import journal

    path = op.dst if isinstance(op, journal.Move) else op.path
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tickets" or parts[1] != "done":
        return None
    if isinstance(op, journal.Move) or (len(parts) > 4 and parts[3] == "events"):
        return parts[2]
    return None


def _canonical_ticket(front_text: str) -> dict[str, Any] | None:
    """The valid ticket data of a front matter that ``dump`` writes back unchanged (a
    fresh copy: the caller edits it)."""
    from yoi import fastdump, fastschema, fastyaml

    known = remembered(FRONT_MATTER, front_text)
    if known is not None:
        return known
    plain = fastyaml.load(front_text)
    if plain is None or fastschema.is_valid("ticket", plain) is not True:
        return None
    if fastdump.dump(plain) != front_text:
        return None
    remember(FRONT_MATTER, front_text, plain)
    return plain


# Valid records by (kind, text) as the fast path parsed them: the same text is the same
# record, so reading it again (an engine reads a run's event, workorder and ticket two or
# three times) costs a copy instead of a parse and a check. Bounded by total text size.
# A commit remembers the records it writes that the engine reads again (a run's workorder
# and event, a ticket's front matter): valid plain data that ``fastdump`` wrote reads back
# as exactly that data (tests/test_cache_dump.py).
_MEMO: dict[tuple[str, str], dict[str, Any]] = {}
_MEMO_CHARS = [0]
_MEMO_MAX_CHARS = 4 << 20
FRONT_MATTER = "ticket front matter"  # the memo's kind for a ticket's front matter
_READ_AGAIN = frozenset({"workorder", "event"})


def remember(kind: str, text: str, data: dict[str, Any]) -> None:
    """Note that ``text`` is the valid ``kind`` record ``data`` (a copy is kept)."""
    if _MEMO_CHARS[0] + len(text) > _MEMO_MAX_CHARS:
        _MEMO.clear()
        _MEMO_CHARS[0] = 0
    _MEMO[(kind, text)] = _fresh(data)
    _MEMO_CHARS[0] += len(text)


def remembered(kind: str, text: str) -> dict[str, Any] | None:
    """A fresh copy of the record ``text`` was noted to be, or None."""
    known = _MEMO.get((kind, text))
    return None if known is None else _fresh(known)


def _fresh(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) for k, v in data.items()}


def _copy(data: Any) -> Any:
    """A deep copy of plain record data (dicts, lists, immutable scalars)."""
    kind = type(data)
    if kind is dict:
        return {k: _copy(v) for k, v in data.items()}
    if kind is list:
        return [_copy(v) for v in data]
    return data
