"""TICKET_READY events: deterministic ids, one event per (ticket, queued_at), listing.

The event id is derived from its dedup key, and the file is created with
create-if-absent, so the same queue transition seen by the CLI, several hooks and the
kick rules yields exactly one event file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import clock
from yoi.model import EventReason, EventType

if TYPE_CHECKING:
    from yoi.store import Store, Transaction

EVENTS_DIR = "events"


def dedup_key(slug: str, queued_at: str) -> str:
    return f"{EventType.TICKET_READY.value}:{slug}:{queued_at}"


def event_id(slug: str, queued_at: str) -> str:
    digest = hashlib.sha256(dedup_key(slug, queued_at).encode("utf-8")).hexdigest()[:10]
    return f"ev-{clock.compact(clock.parse_ts(queued_at))}-{digest}"


def event_path(ticket_dir: Path, eid: str) -> Path:
    return ticket_dir / EVENTS_DIR / f"{eid}.yaml"


def new_event(slug: str, queued_at: str, source: str, now: str) -> dict[str, Any]:
    return {
        "event_id": event_id(slug, queued_at),
        "type": EventType.TICKET_READY.value,
        "ticket": slug,
        "created_at": now,
        "source": source,
        "dedup_key": dedup_key(slug, queued_at),
        "processed": False,
        "processed_at": None,
        "processed_reason": None,
        "run_id": None,
    }


def emit_ready(
    tx: Transaction, ticket_dir: Path, slug: str, queued_at: str, source: str, now: str
) -> bool:
    """Create the TICKET_READY event for (slug, queued_at) unless it exists. True if new."""
    record = new_event(slug, queued_at, source, now)
    path = event_path(ticket_dir, record["event_id"])
    return tx.write_record(path, "event", record, create=True)


def mark_processed(
    event: dict[str, Any], reason: EventReason, now: str, run_id: str | None = None
) -> dict[str, Any]:
    return {
        **event,
        "processed": True,
        "processed_at": now,
        "processed_reason": reason.value,
        "run_id": run_id,
    }


@dataclass(frozen=True, slots=True)
class EventFile:
    path: Path
    record: dict[str, Any]

    @property
    def sort_key(self) -> tuple[str, str]:
        return (str(self.record["created_at"]), str(self.record["event_id"]))


def ticket_events(store: Store, ticket_dir: Path) -> list[EventFile]:
    out = [
        EventFile(p, store.read_record(p, "event"))
        for p in store.record_files(ticket_dir, EVENTS_DIR)
    ]
    return sorted(out, key=lambda e: e.sort_key)


def all_events(store: Store, *, pending_only: bool = False) -> list[EventFile]:
    """Every event of every ticket, oldest first. Invalid event files are skipped here
    (``yoi doctor`` reports them).

    ``pending_only`` reads the pending-event index (``cache_events``): its cost grows
    with the open tickets, not with the done ones."""
    from yoi.errors import YoiError

    if pending_only:
        from yoi import cache_events

        found = [EventFile(path, record) for path, record in cache_events.pending(store)]
        return sorted(found, key=lambda e: e.sort_key)
    out: list[EventFile] = []
    for _bucket, _slug, tdir in store.iter_ticket_dirs():
        for path in store.record_files(tdir, EVENTS_DIR):
            try:
                record = store.read_record(path, "event")
            except (YoiError, OSError):
                continue
            out.append(EventFile(path, record))
    return sorted(out, key=lambda e: e.sort_key)
