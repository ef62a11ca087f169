"""Views kept between engine ticks (``yoi.views``): served again only while the store's
generation log is unchanged or names the ticket directories changed since (which are read
again), never longer than ``MAX_AGE_S``, and always what reading every file gives."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_yoi
from tests.engine_helpers import config, make_store, queue
from tests.test_plan_support import engine_move, ready
from yoi import engine_view, plan, views
from yoi.errors import UsageError
from yoi.events import EventFile
from yoi.lifecycle import Action
from yoi.model import PlanKind, Ticket
from yoi.plan_ops import NewRecord, add
from yoi.store import Store


@pytest.fixture
def store(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.chdir(repo)
    return make_store(repo, config())


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """How often each view was computed from every file."""
    counts: dict[str, int] = {}
    real = views._compute

    def compute(store: Store, kind: views.Kind[Any]) -> views._View:
        counts[kind.name] = counts.get(kind.name, 0) + 1
        return real(store, kind)

    monkeypatch.setattr(views, "_compute", compute)
    yield counts


ONCE_EACH = {"tickets": 1, "plan-records": 1, "pending-events": 1, "plan-relations": 1}
Views = tuple[list[Ticket], list[plan.PlanRecord], list[EventFile], list[plan.PlanRecord]]


def every(store: Store) -> Views:
    """The four views computed from the files now (no memo)."""
    records = plan._every_record(store)
    return (
        engine_view._every_ticket(store),
        records,
        engine_view._every_pending(store),
        [r for r in records if r.kind in plan.RELATIONS],
    )


def kept(store: Store) -> Views:
    return (
        engine_view.tickets(store),
        plan.all_records(store),
        list(engine_view.pending_events(store)),
        plan.relation_records(store),
    )


def same(a: Views, b: Views) -> None:
    tickets_a, records_a, events_a, related_a = a
    tickets_b, records_b, events_b, related_b = b
    assert tickets_a == tickets_b
    assert [r.path for r in records_a] == [r.path for r in records_b]
    assert [(e.path, e.record) for e in events_a] == [(e.path, e.record) for e in events_b]
    assert [r.path for r in related_a] == [r.path for r in related_b]


def test_outside_trusting_every_call_reads_the_files(store: Store) -> None:
    slug = queue(store, "Alpha one")
    assert engine_view.has_work(store)
    ticket_md = store.ticket_dir(slug) / "ticket.md"
    ticket_md.write_text(ticket_md.read_text().replace("Alpha one", "Alpha two"))
    assert [t.title for t in engine_view.tickets(store)] == ["Alpha two"]
    assert not views._MEMOS


def test_own_commits_keep_the_views_and_read_only_the_touched_tickets_again(
    store: Store, counted: dict[str, int]
) -> None:
    a = queue(store, "Alpha one")
    b = ready(store, "Beta two")
    with views.trusting():
        same(kept(store), every(store))
        assert counted == ONCE_EACH
        add(store, a, NewRecord(PlanKind.DEPENDS_ON, related=b))  # a commit of this process
        same(kept(store), every(store))
        engine_move(store, a, Action.ACCEPT)
        engine_move(store, a, Action.FINISH_DONE)  # moves the ticket to done/
        same(kept(store), every(store))
        assert store.ticket_dir(a).parent.name == "done"
        c = queue(store, "Gamma three")  # a new ticket directory
        same(kept(store), every(store))
        assert c in {t.slug for t in engine_view.tickets(store)}
        assert counted == ONCE_EACH
    assert not views._MEMOS


def test_another_process_commit_is_seen_at_once(store: Store, counted: dict[str, int]) -> None:
    a = ready(store, "Alpha one")
    b = ready(store, "Beta two")
    with views.trusting():
        assert not engine_view.has_work(store)
        run_yoi("ticket", "queue", a, cwd=store.root, check=True)  # a real other process
        assert engine_view.has_work(store)
        assert {t.slug: t.state.value for t in engine_view.tickets(store)} == {
            a: "queued",
            b: "ready",
        }
        same(kept(store), every(store))
        assert counted == ONCE_EACH  # read a only


def test_a_commit_that_touched_anything_else_recomputes(
    store: Store, counted: dict[str, int]
) -> None:
    queue(store, "Alpha one")
    with views.trusting():
        engine_view.tickets(store)
        with store.transaction() as tx:  # not inside a ticket directory: the log says "*"
            tx.write_text(store.yoi_dir / "notes.txt", "x")
        assert views.read_log(store)[-1][1] is None  # type: ignore[index]
        same(kept(store), every(store))
        assert counted["tickets"] == 2


def test_a_view_older_than_the_log_recomputes(store: Store, counted: dict[str, int]) -> None:
    queue(store, "Alpha one")
    with views.trusting():
        engine_view.tickets(store)
        for _ in range(views.LOG_LINES - 1):
            views.bump(store, {"20200101-000000-elsewhere"})
        engine_view.tickets(store)
        assert counted["tickets"] == 1  # its token is still in the log
        for _ in range(views.LOG_LINES):
            views.bump(store, {"20200101-000000-elsewhere"})
        engine_view.tickets(store)
        assert counted["tickets"] == 2


@pytest.mark.parametrize("damage", ["garbage", "torn", "empty"])
def test_a_damaged_log_keeps_nothing(store: Store, counted: dict[str, int], damage: str) -> None:
    queue(store, "Alpha one")
    log = store.runtime_dir / views.GENERATION_FILE
    with views.trusting():
        engine_view.tickets(store)
        data = log.read_bytes()
        if damage == "garbage":
            log.write_bytes(b"not a log at all")
        elif damage == "torn":  # a reader that raced a rewrite: the checksum fails
            log.write_bytes(data[:-5] + b"zzzzz")
        else:
            log.write_bytes(b"")
        assert views.read_log(store) is None
        engine_view.tickets(store)
        engine_view.tickets(store)
        assert counted["tickets"] == 3
        same(kept(store), every(store))


def test_edits_by_other_tools_are_seen_after_max_age(
    store: Store, counted: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = queue(store, "Alpha one")
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    ticket_md = store.ticket_dir(slug) / "ticket.md"
    with views.trusting():
        assert [t.title for t in engine_view.tickets(store)] == ["Alpha one"]
        ticket_md.write_text(ticket_md.read_text().replace("Alpha one", "Alpha two"))
        now[0] += views.MAX_AGE_S / 2
        assert [t.title for t in engine_view.tickets(store)] == ["Alpha one"]  # kept
        now[0] += views.MAX_AGE_S
        assert [t.title for t in engine_view.tickets(store)] == ["Alpha two"]
        assert counted["tickets"] == 2


def test_a_costly_full_pass_is_repeated_less_often(
    store: Store, counted: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A view whose full pass took ``c`` seconds is trusted for ``COST_FACTOR * c`` when
    that is longer than ``MAX_AGE_S`` (a big store's engine does not spend its time
    re-reading it), and never longer."""
    slug = queue(store, "Alpha one")
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    slow = views.MAX_AGE_S / 5  # the full pass "takes" this long: trusted for 4x MAX_AGE_S

    def costly(s: Store) -> list[Ticket]:
        now[0] += slow
        return engine_view._every_ticket(s)

    kind = views.Kind("tickets", costly, engine_view._one_ticket, None)
    monkeypatch.setattr(engine_view, "_TICKETS", kind)
    ticket_md = store.ticket_dir(slug) / "ticket.md"
    with views.trusting():
        assert [t.title for t in engine_view.tickets(store)] == ["Alpha one"]
        ticket_md.write_text(ticket_md.read_text().replace("Alpha one", "Alpha two"))
        now[0] += 3 * views.MAX_AGE_S  # past MAX_AGE_S, within COST_FACTOR times the cost
        assert [t.title for t in engine_view.tickets(store)] == ["Alpha one"]
        now[0] += views.COST_FACTOR * slow
        assert [t.title for t in engine_view.tickets(store)] == ["Alpha two"]


