"""Plan records on a real store: each kind, every validation error (nothing written),
removal, queries by ticket (outgoing and incoming views) and by kind, the queue gate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import run_yoi
from tests.test_plan_support import files, new, plan_files, queue, queued, ready, thread_kinds
from yoi import plan
from yoi.commands import plan as plan_cmd
from yoi.errors import AmbiguousNameError, ExitCode, GuardError, NotFoundError, UsageError
from yoi.model import PlanKind
from yoi.plan_check import PlanRefusedError
from yoi.plan_ops import NewRecord, add, query, rm
from yoi.store import Store

ID_RE = re.compile(r"^plan-[0-9]{14}-(?P<kind>[a-z-]+)-[0-9a-f]{6}$")


@pytest.fixture
def store(store_repo: Path) -> Store:
    return Store.discover(store_repo)


@pytest.mark.parametrize("kind", ["before", "after", "depends_on", "blocks", "conflicts_with"])
def test_each_relation_kind_is_one_validated_file_and_a_thread_entry(
    store: Store, kind: str
) -> None:
    a, b = new(store, "Alpha one"), new(store, "Beta two")
    out = plan_cmd.add(store, a, kind=kind, related=b, note="why not")
    record = out.data["record"]
    match = ID_RE.match(record["record_id"])
    assert match and match["kind"] == kind.replace("_", "-")
    [path] = plan_files(store, a)
    assert path.name == f"{record['record_id']}.yaml"
    on_disk = store.read_record(path, "plan_record")
    assert on_disk == {k: v for k, v in record.items() if k != "path"}
    assert on_disk["ticket"] == a and on_disk["related_ticket"] == b
    assert on_disk["kind"] == kind and on_disk["author"] == "ada" and on_disk["note"] == "why not"
    assert plan_files(store, b) == []
    entry = store.read_thread(a)[-1]
    assert entry.kind == "plan" and record["record_id"] in entry.body and b in entry.body


def test_waiting_planned_and_accepted_plan_kinds(store: Store) -> None:
    a, b = new(store, "Alpha one"), new(store, "Beta two")
    w = plan_cmd.add(store, a, kind="waiting", note="waits for the vendor", related=b)
    p = plan_cmd.add(store, a, kind="planned")
    acc = plan_cmd.add(store, a, kind="accepted_plan", summary="do it", branch="yoi/alpha")
    assert w.data["record"]["note"] == "waits for the vendor"
    assert w.data["record"]["related_ticket"] == b
    assert "related_ticket" not in p.data["record"]
    assert acc.data["record"]["accepted_plan"] == {"summary": "do it", "branch": "yoi/alpha"}
    kinds = sorted(r.kind.value for r in plan.ticket_records(store, store.ticket_dir(a)))
    assert kinds == ["accepted_plan", "planned", "waiting"]
    assert thread_kinds(store, a).count("plan") == 3


def test_names_resolve_by_prefix_and_word_suffix(store: Store) -> None:
    a, b = new(store, "Alpha one"), new(store, "Orchestration plan tool")
    out = plan_cmd.add(store, "alpha-one", kind="depends_on", related="plan-tool")
    assert out.data["record"]["ticket"] == a and out.data["record"]["related_ticket"] == b
    out = plan_cmd.add(store, b[:17], kind="conflicts_with", related=a)
    assert out.data["record"]["ticket"] == b


def _refused(store: Store, exc: type[Exception], name: str, spec: NewRecord, match: str) -> None:
    before = files(store)
    with pytest.raises(exc, match=match):
        add(store, name, spec)
    assert files(store) == before  # nothing written: no record, no thread entry


def test_unknown_and_ambiguous_related_tickets_are_refused(store: Store) -> None:
    a = new(store, "Alpha one")
    new(store, "Fix login page")
    new(store, "Fix signup page")
    _refused(store, NotFoundError, a, NewRecord(PlanKind.DEPENDS_ON, related="nope"), "nope")
    _refused(store, AmbiguousNameError, a, NewRecord(PlanKind.BLOCKS, related="page"), "ambiguous")
    _refused(store, NotFoundError, "nope", NewRecord(PlanKind.BLOCKS, related=a), "nope")


@pytest.mark.parametrize("kind", list(PlanKind))
def test_self_relation_is_refused(store: Store, kind: PlanKind) -> None:
    a = new(store, "Alpha one")
    spec = NewRecord(
        kind, related=a, note="n", summary=("s" if kind is PlanKind.ACCEPTED_PLAN else None)
    )
    exc: type[Exception] = UsageError
    _refused(
        store,
        exc,
        a,
        spec,
        "itself"
        if kind not in (PlanKind.PLANNED, PlanKind.ACCEPTED_PLAN)
        else "takes no --related",
    )


def test_duplicate_is_refused_naming_the_existing_record(store: Store) -> None:
    a, b = new(store, "Alpha one"), new(store, "Beta two")
    first = add(store, a, NewRecord(PlanKind.BEFORE, related=b)).record["record_id"]
    _refused(store, PlanRefusedError, a, NewRecord(PlanKind.BEFORE, related=b), first)
    add(store, b, NewRecord(PlanKind.AFTER, related=a))  # the mirror is another record


def test_dependency_cycle_is_refused_with_its_path(store: Store) -> None:
    a, b, c = new(store, "Alpha one"), new(store, "Beta two"), new(store, "Gamma three")
    add(store, a, NewRecord(PlanKind.DEPENDS_ON, related=b))  # b -> a
    add(store, b, NewRecord(PlanKind.DEPENDS_ON, related=c))  # c -> b
    _refused(
        store,
        PlanRefusedError,
        c,
        NewRecord(PlanKind.DEPENDS_ON, related=a),
        re.escape(f"depends_on/blocks cycle: {a} → {c} → {b} → {a}"),
    )
    # `a blocks c` is the same edge a -> c
    _refused(
        store,
        PlanRefusedError,
        a,
        NewRecord(PlanKind.BLOCKS, related=c),
        re.escape(f"{a} → {c} → {b} → {a}"),
    )
    _refused(
        store,
        PlanRefusedError,
        b,
        NewRecord(PlanKind.BLOCKS, related=c),
        re.escape(f"{b} → {c} → {b}"),
    )


def test_depends_on_and_incoming_blocks_are_one_edge(store: Store) -> None:
    a, b = new(store, "Alpha one"), new(store, "Beta two")
    add(store, a, NewRecord(PlanKind.DEPENDS_ON, related=b))
    add(store, b, NewRecord(PlanKind.BLOCKS, related=a))  # same edge b -> a: no cycle
    _refused(
        store,
        PlanRefusedError,
        b,
        NewRecord(PlanKind.DEPENDS_ON, related=a),
        re.escape(f"{a} → {b} → {a}"),
    )


def test_ordering_cycle_is_refused(store: Store) -> None:
    a, b = new(store, "Alpha one"), new(store, "Beta two")
    add(store, a, NewRecord(PlanKind.BEFORE, related=b))
    _refused(store, PlanRefusedError, b, NewRecord(PlanKind.BEFORE, related=a), "ordering cycle")
    _refused(store, PlanRefusedError, a, NewRecord(PlanKind.AFTER, related=b), "ordering cycle")
    _refused(store, PlanRefusedError, a, NewRecord(PlanKind.DEPENDS_ON, related=b), "cycle")


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (NewRecord(PlanKind.DEPENDS_ON), "needs the other ticket"),
        (NewRecord(PlanKind.CONFLICTS_WITH), "needs the other ticket"),
        (NewRecord(PlanKind.ACCEPTED_PLAN), "needs --summary"),
        (NewRecord(PlanKind.ACCEPTED_PLAN, summary="  "), "--summary is empty"),
        (NewRecord(PlanKind.PLANNED, summary="x"), "accepted_plan only"),
        (NewRecord(PlanKind.WAITING), "needs --note"),
        (NewRecord(PlanKind.WAITING, note="x" * 20000), "longer than"),
    ],
)
def test_flag_shape_errors(store: Store, spec: NewRecord, match: str) -> None:
    a = new(store, "Alpha one")
    _refused(store, UsageError, a, spec, match)


def test_rm_removes_the_file_and_says_so_in_the_thread(store: Store) -> None:
    a, b = new(store, "Alpha one"), new(store, "Beta two")
    rid = plan_cmd.add(store, a, kind="conflicts_with", related=b).data["record"]["record_id"]
    out = plan_cmd.rm(store, rid)
    assert out.data["removed"]["record_id"] == rid
    assert plan_files(store, a) == []
    last = store.read_thread(a)[-1]
    assert last.kind == "plan" and "Removed" in last.body and rid in last.body
    with pytest.raises(NotFoundError):
        rm(store, rid)


def test_rm_refuses_engine_written_records(store: Store) -> None:
    a = new(store, "Alpha one")
    with store.transaction() as tx:
        plan.record_accepted(
            tx, store, store.read_ticket(a), summary="s", branch="yoi/a", now="2026-03-01T10:00:00Z"
        )
    [path] = plan_files(store, a)
    before = files(store)
    with pytest.raises(PlanRefusedError, match="written by the engine"):
        rm(store, path.stem)
    assert files(store) == before


def test_query_by_ticket_shows_outgoing_and_incoming_views(store: Store) -> None:
    a, b, c = new(store, "Alpha one"), new(store, "Beta two"), new(store, "Gamma three")
    add(store, a, NewRecord(PlanKind.DEPENDS_ON, related=b))
    add(store, c, NewRecord(PlanKind.BLOCKS, related=b))
    add(store, c, NewRecord(PlanKind.BEFORE, related=b))
    add(store, c, NewRecord(PlanKind.CONFLICTS_WITH, related=b))
    add(store, b, NewRecord(PlanKind.AFTER, related=c))
    views = {(i["direction"], i["view"], i["ticket"]) for i in query(store, b)}
    assert views == {
        ("incoming", "depended_on_by", a),
        ("incoming", "blocked_by", c),
        ("incoming", "after", c),
        ("incoming", "conflicts_with", c),
        ("outgoing", "after", b),
    }
    assert [(i["direction"], i["view"]) for i in query(store, a)] == [("outgoing", "depends_on")]
    assert ("incoming", "before") in [(i["direction"], i["view"]) for i in query(store, c)]
    assert len(query(store)) == 5
    only = query(store, b, PlanKind.BLOCKS)
    assert [(i["kind"], i["view"]) for i in only] == [("blocks", "blocked_by")]
    assert [i["ticket"] for i in query(store, kind=PlanKind.DEPENDS_ON)] == [a]


def test_plan_list_cli_json(store: Store, store_repo: Path) -> None:
    a, b = new(store, "Alpha one"), new(store, "Beta two")
    add(store, a, NewRecord(PlanKind.BLOCKS, related=b))
    proc = run_yoi("plan", "list", "beta-two", "--json", cwd=store_repo, check=True)
    doc = json.loads(proc.stdout)
    assert doc["schema_version"] == 1
    [item] = doc["records"]
    assert (item["ticket"], item["related_ticket"], item["view"]) == (a, b, "blocked_by")
    text = run_yoi("plan", "list", b, cwd=store_repo, check=True).stdout
    assert "blocked_by" in text and a in text
    bad = run_yoi("plan", "add", a, "--kind", "depends_on", "--related", a, cwd=store_repo)
    assert bad.returncode == ExitCode.USAGE and "itself" in bad.stderr


def test_queue_gate_names_the_prerequisite(store: Store) -> None:
    a, b, c = ready(store, "Alpha one"), ready(store, "Beta two"), ready(store, "Gamma three")
    add(store, a, NewRecord(PlanKind.DEPENDS_ON, related=b))
    add(store, c, NewRecord(PlanKind.BLOCKS, related=a))
    problems = plan.queue_problems(store, a)
    assert sorted(problems) == [
        f"it depends on '{b}', which is ready and will not finish on its own",
        f"it is blocked by '{c}', which is ready and will not finish on its own",
    ]
    before = files(store)
    with pytest.raises(GuardError, match=f"cannot be queued: .*it depends on '{b}'"):
        queue(store, a)
    assert files(store) == before
    queue(store, b)
    queue(store, c)
    queue(store, a)  # prerequisites queued: they will finish on their own
    assert store.read_ticket(a).queued_at


def test_queue_gate_reports_a_missing_prerequisite(store: Store) -> None:
    a = queued(store, "Alpha one")
    from tests.test_plan_support import hand_record

    hand_record(
        store,
        a,
        {
            "record_id": "plan-20260301100000-depends-on-aaaaaa",
            "kind": "depends_on",
            "related_ticket": "20990101-000000-gone",
        },
    )
    assert plan.queue_problems(store, a) == [
        "it depends on '20990101-000000-gone', which does not exist"
    ]
