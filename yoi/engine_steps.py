"""The part of a tick after acceptance: runner -> one output bundle -> gates -> one run
record -> terminal state, pause state, workorder EXECUTED, event processed.

Each step is create-if-absent and fenced with the event claim, and each starts by
looking at what is already on disk, so an engine that resumes a stopped one finishes
the remaining bookkeeping instead of running a second path:

- no output bundle: a fresh run executes the runner; a resumed one records
  RUNNER_ERROR ("the engine stopped during the run") and never re-runs it;
- a bundle but no run record: the gates are evaluated on the stored bundle;
- a run record: only the final bookkeeping is left.

When no gate is configured (the built-in gates take milliseconds), the bundle and the
run record are written in the transaction that finishes the run: one durable step for
the outcome instead of three. With configured gates (a test suite may run for minutes),
the bundle is made durable before they start and the run record before the finish.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import clock, events, faults, lifecycle
from yoi import engine_entries as entries
from yoi import engine_records as rec
from yoi.claims import Lease
from yoi.engine_result import PROCESSED, TickResult
from yoi.errors import FencedError
from yoi.lifecycle import Action
from yoi.model import EventReason, State
from yoi.store import TicketDoc, Transaction
from yoi.tickets import append_entry, state_entry, write_ticket

if TYPE_CHECKING:
    from yoi.store import Store

INFRA_GATE = rec.INFRA_GATE
RUNNER_GATE = "runner"
BUNDLE, PATCH, RECORD = "output_bundle.yaml", "patch.diff", "run_record.yaml"


@dataclass(frozen=True, slots=True)
class RunContext:
    store: Store
    lease: Lease
    slug: str
    ids: rec.RunIds
    fresh: bool  # accepted in this tick (False: resuming a stopped engine's run)
    snapshot: dict[str, Any] | None = None  # the context_snapshot, when just written

    def run_dir(self) -> Path:
        return self.store.ticket_dir(self.slug) / "runs" / self.ids.run_id

    def read(self, name: str, kind: str) -> dict[str, Any]:
        return self.store.read_record(self.run_dir() / name, kind)


@dataclass(frozen=True, slots=True)
class Produced:
    bundle: dict[str, Any]
    patch: bytes
    execution: Any  # diazotroph.Execution, or None when the engine made the bundle
    started_at: str


def _now() -> str:
    return clock.format_ts(clock.now())


Files = dict[str, tuple[str | None, Any]]  # run-dir file name -> (schema kind or None, data)


def run_accepted(ctx: RunContext) -> TickResult:
    """Carry an accepted workorder to the end (see the module docstring)."""
    workorder = ctx.read("workorder.yaml", "workorder")
    if (ctx.run_dir() / RECORD).exists():
        return _finish(ctx, {})
    stepwise = bool(ctx.store.config().get("gates"))
    produced, files = _bundle(ctx, workorder)
    if stepwise and files:
        _write(ctx, files)
        faults.crashpoint("engine.bundle")
        files = {}
    files[RECORD] = ("run_record", _evaluate(ctx, workorder, produced))
    if stepwise:
        _write(ctx, files)
        faults.crashpoint("engine.run_record")
        files = {}
    return _finish(ctx, files)


# ---- runner -> output bundle --------------------------------------------------------------
def _bundle(ctx: RunContext, workorder: dict[str, Any]) -> tuple[Produced, Files]:
    """The run's output (and the files still to write for it: none when it was read
    back from an earlier engine's bundle)."""
    run_dir = ctx.run_dir()
    if (run_dir / BUNDLE).exists():
        bundle = ctx.read(BUNDLE, "output_bundle")
        patch = rec.bundle_patch(bundle)
        execution = _execution_from(ctx, workorder, bundle, patch)
        return Produced(bundle, patch, execution, str(workorder["created_at"])), {}
    snapshot = ctx.snapshot or ctx.read("context_snapshot.yaml", "context_snapshot")
    if ctx.fresh:
        produced = _execute(ctx, workorder, snapshot)
    else:
        from yoi import janitor

        janitor.clean_worktrees(ctx.store, run_id=ctx.ids.run_id)  # the stopped run's
        notes = (
            f"the engine stopped during the run; resumed by {ctx.lease.claims.owner}. "
            "The runner's result (if any) was not recorded and the run is not repeated."
        )
        produced = _error(ctx, workorder, snapshot, notes, str(workorder["created_at"]))
    files: Files = {BUNDLE: ("output_bundle", produced.bundle)}
    if produced.patch:
        files[PATCH] = (None, produced.patch)
    return produced, files


