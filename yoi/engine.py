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

import contextlib
import itertools
from pathlib import Path
from typing import TYPE_CHECKING

from yoi import clock, engine_view, events, faults, plan
from yoi import engine_records as rec
from yoi.claims import Claims, Clock, Lease
from yoi.engine_accept import AlreadyProcessed, accept_or_close, load
from yoi.engine_result import DEFERRED, IDLE, PROCESSED, TickResult
from yoi.engine_steps import RunContext, run_accepted
from yoi.errors import FencedError, UsageError, YoiError
from yoi.model import EventType, State
from yoi.store import Store

if TYPE_CHECKING:
    from yoi.remote_claims import RemoteClaimer

__all__ = ["DEFERRED", "IDLE", "PROCESSED", "TickResult", "tick"]


def _now() -> str:
    return clock.format_ts(clock.now())


def tick(
    store: Store,
    *,
    owner: str | None = None,
    clock: Clock | None = None,
    remote: RemoteClaimer | None = None,
) -> TickResult:
    """Process at most one event; see the module docstring. With ``remote``, an event is
    claimed on the shared git remote too (after the local claim) and every write is
    fenced by both (docs/distributed.md)."""
    ready = EventType.TICKET_READY.value
    pending = (e for e in engine_view.pending_events(store) if e.record.get("type") == ready)
    first = next(pending, None)
    if first is None:
        return TickResult(IDLE)
    claims = Claims(store, owner=owner, clock=clock)
    view = engine_view.Rules(store)
    first_deferred: TickResult | None = None
    for ev in itertools.chain([first], pending):
        try:
            result = _consider(store, claims, ev, view, remote)
        except UsageError as exc:
            # One event whose files the store refuses (a symlink planted by a PR, an invalid
            # record) stays pending with the reason shown; it must not stop the engine for
            # the others. I/O, git and remote errors still stop the run: they are not about
            # this event, and the next run retries and converges.
            eid, slug = str(ev.record["event_id"]), str(ev.record["ticket"])
            result = TickResult(DEFERRED, eid, slug, f"cannot process: {exc.render()}")
        if result is None:
            continue
        if result.outcome == DEFERRED:
            first_deferred = first_deferred or result
            continue
        return result
    return first_deferred or TickResult(IDLE)


def _consider(
    store: Store,
    claims: Claims,
    ev: events.EventFile,
    view: engine_view.Rules,
    remote: RemoteClaimer | None,
) -> TickResult | None:
    eid, slug = str(ev.record["event_id"]), str(ev.record["ticket"])
    waiting = _precheck_wait(store, ev, view)
    if waiting is not None:
        return waiting
    if claims.held_by_another("EVENT", eid):
        return None  # another engine holds it (known without waiting for the lock)
    lease: Lease | None = None
    try:
        # A local claim is taken in the same hold of the store lock as the acceptance
        # (one lock cycle fewer per run); a remote one is pushed without holding it.
        with store.locked() if remote is None else contextlib.nullcontext():
            lease = _lease(claims, eid, slug, remote)
            if lease is None:
                return None  # held here or on the remote, or it already ran elsewhere
            begun = _begin(store, lease, ev.path, eid, slug)
        return begun if not isinstance(begun, RunContext) else run_accepted(begun)
    except FencedError as exc:
        return TickResult(DEFERRED, eid, slug, f"lost the claim: {exc.message}")
    finally:
        if lease is not None and not lease.released:
            lease.release()
            faults.crashpoint("engine.released")


def _lease(claims: Claims, eid: str, slug: str, remote: RemoteClaimer | None) -> Lease | None:
    """The started lease on the event, or None when it is not ours to take."""
    claim = claims.acquire("EVENT", eid)
    if claim is None:
        return None  # another engine holds it
    faults.crashpoint("engine.claimed")
    if remote is None:
        return Lease(claims, claim).start()
    from yoi.remote_lease import lease_for

    lease = lease_for(claims, claim, remote, slug=slug)
    return None if lease is None else lease.start()


def _precheck_wait(
    store: Store, ev: events.EventFile, view: engine_view.Rules
) -> TickResult | None:
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
            fresh = load(store, slug, ticket.path)
        except YoiError:
            return None
        if fresh is None or fresh.ticket.state is not State.QUEUED:
            return None
        reason = engine_view.Rules(store).wait_reason(fresh.ticket)  # under the lock
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


def _begin(
    store: Store, lease: Lease, path: Path, eid: str, slug: str
) -> TickResult | RunContext | None:
    """What the claimed event needs: nothing (processed meanwhile), an end before any run
    (closed, deferred), or a run to carry out (accepted now, or resumed)."""
    found = _locate(store, path, slug)
    if found is None or store.read_record(found, "event")["processed"]:
        return None  # processed meanwhile: a no-op
    ids = rec.RunIds.for_event(eid)
    run_dir = found.parent.parent / "runs" / ids.run_id
    if (run_dir / "workorder.yaml").exists():
        return RunContext(store, lease, slug, ids, fresh=False)
    try:
        result = accept_or_close(store, lease, found, slug, ids)
    except AlreadyProcessed:
        return None
    if isinstance(result, TickResult):
        return result
    faults.crashpoint("engine.accepted")
    return RunContext(store, lease, slug, ids, fresh=True, snapshot=result.snapshot)
