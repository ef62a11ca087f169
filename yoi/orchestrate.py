"""The work set and the kick rules (SPEC §6): starvation prevention, not a scheduler.

Work set: ``new_queued`` (queued, no `planned` record since queued_at), ``planned_queued``
(queued and planned, not yet accepted) with their wait reasons, ``inprogress``.

Kick rules, applied once by ``kick``:
1. new_queued work and the engine idle (nothing inprogress) -> write `planned` records in
   queue order (queued_at, then slug), moved only by explicit before/after records;
2. nothing inprogress and a planned_queued ticket that is neither blocked nor waiting and
   has no pending event -> emit its TICKET_READY (source `kick`, its queued_at: the
   event id is deterministic, so never a duplicate), up to engine.capacity;
3. work inprogress -> do nothing;
4. planned_queued work that is blocked or waiting -> record the reason (`waiting`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from yoi import clock, events, plan
from yoi.model import PlanKind, State, Ticket
from yoi.plan import PlanRecord
from yoi.store import Store, Transaction


@dataclass(frozen=True, slots=True)
class Waiting:
    """A planned queued ticket and why it does not start (None: nothing holds it)."""

    slug: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the rules look at, read once."""

    tickets: tuple[Ticket, ...]
    records: tuple[PlanRecord, ...]
    pending: frozenset[str]  # tickets with an unprocessed TICKET_READY event
    capacity: int

    @classmethod
    def read(cls, store: Store) -> Snapshot:
        found, _invalid = store.list_tickets()
        pending = frozenset(
            str(e.record["ticket"]) for e in events.all_events(store, pending_only=True)
        )
        return cls(
            tuple(found),
            tuple(plan.all_records(store)),
            pending,
            int(store.config()["engine"]["capacity"]),
        )

    def queued(self) -> list[Ticket]:
        """Queued tickets in queue order: queued_at, then slug."""
        found = [t for t in self.tickets if t.state is State.QUEUED]
        return sorted(found, key=lambda t: (plan.when(t.queued_at), t.slug))

    def is_planned(self, t: Ticket) -> bool:
        own = [r for r in self.records if r.ticket == t.slug]
        return bool(plan.since(own, PlanKind.PLANNED, t.queued_at))

    def inprogress(self) -> list[str]:
        return sorted(t.slug for t in self.tickets if t.state is State.INPROGRESS)


@dataclass(frozen=True, slots=True)
class WorkSet:
    new_queued: tuple[str, ...]
    planned_queued: tuple[Waiting, ...]
    inprogress: tuple[str, ...]
    new_waiting: tuple[Waiting, ...] = ()  # new queued tickets that could not start now


@dataclass(frozen=True, slots=True)
class KickPlan:
    """What one kick would do, and why."""

    due: bool
    reason: str
    plan: tuple[str, ...]  # new_queued tickets to incorporate, in plan order
    start: tuple[str, ...]  # tickets whose TICKET_READY is emitted
    record: tuple[Waiting, ...]  # wait reasons to record (each with a reason)


@dataclass(frozen=True, slots=True)
class KickResult:
    """What one kick did: `planned` records written, events emitted, waits recorded."""

    reason: str
    planned: tuple[str, ...]
    started: tuple[str, ...]
    event_ids: tuple[str, ...]
    waiting: tuple[Waiting, ...]

    @property
    def changed(self) -> bool:
        return bool(self.planned or self.event_ids or self.waiting)


# ---- the plan order ----------------------------------------------------------------------
def plan_order(queued: Sequence[Ticket], records: Sequence[PlanRecord]) -> list[str]:
    """Queue order, except that a ticket never goes ahead of a ticket explicitly ordered
    before it (`before`/`after` records) within the same set. No other reordering."""
    rest = [t.slug for t in queued]
    order: list[str] = []
    while rest:
        pick = next((s for s in rest if not _held(s, rest, records)), rest[0])
        order.append(pick)
        rest.remove(pick)
    return order


def _held(slug: str, rest: Sequence[str], records: Sequence[PlanRecord]) -> bool:
    return any(p in rest and p != slug for p in plan.predecessors(records, slug))


# ---- wait reasons ------------------------------------------------------------------------
def hold_reason(snap: Snapshot, t: Ticket) -> str | None:
    """Why ``t`` cannot start now: blocked (will not clear on its own) or waiting."""
    open_blockers = t.unresolved_blockers
    if open_blockers:
        b = open_blockers[0]
        return f"blocked: unresolved blocker {b.blocker_id} ({b.kind.value}): {b.description}"
    states = {x.slug: x.state for x in snap.tickets}
    blocking = plan.unfinished_prerequisites(snap.records, t.slug, states)
    if blocking:
        return "blocked: " + "; ".join(blocking)
    return plan.wait_reason(snap.records, t, snap.tickets, snap.capacity)


def _event_problem(t: Ticket) -> str | None:
    """A queued ticket whose TICKET_READY cannot be emitted (again)."""
    if not t.queued_at:
        return "has no queued_at, so no TICKET_READY can be emitted; queue it again"
    eid = events.event_id(t.slug, t.queued_at)
    if events.event_path(t.path, eid).exists():
        return (
            f"its TICKET_READY event {eid} was already processed; return it to planning "
            "and queue it again"
        )
    return None


