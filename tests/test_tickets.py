"""Ticket operations on a real store: every human transition, every refusal (with
nothing written), thread entries, events, bucket moves."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import run_yoi
from yoi import lifecycle, tickets
from yoi.errors import GuardError, NotFoundError, TransitionError, UsageError, YoiError
from yoi.lifecycle import Action
from yoi.model import BlockerKind, CommentKind, State
from yoi.store import Store


def snapshot(root: Path) -> dict[str, str]:
    """Every file under .yoi/ with a hash of its bytes."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / ".yoi").rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def store(store_repo: Path) -> Store:
    return Store.discover(store_repo)


def new(store: Store, title: str = "Fix the widget", ac: tuple[str, ...] = ("it works",)) -> str:
    return tickets.create(store, tickets.NewTicket(title=title, acceptance_criteria=ac)).slug


def test_create_writes_ticket_and_thread(store: Store) -> None:
    t = tickets.create(
        store,
        tickets.NewTicket(
            title="Fix the widget",
            acceptance_criteria=["it works"],
            body="Some *context*.",
            labels=["ui"],
            importance=3,
        ),
    )
    assert t.state is State.PLANNING
    assert t.path == store.yoi_dir / "tickets" / "open" / t.slug
    assert t.slug.endswith("-fix-the-widget")
    text = (t.path / "ticket.md").read_text()
    assert text.startswith("---\n") and "title: Fix the widget" in text
    assert "Some *context*." in text
    entries = store.read_thread(t.slug)
    assert [e.kind for e in entries] == ["created"]
    assert entries[0].author == "ada"


def test_full_human_path_and_event(store: Store) -> None:
    slug = new(store)
    tickets.transition(store, slug, Action.READY)
    t = tickets.transition(store, slug, Action.QUEUE, by="bob")
    assert t.state is State.QUEUED and t.queued_by == "bob" and t.queued_at
    evs = list((t.path / "events").glob("*.yaml"))
    assert len(evs) == 1
    record = store.read_record(evs[0], "event")
    assert record["ticket"] == slug and record["processed"] is False
    assert record["dedup_key"] == f"TICKET_READY:{slug}:{t.queued_at}"
    kinds = [(e.kind, e.get("from"), e.get("to")) for e in store.read_thread(slug)]
    assert kinds[1:] == [("state", "planning", "ready"), ("state", "ready", "queued")]


def test_queue_twice_in_the_same_second_gives_two_events(store: Store) -> None:
    slug = new(store)
    tickets.transition(store, slug, Action.READY)
    tickets.transition(store, slug, Action.QUEUE)
    tickets.transition(store, slug, Action.RETURN, reason="scope changed")
    tickets.transition(store, slug, Action.READY)
    t = tickets.transition(store, slug, Action.QUEUE)
    assert len(list((t.path / "events").glob("*.yaml"))) == 2


def test_return_records_reason(store: Store) -> None:
    slug = new(store)
    tickets.transition(store, slug, Action.READY)
    t = tickets.transition(store, slug, Action.RETURN, reason="needs design")
    assert t.state is State.PLANNING and t.planning_reason == "needs design"
    last = store.read_thread(slug)[-1]
    assert last.get("reason") == "needs design" and "needs design" in last.body


@pytest.mark.parametrize(
    ("setup", "action", "error"),
    [
        ([], Action.QUEUE, TransitionError),  # planning -> queue
        ([], Action.REQUEUE, TransitionError),
        ([], Action.RETURN, TransitionError),  # planning cannot be returned
        ([Action.READY], Action.READY, TransitionError),
        ([Action.READY, Action.QUEUE], Action.QUEUE, TransitionError),
        ([Action.READY, Action.QUEUE], Action.READY, TransitionError),
    ],
)
def test_refusals_write_nothing(
    store: Store, store_repo: Path, setup: list[Action], action: Action, error: type[YoiError]
) -> None:
    slug = new(store)
    for step in setup:
        tickets.transition(store, slug, step)
    before = snapshot(store_repo)
    with pytest.raises(error):
        tickets.transition(store, slug, action, reason="r")
    assert snapshot(store_repo) == before


def test_ready_without_criteria_refused(store: Store, store_repo: Path) -> None:
    slug = new(store, ac=())
    before = snapshot(store_repo)
    with pytest.raises(GuardError, match="acceptance criteria"):
        tickets.transition(store, slug, Action.READY)
    assert snapshot(store_repo) == before


def test_unresolved_blocker_refuses_queue_until_resolved(store: Store, store_repo: Path) -> None:
    slug = new(store)
    tickets.transition(store, slug, Action.READY)
    _, bid = tickets.add_blocker(
        store, slug, kind=BlockerKind.USER_INPUT, description="need credentials"
    )
    assert bid == "b1"
    before = snapshot(store_repo)
    with pytest.raises(GuardError, match="need credentials"):
        tickets.transition(store, slug, Action.QUEUE)
    assert snapshot(store_repo) == before
    tickets.resolve_blocker(store, slug, "b1")
    assert tickets.transition(store, slug, Action.QUEUE).state is State.QUEUED


