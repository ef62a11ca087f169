"""Read side of the engine: every ticket, and the pending events.

Both come from the store's derived caches, which serve only what matches the files on
disk now: ``Store.list_tickets`` (parsed front matter keyed by each ticket.md's stat,
``cache_tickets``) and ``events.all_events(pending_only=True)`` (the pending-event
index, ``cache_events``). So a tick costs a ``stat`` per ticket and per open ticket's
event file instead of a YAML parse of every file, in every process, not only in a
long-running one. Callers get fresh event dicts; tickets are frozen.
"""

from __future__ import annotations

from yoi import events
from yoi.model import EventType, Ticket
from yoi.store import Store


def tickets(store: Store) -> list[Ticket]:
    """Every ticket that loads (invalid ones are skipped; `yoi doctor` reports them)."""
    return store.list_tickets()[0]


def has_work(store: Store) -> bool:
    """True when a TICKET_READY event is pending (what a tick would look at)."""
    ready = EventType.TICKET_READY.value
    return any(e.record.get("type") == ready for e in pending_events(store))


def pending_events(store: Store) -> list[events.EventFile]:
    """Unprocessed events of every ticket, oldest first."""
    return events.all_events(store, pending_only=True)