def work_set(snap: Snapshot) -> WorkSet:
    """The work set, with the reason each planned queued ticket does not start (None:
    it starts, or its pending TICKET_READY will start it). New queued tickets that could
    not start now either (e.g. queued while another ticket runs) are listed with their
    reasons too, so a wait is visible before the next kick incorporates them."""
    queued = snap.queued()
    _start, holds = _starts(snap, queued)
    reasons = {w.slug: w.reason for w in holds}
    new, planned = [], []
    for t in queued:
        if snap.is_planned(t):
            planned.append(Waiting(t.slug, reasons.get(t.slug)))
        else:
            new.append(t.slug)
    new_waiting = tuple(Waiting(s, reasons[s]) for s in new if s in reasons)
    return WorkSet(tuple(new), tuple(planned), tuple(snap.inprogress()), new_waiting)


# ---- the rules -----------------------------------------------------------------------------
def decide(snap: Snapshot) -> KickPlan:
    """Apply the kick rules to ``snap`` without writing anything."""
    running = snap.inprogress()
    if running:
        names = ", ".join(f"'{s}'" for s in running)
        return KickPlan(
            False, f"work in progress ({names}): nothing is kicked until it finishes", (), (), ()
        )
    queued = snap.queued()
    if not queued:
        return KickPlan(False, "no queued work", (), (), ())
    to_plan = tuple(plan_order([t for t in queued if not snap.is_planned(t)], snap.records))
    start, holds = _starts(snap, queued)
    record = tuple(w for w in holds if _unrecorded(snap, w))
    return KickPlan(
        bool(to_plan or start or record),
        _reason(to_plan, start, holds, snap),
        to_plan,
        start,
        record,
    )


def _starts(snap: Snapshot, queued: Sequence[Ticket]) -> tuple[tuple[str, ...], list[Waiting]]:
    """Tickets to emit TICKET_READY for (in plan order, up to capacity), and the holds."""
    order = plan_order(queued, snap.records)
    by_slug = {t.slug: t for t in queued}
    free = [s for s in order if hold_reason(snap, by_slug[s]) is None]
    going = [s for s in free if s in snap.pending]
    slots = max(snap.capacity - len(snap.inprogress()) - len(going), 0)
    start: list[str] = []
    holds: list[Waiting] = []
    for slug in order:
        t = by_slug[slug]
        reason = hold_reason(snap, t) or (None if slug in snap.pending else _event_problem(t))
        if reason is not None:
            holds.append(Waiting(slug, reason))
        elif slug not in snap.pending and len(start) < slots:
            start.append(slug)
        elif slug not in snap.pending:
            first = ", ".join(f"'{s}'" for s in [*going, *start])
            holds.append(
                Waiting(
                    slug,
                    f"waits for capacity: {first} start(s) first; "
                    f"engine.capacity is {snap.capacity}",
                )
            )
    return tuple(start), holds


def _unrecorded(snap: Snapshot, w: Waiting) -> bool:
    t = next(x for x in snap.tickets if x.slug == w.slug)
    own = [r for r in snap.records if r.ticket == w.slug]
    waits = plan.since(own, PlanKind.WAITING, t.queued_at)
    return not waits or waits[-1].note != w.reason


def _reason(
    to_plan: Sequence[str], start: Sequence[str], holds: Sequence[Waiting], snap: Snapshot
) -> str:
    parts = []
    if to_plan:
        parts.append(
            f"{len(to_plan)} new queued ticket(s) to incorporate into the plan: "
            + ", ".join(f"'{s}'" for s in to_plan)
        )
    if start:
        parts.append(
            "nothing is in progress, so "
            + ", ".join(f"'{s}'" for s in start)
            + " can start (TICKET_READY)"
        )
    pending = [s for s in snap.pending if s in {t.slug for t in snap.queued()}]
    if pending and not start:
        parts.append(
            "pending TICKET_READY for "
            + ", ".join(f"'{s}'" for s in sorted(pending))
            + ": `yoi engine run` starts it"
        )
    parts.extend(f"'{w.slug}' {w.reason}" for w in holds)
    return "; ".join(parts) or "nothing to do"


def kick(store: Store) -> KickResult:
    """Apply the kick rules once, under the store lock."""
    with store.transaction() as tx:
        snap = Snapshot.read(store)
        decided = decide(snap)
        now = clock.format_ts(clock.now())
        _write_planned(tx, snap, decided.plan, now)
        ids = _emit(tx, snap, decided.start, now)
        for w in decided.record:
            t = next(x for x in snap.tickets if x.slug == w.slug)
            assert w.reason is not None
            plan.record_waiting(tx, store, t, w.reason, now=now)
    return KickResult(decided.reason, decided.plan, decided.start, tuple(ids), decided.record)


def _write_planned(tx: Transaction, snap: Snapshot, order: Sequence[str], now: str) -> None:
    for position, slug in enumerate(order, 1):
        t = next(x for x in snap.tickets if x.slug == slug)
        after = [p for p in plan.predecessors(snap.records, slug) if p in order]
        note = f"incorporated into the plan: position {position} of {len(order)} (queue order"
        note += f"; after {', '.join(repr(p) for p in after)})" if after else ")"
        record = plan.write_record(
            tx, t.path, slug, PlanKind.PLANNED, now=now, by=plan.ENGINE_AUTHOR, note=note
        )
        plan.thread_note(tx, t, record, f"Planned: {note}.")


def _emit(tx: Transaction, snap: Snapshot, start: Sequence[str], now: str) -> list[str]:
    ids = []
    for slug in start:
        t = next(x for x in snap.tickets if x.slug == slug)
        assert t.queued_at is not None
        if events.emit_ready(tx, t.path, slug, t.queued_at, "kick", now):
            ids.append(events.event_id(slug, t.queued_at))
    return ids
