"""Read side of the engine: every ticket, and the pending events.

Both come from the store's derived caches, which serve only what matches the files on
disk now: ``Store.list_tickets`` (parsed front matter keyed by each ticket.md's stat,
``cache_tickets``) and ``events.all_events(pending_only=True)`` (the pending-event
index, ``cache_events``). So a tick costs a ``stat`` per ticket and per open ticket's
event file instead of a YAML parse of every file, in every process, not only in a
long-running one. Callers get fresh event dicts; tickets are frozen.
"""

from __future__ import annotations

from yoi import events, views
from yoi.model import EventType, Ticket
from yoi.store import Store


def tickets(store: Store) -> list[Ticket]:
    """Every ticket that loads (invalid ones are skipped; `yoi doctor` reports them)."""
    return views.get(store, _TICKETS)


def open_tickets(store: Store) -> list[Ticket]:
    """Every ticket of the open bucket that loads: all the waiting rules list (a done
    ticket counts for them only when a relation names it, ``plan.open_standing``)."""
    return views.get(store, _OPEN)


def has_work(store: Store) -> bool:
    """True when a TICKET_READY event is pending (what a tick would look at)."""
    ready = EventType.TICKET_READY.value
    return any(e.record.get("type") == ready for e in pending_events(store))


def pending_events(store: Store) -> list[events.EventFile]:
    """Unprocessed events of every ticket, oldest first."""
    return [events.EventFile(e.path, dict(e.record)) for e in views.get(store, _PENDING)]


def _every_ticket(store: Store) -> list[Ticket]:
    return store.list_tickets()[0]


def _one_ticket(store: Store, bucket: str, slug: str) -> list[Ticket]:
    from yoi import cache_tickets

    return cache_tickets.load_one(store, bucket, slug)


def _every_open(store: Store) -> list[Ticket]:
    from yoi import cache_tickets

    return cache_tickets.list_tickets(store, ("open",))[0]


def _one_open(store: Store, bucket: str, slug: str) -> list[Ticket]:
    return _one_ticket(store, bucket, slug) if bucket == "open" else []


def _every_pending(store: Store) -> list[events.EventFile]:
    return events.all_events(store, pending_only=True)


def _one_pending(store: Store, bucket: str, slug: str) -> list[events.EventFile]:
    from yoi import cache_events

    tdir = f"{store.tickets_dir}/{bucket}/{slug}"
    return [events.EventFile(p, r) for p, r in cache_events.pending_in(store, tdir)]


def _event_order(event: events.EventFile) -> tuple[str, str]:
    return event.sort_key


_TICKETS = views.Kind("tickets", _every_ticket, _one_ticket, None)  # as listed
_OPEN = views.Kind("open-tickets", _every_open, _one_open, None)
_PENDING = views.Kind("pending-events", _every_pending, _one_pending, _event_order)