@pytest.mark.parametrize("action", sorted(lifecycle.ENGINE_ONLY))
def test_engine_only_transitions_unreachable(store: Store, action: Action) -> None:
    slug = new(store)
    with pytest.raises(UsageError, match="engine only"):
        tickets.transition(store, slug, action)


def test_comment_kinds_and_name_resolution(store: Store) -> None:
    slug = new(store, title="Orchestration plan tool")
    tickets.comment(
        store,
        "orchestration-plan-tool",
        kind=CommentKind.DECISION,
        message="We store records as one file each.\n\n---\n\n## Why\nMerges.",
    )
    tickets.comment(store, slug[:12], kind=CommentKind.COMMENT, message="ok")
    entries = store.read_thread(slug)
    assert [e.kind for e in entries] == ["created", "decision", "comment"]
    assert "---\n\n## Why" in entries[1].body


def test_unknown_and_ambiguous_names(store: Store) -> None:
    new(store, title="alpha one")
    new(store, title="alpha two")
    with pytest.raises(NotFoundError):
        tickets.comment(store, "nope", kind=CommentKind.COMMENT, message="x")
    with pytest.raises(UsageError, match="ambiguous"):
        tickets.comment(store, "2026", kind=CommentKind.COMMENT, message="x")


def test_edit_fields_keeps_comments_in_front_matter(store: Store) -> None:
    slug = new(store)
    path = store.ticket_dir(slug) / "ticket.md"
    text = path.read_text().replace("state: planning", "state: planning  # keep me")
    path.write_text(text)
    t = tickets.edit(
        store,
        slug,
        tickets.TicketEdit(
            title="Fix the widget properly",
            ac_add=["tests pass"],
            ac_remove=[1],
            labels_add=["bug"],
            urgency=4,
        ),
    )
    assert t.title == "Fix the widget properly"
    assert t.acceptance_criteria == ("tests pass",)
    assert t.labels == ("bug",) and t.urgency == 4
    assert "# keep me" in path.read_text()
    with pytest.raises(UsageError, match="cannot remove #5"):
        tickets.edit(store, slug, tickets.TicketEdit(ac_remove=[5]))


def test_a_comment_ruamel_cannot_place_reads_but_refuses_edits(
    store: Store, store_repo: Path
) -> None:
    """A hand-edited front matter with a comment where ruamel.yaml's round-trip loader
    gives up ("overlap in comment", found by the fuzzer) made every command that read the
    ticket crash with a traceback, `ticket list` included. Now it lists and shows; an edit
    says which line and what to do, and writes nothing; `doctor` warns."""
    slug = new(store)
    path = store.ticket_dir(slug) / "ticket.md"
    text = path.read_text().replace(
        "importance: 2\n", "importance: 2\nbase_ref: #\n \n  main\n  \n"
    )
    path.write_text(text)
    listed = run_yoi("ticket", "list", "--json", cwd=store_repo)
    assert listed.returncode == 0, listed.stderr
    assert [t["slug"] for t in json.loads(listed.stdout)["tickets"]] == [slug]
    shown = run_yoi("ticket", "show", slug, cwd=store_repo)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    before = snapshot(store_repo)
    for argv in (["edit", slug, "--urgency", "4"], ["ready", slug], ["comment", slug, "-m", "x"]):
        refused = run_yoi("ticket", *argv, cwd=store_repo)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr
        assert "line 9: the YAML library cannot keep this comment in place" in refused.stderr
        assert "put the comment on a line of its own" in refused.stderr
    assert snapshot(store_repo) == before
    new(store, "Handle #12 # and: # too")  # '#'s that yoi wrote itself: nothing to warn
    doctor = run_yoi("doctor", cwd=store_repo)
    assert doctor.returncode == 0, doctor.stderr
    assert (doctor.stdout + doctor.stderr).count("yoi refuses to edit this ticket") == 1
    assert "1 warning" in doctor.stdout + doctor.stderr


def test_front_matter_errors_name_the_files_lines(store: Store, store_repo: Path) -> None:
    """The YAML of a front matter starts on the file's second line (after `---`); every
    error names the line as the file numbers it (they were one short)."""
    slug = new(store)
    path = store.ticket_dir(slug) / "ticket.md"
    lines = path.read_text().splitlines(keepends=True)
    assert lines[0] == "---\n" and lines[1].startswith("title: ")
    lines.insert(2, "title: twice\n")  # file line 3
    path.write_text("".join(lines))
    want = "line 3, column 1: duplicate key 'title'"
    listed = run_yoi("ticket", "list", cwd=store_repo)
    assert want in listed.stdout + listed.stderr
    edited = run_yoi("ticket", "edit", slug, "--urgency", "4", cwd=store_repo)
    assert edited.returncode != 0 and want in edited.stderr, edited.stderr
    doctor = run_yoi("doctor", cwd=store_repo)
    assert want in doctor.stdout + doctor.stderr
