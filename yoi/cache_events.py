"""The index of pending (unprocessed) events, so an idle engine tick does not read
every event of every ticket.

``pending(store)`` returns the same ``(path, record)`` pairs as reading every event
file and keeping the unprocessed ones, with this cost:

- ``tickets/open/``: one directory listing per ticket and one ``stat`` per event file;
  a file whose stat key (``cache.py``) did not change is not read again. This grows
  with the open tickets only.
- ``tickets/done/``: nothing per ticket. A done ticket can still hold a pending event
  (a late hook emitted one; the engine then closes it as NON_EXECUTABLE_STATUS), so
  the index keeps the pending events of done tickets, valid while the stat keys of
  ``tickets/done/`` and of git's index files are the ones recorded with them:

  * every yoi transaction that writes an event under done/ or moves a ticket there
    moves the mtime of ``tickets/done/`` forward (``Store.touch_done``) and then
    updates the index itself for the tickets it touched (``note_done_writes``);
  * a change made outside yoi by git (checkout, merge, pull, reset) rewrites git's
    index, and one that adds or removes a ticket directory changes ``tickets/done/``;
    either way the next reader re-reads the events of every done ticket (using the
    per-file cache in ``events-done-*.bin``, so only changed files are parsed).

  Not seen until the next such rescan: a file edited by hand, in place, inside an
  existing done ticket, with no git operation afterwards. ``yoi events list`` (every
  event) always reads every file. The consequence is bounded: such an event could only
  ever be closed as NON_EXECUTABLE_STATUS (its ticket is done).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import cache, fastschema, fastyaml, forked
from yoi.store import remembered

if TYPE_CHECKING:
    from yoi.store import Store

EVENTS = "events"
PARALLEL_MIN = forked.PARALLEL_MIN  # unindexed done tickets worth a second process
INVALID, PROCESSED, PENDING = 0, 1, 2
MAX_EVENT_BYTES = 1 << 20

# entry: (mtime_ns, size, ino, ctime_ns, status, record | None)
Entry = tuple[int, int, int, int, int, Any]
Files = dict[str, Entry]  # event file name -> entry


def _read_entry(store: Store, path: str) -> Entry | None:
    """Stat key (before the read) and status of one event file; None if it vanished."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        data = os.read(fd, st.st_size + 1) if st.st_size <= MAX_EVENT_BYTES else b""
    except OSError:
        return None
    finally:
        os.close(fd)
    key = cache.stat_key(st)
    record = _record(store, path, data, st.st_size)
    if record is None:
        return (*key, INVALID, None)
    return (*key, PROCESSED, None) if record.get("processed") else (*key, PENDING, record)


def _record(store: Store, path: str, data: bytes, size: int) -> dict[str, Any] | None:
    """The validated event record, or None when the file is not a valid event."""
    if len(data) == size and size <= MAX_EVENT_BYTES:
        try:
            text: str | None = data.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None:
            known = remembered("event", text)  # valid: this process wrote or read it
            if known is not None:
                return known
            record = fastyaml.load(text)
            if record is not None and fastschema.is_valid("event", record) is True:
                return record
    from yoi.errors import YoiError

    try:
        return store.read_record(Path(path), "event")  # exact rules (and the slow loader)
    except (YoiError, OSError):
        return None


def scan_files(store: Store, tdir: str, old: Files | None, read_at: int) -> tuple[Files, bool]:
    """The entries of one ticket's events directory; True when anything was re-read."""
    try:
        names = os.listdir(f"{tdir}/{EVENTS}")
    except (FileNotFoundError, NotADirectoryError):
        return {}, bool(old)
    out: Files = {}
    changed = old is None or len(old) != len(names)
    for name in names:
        if not name.endswith(".yaml") or name.startswith("."):
            continue
        path = f"{tdir}/{EVENTS}/{name}"
        entry = old.get(name) if old else None
        if entry is not None:
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                changed = True
                continue
            if (entry[0], entry[1], entry[2], entry[3]) == cache.stat_key(st):
                out[name] = entry
                continue
        fresh = _read_entry(store, path)
        changed = True
        if fresh is not None and not cache.is_racy(fresh[:4], read_at):
            out[name] = fresh
        elif fresh is not None and fresh[4] == PENDING:
            out[name] = (0, -1, 0, 0, PENDING, fresh[5])  # use now, never match later
    return out, changed


def _pending_of(files: Files) -> list[tuple[str, dict[str, Any]]]:
    return [(name, e[5]) for name, e in files.items() if e[4] == PENDING]


class Index:
    """The index file: open tickets' entries, and done tickets' pending events with the
    stat keys they are valid for."""

    def __init__(self, store: Store):
        self.store = store
        self.path = cache.cache_path(store.runtime_dir, store.yoi_dir, "events")
        data = cache.load(self.path)
        ok = isinstance(data, dict)
        self.open: dict[str, Files] = data["open"] if ok else {}
        self.done: dict[str, Files] = data["done"] if ok else {}
        self.done_key: Any = data["done_key"] if ok else None
        self.dirty = False

    def save(self) -> None:
        if self.dirty:
            cache.save(self.path, {"open": self.open, "done": self.done, "done_key": self.done_key})


