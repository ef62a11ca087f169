"""Read-side cache for the engine: tickets and events parsed once per file content.

An engine process ticks many times over the same store; re-parsing every ticket and
event file each tick is most of its cost. Parsed records are cached per process, keyed
by the file's exact text: reading a small file is cheap, parsing YAML is not, and a
content key can never serve a stale record. Callers get copies of event dicts; tickets
are frozen.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from yoi import events, schema, yamlio
from yoi.errors import YoiError
from yoi.model import Ticket
from yoi.store import TICKET_FILE, Store

T = TypeVar("T")
_cache: dict[str, tuple[str, object]] = {}
MAX_ENTRIES = 100_000


def cached(store: Store, path: Path, load: Callable[[str], T]) -> T | None:
    """``load(text)`` for ``path``'s current text (None when the file is gone)."""
    try:
        text = store.read_text(path)
    except FileNotFoundError:
        return None
    hit = _cache.get(str(path))
    if hit is not None and hit[0] == text:
        return hit[1]  # type: ignore[return-value]
    value = load(text)
    if len(_cache) >= MAX_ENTRIES:
        _cache.clear()
    _cache[str(path)] = (text, value)
    return value


def _ticket(store: Store, slug: str, tdir: Path, _text: str) -> Ticket:
    return store.load_ticket(slug, tdir).ticket


def _event(store: Store, path: Path, text: str) -> dict[str, Any]:
    rel = store.rel(path)
    data = yamlio.load_plain(text, path=rel)
    schema.check("event", data, rel)
    assert isinstance(data, dict)
    return data


def tickets(store: Store) -> list[Ticket]:
    """Every ticket that loads (invalid ones are skipped; `yoi doctor` reports them)."""
    out = []
    for _bucket, slug, tdir in store.iter_ticket_dirs():
        try:
            ticket = cached(store, tdir / TICKET_FILE, partial(_ticket, store, slug, tdir))
        except (YoiError, OSError):
            continue
        if ticket is not None:
            out.append(ticket)
    return out


def pending_events(store: Store) -> list[events.EventFile]:
    """Unprocessed events of every ticket, oldest first."""
    out = []
    for _bucket, _slug, tdir in store.iter_ticket_dirs():
        for path in store.record_files(tdir, events.EVENTS_DIR):
            try:
                record = cached(store, path, partial(_event, store, path))
            except (YoiError, OSError):
                continue
            if record is not None and not record.get("processed"):
                out.append(events.EventFile(path, dict(record)))
    return sorted(out, key=lambda e: e.sort_key)
