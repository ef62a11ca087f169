"""Installed hooks under real git commit, merge, pull, rebase and checkout: a queued
ticket gets exactly one TICKET_READY event, however many hooks and commands see it, and
a broken yoi never breaks git."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import git
from tests.test_doctor_support import new_ticket
from yoi import hooks, tickets, yamlio
from yoi.lifecycle import Action
from yoi.paths import discover
from yoi.store import Store

NO_HOOKS = ("-c", "core.hooksPath=/dev/null")  # a teammate's commit, made without hooks


def run_git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )


def ok(cwd: Path, *args: str) -> str:
    proc = run_git(cwd, *args)
    assert proc.returncode == 0, f"git {args}: {proc.stdout}\n{proc.stderr}"
    return proc.stderr


def events(repo: Path, slug: str) -> list[dict[str, object]]:
    out = []
    for bucket in ("open", "done"):
        for path in sorted((repo / ".yoi" / "tickets" / bucket / slug / "events").glob("*.yaml")):
            out.append(yamlio.load_plain(path.read_text(encoding="utf-8"), path=str(path)))
    return out


def ready_ticket(repo: Path, title: str = "Fix the widget") -> str:
    store = Store.discover(repo)
    slug = new_ticket(store, title).slug
    tickets.transition(store, slug, Action.READY)
    return slug


def hand_queue(repo: Path, slug: str, at: str = "2026-11-20T10:00:00Z") -> None:
    """Queue by editing ticket.md, as a merge or a teammate's commit would bring it."""
    path = repo / ".yoi" / "tickets" / "open" / slug / "ticket.md"
    text = path.read_text(encoding="utf-8")
    assert "state: ready" in text
    path.write_text(
        text.replace("state: ready", f'state: queued\nqueued_at: "{at}"\nqueued_by: bob', 1),
        encoding="utf-8",
    )


def commit_all(repo: Path, message: str, *extra: str) -> None:
    git(repo, "add", "-A")
    ok(repo, *extra, "commit", "-q", "-m", message)


def install(repo: Path) -> None:
    hooks.install(discover(repo))


def test_cli_queue_then_commit_yields_one_event(store_repo: Path) -> None:
    install(store_repo)
    slug = ready_ticket(store_repo)
    tickets.transition(Store.discover(store_repo), slug, Action.QUEUE)
    commit_all(store_repo, "queue")
    ok(store_repo, "commit", "-q", "--amend", "-m", "queue (amended)")
    found = events(store_repo, slug)
    assert len(found) == 1 and found[0]["source"] == "cli"


def test_commit_of_a_hand_queued_ticket_emits_exactly_once(store_repo: Path) -> None:
    slug = ready_ticket(store_repo)
    commit_all(store_repo, "ready")
    install(store_repo)
    hand_queue(store_repo, slug)
    git(store_repo, "add", "-A")
    stderr = ok(store_repo, "commit", "-q", "-m", "queue by hand")
    assert f"TICKET_READY emitted for {slug} (post-commit)" in stderr
    ok(store_repo, "commit", "-q", "--amend", "-m", "queue by hand (amended)")
    ok(store_repo, "checkout", "-q", "-b", "other")
    found = events(store_repo, slug)
    assert [(e["source"], e["dedup_key"]) for e in found] == [
        ("hook:post-commit", f"TICKET_READY:{slug}:2026-11-20T10:00:00Z")
    ]


