"""The work set and the four kick rules, as scenarios on a real store and real git."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_yoi
from tests.helpers import commit_all, git
from tests.test_plan_support import (
    at,
    drop_events,
    files,
    inprogress,
    queue,
    queued,
    ready,
    set_capacity,
)
from yoi import events, plan
from yoi.commands import orchestrate as cmd
from yoi.model import PlanKind
from yoi.plan_ops import NewRecord, add
from yoi.store import Store


@pytest.fixture
def store(store_repo: Path) -> Store:
    return Store.discover(store_repo)


def status(store: Store) -> dict[str, Any]:
    return cmd.status(store).data


def kinds(store: Store, slug: str) -> list[str]:
    """The kinds of the records the kick and the engine write, oldest first."""
    records = plan.ticket_records(store, store.ticket_dir(slug))
    return [r.kind.value for r in records if r.kind in (PlanKind.PLANNED, PlanKind.WAITING)]


def pending(store: Store) -> list[tuple[str, str]]:
    return [
        (str(e.record["ticket"]), str(e.record["source"]))
        for e in events.all_events(store, pending_only=True)
    ]


def planned_note(store: Store, slug: str) -> str:
    records = plan.ticket_records(store, store.ticket_dir(slug))
    [record] = plan.since(records, PlanKind.PLANNED, None)
    return str(record.note)


def test_empty_store(store: Store) -> None:
    assert status(store) == {
        "new_queued": [],
        "planned_queued": [],
        "inprogress": [],
        "new_queued_waiting": [],
        "kick": {"due": False, "reason": "no queued work"},
    }
    before = files(store)
    result = plan.kick(store)
    assert not result.changed and files(store) == before


def test_rule1_new_queued_are_planned_in_queue_order_honoring_before_after(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(monkeypatch, "2026-03-01T10:00:00Z")
    a = queued(store, "Alpha one")
    at(monkeypatch, "2026-03-01T10:00:05Z")
    b = queued(store, "Beta two")
    at(monkeypatch, "2026-03-01T10:00:09Z")
    c = queued(store, "Gamma three")
    add(store, c, NewRecord(PlanKind.BEFORE, related=a))  # explicit: c goes ahead of a
    assert status(store)["new_queued"] == [a, b, c]  # queue order, not yet planned
    assert status(store)["kick"]["due"] is True
    at(monkeypatch, "2026-03-01T10:01:00Z")
    result = plan.kick(store)
    assert result.planned == (b, c, a)  # b keeps its place; a only moves behind c
    notes = {s: planned_note(store, s) for s in (a, b, c)}
    assert "position 1 of 3" in notes[b]
    assert "position 3 of 3" in notes[a] and c in notes[a]
    work = status(store)
    assert work["new_queued"] == [] and [w["slug"] for w in work["planned_queued"]] == [a, b, c]
    for s in (a, b, c):
        assert store.read_thread(s)[-1].kind == "plan"


def test_rule2_ticket_queued_by_a_merge_gets_its_event_when_idle(
    store: Store, store_repo: Path
) -> None:
    git(store_repo, "checkout", "-q", "-b", "feature")
    slug = queued(store, "Alpha one")
    drop_events(store, slug)  # the branch carried the queued ticket but not its event
    commit_all(store_repo, "queue alpha")
    git(store_repo, "checkout", "-q", "main")
    git(store_repo, "merge", "-q", "--no-edit", "feature")
    store = Store.discover(store_repo)
    assert pending(store) == []
    assert status(store)["new_queued"] == [slug] and status(store)["kick"]["due"] is True
    result = plan.kick(store)
    t = store.read_ticket(slug)
    assert t.queued_at is not None
    assert result.planned == (slug,) and result.started == (slug,)
    assert result.event_ids == (events.event_id(slug, t.queued_at),)
    assert pending(store) == [(slug, "kick")]
    after = status(store)
    assert after["planned_queued"] == [{"slug": slug, "waiting": None}]
    assert after["kick"]["due"] is False and "pending TICKET_READY" in after["kick"]["reason"]
    before = files(store)
    assert not plan.kick(store).changed and files(store) == before  # never a duplicate


def test_rule2_an_existing_pending_event_is_not_duplicated(store: Store) -> None:
    slug = queued(store, "Alpha one")  # the CLI emitted its event
    result = plan.kick(store)
    assert result.planned == (slug,) and result.started == () and result.event_ids == ()
    assert pending(store) == [(slug, "cli")]


def test_rule2_capacity_bounds_how_many_start(store: Store) -> None:
    a, b = queued(store, "Alpha one"), queued(store, "Beta two")
    drop_events(store, a)
    drop_events(store, b)
    result = plan.kick(store)
    assert result.started == (a,)
    [w] = result.waiting
    assert w.slug == b and w.reason is not None and "waits for capacity" in w.reason
    assert kinds(store, b) == ["planned", "waiting"]
    assert status(store)["planned_queued"][1]["waiting"] == w.reason


def test_rule3_work_in_progress_means_nothing_is_kicked(store: Store) -> None:
    running = inprogress(store, "Alpha one")
    b = queued(store, "Beta two")
    drop_events(store, b)
    work = status(store)
    assert work["inprogress"] == [running] and work["new_queued"] == [b]
    [w] = work["new_queued_waiting"]  # not planned yet, but why it waits is visible
    assert w["slug"] == b and "waits for capacity" in w["waiting"] and running in w["waiting"]
    assert work["kick"]["due"] is False and running in work["kick"]["reason"]
    before = files(store)
    result = plan.kick(store)
    assert not result.changed and files(store) == before
    assert "work in progress" in result.reason


def test_waiting_on_capacity_shows_in_status(store: Store) -> None:
    b = queued(store, "Beta two")
    plan.kick(store)  # planned, its own event pending
    running = inprogress(store, "Alpha one")
    [w] = status(store)["planned_queued"]
    assert w["slug"] == b and w["waiting"] is not None
    assert "waits for capacity" in w["waiting"] and running in w["waiting"]


def test_waiting_on_a_conflict_shows_in_status(store: Store) -> None:
    store = set_capacity(store, 2)
    b = queued(store, "Beta two")
    plan.kick(store)
    running = inprogress(store, "Alpha one")
    add(store, running, NewRecord(PlanKind.CONFLICTS_WITH, related=b))
    [w] = status(store)["planned_queued"]
    assert w == {"slug": b, "waiting": f"conflicts with '{running}', which is in progress"}
    text = cmd.status(store).text
    assert f"waiting: conflicts with '{running}'" in text


def test_rule4_blocked_and_waiting_are_recorded_when_idle(store: Store) -> None:
    a, b = queued(store, "Alpha one"), queued(store, "Beta two")
    c = ready(store, "Gamma three")
    add(store, a, NewRecord(PlanKind.BEFORE, related=b))  # b waits for a
    add(store, a, NewRecord(PlanKind.DEPENDS_ON, related=c))  # a is blocked: c is only ready
    result = plan.kick(store)
    assert result.started == ()
    reasons = {w.slug: w.reason for w in result.waiting}
    assert reasons == {
        a: f"blocked: it depends on '{c}', which is ready and will not finish on its own",
        b: f"waits for '{a}', ordered before it, which is queued",
    }
    assert kinds(store, a) == ["planned", "waiting"]
    shown = {w["slug"]: w["waiting"] for w in status(store)["planned_queued"]}
    assert shown == reasons
    assert status(store)["kick"]["due"] is False  # reasons already recorded
    before = files(store)
    assert not plan.kick(store).changed and files(store) == before
    queue(store, c)  # the prerequisite will now finish on its own: a waits instead
    shown = {w["slug"]: w["waiting"] for w in status(store)["planned_queued"]}
    assert shown[a] == f"depends on '{c}', which is queued and will finish on its own"


def test_starts_when_the_other_finishes(store: Store) -> None:
    running = inprogress(store, "Alpha one")
    b = queued(store, "Beta two")
    drop_events(store, b)
    assert plan.kick(store).changed is False
    from tests.test_plan_support import engine_move
    from yoi.lifecycle import Action

    engine_move(store, running, Action.FINISH_DONE)
    result = plan.kick(store)
    assert result.planned == (b,) and result.started == (b,)
    assert pending(store) == [(b, "kick")]


def test_orchestrate_cli_json(store: Store, store_repo: Path) -> None:
    slug = queued(store, "Alpha one")
    drop_events(store, slug)
    proc = run_yoi("orchestrate", "status", "--json", cwd=store_repo, check=True)
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == 1 and doc["new_queued"] == [slug]
    assert doc["kick"]["due"] is True and slug in doc["kick"]["reason"]
    proc = run_yoi("orchestrate", "kick", "--json", cwd=store_repo, check=True)
    doc = json.loads(proc.stdout)
    assert doc["planned"] == [slug] and doc["started"] == [slug] and doc["changed"] is True
    text = run_yoi("orchestrate", "status", cwd=store_repo, check=True).stdout
    assert "no kick due" in text and slug in text
