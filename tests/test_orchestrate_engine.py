"""Starvation scenarios with the real engine: `engine run --kick` starts queued work when
the engine is idle, kicks nothing while a run is in progress, and a ticket waiting on
capacity or a conflict shows why and starts when the other ticket finishes.

A run "in progress" is a ticket the engine accepted (state inprogress), as another engine
process mid-run leaves it; the tests make that transition the way the engine does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.engine_helpers import config, make_store, queue_with_patch
from tests.helpers import commit_all, git
from tests.test_plan_support import drop_events, engine_move, files
from yoi import events
from yoi.commands import engine as engine_cmd
from yoi.commands import orchestrate as orchestrate_cmd
from yoi.lifecycle import Action
from yoi.model import PlanKind, State
from yoi.plan_ops import NewRecord, add
from yoi.store import Store


@pytest.fixture
def repo_cwd(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(repo)
    return repo


def outcomes(out: Any) -> list[tuple[str, str | None]]:
    return [(t["outcome"], t["ticket"]) for t in out.data["ticks"]]


def running(store: Store, repo: Path, title: str) -> str:
    """A ticket the engine has accepted and is still running (held in inprogress)."""
    slug = queue_with_patch(store, repo, title)
    drop_events(store, slug)
    engine_move(store, slug, Action.ACCEPT)
    return slug


def waiting_of(store: Store, slug: str) -> str | None:
    data = orchestrate_cmd.status(store).data
    shown = {w["slug"]: w["waiting"] for w in data["planned_queued"] + data["new_queued_waiting"]}
    return shown.get(slug)


def test_ticket_queued_by_a_merge_is_started_by_engine_run_kick(repo_cwd: Path) -> None:
    store = make_store(repo_cwd)
    git(repo_cwd, "checkout", "-q", "-b", "feature")
    slug = queue_with_patch(store, repo_cwd, "Merged note")
    drop_events(store, slug)  # the branch brings the queued ticket, not its event
    commit_all(repo_cwd, "queue the merged note")
    git(repo_cwd, "checkout", "-q", "main")
    git(repo_cwd, "merge", "-q", "--no-edit", "feature")
    store = Store.discover(repo_cwd)
    assert outcomes(engine_cmd.run(store)) == [("idle", None)]  # no event: starved
    assert store.read_ticket(slug).state is State.QUEUED
    out = engine_cmd.run(store, kick=True)
    assert outcomes(out) == [("processed", slug), ("idle", None)]
    assert store.read_ticket(slug).state is State.DONE
    [event] = events.all_events(store)
    assert event.record["source"] == "kick" and event.record["processed_reason"] == "EXECUTED"


def test_nothing_is_kicked_while_a_run_is_in_progress(repo_cwd: Path) -> None:
    store = make_store(repo_cwd)
    first = running(store, repo_cwd, "First note")
    later = queue_with_patch(store, repo_cwd, "Later note")
    drop_events(store, later)
    before = files(store)
    assert outcomes(engine_cmd.run(store, kick=True)) == [("idle", None)]
    assert files(store) == before  # no planned record, no event, no waiting record
    assert waiting_of(store, later) is not None and first in str(waiting_of(store, later))
    engine_move(store, first, Action.FINISH_DONE)  # the other run finishes
    out = engine_cmd.run(store, kick=True)
    assert outcomes(out) == [("processed", later), ("idle", None)]
    assert store.read_ticket(later).state is State.DONE


def test_waiting_on_capacity_shows_and_starts_when_the_other_finishes(repo_cwd: Path) -> None:
    store = make_store(repo_cwd)
    first = running(store, repo_cwd, "First note")
    later = queue_with_patch(store, repo_cwd, "Later note")  # its TICKET_READY is pending
    out = engine_cmd.run(store, kick=True)
    assert outcomes(out) == [("deferred", later)]
    reason = waiting_of(store, later)
    assert reason is not None and "waits for capacity" in reason and first in reason
    engine_move(store, first, Action.FINISH_DONE)
    assert waiting_of(store, later) is None
    out = engine_cmd.run(store, kick=True)
    assert outcomes(out) == [("processed", later), ("idle", None)]
    assert store.read_ticket(later).state is State.DONE


def test_waiting_on_a_conflict_shows_and_starts_when_the_other_finishes(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    store = make_store(repo, config(capacity=2))
    first = running(store, repo, "First note")
    later = queue_with_patch(store, repo, "Later note")
    add(store, later, NewRecord(PlanKind.CONFLICTS_WITH, related=first))
    other = queue_with_patch(store, repo, "Other note")  # no conflict: capacity allows it
    out = engine_cmd.run(store, kick=True)
    assert outcomes(out) == [("processed", other), ("deferred", later)]
    assert waiting_of(store, later) == f"conflicts with '{first}', which is in progress"
    engine_move(store, first, Action.FINISH_DONE)
    out = engine_cmd.run(store, kick=True)
    assert outcomes(out) == [("processed", later), ("idle", None)]
    assert store.read_ticket(later).state is State.DONE
