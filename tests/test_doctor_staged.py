"""`yoi doctor --staged` and the pre-commit hook: the staged versions of the files under
.yoi/ are validated (index blobs, not the working tree), and a commit of an invalid
ticket file is blocked with the file and the pointer named."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import git
from tests.test_doctor_support import new_ticket, yoi
from yoi import doctor, hooks
from yoi.paths import discover
from yoi.store import Store


def run_git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture
def store(store_repo: Path) -> Store:
    return Store.discover(store_repo)


def test_commit_of_an_invalid_ticket_is_blocked_and_a_valid_one_goes_through(store: Store) -> None:
    repo = store.root
    hooks.install(discover(repo))
    t = new_ticket(store)
    ticket_md = t.path / "ticket.md"
    replace(ticket_md, "importance: 2", "importance: urgent")
    git(repo, "add", "-A")
    head = git(repo, "rev-parse", "HEAD")
    blocked = run_git(repo, "commit", "-q", "-m", "bad ticket")
    assert blocked.returncode != 0 and git(repo, "rev-parse", "HEAD") == head
    assert f".yoi/tickets/open/{t.slug}/ticket.md: /importance:" in blocked.stderr
    assert "commit blocked" in blocked.stderr and "hint:" in blocked.stderr
    replace(ticket_md, "importance: urgent", "importance: 3")
    git(repo, "add", "-A")
    assert run_git(repo, "commit", "-q", "-m", "good ticket").returncode == 0
    assert git(repo, "rev-parse", "HEAD") != head


def test_commit_a_is_checked_through_its_temporary_index(store: Store) -> None:
    repo = store.root
    t = new_ticket(store)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ticket")
    hooks.install(discover(repo))
    replace(t.path / "ticket.md", "urgency: 2", "urgency: 99")
    proc = run_git(repo, "commit", "-q", "-a", "-m", "bad edit, not staged beforehand")
    assert proc.returncode != 0 and "/urgency" in proc.stderr


def test_staged_reads_the_index_not_the_working_tree(store: Store) -> None:
    t = new_ticket(store)
    ticket_md = t.path / "ticket.md"
    replace(ticket_md, "urgency: 2", "urgency: 99")
    git(store.root, "add", "-A")
    replace(ticket_md, "urgency: 99", "urgency: 1")  # fixed on disk only
    assert doctor.check(store).problems == []
    staged = doctor.check(store, staged=True)
    assert [(p.path, p.pointer) for p in staged.problems] == [
        (f".yoi/tickets/open/{t.slug}/ticket.md", "/urgency")
    ]
    git(store.root, "add", "-A")
    replace(ticket_md, "urgency: 1", "urgency: 77")  # broken on disk only
    assert doctor.check(store, staged=True).problems == []
    proc = yoi(store.root, "doctor", "--staged", "--json")
    assert proc.returncode == 0 and '"ok": true' in proc.stdout


def test_staged_checks_only_what_the_commit_changes(store: Store) -> None:
    bad = new_ticket(store, "Old and broken")
    replace(bad.path / "ticket.md", "urgency: 2", "urgency: 99")
    git(store.root, "add", "-A")
    git(store.root, "commit", "-q", "-m", "broken before the hooks existed")
    good = new_ticket(store, "New and fine")
    git(store.root, "add", "-A")
    report = doctor.check(store, staged=True)
    assert report.problems == [] and report.tickets == 1
    assert [p.pointer for p in doctor.check(store).problems] == ["/urgency"]
    assert good.slug != bad.slug


def test_staged_symlink_and_cross_record_problems(store: Store, tmp_path: Path) -> None:
    t = new_ticket(store)
    (t.path / "notes").symlink_to(tmp_path)
    replace(t.path / "ticket.md", "state: planning", "state: done")
    git(store.root, "add", "-A")
    found = {(p.path, p.pointer) for p in doctor.check(store, staged=True).problems}
    assert (f".yoi/tickets/open/{t.slug}/notes", "") in found
    assert (f".yoi/tickets/open/{t.slug}/ticket.md", "/state") in found


def test_nothing_staged_under_the_store_is_clean(store: Store) -> None:
    (store.root / "README.md").write_text("changed\n", encoding="utf-8")
    git(store.root, "add", "README.md")
    assert doctor.check(store, staged=True).problems == []
