"""One tick of the control plane (SPEC §5): the oldest pending TICKET_READY event that
need not wait becomes at most one evaluated run.

``tick`` picks events oldest first. An event whose ticket must wait (capacity, a
conflicting ticket in progress, an unfinished predecessor, a prerequisite that will
finish on its own) is *deferred*: its wait reason is recorded as a `waiting` plan record,
the event stays pending, and the tick moves on to the next event, so one waiting ticket
never starves the others. Every other event is claimed (an EVENT lease with fencing)
and then processed exactly once: MISSING_TICKET, NON_EXECUTABLE_STATUS, BLOCKED, or
accepted and run (``engine_steps``). A pending event whose workorder already exists was
accepted by an engine that stopped; it is resumed, never run a second time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yoi import clock, engine_view, events, faults, lifecycle, plan, snapshot
from yoi import engine_records as rec
from yoi.claims import Claims, Clock, Lease
from yoi.engine_steps import RunContext, run_accepted
from yoi.errors import FencedError, InvalidRecordError, YoiError
from yoi.lifecycle import Action
from yoi.model import EventReason, EventType, PauseReason, State, Ticket
from yoi.store import TICKET_FILE, Store, TicketDoc, Transaction
from yoi.thread import Entry
from yoi.tickets import append_entry, apply_change

IDLE, PROCESSED, DEFERRED = "idle", "processed", "deferred"


@dataclass(frozen=True, slots=True)
class TickResult:
    outcome: str  # idle | processed | deferred
    event_id: str | None = None
    ticket: str | None = None
    reason: str | None = None
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "event_id": self.event_id,
            "ticket": self.ticket,
            "reason": self.reason,
            "run_id": self.run_id,
        }


def _now() -> str:
    return clock.format_ts(clock.now())


def tick(store: Store, *, owner: str | None = None, clock: Clock | None = None) -> TickResult:
    """Process at most one event; see the module docstring."""
    pending = [
        e
        for e in engine_view.pending_events(store)
        if e.record.get("type") == EventType.TICKET_READY.value
    ]
    if not pending:
        return TickResult(IDLE)
    claims = Claims(store, owner=owner, clock=clock)
    view = _View(store)
    first_deferred: TickResult | None = None
    for ev in pending:
        result = _consider(store, claims, ev, view)
        if result is None:
            continue
        if result.outcome == DEFERRED:
            first_deferred = first_deferred or result
            continue
        return result
    return first_deferred or TickResult(IDLE)


class _View:
    """Tickets and plan records as of the start of the tick, loaded on first use."""

    def __init__(self, store: Store):
        self.store = store
        self._tickets: list[Ticket] | None = None
        self._records: list[plan.PlanRecord] | None = None

    @property
    def tickets(self) -> list[Ticket]:
        if self._tickets is None:
            self._tickets = engine_view.tickets(self.store)
        return self._tickets

    @property
    def records(self) -> list[plan.PlanRecord]:
        if self._records is None:
            self._records = plan.all_records(self.store)
        return self._records

    def must_wait(self, ticket: Ticket) -> bool:
        """True when ``ticket`` would be deferred (and not blocked) as of this view."""
        states = {t.slug: t.state for t in self.tickets}
        prerequisites = plan.prerequisites(self.records, ticket.slug)
        if any(states.get(other) not in plan.SATISFIED for other, _why in prerequisites):
            return False
        capacity = int(self.store.config()["engine"]["capacity"])
        return plan.wait_reason(self.records, ticket, self.tickets, capacity) is not None


def _consider(store: Store, claims: Claims, ev: events.EventFile, view: _View) -> TickResult | None:
    eid, slug = str(ev.record["event_id"]), str(ev.record["ticket"])
    waiting = _precheck_wait(store, ev, view)
    if waiting is not None:
        return waiting
    claim = claims.acquire("EVENT", eid)
    if claim is None:
        return None  # another engine holds it
    faults.crashpoint("engine.claimed")
    lease = Lease(claims, claim).start()
    try:
        return _process(store, lease, ev.path, eid, slug)
    except FencedError as exc:
        return TickResult(DEFERRED, eid, slug, f"lost the claim: {exc.message}")
    finally:
        lease.release()
        faults.crashpoint("engine.released")


def _precheck_wait(store: Store, ev: events.EventFile, view: _View) -> TickResult | None:
    """Defer without claiming when the event's queued ticket must wait. The reason is
    recomputed and recorded under the lock; acceptance checks it once more."""
    slug = str(ev.record["ticket"])
    ticket = next((t for t in view.tickets if t.slug == slug), None)
    if ticket is None or ticket.state is not State.QUEUED or ticket.unresolved_blockers:
        return None
    if not view.must_wait(ticket):
        return None
    with store.transaction() as tx:
        try:
            fresh = _load(store, slug, ticket.path)
        except YoiError:
            return None
        if fresh is None or fresh.ticket.state is not State.QUEUED:
            return None
        now_tickets = engine_view.tickets(store)
        reason = plan.start_wait_reason(store, fresh.ticket, tickets=now_tickets)
        if reason is None:
            return None
        plan.record_waiting(tx, store, fresh.ticket, reason, now=_now())
    return TickResult(DEFERRED, str(ev.record["event_id"]), slug, reason)


def _locate(store: Store, path: Path, slug: str) -> Path | None:
    """The event file now (its ticket directory may have moved to done/)."""
    if path.exists():
        return path
    try:
        moved = events.event_path(store.ticket_dir(slug), path.stem)
    except YoiError:
        return None
    return moved if moved.exists() else None


def _process(store: Store, lease: Lease, path: Path, eid: str, slug: str) -> TickResult | None:
    found = _locate(store, path, slug)
    if found is None or store.read_record(found, "event")["processed"]:
        return None  # processed meanwhile: a no-op
    ids = rec.RunIds.for_event(eid)
    run_dir = found.parent.parent / "runs" / ids.run_id
    if (run_dir / "workorder.yaml").exists():
        return run_accepted(RunContext(store, lease, slug, ids, fresh=False))
    result = _accept_or_close(store, lease, found, slug, ids)
    if result is not None:
        return result
    faults.crashpoint("engine.accepted")
    return run_accepted(RunContext(store, lease, slug, ids, fresh=True))


def _load(store: Store, slug: str, tdir: Path) -> TicketDoc | None:
    """The ticket under the lock; None when ticket.md is gone."""
    if not (tdir / TICKET_FILE).exists():
        return None
    return store.load_ticket(slug, tdir)


def _accept_or_close(
    store: Store, lease: Lease, path: Path, slug: str, ids: rec.RunIds
) -> TickResult | None:
    """One locked, fenced step: close the event (missing, non-executable, blocked),
    defer it (wait), or accept it (workorder + snapshot + queued -> inprogress).
    Returns None when accepted."""
    with store.transaction(fence=lease.check) as tx:
        now = _now()
        event = store.read_record(path, "event")
        tdir = path.parent.parent
        try:
            doc = _load(store, slug, tdir)
        except InvalidRecordError as exc:
            return TickResult(
                DEFERRED,
                ids.event_id,
                slug,
                f"the ticket does not load: {exc.render()}; fix it (yoi doctor)",
            )
        if doc is None:
            _close(tx, path, event, EventReason.MISSING_TICKET, now)
            return TickResult(PROCESSED, ids.event_id, slug, EventReason.MISSING_TICKET.value)
        if doc.ticket.state is not State.QUEUED:
            _close(tx, path, event, EventReason.NON_EXECUTABLE_STATUS, now)
            return TickResult(
                PROCESSED, ids.event_id, slug, EventReason.NON_EXECUTABLE_STATUS.value
            )
        tickets = engine_view.tickets(store)
        prerequisites = plan.blocking_prerequisites(store, doc.ticket, tickets=tickets)
        if doc.ticket.unresolved_blockers or prerequisites:
            _block(tx, doc, path, event, prerequisites, now)
            return TickResult(PROCESSED, ids.event_id, slug, EventReason.BLOCKED.value)
        reason = plan.start_wait_reason(store, doc.ticket, tickets=tickets)
        if reason is not None:
            plan.record_waiting(tx, store, doc.ticket, reason, now=now)
            return TickResult(DEFERRED, ids.event_id, slug, reason)
        _accept(tx, doc, ids, now)
    return None


def _close(
    tx: Transaction,
    path: Path,
    event: dict[str, Any],
    reason: EventReason,
    now: str,
    run_id: str | None = None,
) -> None:
    tx.write_record(path, "event", events.mark_processed(event, reason, now, run_id))


def pause_entry(pause: dict[str, Any]) -> Entry:
    lines = [
        f"{a['priority']}. {a['action']}" + (f" (`{a['command']}`)" if a.get("command") else "")
        for a in pause["prioritized_actions"]
    ]
    detail = f"{pause['detail']}\n\n" if pause.get("detail") else ""
    body = f"Paused: {pause['reason']}.\n\n{detail}Next actions:\n\n" + "\n".join(lines) + "\n"
    return Entry(
        kind="pause",
        author=rec.ENGINE_AUTHOR,
        at=str(pause["created_at"]),
        attrs=(("pause_id", str(pause["pause_id"])), ("reason", str(pause["reason"]))),
        body=body,
    )


def _block(
    tx: Transaction,
    doc: TicketDoc,
    path: Path,
    event: dict[str, Any],
    prerequisites: Sequence[str],
    now: str,
) -> None:
    ticket = doc.ticket
    blockers = ticket.unresolved_blockers
    named = [f"blocker {b.blocker_id} ({b.kind.value}): {b.description}" for b in blockers]
    detail = "Unresolved at tick time: " + "; ".join([*named, *prerequisites]) + "."
    pause = rec.pause_state(
        ticket.slug,
        PauseReason.BLOCKED,
        rec.blocked_actions(ticket, blockers, prerequisites),
        now=now,
        detail=detail,
    )
    tx.write_record(
        ticket.path / "pause_states" / f"{pause['pause_id']}.yaml",
        "pause_state",
        pause,
        create=True,
    )
    _close(tx, path, event, EventReason.BLOCKED, now)
    short = (named + list(prerequisites))[0]
    change = lifecycle.plan(
        ticket, Action.BLOCK, now=now, by=rec.ENGINE_AUTHOR, reason=f"unresolved: {short}"[:200]
    )
    apply_change(tx, doc, change, by=rec.ENGINE_AUTHOR, now=now, note=detail)
    append_entry(tx, ticket.path, pause_entry(pause), ticket.title)


def _accept(tx: Transaction, doc: TicketDoc, ids: rec.RunIds, now: str) -> None:
    """Workorder + context snapshot (create-if-absent) and queued -> inprogress."""
    from yoi.git import Repo

    store, ticket = tx.store, doc.ticket
    config = store.config()
    runner = ticket.runner or "default"
    runner_config = (config.get("runners") or {}).get(runner)
    branch = f"{config['engine']['branch_prefix']}{ticket.slug}"
    repo = Repo.open(store.root)
    related = [r for r in (ticket.last_run, ticket.branch) if r]
    snap = snapshot.build(
        store, repo, ticket, snapshot_id=ids.snapshot_id, now=now, related=related
    )
    workorder = rec.workorder(
        ticket,
        ids,
        branch=branch,
        runner=runner,
        now=now,
        budget_ms=rec.budget_for(ticket, runner_config),
    )
    run_dir = ticket.path / "runs" / ids.run_id
    tx.write_record(run_dir / "workorder.yaml", "workorder", workorder, create=True)
    tx.write_record(run_dir / "context_snapshot.yaml", "context_snapshot", snap, create=True)
    doc.front["branch"] = branch
    change = lifecycle.plan(ticket, Action.ACCEPT, now=now, by=rec.ENGINE_AUTHOR)
    apply_change(
        tx,
        doc,
        change,
        by=rec.ENGINE_AUTHOR,
        now=now,
        note=f"Accepted by the engine: run {ids.run_id}, workorder "
        f"{ids.work_order_id}, branch `{branch}`, base "
        f"{snap['metadata']['base_ref']} = {snap['metadata']['commit_sha'][:12]}.",
    )
    plan.record_accepted(
        tx,
        store,
        ticket,
        branch=branch,
        now=now,
        summary=f"run {ids.run_id} with runner '{runner}' from {snap['metadata']['base_ref']}",
    )
