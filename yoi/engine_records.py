"""Records the engine writes, built as plain dicts (validated when queued for writing):
run ids, workorders, pause states with their prioritized actions, run records, and the
output bundle of a run the engine itself had to end (RUNNER_ERROR)."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from yoi import clock
from yoi.model import BlockerRef, PauseReason, RunnerStatus, Ticket

ENGINE_AUTHOR = "engine"
DEFAULT_BUDGET_MS = 600_000
DIAZOTROPH = "PATCH_DIAZOTROPH"
INFRA_GATE = "gate-infrastructure"  # the gate name of a run whose gates could not run


@dataclass(frozen=True, slots=True)
class RunIds:
    """Every id of one run, derived from the event id (architecture: Record ids)."""

    event_id: str
    run_id: str
    work_order_id: str
    snapshot_id: str
    output_id: str

    @classmethod
    def for_event(cls, event_id: str) -> RunIds:
        suffix = event_id.removeprefix("ev-")
        return cls(event_id, f"run-{suffix}", f"wo-{suffix}", f"snap-{suffix}", f"out-{suffix}")

    @classmethod
    def for_run(cls, run_id: str) -> RunIds:
        return cls.for_event("ev-" + run_id.removeprefix("run-"))


def action(priority: int, text: str, command: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"priority": priority, "action": text}
    if command:
        out["command"] = command
    return out


def pause_id(reason: PauseReason, now: str) -> str:
    stamp = clock.compact(clock.parse_ts(now))
    return f"pause-{stamp}-{reason.value.lower().replace('_', '-')}-{os.urandom(3).hex()}"


def pause_state(
    slug: str,
    reason: PauseReason,
    actions: Sequence[Mapping[str, Any]],
    *,
    now: str,
    run_id: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "pause_id": pause_id(reason, now),
        "ticket": slug,
        "reason": reason.value,
        "prioritized_actions": [dict(a) for a in actions[:3]],
        "created_at": now,
        "run_id": run_id,
    }
    if detail:
        record["detail"] = detail
    return record


@dataclass(frozen=True, slots=True)
class Problem:
    """Something other than a blocker_ref that blocks a ticket, with the fix."""

    description: str
    action: str
    command: str


def base_ref_problem(ticket: Ticket, error: str) -> Problem:
    return Problem(
        f"the base ref does not resolve: {error}",
        f"Fix the ticket's base ref ({error})",
        f"yoi ticket edit {ticket.slug} --base-ref <ref>",
    )


def blocked_actions(
    ticket: Ticket, blockers: Sequence[BlockerRef], problems: Sequence[Problem]
) -> list[dict[str, Any]]:
    """Up to two named blockers or problems first, then the requeue that re-emits
    TICKET_READY."""
    out: list[dict[str, Any]] = []
    for b in blockers[:2]:
        text = f"Resolve blocker {b.blocker_id} ({b.kind.value}): {b.description}"
        out.append(action(len(out) + 1, text, f"yoi ticket resolve {ticket.slug} {b.blocker_id}"))
    for p in problems[: 2 - len(out)]:
        out.append(action(len(out) + 1, p.action, p.command))
    out.append(
        action(
            len(out) + 1,
            "Re-emit TICKET_READY once the blockers are cleared",
            f"yoi ticket requeue {ticket.slug}",
        )
    )
    return out


def workorder(
    ticket: Ticket, ids: RunIds, *, branch: str, budget_ms: int, runner: str, now: str
) -> dict[str, Any]:
    return {
        "work_order_id": ids.work_order_id,
        "ticket": ticket.slug,
        "event_id": ids.event_id,
        "run_id": ids.run_id,
        "diazotroph_type": DIAZOTROPH,
        "context_snapshot_id": ids.snapshot_id,
        "branch_name": branch,
        "budget_ms": budget_ms,
        "runner": runner,
        "status": "CREATED",
        "created_at": now,
        "executed_at": None,
    }


def budget_for(ticket: Ticket, runner_config: Mapping[str, Any] | None) -> int:
    if ticket.budget_ms:
        return ticket.budget_ms
    configured = (runner_config or {}).get("budget_ms")
    return (
        int(configured) if isinstance(configured, int) and configured > 0 else (DEFAULT_BUDGET_MS)
    )


def error_bundle(
    workorder: Mapping[str, Any], snapshot: Mapping[str, Any], *, title: str, notes: str, now: str
) -> dict[str, Any]:
    """The output bundle of a run that ended in RUNNER_ERROR without the diazotroph
    producing one (a runner exception, or an engine that stopped during the run)."""
    ids = RunIds.for_run(str(workorder["run_id"]))
    return {
        "output_id": ids.output_id,
        "ticket": workorder["ticket"],
        "work_order_id": workorder["work_order_id"],
        "runner_status": RunnerStatus.RUNNER_ERROR.value,
        "title": title,
        "metadata": {
            "branch_name": workorder["branch_name"],
            "pr_description_draft": "",
            "commit_sha": None,
            "base_commit": snapshot["metadata"]["commit_sha"],
        },
        "content": "",
        "notes": notes,
        "created_at": now,
    }


def failure_gates(name: str, detail: str) -> list[dict[str, Any]]:
    return [{"name": name, "result": "FAIL", "detail": detail[:2000], "kind": "builtin"}]


def run_record(
    workorder: Mapping[str, Any],
    bundle: Mapping[str, Any],
    *,
    gate_result: str,
    gate_reason: str,
    gates: Sequence[Mapping[str, Any]],
    patch: bytes,
    started_at: str,
    now: str,
    backup_ref: str | None = None,
) -> dict[str, Any]:
    meta = bundle.get("metadata") or {}
    return {
        "run_id": workorder["run_id"],
        "work_order_id": workorder["work_order_id"],
        "ticket": workorder["ticket"],
        "output_id": bundle["output_id"],
        "gate_result": gate_result,
        "gate_reason": gate_reason,
        "gates": [dict(g) for g in gates],
        "commit_sha": meta.get("commit_sha"),
        "branch": workorder["branch_name"],
        "started_at": started_at,
        "finished_at": now,
        "created_at": now,
        "runner_status": bundle["runner_status"],
        "base_commit": meta.get("base_commit"),
        "backup_ref": backup_ref if backup_ref is not None else meta.get("backup_ref"),
        "patch_sha256": hashlib.sha256(patch).hexdigest() if patch else None,
    }


def bundle_patch(bundle: Mapping[str, Any]) -> bytes:
    """The patch bytes a bundle carries in ``content`` (utf-8 text or base64)."""
    content = str(bundle.get("content") or "")
    if (bundle.get("metadata") or {}).get("content_encoding") == "base64":
        return base64.b64decode(content)
    return content.encode("utf-8")


def _infrastructure(gate: Mapping[str, Any]) -> bool:
    """A gate that failed because gates could not run at all (not a verdict on the patch)."""
    return gate.get("result") == "FAIL" and (
        gate.get("name") == INFRA_GATE
        or str(gate.get("detail") or "").startswith("gate infrastructure error")
    )


def _first_failed(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((g for g in record.get("gates") or () if g.get("result") == "FAIL"), None)


def outcome_pause(
    slug: str, record: Mapping[str, Any], bundle: Mapping[str, Any]
) -> tuple[PauseReason, list[dict[str, Any]], str]:
    """(reason, 1-3 prioritized actions, detail) for a finished run."""
    run_id = str(record["run_id"])
    branch = str(record["branch"])
    show = f"yoi runs show {run_id}"
    requeue = f"yoi ticket requeue {slug}"
    if record["gate_result"] == "PASS":
        commit = str(record.get("commit_sha") or "")[:12]
        return (
            PauseReason.RUN_COMPLETE,
            [
                action(1, f"Review branch {branch} (commit {commit})", f"{show} --patch"),
                action(
                    2,
                    "Confirm the objective is met against the acceptance criteria",
                    f"yoi ticket show {slug}",
                ),
                action(3, f"Merge {branch} when satisfied", f"git merge {branch}"),
            ],
            f"All gates passed: {record['gate_reason']}",
        )
    status = str(bundle.get("runner_status"))
    if any(_infrastructure(g) for g in record.get("gates") or ()):
        status, bundle = RunnerStatus.RUNNER_ERROR.value, {"notes": record["gate_reason"]}
    if status == RunnerStatus.BUDGET_EXHAUSTED.value:
        return (
            PauseReason.BUDGET_EXHAUSTED,
            [
                action(
                    1,
                    "Raise the ticket's budget or narrow its scope",
                    f"yoi ticket edit {slug} --budget-ms <ms>",
                ),
                action(2, "Re-run when ready", requeue),
            ],
            str(record["gate_reason"]),
        )
    if status == RunnerStatus.RUNNER_ERROR.value:
        notes = str(bundle.get("notes") or "").strip().splitlines()
        first = notes[0][:200] if notes else "the runner failed"
        return (
            PauseReason.RUNNER_ERROR,
            [
                action(1, f"Fix the runner problem: {first}", show),
                action(2, "Re-run when fixed", requeue),
                action(
                    3,
                    "Or return the ticket to planning",
                    f"yoi ticket return {slug} --reason '<why>'",
                ),
            ],
            str(record["gate_reason"]),
        )
    failed = _first_failed(record)
    what = f"gate {failed['name']}: {failed['detail']}" if failed else record["gate_reason"]
    return (
        PauseReason.GATE_FAILED,
        [
            action(1, f"Address the failing {what}"[:500], show),
            action(2, "Re-run when green", requeue),
            action(
                3, "Or return the ticket to planning", f"yoi ticket return {slug} --reason '<why>'"
            ),
        ],
        str(record["gate_reason"]),
    )
