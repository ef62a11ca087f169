"""One test per branch of the control-plane flow (SPEC §5): every file a tick writes
(and none extra), the thread entries, and the user's checkout left byte-identical."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.engine_helpers import (
    FAIL_GATE,
    PASS_GATE,
    config,
    delta,
    make_store,
    one,
    queue,
    queue_with_patch,
    run_files,
    stale_event,
    store_files,
    thread_kinds,
    validate_store,
)
from tests.helpers import git, user_state
from yoi import engine, events, plan_ops, tickets
from yoi.engine import TickResult
from yoi.lifecycle import Action
from yoi.model import BlockerKind, PlanKind
from yoi.store import Store

RUN_FILES = ("workorder.yaml", "context_snapshot.yaml", "output_bundle.yaml", "run_record.yaml")


def pending_id(store: Store, slug: str) -> str:
    found = [
        e.record["event_id"]
        for e in events.all_events(store, pending_only=True)
        if e.record["ticket"] == slug
    ]
    assert len(found) == 1, found
    return str(found[0])


def run_id_of(event_id: str) -> str:
    return "run-" + event_id.removeprefix("ev-")


class Observed:
    """A tick observed: store files, thread entries and the user's checkout around it."""

    def __init__(self, store: Store, repo: Path, slug: str):
        self.store, self.repo, self.slug = store, repo, slug
        self.files = store_files(store)
        self.thread = thread_kinds(store, slug)
        self.user = user_state(repo)

    def tick(self) -> TickResult:
        result = engine.tick(self.store)
        assert user_state(self.repo) == self.user
        assert validate_store(self.store) == []
        return result

    def delta(self) -> Any:
        return delta(self.files, store_files(self.store), self.slug)

    def new_entries(self) -> list[tuple[str, dict[str, str]]]:
        after = thread_kinds(self.store, self.slug)
        assert after[: len(self.thread)] == self.thread
        return after[len(self.thread) :]

    def record(self, rel: str, kind: str) -> dict[str, Any]:
        path = self.store.ticket_dir(self.slug) / rel.removeprefix("<T>/")
        return self.store.read_record(path, kind)