def _error(
    ctx: RunContext,
    workorder: dict[str, Any],
    snapshot: dict[str, Any],
    notes: str,
    started_at: str,
) -> Produced:
    ticket = ctx.store.read_ticket(ctx.slug)
    bundle = rec.error_bundle(workorder, snapshot, title=ticket.title, notes=notes, now=_now())
    return Produced(bundle, b"", None, started_at)


def _execute(ctx: RunContext, workorder: dict[str, Any], snapshot: dict[str, Any]) -> Produced:
    from yoi import diazotroph
    from yoi.git import Repo
    from yoi.runner.registry import make_runner

    started = _now()
    store = ctx.store
    try:
        ticket = store.read_ticket(ctx.slug)
        name = str(workorder["runner"])
        config = (store.config().get("runners") or {}).get(name)
        if config is None:
            raise _NoRunner(name)
        runner = make_runner(name, config)
        repo = Repo.open(store.root)
        execution = diazotroph.execute(
            store,
            repo,
            ticket=ticket,
            workorder=workorder,
            snapshot=snapshot,
            runner=runner,
            fence=ctx.lease.check,
        )
    except FencedError:
        raise
    except Exception as exc:  # a runner or engine failure after acceptance: RUNNER_ERROR
        return _error(ctx, workorder, snapshot, f"runner error: {_describe(exc)}", started)
    return Produced(dict(execution.bundle), bytes(execution.patch), execution, started)


class _NoRunner(Exception):
    def __init__(self, name: str):
        super().__init__(f"no runner '{name}' is configured under `runners:` in .yoi/config.yaml")


def _describe(exc: BaseException) -> str:
    from yoi.errors import YoiError

    text = exc.render() if isinstance(exc, YoiError) else f"{type(exc).__name__}: {exc}"
    return text[:2000]


def _execution_from(
    ctx: RunContext, workorder: dict[str, Any], bundle: dict[str, Any], patch: bytes
) -> Any:
    """Rebuild the diazotroph's Execution from a stored bundle (resume before gates)."""
    if bundle.get("runner_status") == "RUNNER_ERROR" and not bundle["metadata"].get("commit_sha"):
        return None
    from yoi import diazotroph

    return diazotroph.execution_from_bundle(ctx.store, bundle, patch)


# ---- gates -> run record ----------------------------------------------------------------
def _evaluate(ctx: RunContext, workorder: dict[str, Any], produced: Produced) -> dict[str, Any]:
    bundle = produced.bundle
    if produced.execution is None:
        notes = str(bundle.get("notes") or "the runner failed")
        return rec.run_record(
            workorder,
            bundle,
            gate_result="FAIL",
            gate_reason=f"runner error: {notes}"[:2000],
            gates=rec.failure_gates(RUNNER_GATE, notes),
            patch=produced.patch,
            started_at=produced.started_at,
            now=_now(),
        )
    from yoi import gates
    from yoi.git import Repo

    try:
        ticket = ctx.store.read_ticket(ctx.slug)
        outcome = gates.evaluate(
            ctx.store,
            Repo.open(ctx.store.root),
            ticket=ticket,
            workorder=workorder,
            execution=produced.execution,
            config=ctx.store.config(),
        )
    except FencedError:
        raise
    except Exception as exc:  # the gates could not run: an infrastructure error
        text = f"gate infrastructure error: {_describe(exc)}"
        return rec.run_record(
            workorder,
            bundle,
            gate_result="FAIL",
            gate_reason=text,
            gates=rec.failure_gates(INFRA_GATE, text),
            patch=produced.patch,
            started_at=produced.started_at,
            now=_now(),
        )
    return rec.run_record(
        workorder,
        bundle,
        gate_result=outcome.gate_result,
        gate_reason=outcome.gate_reason,
        gates=outcome.gates,
        patch=produced.patch,
        started_at=produced.started_at,
        now=_now(),
        backup_ref=getattr(produced.execution, "backup_ref", None),
    )


def _write(ctx: RunContext, files: Files) -> None:
    """Create run files (create-if-absent) in one fenced transaction."""
    with ctx.store.transaction(fence=ctx.lease.check) as tx:
        _queue_files(tx, ctx.run_dir(), files)


