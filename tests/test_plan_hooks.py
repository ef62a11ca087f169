"""The plan hooks the engine calls: why a queued ticket waits, which prerequisites block
it, and the `waiting` / `accepted_plan` records it writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_plan_support import (
    at,
    done,
    hand_record,
    inprogress,
    new,
    plan_files,
    queue,
    queued,
    ready,
    set_capacity,
)
from yoi import plan, tickets
from yoi.lifecycle import Action
from yoi.model import PlanKind
from yoi.plan_ops import NewRecord, add
from yoi.store import Store


@pytest.fixture
def store(store_repo: Path) -> Store:
    return Store.discover(store_repo)


def reason(store: Store, slug: str) -> str | None:
    everyone, _ = store.list_tickets()
    return plan.start_wait_reason(store, store.read_ticket(slug), tickets=everyone)


def blocking(store: Store, slug: str) -> list[str]:
    everyone, _ = store.list_tickets()
    return plan.blocking_prerequisites(store, store.read_ticket(slug), tickets=everyone)


def test_nothing_holds_a_lone_queued_ticket(store: Store) -> None:
    a = queued(store, "Alpha one")
    assert reason(store, a) is None and blocking(store, a) == []


def test_capacity_names_the_ticket_in_progress(store: Store) -> None:
    a = inprogress(store, "Alpha one")
    b = queued(store, "Beta two")
    assert reason(store, b) == (
        f"waits for capacity: 1 ticket(s) already in progress ('{a}'); engine.capacity is 1"
    )
    assert reason(set_capacity(store, 2), b) is None


@pytest.mark.parametrize("on_running", [True, False])
def test_conflict_in_either_direction(store: Store, on_running: bool) -> None:
    store = set_capacity(store, 2)
    a = inprogress(store, "Alpha one")
    b = queued(store, "Beta two")
    owner, other = (a, b) if on_running else (b, a)
    add(store, owner, NewRecord(PlanKind.CONFLICTS_WITH, related=other))
    assert reason(store, b) == f"conflicts with '{a}', which is in progress"


def test_conflict_with_a_queued_ticket_does_not_hold(store: Store) -> None:
    a, b = queued(store, "Alpha one"), queued(store, "Beta two")
    add(store, a, NewRecord(PlanKind.CONFLICTS_WITH, related=b))
    assert reason(store, a) is None and reason(store, b) is None


@pytest.mark.parametrize("kind", [PlanKind.BEFORE, PlanKind.AFTER])
def test_unfinished_ticket_ordered_before(store: Store, kind: PlanKind) -> None:
    a, b = ready(store, "Alpha one"), queued(store, "Beta two")
    if kind is PlanKind.BEFORE:
        add(store, a, NewRecord(PlanKind.BEFORE, related=b))
    else:
        add(store, b, NewRecord(PlanKind.AFTER, related=a))
    assert reason(store, b) == f"waits for '{a}', ordered before it, which is ready"
    assert reason(store, a) is None  # order holds only the later one
    assert blocking(store, b) == []  # ordering never blocks, it waits


def test_ordering_clears_when_the_earlier_ticket_is_done(store: Store) -> None:
    a = done(store, "Alpha one")
    b = queued(store, "Beta two")
    add(store, a, NewRecord(PlanKind.BEFORE, related=b))
    assert reason(store, b) is None


def test_prerequisite_that_will_finish_on_its_own_makes_it_wait(store: Store) -> None:
    store = set_capacity(store, 2)
    a = queued(store, "Alpha one")
    b, c = ready(store, "Beta two"), ready(store, "Gamma three")
    add(store, b, NewRecord(PlanKind.DEPENDS_ON, related=a))
    add(store, a, NewRecord(PlanKind.BLOCKS, related=c))
    queue(store, b)
    queue(store, c)
    assert reason(store, b) == f"depends on '{a}', which is queued and will finish on its own"
    assert reason(store, c) == f"is blocked by '{a}', which is queued and will finish on its own"
    assert blocking(store, b) == [] and blocking(store, c) == []


def test_blocking_prerequisites_not_finishing_on_their_own(store: Store) -> None:
    b = queued(store, "Beta two")
    a = ready(store, "Alpha one")
    add(store, b, NewRecord(PlanKind.DEPENDS_ON, related=a))  # added after queueing
    hand_record(
        store,
        b,
        {
            "record_id": "plan-20260301100000-depends-on-bbbbbb",
            "kind": "depends_on",
            "related_ticket": "20990101-000000-gone",
        },
    )
    assert sorted(blocking(store, b)) == [
        f"it depends on '{a}', which is ready and will not finish on its own",
        "it depends on '20990101-000000-gone', which does not exist",
    ]
    assert reason(store, b) is None  # not a wait: the engine takes the BLOCKED path


def test_record_waiting_writes_once_per_reason_and_queueing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    at(monkeypatch, "2026-03-01T10:00:00Z")
    a = queued(store, "Alpha one")

    def wait(text: str, now: str) -> None:
        with store.transaction() as tx:
            plan.record_waiting(tx, store, store.read_ticket(a), text, now=now)

    wait("conflicts with 'x'", "2026-03-01T10:00:01Z")
    wait("conflicts with 'x'", "2026-03-01T10:00:02Z")
    assert len(plan_files(store, a)) == 1
    wait("waits for capacity", "2026-03-01T10:00:03Z")
    wait("conflicts with 'x'", "2026-03-01T10:00:04Z")  # differs from the latest: recorded
    notes = [r.note for r in plan.ticket_records(store, store.ticket_dir(a))]
    assert notes == ["conflicts with 'x'", "waits for capacity", "conflicts with 'x'"]
    at(monkeypatch, "2026-03-01T11:00:00Z")
    tickets.transition(store, a, Action.RETURN, reason="rethink")
    tickets.transition(store, a, Action.READY)
    queue(store, a)
    wait("conflicts with 'x'", "2026-03-01T11:00:05Z")  # a new queueing: recorded again
    waits = [
        r for r in plan.ticket_records(store, store.ticket_dir(a)) if r.kind is PlanKind.WAITING
    ]
    assert len(waits) == 4 and all(r.data["author"] == "engine" for r in waits)
    assert [e.kind for e in store.read_thread(a)].count("plan") == 4


def test_record_accepted(store: Store) -> None:
    a = new(store, "Alpha one")
    with store.transaction() as tx:
        plan.record_accepted(
            tx,
            store,
            store.read_ticket(a),
            summary="Fix the widget",
            branch="yoi/alpha",
            now="2026-03-01T10:00:00Z",
        )
    [record] = plan.ticket_records(store, store.ticket_dir(a))
    assert record.kind is PlanKind.ACCEPTED_PLAN
    assert record.data["accepted_plan"] == {"summary": "Fix the widget", "branch": "yoi/alpha"}
    assert record.data["author"] == "engine" and record.at == "2026-03-01T10:00:00Z"
    assert record.record_id.startswith("plan-20260301100000-accepted-plan-")
    entry = store.read_thread(a)[-1]
    assert entry.kind == "plan" and "yoi/alpha" in entry.body