def _dir_key(path: Path) -> cache.Key | None:
    try:
        return cache.stat_key(os.stat(path))
    except OSError:
        return None


def done_key(store: Store) -> tuple[Any, ...]:
    """What the done part of the index depends on: tickets/done/ and git's index files."""
    layout = store.layout
    indexes = {layout.git_dir / "index", layout.common_dir / "index"}
    return (_dir_key(store.tickets_dir / "done"), *sorted((str(p), _dir_key(p)) for p in indexes))


def _trusted(key: tuple[Any, ...], stored: Any, read_at: int) -> bool:
    """The recorded key is still the key, and none of its stats is racy (a writer's
    explicit done/ stamp is never racy: ``stamped``)."""
    if not stored or stored[0] != key:
        return False
    stamped = stored[1]
    for i, part in enumerate(key):
        sub = part[1] if isinstance(part, tuple) and len(part) == 2 else part
        if sub is None or (i == 0 and stamped):
            continue
        if cache.is_racy(sub, read_at):
            return False
    return True


def pending(store: Store) -> list[tuple[Path, dict[str, Any]]]:
    """Every pending event: (path, record), in no particular order."""
    with cache.gc_paused():
        return _pending(store)


def _pending(store: Store) -> list[tuple[Path, dict[str, Any]]]:
    read_at = cache.now_ns()
    index = Index(store)
    out: list[tuple[Path, dict[str, Any]]] = []
    open_base = store.tickets_dir / "open"
    seen: dict[str, Files] = {}
    for slug in store.bucket_names("open"):
        tdir = f"{open_base}/{slug}"
        files, changed = scan_files(store, tdir, index.open.get(slug), read_at)
        index.dirty |= changed
        if files:
            seen[slug] = files
        out.extend((Path(f"{tdir}/{EVENTS}/{n}"), r) for n, r in _pending_of(files))
    if len(seen) != len(index.open):
        index.dirty = True
    index.open = seen
    key = done_key(store)
    if not _trusted(key, index.done_key, read_at):
        index.done = rescan_done(store, read_at)
        index.done_key = (key, False)
        index.dirty = True
    done_base = store.tickets_dir / "done"
    for slug, files in index.done.items():
        out.extend((Path(f"{done_base}/{slug}/{EVENTS}/{n}"), r) for n, r in _pending_of(files))
    index.save()
    return out


def pending_in(store: Store, tdir: str) -> list[tuple[Path, dict[str, Any]]]:
    """The pending events of one ticket directory, read now: (path, record)."""
    files, _changed = scan_files(store, tdir, None, cache.now_ns())
    return [(Path(f"{tdir}/{EVENTS}/{n}"), r) for n, r in _pending_of(files)]


def rescan_done(store: Store, read_at: int) -> dict[str, Files]:
    """Pending events of every done ticket (changed files only are parsed)."""
    path = cache.cache_path(store.runtime_dir, store.yoi_dir, "events-done")
    loaded = cache.load(path)
    old: dict[str, Files] = loaded if isinstance(loaded, dict) else {}
    new: dict[str, Files] = {}
    changed = False
    base = store.tickets_dir / "done"
    slugs = store.bucket_names("done")

    def scan(slug: str) -> tuple[Files, bool]:
        return scan_files(store, f"{base}/{slug}", old.get(slug), read_at)

    # A cold index (a fresh clone) parses every done ticket's events: two processes
    cold = sum(1 for slug in slugs if slug not in old) >= PARALLEL_MIN
    if cold:
        scanned = forked.split_map(scan, slugs, min_items=PARALLEL_MIN)
    else:
        scanned = [scan(slug) for slug in slugs]
    for slug, (files, dirty) in zip(slugs, scanned, strict=True):
        changed |= dirty
        if files:
            new[slug] = files
    if changed or len(new) != len(old):
        cache.save(path, new)
    return {
        slug: {n: e for n, e in files.items() if e[4] == PENDING}
        for slug, files in new.items()
        if any(e[4] == PENDING for e in files.values())
    }


def note_done_writes(store: Store, slugs: set[str], before: tuple[Any, ...]) -> None:
    """After a commit that wrote events of done tickets ``slugs`` (or moved them to
    done/), with the store lock held: update the index for those tickets, if it was
    current (``before``: the done key when the commit started)."""
    if not cache.enabled():
        return
    index = Index(store)
    if not index.done_key or index.done_key[0] != before:
        return  # the index was not current: a reader will rescan anyway
    read_at = cache.now_ns()
    base = store.tickets_dir / "done"
    for slug in slugs:
        files, _ = scan_files(store, f"{base}/{slug}", None, read_at)
        files = {n: e for n, e in files.items() if e[4] == PENDING}
        if files:
            index.done[slug] = files
        else:
            index.done.pop(slug, None)
    index.done_key = (done_key(store), True)
    index.dirty = True
    index.save()
