"""Append-only history (`yoi doctor --against REF`) and the decision log (`yoi thread
decisions`), on real repositories with real merges."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import commit_all, git
from tests.test_doctor_support import add_run, new_ticket, queued_ticket, write_yaml, yoi
from yoi import doctor, doctor_history, tickets, yamlio
from yoi.errors import UsageError
from yoi.lifecycle import Action
from yoi.model import CommentKind
from yoi.store import Store


@pytest.fixture
def store(store_repo: Path) -> Store:
    return Store.discover(store_repo)


def decide(store: Store, slug: str, text: str, by: str = "ada") -> None:
    tickets.comment(store, slug, kind=CommentKind.DECISION, message=text, by=by)


def against(store: Store, ref: str = "main") -> list[tuple[str, str, str]]:
    return [(p.path, p.pointer, p.message) for p in doctor_history.against(store, ref)]


def test_two_branches_appending_decisions_merge_cleanly(store: Store) -> None:
    repo = store.root
    slug = new_ticket(store).slug
    decide(store, slug, "Use SQLite.")
    commit_all(repo, "ticket")
    git(repo, "checkout", "-q", "-b", "left")
    decide(store, slug, "Left: cache reads.\n\n---\n\n## not an entry", by="lena")
    commit_all(repo, "left decision")
    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-q", "-b", "right")
    decide(store, slug, "Right: write through.", by="rick")
    commit_all(repo, "right decision")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "left")
    git(repo, "merge", "-q", "--no-edit", "right")  # both appended at the end: union
    bodies = [e.body.strip() for e in store.read_thread(slug) if e.kind == "decision"]
    assert bodies == [
        "Use SQLite.",
        "Left: cache reads.\n\n---\n\n## not an entry",
        "Right: write through.",
    ]
    proc = yoi(repo, "doctor", "--against", "left")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert against(store, "right") == [] and against(store, "HEAD~2") == []


def test_rewriting_an_old_decision_fails_against(store: Store) -> None:
    repo = store.root
    slug = new_ticket(store).slug
    decide(store, slug, "We ship on Friday.")
    commit_all(repo, "decision")
    thread = store.tickets_dir / "open" / slug / "thread.md"
    thread.write_text(thread.read_text().replace("on Friday", "on Monday"), encoding="utf-8")
    commit_all(repo, "quietly rewrite history")
    proc = yoi(repo, "doctor", "--against", "HEAD~1", "--json")
    assert proc.returncode == 1
    problems = json.loads(proc.stdout)["problems"]
    assert [p["path"] for p in problems] == [f".yoi/tickets/open/{slug}/thread.md"]
    assert "edited or removed" in problems[0]["message"]


def test_removing_an_entry_or_the_ticket_fails(store: Store) -> None:
    repo = store.root
    t = new_ticket(store)
    keep = new_ticket(store, "Kept")
    decide(store, keep.slug, "Decided.")
    commit_all(repo, "two tickets")
    thread = keep.path / "thread.md"
    text = thread.read_text()
    thread.write_text(text[: text.rindex("<!-- yoi:entry")], encoding="utf-8")
    for f in t.path.iterdir():
        f.unlink()
    t.path.rmdir()
    found = against(store, "HEAD")
    assert (f".yoi/tickets/open/{t.slug}", "") in {(p, q) for p, q, _ in found}
    assert any(p.endswith(f"{keep.slug}/thread.md") for p, _, _ in found)


def test_created_at_may_not_change_but_other_fields_may(store: Store) -> None:
    t = new_ticket(store)
    commit_all(store.root, "ticket")
    tickets.edit(store, t.slug, tickets.TicketEdit(title="New title", urgency=4))
    assert against(store, "HEAD") == []
    text = (t.path / "ticket.md").read_text()
    (t.path / "ticket.md").write_text(text.replace(t.created_at, "2020-01-01T00:00:00Z"))
    assert [q for _, q, _ in against(store, "HEAD")] == ["/created_at"]


def test_immutable_records_and_the_fields_that_may_change(store: Store) -> None:
    t = queued_ticket(store)
    run = add_run(t, executed=False)
    commit_all(store.root, "accepted")
    wo = yamlio.load_plain((run / "workorder.yaml").read_text(), path="wo")
    write_yaml(
        run / "workorder.yaml", {**wo, "status": "EXECUTED", "executed_at": "2026-11-20T11:00:00Z"}
    )
    event = next((t.path / "events").glob("*.yaml"))
    ev = yamlio.load_plain(event.read_text(), path="ev")
    write_yaml(
        event,
        {
            **ev,
            "processed": True,
            "processed_at": "2026-11-20T11:00:00Z",
            "processed_reason": "EXECUTED",
            "run_id": run.name,
        },
    )
    assert against(store, "HEAD") == []
    commit_all(store.root, "executed")
    write_yaml(run / "workorder.yaml", {**wo, "status": "CREATED", "budget_ms": 5})
    write_yaml(event, {**ev, "processed": False})
    snap = yamlio.load_plain((run / "context_snapshot.yaml").read_text(), path="s")
    write_yaml(run / "context_snapshot.yaml", {**snap, "full_prompt_text": "something else"})
    found = {(Path(p).name, q) for p, q, _ in against(store, "HEAD")}
    assert found == {
        ("workorder.yaml", "/status"),
        ("workorder.yaml", "/budget_ms"),
        ("workorder.yaml", "/executed_at"),
        (event.name, "/processed"),
        (event.name, "/processed_at"),
        (event.name, "/processed_reason"),
        (event.name, "/run_id"),
        ("context_snapshot.yaml", ""),
    }


def test_bundle_patch_and_run_record_are_immutable_even_across_a_bucket_move(store: Store) -> None:
    t = queued_ticket(store)
    run = add_run(t)
    commit_all(store.root, "run")
    done = store.tickets_dir / "done" / t.slug
    t.path.rename(done)
    assert against(store, "HEAD") == []
    moved = done / "runs" / run.name
    (moved / "patch.diff").write_bytes(b"tampered\n")
    (moved / "run_record.yaml").unlink()
    pause = next((done / "pause_states").glob("*.yaml"))
    pause.write_text(pause.read_text().replace("review the branch", "ship it"))
    found = {(Path(p).name, m.split(":")[0]) for p, _, m in against(store, "HEAD")}
    assert found == {
        ("patch.diff", "modified"),
        ("run_record.yaml", "removed"),
        (pause.name, "modified"),
    }


def test_against_compares_with_the_merge_base(store: Store) -> None:
    repo = store.root
    slug = new_ticket(store).slug
    commit_all(repo, "ticket")
    git(repo, "checkout", "-q", "-b", "topic")
    decide(store, slug, "Topic decision.")
    commit_all(repo, "topic")
    git(repo, "checkout", "-q", "main")
    decide(store, slug, "Main moved on.")
    other = new_ticket(store, "Only on main").slug
    commit_all(repo, "main")
    git(repo, "checkout", "-q", "topic")
    assert against(store, "main") == []  # main's newer entries are not this branch's
    assert other not in "".join(p for p, _, _ in against(store, "main"))


def test_unknown_ref_is_a_usage_error(store: Store) -> None:
    with pytest.raises(UsageError, match="unknown git revision"):
        doctor_history.against(store, "no-such-branch")
    assert yoi(store.root, "doctor", "--against", "no-such-branch").returncode == 2


def test_decisions_all_one_and_since(store: Store) -> None:
    repo = store.root
    a, b = new_ticket(store, "Alpha").slug, new_ticket(store, "Beta").slug
    decide(store, a, "Alpha decision one.")
    tickets.comment(store, a, kind=CommentKind.COMMENT, message="just a comment")
    commit_all(repo, "first")
    decide(store, b, "Beta decision.", by="bob")
    decide(store, a, "Alpha decision two.")
    doc = json.loads(yoi(repo, "thread", "decisions", "--json").stdout)
    assert [(d["ticket"], d["body"]) for d in doc["decisions"]] == [
        (a, "Alpha decision one."),
        (a, "Alpha decision two."),
        (b, "Beta decision."),
    ]
    assert set(doc["decisions"][0]) >= {"ticket", "author", "at", "body"}
    since = json.loads(yoi(repo, "thread", "decisions", "--since", "HEAD", "--json").stdout)
    assert [d["body"] for d in since["decisions"]] == ["Alpha decision two.", "Beta decision."]
    one = yoi(repo, "thread", "decisions", "alpha", "--since", "HEAD")
    assert one.returncode == 0
    assert "Alpha decision two." in one.stdout and "Beta" not in one.stdout
    assert one.stdout.startswith("## Decisions (added since HEAD)")


def test_a_real_engine_run_keeps_history_append_only(store: Store) -> None:
    repo = store.root
    (repo / "fix.diff").write_text(
        "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n"
        "@@ -1 +1 @@\n-hello\n+hello world\n",
        encoding="utf-8",
    )
    t = tickets.create(
        store,
        tickets.NewTicket(
            title="Greet the world",
            acceptance_criteria=["README greets the world"],
            patch_file="fix.diff",
        ),
    )
    decide(store, t.slug, "Keep it short.")
    tickets.transition(store, t.slug, Action.READY)
    tickets.transition(store, t.slug, Action.QUEUE)
    commit_all(repo, "queued")
    proc = yoi(repo, "engine", "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert store.read_ticket(t.slug).state.value == "done"
    assert doctor.check(store).problems == []
    assert against(store, "HEAD") == []
    commit_all(repo, "the engine's records")
    assert yoi(repo, "doctor", "--against", "HEAD~1").returncode == 0