@pytest.fixture
def repo_cwd(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(repo)
    return repo


def _executed(obs: Observed, eid: str, *, patch: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Shared checks of a run that reached the end; returns (run_record, pause_state)."""
    run_id = run_id_of(eid)
    d = obs.delta()
    pause = one(d.added, "<T>/pause_states/")
    accepted = one(d.added, "<T>/plan/")
    names = (*RUN_FILES, "patch.diff") if patch else RUN_FILES
    assert d.added == run_files(run_id, *names) | {pause, accepted}
    assert d.changed == {"<T>/ticket.md", "<T>/thread.md", f"<T>/events/{eid}.yaml"}
    assert d.removed == set()
    event = obs.record(f"<T>/events/{eid}.yaml", "event")
    assert (event["processed"], event["processed_reason"], event["run_id"]) == (
        True,
        "EXECUTED",
        run_id,
    )
    workorder = obs.record(f"<T>/runs/{run_id}/workorder.yaml", "workorder")
    assert workorder["status"] == "EXECUTED" and workorder["executed_at"]
    assert workorder["branch_name"] == f"yoi/{obs.slug}"
    assert workorder["diazotroph_type"] == "PATCH_DIAZOTROPH"
    assert obs.record(accepted, "plan_record")["kind"] == "accepted_plan"
    ticket = obs.store.read_ticket(obs.slug)
    assert (ticket.last_run, ticket.branch) == (run_id, f"yoi/{obs.slug}")
    record = obs.record(f"<T>/runs/{run_id}/run_record.yaml", "run_record")
    state = "done" if record["gate_result"] == "PASS" else "blocked"
    ps = obs.record(pause, "pause_state")
    assert 1 <= len(ps["prioritized_actions"]) <= 3 and ps["run_id"] == run_id
    entries = obs.new_entries()
    assert [k for k, _ in entries] == ["state", "plan", "run", "state", "pause"]
    assert entries[0][1] == {"from": "queued", "to": "inprogress"}
    assert entries[2][1] == {"run_id": run_id, "result": record["gate_result"]}
    assert entries[3][1]["from"] == "inprogress" and entries[3][1]["to"] == state
    assert entries[4][1] == {"pause_id": ps["pause_id"], "reason": ps["reason"]}
    assert ticket.state.value == state
    assert ticket.path.parent.name == ("done" if state == "done" else "open")
    return record, ps


def test_pass_runs_the_patch_commits_it_and_finishes_done(repo_cwd: Path) -> None:
    store = make_store(repo_cwd, config(gates=[PASS_GATE]))
    slug = queue_with_patch(store, repo_cwd, "Add note")
    eid = pending_id(store, slug)
    obs = Observed(store, repo_cwd, slug)
    result = obs.tick()
    assert result == TickResult("processed", eid, slug, "EXECUTED", run_id_of(eid))
    record, pause = _executed(obs, eid, patch=True)
    assert record["gate_result"] == "PASS"
    assert {"name": "has-notes", "result": "PASS"}.items() <= next(
        g for g in record["gates"] if g["name"] == "has-notes"
    ).items()
    assert git(repo_cwd, "rev-parse", f"yoi/{slug}").strip() == record["commit_sha"]
    assert git(repo_cwd, "show", f"yoi/{slug}:notes/add-note.txt") == "note add-note\n"
    assert pause["reason"] == "RUN_COMPLETE"
    assert f"yoi/{slug}" in pause["prioritized_actions"][0]["action"]
    patch = (store.ticket_dir(slug) / "runs" / record["run_id"] / "patch.diff").read_bytes()
    assert b"+note add-note" in patch
    assert engine.tick(store) == TickResult("idle")


def test_gate_failure_blocks_with_gate_failed(repo_cwd: Path) -> None:
    store = make_store(repo_cwd, config(gates=[FAIL_GATE]))
    slug = queue_with_patch(store, repo_cwd, "Add note")
    eid = pending_id(store, slug)
    obs = Observed(store, repo_cwd, slug)
    assert obs.tick().reason == "EXECUTED"
    record, pause = _executed(obs, eid, patch=True)
    assert record["gate_result"] == "FAIL"
    assert pause["reason"] == "GATE_FAILED"
    assert "always-fails" in pause["prioritized_actions"][0]["action"]
    assert any(
        a.get("command") == f"yoi ticket requeue {slug}" for a in pause["prioritized_actions"]
    )
    assert store.read_ticket(slug).blocked_reason


def test_budget_exhausted_blocks_with_budget_exhausted(repo_cwd: Path) -> None:
    store = make_store(repo_cwd)
    slug = queue(store, "Slow work", runner="sleepy")
    eid = pending_id(store, slug)
    obs = Observed(store, repo_cwd, slug)
    assert obs.tick().run_id == run_id_of(eid)
    record, pause = _executed(obs, eid, patch=False)
    assert (record["gate_result"], record["runner_status"]) == ("FAIL", "BUDGET_EXHAUSTED")
    assert pause["reason"] == "BUDGET_EXHAUSTED"
    assert git(repo_cwd, "branch", "--list", f"yoi/{slug}").strip() == ""


@pytest.mark.parametrize("runner", ["broken", "ghost"])
def test_runner_error_is_recorded_under_the_inprogress_ticket(repo_cwd: Path, runner: str) -> None:
    store = make_store(repo_cwd)
    slug = queue(store, "Broken runner", runner=runner)
    eid = pending_id(store, slug)
    obs = Observed(store, repo_cwd, slug)
    assert obs.tick().run_id == run_id_of(eid)
    record, pause = _executed(obs, eid, patch=False)
    assert (record["gate_result"], record["runner_status"]) == ("FAIL", "RUNNER_ERROR")
    assert pause["reason"] == "RUNNER_ERROR"
    expected = "failed with" if runner == "broken" else "no runner 'ghost'"
    bundle = obs.record(f"<T>/runs/{record['run_id']}/output_bundle.yaml", "output_bundle")
    assert expected in bundle["notes"]


def test_missing_ticket_closes_the_event_only(repo_cwd: Path) -> None:
    store = make_store(repo_cwd)
    slug = queue(store, "Vanishing")
    eid = pending_id(store, slug)
    (store.ticket_dir(slug) / "ticket.md").unlink()
    before, user = store_files(store), user_state(repo_cwd)
    assert engine.tick(store) == TickResult("processed", eid, slug, "MISSING_TICKET")
    assert user_state(repo_cwd) == user
    d = delta(before, store_files(store), slug)
    assert (d.added, d.changed, d.removed) == (set(), {f"<T>/events/{eid}.yaml"}, set())
    event = store.read_record(events.event_path(store.tickets_dir / "open" / slug, eid), "event")
    assert (event["processed"], event["processed_reason"], event["run_id"]) == (
        True,
        "MISSING_TICKET",
        None,
    )


def _to_state(store: Store, repo: Path, slug: str, state: str) -> None:
    if state in ("planning", "ready"):
        tickets.transition(store, slug, Action.RETURN, by="ada", reason="rethink")
        if state == "ready":
            tickets.transition(store, slug, Action.READY, by="ada")
    elif state == "blocked":
        tickets.add_blocker(store, slug, kind=BlockerKind.USER_INPUT, description="which db?")
        assert engine.tick(store).reason == "BLOCKED"
    elif state == "done":
        assert engine.tick(store).reason == "EXECUTED"
    assert store.read_ticket(slug).state.value == state


@pytest.mark.parametrize("state", ["planning", "ready", "blocked", "done"])
def test_non_executable_status_closes_the_event_only(repo_cwd: Path, state: str) -> None:
    store = make_store(repo_cwd)
    slug = queue_with_patch(store, repo_cwd, "Not now")
    _to_state(store, repo_cwd, slug, state)
    eid = stale_event(store, slug) if state in ("blocked", "done") else pending_id(store, slug)
    obs = Observed(store, repo_cwd, slug)
    assert obs.tick() == TickResult("processed", eid, slug, "NON_EXECUTABLE_STATUS")
    d = obs.delta()
    assert (d.added, d.changed, d.removed) == (set(), {f"<T>/events/{eid}.yaml"}, set())
    assert obs.new_entries() == []
    assert store.read_ticket(slug).state.value == state


def _blocked(obs: Observed, eid: str) -> dict[str, Any]:
    d = obs.delta()
    pause = one(d.added, "<T>/pause_states/")
    assert d.added == {pause}
    assert d.changed == {"<T>/ticket.md", "<T>/thread.md", f"<T>/events/{eid}.yaml"}
    assert d.removed == set()
    ps = obs.record(pause, "pause_state")
    assert ps["reason"] == "BLOCKED" and ps["run_id"] is None
    entries = obs.new_entries()
    assert [k for k, _ in entries] == ["state", "pause"]
    assert entries[0][1]["from"] == "queued" and entries[0][1]["to"] == "blocked"
    assert entries[1][1] == {"pause_id": ps["pause_id"], "reason": "BLOCKED"}
    ticket = obs.store.read_ticket(obs.slug)
    assert ticket.state.value == "blocked" and ticket.blocked_reason
    actions = ps["prioritized_actions"]
    assert 1 <= len(actions) <= 3
    assert actions[-1]["command"] == f"yoi ticket requeue {obs.slug}"
    return ps


def test_unresolved_blocker_ref_blocks_before_any_run(repo_cwd: Path) -> None:
    store = make_store(repo_cwd)
    slug = queue_with_patch(store, repo_cwd, "Needs input")
    tickets.add_blocker(store, slug, kind=BlockerKind.USER_INPUT, description="which db?")
    eid = pending_id(store, slug)
    obs = Observed(store, repo_cwd, slug)
    assert obs.tick() == TickResult("processed", eid, slug, "BLOCKED")
    ps = _blocked(obs, eid)
    assert ps["prioritized_actions"][0]["command"] == f"yoi ticket resolve {slug} b1"
    assert "which db?" in ps["prioritized_actions"][0]["action"]


def test_unfinished_depends_on_target_blocks(repo_cwd: Path) -> None:
    store = make_store(repo_cwd)
    first = tickets.create(store, tickets.NewTicket("Schema first", ["x"]), by="ada").slug
    slug = queue_with_patch(store, repo_cwd, "Then the api")
    plan_ops.add(store, slug, plan_ops.NewRecord(kind=PlanKind.DEPENDS_ON, related=first))
    eid = pending_id(store, slug)
    obs = Observed(store, repo_cwd, slug)
    assert obs.tick() == TickResult("processed", eid, slug, "BLOCKED")
    ps = _blocked(obs, eid)
    assert first in ps["prioritized_actions"][0]["action"]
    assert first in ps["detail"]


def test_waiting_event_is_deferred_and_the_next_one_runs(
    repo_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(repo_cwd)
    monkeypatch.setenv("YOI_TEST_NOW", "2026-01-01T00:00:00Z")
    later = queue_with_patch(store, repo_cwd, "Second step")  # its event is the oldest
    monkeypatch.setenv("YOI_TEST_NOW", "2026-01-01T00:00:05Z")
    first = queue_with_patch(store, repo_cwd, "First step")
    plan_ops.add(store, first, plan_ops.NewRecord(kind=PlanKind.BEFORE, related=later))
    monkeypatch.delenv("YOI_TEST_NOW")
    later_eid = pending_id(store, later)
    result = engine.tick(store)
    assert (result.outcome, result.ticket, result.reason) == ("processed", first, "EXECUTED")
    waits = [r for r in _plan(store, later) if r["kind"] == "waiting"]
    assert len(waits) == 1 and first in waits[0]["note"]
    assert pending_id(store, later) == later_eid
    assert engine.tick(store).ticket == later
    assert store.read_ticket(later).state.value == "done"


def test_only_waiting_events_give_deferred_and_record_the_reason_once(repo_cwd: Path) -> None:
    store = make_store(repo_cwd)
    first = tickets.create(store, tickets.NewTicket("Design", ["x"]), by="ada").slug
    tickets.transition(store, first, Action.READY, by="ada")
    slug = queue_with_patch(store, repo_cwd, "Build")
    plan_ops.add(store, first, plan_ops.NewRecord(kind=PlanKind.BEFORE, related=slug))
    eid = pending_id(store, slug)
    obs = Observed(store, repo_cwd, slug)
    result = obs.tick()
    assert (result.outcome, result.event_id, result.ticket) == ("deferred", eid, slug)
    assert result.reason is not None and first in result.reason
    d = obs.delta()
    assert d.changed == {"<T>/thread.md"} and len(d.added) == 1 and not d.removed
    assert [k for k, _ in obs.new_entries()] == ["plan"]
    again = Observed(store, repo_cwd, slug)
    assert again.tick() == result
    assert again.delta() == delta({}, {}, slug)
    assert store.read_ticket(slug).state.value == "queued"


def _plan(store: Store, slug: str) -> list[dict[str, Any]]:
    tdir = store.ticket_dir(slug)
    return [store.read_record(p, "plan_record") for p in store.record_files(tdir, "plan")]


def test_idle_when_nothing_is_pending(repo_cwd: Path) -> None:
    store = make_store(repo_cwd)
    before = store_files(store)
    assert engine.tick(store) == TickResult("idle")
    assert store_files(store) == before


def test_base_ref_that_does_not_resolve_blocks_instead_of_wedging(
    repo_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(repo_cwd)
    monkeypatch.setenv("YOI_TEST_NOW", "2026-01-01T00:00:00Z")
    slug = queue_with_patch(store, repo_cwd, "Bad base", base_ref="no-such-branch")
    monkeypatch.setenv("YOI_TEST_NOW", "2026-01-01T00:00:05Z")
    other = queue_with_patch(store, repo_cwd, "Fine")
    monkeypatch.delenv("YOI_TEST_NOW")
    eid = pending_id(store, slug)
    obs = Observed(store, repo_cwd, slug)
    first = obs.tick()
    assert first.ticket == slug, "the bad-base event is the oldest"
    assert first == TickResult("processed", eid, slug, "BLOCKED")
    ps = _blocked(obs, eid)
    assert ps["prioritized_actions"][0]["command"] == f"yoi ticket edit {slug} --base-ref <ref>"
    assert "no-such-branch" in ps["detail"]
    assert engine.tick(store).ticket == other
    assert store.read_ticket(other).state.value == "done"
