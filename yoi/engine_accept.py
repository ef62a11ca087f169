"""The locked, fenced step that ends a claimed event before any run (MISSING_TICKET,
NON_EXECUTABLE_STATUS, BLOCKED), defers it (the ticket must wait), or accepts it: the
workorder and context snapshot (create-if-absent) and queued -> inprogress, in one
journaled transaction. Nothing touches git, a worktree or a runner before it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yoi import clock, engine_view, events, lifecycle, plan, snapshot
from yoi import engine_entries as entries
from yoi import engine_records as rec
from yoi.engine_result import DEFERRED, PROCESSED, TickResult
from yoi.errors import InvalidRecordError, YoiError
from yoi.lease import Lease
from yoi.lifecycle import Action
from yoi.model import EventReason, PauseReason, State, Ticket
from yoi.store import TICKET_FILE, Store, TicketDoc, Transaction
from yoi.tickets import append_entry, apply_change


def _now() -> str:
    return clock.format_ts(clock.now())


def load(store: Store, slug: str, tdir: Path) -> TicketDoc | None:
    """The ticket under the lock; None when ticket.md is gone."""
    if not (tdir / TICKET_FILE).exists():
        return None
    return store.load_ticket(slug, tdir)


class AlreadyProcessed(Exception):
    """The event was processed meanwhile: nothing to do."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """The event was accepted; ``snapshot`` is the context_snapshot just written."""

    snapshot: dict[str, Any]


def accept_or_close(
    store: Store, lease: Lease, path: Path, slug: str, ids: rec.RunIds
) -> TickResult | Accepted:
    """One locked, fenced step: close the event (missing, non-executable, blocked),
    defer it (wait), or accept it (workorder + snapshot + queued -> inprogress).
    Raises ``AlreadyProcessed``."""
    with store.transaction(fence=lease.check) as tx:
        event = store.read_record(path, "event")
        if event["processed"]:
            raise AlreadyProcessed(ids.event_id)
        result = _decide(tx, path, event, slug, ids, _now())
    return result


def _decide(
    tx: Transaction, path: Path, event: dict[str, Any], slug: str, ids: rec.RunIds, now: str
) -> TickResult | Accepted:
    store = tx.store
    try:
        doc = load(store, slug, path.parent.parent)
    except InvalidRecordError as exc:
        why = f"the ticket does not load: {exc.render()}; fix it (yoi doctor)"
        return TickResult(DEFERRED, ids.event_id, slug, why)
    if doc is None or doc.ticket.state is not State.QUEUED:
        reason = EventReason.MISSING_TICKET if doc is None else EventReason.NON_EXECUTABLE_STATUS
        _close(tx, path, event, reason, now)
        return TickResult(PROCESSED, ids.event_id, slug, reason.value)
    rules = engine_view.Rules(store)  # read once, under the lock: both checks use it
    problems = [
        rec.Problem(p, f"Get the prerequisite moving: {p}", f"yoi plan list {slug}")
        for p in rules.blocking_prerequisites(doc.ticket)
    ]
    if not problems and not doc.ticket.unresolved_blockers:
        reason_to_wait = rules.wait_reason(doc.ticket)
        if reason_to_wait is not None:
            plan.record_waiting(tx, store, doc.ticket, reason_to_wait, now=now)
            return TickResult(DEFERRED, ids.event_id, slug, reason_to_wait)
        try:
            snap = _snapshot(store, doc.ticket, ids, now)
        except YoiError as exc:
            problems = [rec.base_ref_problem(doc.ticket, exc.render())]
        else:
            _accept(tx, doc, ids, snap, now)
            return Accepted(snap)
    _block(tx, doc, path, event, problems, now)
    return TickResult(PROCESSED, ids.event_id, slug, EventReason.BLOCKED.value)


def _snapshot(store: Store, ticket: Ticket, ids: rec.RunIds, now: str) -> dict[str, Any]:
    from yoi.git import Repo

    related = [r for r in (ticket.last_run, ticket.branch) if r]
    return snapshot.build(
        store, Repo.open(store.root), ticket, snapshot_id=ids.snapshot_id, now=now, related=related
    )


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
    problems: Sequence[rec.Problem],
    now: str,
) -> None:
    ticket = doc.ticket
    blockers = ticket.unresolved_blockers
    named = [f"blocker {b.blocker_id} ({b.kind.value}): {b.description}" for b in blockers]
    named += [p.description for p in problems]
    detail = "Unresolved at tick time: " + "; ".join(named) + "."
    pause = rec.pause_state(
        ticket.slug,
        PauseReason.BLOCKED,
        rec.blocked_actions(ticket, blockers, problems),
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
    short = named[0]
    change = lifecycle.plan(
        ticket, Action.BLOCK, now=now, by=rec.ENGINE_AUTHOR, reason=f"unresolved: {short}"[:200]
    )
    apply_change(tx, doc, change, by=rec.ENGINE_AUTHOR, now=now, note=detail)
    append_entry(tx, ticket.path, entries.pause_entry(pause), ticket.title)


def _accept(
    tx: Transaction, doc: TicketDoc, ids: rec.RunIds, snap: dict[str, Any], now: str
) -> None:
    """Workorder + context snapshot (create-if-absent) and queued -> inprogress."""
    store, ticket = tx.store, doc.ticket
    config = store.config()
    runner = ticket.runner or "default"
    runner_config = (config.get("runners") or {}).get(runner)
    branch = f"{config['engine']['branch_prefix']}{ticket.slug}"
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
    base = f"{snap['metadata']['base_ref']} = {snap['metadata']['commit_sha'][:12]}"
    apply_change(
        tx,
        doc,
        change,
        by=rec.ENGINE_AUTHOR,
        now=now,
        note=f"Accepted by the engine: run {ids.run_id}, workorder {ids.work_order_id}, "
        f"branch `{branch}`, base {base}.",
    )
    plan.record_accepted(
        tx,
        store,
        ticket,
        branch=branch,
        now=now,
        summary=f"run {ids.run_id} with runner '{runner}' from {snap['metadata']['base_ref']}",
    )