def test_ticket_queued_on_a_branch_gets_one_event_after_the_merge(store_repo: Path) -> None:
    repo = store_repo
    slug = ready_ticket(repo)
    commit_all(repo, "ready")
    install(repo)
    ok(repo, "checkout", "-q", "-b", "feature")
    hand_queue(repo, slug)
    commit_all(repo, "queue on the branch", *NO_HOOKS)
    ok(repo, "checkout", "-q", "main")
    assert events(repo, slug) == []  # ready on main: nothing to emit
    stderr = ok(repo, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    assert f"TICKET_READY emitted for {slug} (post-merge)" in stderr
    ok(repo, "checkout", "-q", "feature")
    ok(repo, "checkout", "-q", "main")
    assert [e["source"] for e in events(repo, slug)] == ["hook:post-merge"]


def test_cli_queued_ticket_with_committed_event_merges_as_one(store_repo: Path) -> None:
    repo = store_repo
    slug = ready_ticket(repo)
    commit_all(repo, "ready")
    install(repo)
    ok(repo, "checkout", "-q", "-b", "feature")
    tickets.transition(Store.discover(repo), slug, Action.QUEUE)
    commit_all(repo, "queue with its event")
    ok(repo, "checkout", "-q", "main")
    ok(repo, "merge", "-q", "feature")  # fast-forward
    assert [e["source"] for e in events(repo, slug)] == ["cli"]


def test_pull_from_a_second_clone_yields_one_event(store_repo: Path, tmp_path: Path) -> None:
    slug = ready_ticket(store_repo)
    commit_all(store_repo, "ready")
    origin = tmp_path / "origin.git"
    git(tmp_path, "clone", "-q", "--bare", str(store_repo), str(origin))
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    git(tmp_path, "clone", "-q", str(origin), str(alice))
    git(tmp_path, "clone", "-q", str(origin), str(bob))
    install(bob)
    hand_queue(alice, slug)
    commit_all(alice, "alice queues it")
    git(alice, "push", "-q", "origin", "main")
    stderr = ok(bob, "pull", "-q", "--no-rebase", "origin", "main")
    assert f"TICKET_READY emitted for {slug}" in stderr
    ok(bob, "pull", "-q", "--no-rebase", "origin", "main")
    assert [e["source"] for e in events(bob, slug)] == ["hook:post-merge"]
    assert events(alice, slug) == []  # alice has no hooks: her clone is untouched


def test_rebase_onto_a_queued_ticket_yields_one_event(store_repo: Path) -> None:
    repo = store_repo
    slug = ready_ticket(repo)
    commit_all(repo, "ready")
    ok(repo, "checkout", "-q", "-b", "topic")
    (repo / "topic.txt").write_text("topic\n", encoding="utf-8")
    commit_all(repo, "topic work", *NO_HOOKS)
    ok(repo, "checkout", "-q", "main")
    hand_queue(repo, slug)
    commit_all(repo, "queued upstream", *NO_HOOKS)
    ok(repo, "checkout", "-q", "topic")
    install(repo)
    ok(repo, "rebase", "-q", "main")
    assert len(events(repo, slug)) == 1
    ok(repo, "rebase", "-q", "main")
    assert len(events(repo, slug)) == 1


def _queued_on_a_branch(repo: Path) -> str:
    """A ticket queued on branch 'queued' by a commit made without hooks; back on main,
    hooks installed."""
    slug = ready_ticket(repo)
    commit_all(repo, "ready")
    ok(repo, "checkout", "-q", "-b", "queued")
    hand_queue(repo, slug)
    commit_all(repo, "queued", *NO_HOOKS)
    ok(repo, "checkout", "-q", "main")
    install(repo)
    return slug


def test_checkout_of_a_branch_with_a_queued_ticket_emits_once(store_repo: Path) -> None:
    repo = store_repo
    slug = _queued_on_a_branch(repo)
    ok(repo, "checkout", "-q", "queued")
    ok(repo, "checkout", "-q", "main")
    ok(repo, "checkout", "-q", "queued")
    assert [e["source"] for e in events(repo, slug)] == ["hook:post-checkout"]


def test_a_checkout_of_files_that_queue_a_ticket_emits(store_repo: Path) -> None:
    """`git checkout <branch> -- <path>` moves no HEAD: the queued ticket arrives in the
    working tree only (post-checkout's flag 0), and is found there."""
    slug = _queued_on_a_branch(store_repo)
    ok(store_repo, "checkout", "queued", "--", f".yoi/tickets/open/{slug}/ticket.md")
    assert [e["source"] for e in events(store_repo, slug)] == ["hook:post-checkout"]


def test_a_squash_merge_that_queues_a_ticket_emits_once(store_repo: Path) -> None:
    """A squash merge commits nothing (post-merge's flag 1): found in the working tree;
    the commit that follows adds no second event."""
    slug = _queued_on_a_branch(store_repo)
    ok(store_repo, "merge", "-q", "--squash", "queued")
    assert [e["source"] for e in events(store_repo, slug)] == ["hook:post-merge"]
    commit_all(store_repo, "squashed")
    assert len(events(store_repo, slug)) == 1


def test_a_broken_store_never_fails_a_git_operation(store_repo: Path) -> None:
    repo = store_repo
    slug = ready_ticket(repo)
    commit_all(repo, "ready")
    install(repo)
    hand_queue(repo, slug)
    (repo / ".yoi" / "tickets" / "open" / slug / "events").write_text("not a dir\n")
    git(repo, "add", "-A")
    proc = run_git(repo, "commit", "-q", "-m", "queue; events is a file")
    assert proc.returncode == 0
    assert "yoi: warning: the post-commit hook failed" in proc.stderr


def test_a_commit_in_a_linked_worktree_runs_the_shared_hooks(store_repo: Path) -> None:
    repo = store_repo
    slug = ready_ticket(repo)
    commit_all(repo, "ready")
    install(repo)
    wt = repo.parent / "wt"
    git(repo, "worktree", "add", "-q", str(wt), "-b", "wt")
    hand_queue(wt, slug)
    commit_all(wt, "queued in the linked worktree")
    assert [e["source"] for e in events(wt, slug)] == ["hook:post-commit"]
    assert events(repo, slug) == []  # each worktree has its own checked-out store
