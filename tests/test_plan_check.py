"""Store-wide plan checks for `yoi doctor`: records arrive by merge and by hand, so every
rule `yoi plan add` enforces is checked again across the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import commit_all, git
from tests.test_plan_support import hand_record, new
from yoi.model import PlanKind
from yoi.plan_check import validate_records
from yoi.plan_ops import NewRecord, add
from yoi.store import Store

GONE = "20990101-000000-gone"


@pytest.fixture
def store(store_repo: Path) -> Store:
    return Store.discover(store_repo)


def messages(store: Store) -> list[str]:
    return [p.message for p in validate_records(store)]


def test_a_consistent_store_has_no_problems(store: Store) -> None:
    a, b, c = new(store, "Alpha one"), new(store, "Beta two"), new(store, "Gamma three")
    add(store, a, NewRecord(PlanKind.DEPENDS_ON, related=b))
    add(store, c, NewRecord(PlanKind.BEFORE, related=a))
    add(store, c, NewRecord(PlanKind.CONFLICTS_WITH, related=b))
    assert validate_records(store) == []


def test_dangling_related_ticket(store: Store) -> None:
    a = new(store, "Alpha one")
    path = hand_record(
        store,
        a,
        {
            "record_id": "plan-20260301100000-blocks-aaaaaa",
            "kind": "blocks",
            "related_ticket": GONE,
        },
    )
    [problem] = validate_records(store)
    assert problem.path == store.rel(path) and problem.pointer == "/related_ticket"
    assert GONE in problem.message and "does not exist" in problem.message
    assert "yoi plan rm plan-20260301100000-blocks-aaaaaa" in problem.message
    assert problem.severity == "error"


def test_self_relation(store: Store) -> None:
    a = new(store, "Alpha one")
    hand_record(
        store,
        a,
        {"record_id": "plan-20260301100000-after-aaaaaa", "kind": "after", "related_ticket": a},
    )
    [message] = messages(store)
    assert "relation to itself" in message and "yoi plan rm" in message


def test_duplicates_report_the_later_copy(store: Store) -> None:
    a, b = new(store, "Alpha one"), new(store, "Beta two")
    data = {"kind": "conflicts_with", "related_ticket": b}
    hand_record(store, a, {**data, "record_id": "plan-20260301100000-conflicts-with-aaaaaa"})
    later = hand_record(
        store,
        a,
        {
            **data,
            "record_id": "plan-20260301100001-conflicts-with-bbbbbb",
            "at": "2026-03-01T10:00:01Z",
        },
    )
    [problem] = validate_records(store)
    assert problem.path == store.rel(later)
    assert "duplicate of plan-20260301100000-conflicts-with-aaaaaa" in problem.message


def test_misplaced_and_misnamed_records(store: Store) -> None:
    a, b = new(store, "Alpha one"), new(store, "Beta two")
    path = hand_record(
        store,
        a,
        {"record_id": "plan-20260301100000-planned-aaaaaa", "kind": "planned", "ticket": b},
        name="other-name",
    )
    problems = validate_records(store)
    assert {(p.pointer, p.severity) for p in problems} == {
        ("/ticket", "error"),
        ("/record_id", "warning"),
    }
    assert all(p.path == store.rel(path) for p in problems)


def test_cycle_created_by_merging_two_branches(store: Store, store_repo: Path) -> None:
    a, b, c = new(store, "Alpha one"), new(store, "Beta two"), new(store, "Gamma three")
    add(store, a, NewRecord(PlanKind.DEPENDS_ON, related=b))  # b -> a
    commit_all(store_repo, "tickets")
    git(store_repo, "checkout", "-q", "-b", "feature")
    add(store, b, NewRecord(PlanKind.DEPENDS_ON, related=c))  # c -> b: fine on this branch
    commit_all(store_repo, "feature: b depends on c")
    git(store_repo, "checkout", "-q", "main")
    add(store, c, NewRecord(PlanKind.DEPENDS_ON, related=a))  # a -> c: fine on main
    commit_all(store_repo, "main: c depends on a")
    assert validate_records(store) == []
    git(store_repo, "merge", "-q", "--no-edit", "feature")  # no conflict: one file per record
    problems = validate_records(store)
    assert len(problems) == 1
    message = problems[0].message
    assert f"depends_on/blocks cycle: {a} → {c} → {b} → {a}" in message
    assert "yoi plan rm" in message
    assert len(list((store.ticket_dir(b) / "plan").glob("*.yaml"))) == 1


def test_ordering_cycle_across_the_store(store: Store) -> None:
    a, b = new(store, "Alpha one"), new(store, "Beta two")
    hand_record(
        store,
        a,
        {"record_id": "plan-20260301100000-before-aaaaaa", "kind": "before", "related_ticket": b},
    )
    hand_record(
        store,
        a,
        {"record_id": "plan-20260301100000-after-aaaaaa", "kind": "after", "related_ticket": b},
    )
    [message] = messages(store)
    assert message.startswith("ordering cycle: ") and f"{a} → {b} → {a}" in message