def test_the_budget_covers_every_view_kept(
    store: Store, counted: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Views are trusted for ``COST_FACTOR`` times what all their full passes took
    together, so an engine that keeps three views spends about 1/``COST_FACTOR`` of its
    time on full passes, not three times that."""
    queue(store, "Alpha one")
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    each = views.MAX_AGE_S / 10  # alone: trusted for MAX_AGE_S * COST_FACTOR / 10

    def costly(every: Any) -> Any:
        def compute(s: Store) -> Any:
            now[0] += each
            return every(s)

        return compute

    for name in ("_TICKETS", "_OPEN"):
        kind = getattr(engine_view, name)
        monkeypatch.setattr(
            engine_view,
            name,
            views.Kind(kind.name, costly(kind.every), kind.one, kind.order, kind.buckets),
        )
    alone = views.COST_FACTOR * each
    with views.trusting():
        engine_view.tickets(store)
        engine_view.open_tickets(store)
        assert counted == {"tickets": 1, "open-tickets": 1}
        now[0] += 1.5 * alone  # past one view's budget, within both views' together
        engine_view.tickets(store)
        engine_view.open_tickets(store)
        assert counted == {"tickets": 1, "open-tickets": 1}
        now[0] += alone
        engine_view.tickets(store)
        engine_view.open_tickets(store)
        assert counted == {"tickets": 2, "open-tickets": 2}


def test_a_missing_or_foreign_token_keeps_nothing(store: Store, counted: dict[str, int]) -> None:
    queue(store, "Alpha one")
    token = store.runtime_dir / views.GENERATION_FILE
    with views.trusting():
        engine_view.tickets(store)
        token.unlink()
        engine_view.tickets(store)
        engine_view.tickets(store)
        assert counted["tickets"] == 3
        token.write_bytes(b"short")
        engine_view.tickets(store)
        assert counted["tickets"] == 4


def test_a_refused_commit_is_logged_and_the_views_stay_exact(
    store: Store, counted: dict[str, int], tmp_path: Path
) -> None:
    slug = queue(store, "Alpha one")
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.ticket_dir(slug) / "runs").symlink_to(outside)  # as a hostile PR could plant
    with views.trusting():
        engine_view.tickets(store)
        before = views.token(store)
        with pytest.raises(UsageError), store.transaction() as tx:
            tx.write_text(store.ticket_dir(slug) / "runs" / "x.txt", "x")
        assert list(outside.iterdir()) == []
        assert views.token(store) != before  # other processes look again too
        same(kept(store), every(store))


def test_every_commit_changes_the_token(store: Store) -> None:
    slug = queue(store, "Alpha one")
    seen = {views.token(store)}
    for i in range(3):
        with store.transaction() as tx:
            tx.write_text(store.ticket_dir(slug) / "notes.txt", str(i))
        seen.add(views.token(store))
    assert None not in seen and len(seen) == 4


def test_a_running_engine_honours_a_record_another_process_adds_mid_run(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`yoi engine run` (views kept between ticks) runs A, whose runner makes another
    process add "C blocks B" (C is only ready: it will not finish on its own). The record
    is written in C's directory, not B's; the engine must block B, not run it."""
    import json
    import sys

    from tests.conftest import ROOT
    from tests.engine_helpers import queue_with_patch

    monkeypatch.chdir(repo)
    marker = repo.parent / "runner-ran"
    code = (
        "import os, subprocess, sys\n"
        f"subprocess.run([sys.executable, '-m', 'yoi', 'plan', 'add', os.environ['C_SLUG'],"
        f" '--kind', 'blocks', '--related', os.environ['B_SLUG']], cwd={str(repo)!r},"
        " check=True)\n"
        f"open({str(marker)!r}, 'w').write('ran')\n"
    )
    store = make_store(repo, config())
    c = ready(store, "Gamma three")
    runner = {
        "type": "command",
        "command": [sys.executable, "-c", code],
        "env": {"PYTHONPATH": str(ROOT), "C_SLUG": c, "B_SLUG": "later"},
        "budget_ms": 120000,
    }
    a = queue(store, "Alpha one", runner="adder")
    time.sleep(1.1)  # A's event is the older one: the engine takes it first
    b = queue_with_patch(store, repo, "Beta two")
    cfg = config(runners={"default": {"type": "patch-file"}, "adder": runner})
    cfg["runners"]["adder"]["env"]["B_SLUG"] = b
    (repo / ".yoi" / "config.yaml").write_text(json.dumps(cfg, indent=1) + "\n")
    proc = run_yoi("engine", "run", "--json", cwd=repo, check=True)
    assert marker.exists(), proc.stderr
    ticks = json.loads(proc.stdout)["ticks"]
    by_ticket = {t["ticket"]: t for t in ticks if t.get("ticket")}
    assert by_ticket[a]["reason"] == "EXECUTED"
    assert by_ticket[b]["reason"] == "BLOCKED", proc.stderr
    fresh = Store.discover(repo)
    assert fresh.read_ticket(b).state.value == "blocked"
    assert not list((fresh.ticket_dir(b) / "runs").glob("*/run_record.yaml"))


def test_a_log_that_cannot_be_written_is_removed_and_nothing_is_kept(
    store: Store, counted: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    slug = queue(store, "Alpha one")
    log = store.runtime_dir / views.GENERATION_FILE
    with views.trusting():
        engine_view.tickets(store)

        def failing(*_args: object) -> int:
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as patched:
            patched.setattr(os, "pwrite", failing)
            with store.transaction() as tx:  # the commit itself succeeds
                tx.write_text(store.ticket_dir(slug) / "notes.txt", "x")
        assert not log.exists()
        assert (store.ticket_dir(slug) / "notes.txt").read_text() == "x"
        engine_view.tickets(store)
        assert counted["tickets"] == 2  # nothing was kept across the unlogged commit


def test_a_rolled_forward_commit_is_logged_as_anything(store: Store) -> None:
    """A writer killed after its files but before its log line leaves its journal; the
    next lock holder completes it and logs "anything", so no kept view can miss it."""
    from yoi import journal

    slug = queue(store, "Alpha one")
    rel = f"tickets/open/{slug}/notes.txt"
    ops = [journal.Write(rel, b"a"), journal.Write(rel + ".2", b"b")]
    _path, fd = journal._open_journal(store.runtime("journal"), store.yoi_dir, ops)
    os.close(fd)  # written whole; the writer was killed before it applied any of it
    with store.locked():
        pass
    last = views.read_log(store)
    assert last is not None and last[-1][1] is None
    assert (store.ticket_dir(slug) / "notes.txt").read_bytes() == b"a"
