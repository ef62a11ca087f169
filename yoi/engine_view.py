"""Read side of the engine: every ticket, and the pending events.

Both come from the store's derived caches, which serve only what matches the files on
disk now: ``Store.list_tickets`` (parsed front matter keyed by each ticket.md's stat,
``cache_tickets``) and ``events.all_events(pending_only=True)`` (the pending-event
index, ``cache_events``). So a tick costs a ``stat`` per ticket and per open ticket's
event file instead of a YAML parse of every file, in every process, not only in a
long-running one. Callers get fresh event dicts; tickets are frozen. ``Rules`` is what
the waiting and blocking rules read (the open tickets, their relation records, every
ticket's standing), made once per tick before the claim and once under the lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from yoi import events, views
from yoi.model import EventType, Ticket
from yoi.store import Store

if TYPE_CHECKING:
    from yoi import plan


def tickets(store: Store) -> list[Ticket]:
    """Every ticket that loads (invalid ones are skipped; `yoi doctor` reports them)."""
    return views.get(store, _TICKETS)


def open_tickets(store: Store) -> list[Ticket]:
    """Every ticket of the open bucket that loads: all the waiting rules list (a done
    ticket counts for them only when a relation names it, ``plan.open_standing``)."""
    return views.get(store, _OPEN)


class Rules:
    """What the waiting and blocking rules read, as of when each part is first asked
    for: the open tickets, the relation records they hold, and every ticket's standing
    (``plan.open_standing``). One per tick before the claim, one under the lock."""

    def __init__(self, store: Store):
        self.store = store
        self._tickets: list[Ticket] | None = None
        self._records: list[plan.PlanRecord] | None = None
        self._standing: plan.Standing | None = None

    @property
    def tickets(self) -> list[Ticket]:
        if self._tickets is None:
            self._tickets = open_tickets(self.store)
        return self._tickets

    @property
    def records(self) -> list[plan.PlanRecord]:
        if self._records is None:
            from yoi import plan

            self._records = plan.open_relation_records(self.store)
        return self._records

    @property
    def standing(self) -> plan.Standing:
        if self._standing is None:
            from yoi import plan

            self._standing = plan.open_standing(self.store, self.tickets)
        return self._standing

    def blocking_prerequisites(self, ticket: Ticket) -> list[str]:
        """``plan.blocking_prerequisites`` as of this view."""
        from yoi import plan

        return plan.blocking_prerequisites(
            self.store, ticket, tickets=self.tickets, records=self.records, known=self.standing
        )

    def wait_reason(self, ticket: Ticket) -> str | None:
        """``plan.start_wait_reason`` as of this view."""
        from yoi import plan

        return plan.start_wait_reason(
            self.store, ticket, tickets=self.tickets, records=self.records, known=self.standing
        )

    def must_wait(self, ticket: Ticket) -> bool:
        """True when ``ticket`` would be deferred (and not blocked) as of this view."""
        from yoi import plan

        states = self.standing.states
        prerequisites = plan.prerequisites(self.records, ticket.slug)
        if any(states.get(other) not in plan.SATISFIED for other, _why in prerequisites):
            return False
        return self.wait_reason(ticket) is not None


def has_work(store: Store) -> bool:
    """True when a TICKET_READY event is pending (what a tick would look at)."""
    ready = EventType.TICKET_READY.value
    return any(e.record.get("type") == ready for e in pending_events(store))


def pending_events(store: Store) -> Iterator[events.EventFile]:
    """Unprocessed events of every ticket, oldest first, each a fresh copy made as it is
    reached (a tick looks at the first few of a long queue)."""
    return (events.EventFile(e.path, dict(e.record)) for e in views.get(store, _PENDING))


def _every_ticket(store: Store) -> list[Ticket]:
    return store.list_tickets()[0]


def _one_ticket(store: Store, bucket: str, slug: str) -> list[Ticket]:
    from yoi import cache_tickets

    return cache_tickets.load_one(store, bucket, slug)


def _every_open(store: Store) -> list[Ticket]:
    from yoi import cache_tickets

    return cache_tickets.list_tickets(store, _OPEN.buckets)[0]


def _every_pending(store: Store) -> list[events.EventFile]:
    return events.all_events(store, pending_only=True)


def _one_pending(store: Store, bucket: str, slug: str) -> list[events.EventFile]:
    from yoi import cache_events

    tdir = f"{store.tickets_dir}/{bucket}/{slug}"
    return [events.EventFile(p, r) for p, r in cache_events.pending_in(store, tdir)]


def _event_order(event: events.EventFile) -> tuple[str, str]:
    return event.sort_key


_TICKETS = views.Kind("tickets", _every_ticket, _one_ticket, None)  # as listed
_OPEN = views.Kind("open-tickets", _every_open, _one_ticket, None, buckets=("open",))
_PENDING = views.Kind("pending-events", _every_pending, _one_pending, _event_order)
