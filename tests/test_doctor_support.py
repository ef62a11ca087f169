"""Helpers shared by the doctor, history and hooks tests: tickets in a given state and a
complete, consistent run written the way the engine writes one (plus a test that such
a store is clean, so the helpers cannot drift from what doctor accepts)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

from yoi import doctor, tickets, yamlio
from yoi.lifecycle import Action
from yoi.model import Ticket
from yoi.store import Store

SHA = "a" * 40
T0 = "2026-11-20T10:00:00Z"
PATCH = b"diff --git a/x b/x\nnew file mode 100644\n--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+x\n"


def new_ticket(store: Store, title: str = "Fix the widget") -> Ticket:
    return tickets.create(store, tickets.NewTicket(title=title, acceptance_criteria=["works"]))


def queued_ticket(store: Store, title: str = "Fix the widget") -> Ticket:
    t = new_ticket(store, title)
    tickets.transition(store, t.slug, Action.READY)
    return tickets.transition(store, t.slug, Action.QUEUE)


def write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yamlio.dump(data), encoding="utf-8")


def event_id_of(t: Ticket) -> str:
    return sorted((t.path / "events").glob("*.yaml"))[0].stem


def add_run(t: Ticket, *, executed: bool = True, patch: bytes = PATCH) -> Path:
    """A run of ticket ``t`` (which must have an event): every record, consistent."""
    eid = event_id_of(t)
    suffix = eid.removeprefix("ev-")
    run_id = f"run-{suffix}"
    run = t.path / "runs" / run_id
    write_yaml(
        run / "workorder.yaml",
        {
            "work_order_id": f"wo-{suffix}",
            "ticket": t.slug,
            "event_id": eid,
            "run_id": run_id,
            "diazotroph_type": "PATCH_DIAZOTROPH",
            "context_snapshot_id": f"snap-{suffix}",
            "branch_name": f"yoi/{t.slug}",
            "budget_ms": 1000,
            "runner": "default",
            "status": "EXECUTED" if executed else "CREATED",
            "created_at": T0,
            "executed_at": T0 if executed else None,
        },
    )
    write_yaml(
        run / "context_snapshot.yaml",
        {
            "snapshot_id": f"snap-{suffix}",
            "ticket": t.slug,
            "metadata": {"commit_sha": SHA, "base_ref": "HEAD"},
            "related_yield_refs": [],
            "full_prompt_text": "do it",
            "created_at": T0,
        },
    )
    if not executed:
        return run
    write_yaml(
        run / "output_bundle.yaml",
        {
            "output_id": f"out-{suffix}",
            "ticket": t.slug,
            "work_order_id": f"wo-{suffix}",
            "runner_status": "COMPLETED",
            "title": t.title,
            "metadata": {
                "branch_name": f"yoi/{t.slug}",
                "pr_description_draft": "PR",
                "commit_sha": SHA,
                "base_commit": SHA,
            },
            "content": patch.decode(),
            "notes": "ok",
            "created_at": T0,
        },
    )
    (run / "patch.diff").write_bytes(patch)
    write_yaml(
        run / "run_record.yaml",
        {
            "run_id": run_id,
            "work_order_id": f"wo-{suffix}",
            "ticket": t.slug,
            "output_id": f"out-{suffix}",
            "gate_result": "PASS",
            "gate_reason": "all passed",
            "gates": [{"name": "tests", "result": "PASS", "detail": "ok"}],
            "commit_sha": SHA,
            "branch": f"yoi/{t.slug}",
            "started_at": T0,
            "finished_at": T0,
            "created_at": T0,
            "patch_sha256": hashlib.sha256(patch).hexdigest(),
        },
    )
    write_yaml(
        t.path / "pause_states" / f"pause-20261120100000-run-complete-{suffix[-6:]}.yaml",
        {
            "pause_id": f"pause-20261120100000-run-complete-{suffix[-6:]}",
            "ticket": t.slug,
            "reason": "RUN_COMPLETE",
            "run_id": run_id,
            "created_at": T0,
            "prioritized_actions": [{"priority": 1, "action": "review the branch"}],
        },
    )
    return run


def errors(store: Store) -> list[str]:
    return [p.render() for p in doctor.check(store).problems if p.severity == "error"]


def yoi(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yoi", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_helpers_build_a_clean_store(store_repo: Path) -> None:
    store = Store.discover(store_repo)
    t = queued_ticket(store)
    add_run(t)
    new_ticket(store, "Another one")
    report = doctor.check(store)
    assert report.problems == [] and report.ok and report.tickets == 2