def _queue_files(tx: Transaction, run_dir: Path, files: Files) -> None:
    for name, (kind, data) in files.items():
        if kind is None:
            tx.write_bytes(run_dir / name, data, create=True)
        else:
            tx.write_record(run_dir / name, kind, data, create=True)


# ---- terminal state, pause, workorder EXECUTED, event processed -----------------------------
def _finish(ctx: RunContext, files: Files) -> TickResult:
    """The outcome in one transaction: ``files`` (run files not yet written), the
    workorder EXECUTED, the event processed, and the ticket concluded. A local claim is
    released in the same hold of the store lock (one lock cycle fewer per run); its
    heartbeat stops first, as a beat takes the lock."""
    lease = ctx.lease
    if lease.releases_under_lock:
        lease.stop()
    with ctx.store.locked():
        result = _conclude_run(ctx, files)
        if lease.releases_under_lock:
            lease.release()
            faults.crashpoint("engine.released")
    return result


def _conclude_run(ctx: RunContext, files: Files) -> TickResult:
    with ctx.store.transaction(fence=ctx.lease.check) as tx:
        now = _now()
        doc = ctx.store.load_ticket(ctx.slug)
        tdir = doc.ticket.path
        run_dir = tdir / "runs" / ctx.ids.run_id
        event_path = events.event_path(tdir, ctx.ids.event_id)
        event = ctx.store.read_record(event_path, "event")
        if not event["processed"]:
            _queue_files(tx, run_dir, files)
            workorder = ctx.store.read_record(run_dir / "workorder.yaml", "workorder")
            if workorder["status"] != "EXECUTED":
                workorder.update(status="EXECUTED", executed_at=now)
                tx.write_record(run_dir / "workorder.yaml", "workorder", workorder)
            tx.write_record(
                event_path,
                "event",
                events.mark_processed(event, EventReason.EXECUTED, now, ctx.ids.run_id),
            )
            if doc.ticket.state is State.INPROGRESS:
                _conclude(tx, doc, run_dir, now, files)
    faults.crashpoint("engine.finished")
    return TickResult(
        PROCESSED, ctx.ids.event_id, ctx.slug, EventReason.EXECUTED.value, ctx.ids.run_id
    )


def _pending(tx: Transaction, run_dir: Path, files: Files, name: str) -> dict[str, Any]:
    """A run file's record: from this transaction's pending ``files`` or from disk."""
    pending = files.get(name)
    if pending is not None:
        data: dict[str, Any] = pending[1]
        return data
    kind = "run_record" if name == RECORD else "output_bundle"
    return tx.store.read_record(run_dir / name, kind)


def _conclude(tx: Transaction, doc: TicketDoc, run_dir: Path, now: str, files: Files) -> None:
    """inprogress -> done | blocked with its pause state and thread entries, then the
    bucket move (queued last, so every write above lands before the directory moves)."""
    store, ticket = tx.store, doc.ticket
    record = _pending(tx, run_dir, files, RECORD)
    bundle = _pending(tx, run_dir, files, BUNDLE)
    reason, actions, detail = rec.outcome_pause(ticket.slug, record, bundle)
    pause = rec.pause_state(
        ticket.slug, reason, actions, now=now, run_id=str(record["run_id"]), detail=detail[:2000]
    )
    tx.write_record(
        ticket.path / "pause_states" / f"{pause['pause_id']}.yaml",
        "pause_state",
        pause,
        create=True,
    )
    passed = record["gate_result"] == "PASS"
    action = Action.FINISH_DONE if passed else Action.FINISH_BLOCKED
    why = "" if passed else f"{reason.value}: {record['gate_reason']}"[:200]
    change = lifecycle.plan(ticket, action, now=now, by=rec.ENGINE_AUTHOR, reason=why)
    lifecycle.apply(doc.front, change)
    doc.front["last_run"] = str(record["run_id"])
    write_ticket(tx, ticket.path, doc.front, doc.body)
    append_entry(tx, ticket.path, entries.run_entry(record, bundle, now), ticket.title)
    append_entry(tx, ticket.path, state_entry(change, rec.ENGINE_AUTHOR, now), ticket.title)
    append_entry(tx, ticket.path, entries.pause_entry(pause), ticket.title)
    if change.from_state.bucket != change.to_state.bucket:
        tx.move(ticket.path, store.tickets_dir / change.to_state.bucket / ticket.slug)
