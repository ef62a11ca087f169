"""The locked, fenced step that ends a claimed event before any run (MISSING_TICKET,
NON_EXECUTABLE_STATUS, BLOCKED), defers it (the ticket must wait), or accepts it: the
workorder and context snapshot (create-if-absent) and queued -> inprogress, in one
journaled transaction. Nothing touches git, a worktree or a runner before it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from yoi import clock, engine_view, events, lifecycle, plan, snapshot
from yoi import engine_entries as entries
from yoi import engine_records as rec
from yoi.engine_result import DEFERRED, PROCESSED, TickResult
from yoi.errors import InvalidRecordError
from yoi.lease import Lease
from yoi.lifecycle import Action
from yoi.model import EventReason, PauseReason, State
from yoi.store import TICKET_FILE, Store, TicketDoc, Transaction
from yoi.tickets import append_entry, apply_change


def _now() -> str:
    return clock.format_ts(clock.now())


def load(store: Store, slug: str, tdir: Path) -> TicketDoc | None:
    """The ticket under the lock; None when ticket.md is gone."""
    if not (tdir / TICKET_FILE).exists():
        return None
    return store.load_ticket(slug, tdir)


def accept_or_close(
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
            doc = load(store, slug, tdir)
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
    append_entry(tx, ticket.path, entries.pause_entry(pause), ticket.title)


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
