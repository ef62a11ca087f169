"""The store: discovery, the journal (crash in the middle of a multi-file commit), and
refusing symlinks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import git
from yoi import journal
from yoi.errors import NotFoundError, UsageError
from yoi.paths import discover
from yoi.store import Store


def test_discovery_from_a_subdirectory(store_repo: Path) -> None:
    sub = store_repo / "src"
    layout = discover(sub)
    assert layout.yoi_dir == store_repo / ".yoi"
    assert layout.common_dir == store_repo / ".git"
    assert layout.runtime_dir == store_repo / ".git" / "yoi"


def test_discovery_from_a_linked_worktree_shares_the_runtime_dir(
    store_repo: Path, tmp_path: Path
) -> None:
    wt = tmp_path / "wt"
    git(store_repo, "worktree", "add", "-q", str(wt), "-b", "side")
    layout = discover(wt / "src")
    assert layout.worktree == wt
    assert layout.yoi_dir == wt / ".yoi"  # the worktree's own committed store
    assert layout.common_dir == store_repo / ".git"
    assert layout.runtime_dir == store_repo / ".git" / "yoi"


def test_linked_worktree_without_store_uses_the_main_one(repo: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt2"
    git(repo, "worktree", "add", "-q", str(wt), "-b", "side2")
    (repo / ".yoi").mkdir()  # untracked store in the main worktree only
    layout = discover(wt)
    assert layout.yoi_dir == repo / ".yoi"


def test_outside_a_repository(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="not inside a git repository"):
        discover(tmp_path)


def test_a_bare_repository_is_named_as_such(repo: Path, tmp_path: Path) -> None:
    bare = tmp_path / "shared.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    (bare / "hooks").mkdir(exist_ok=True)
    for where in (bare, bare / "hooks"):
        with pytest.raises(NotFoundError, match="not a working tree") as info:
            discover(where)
        assert info.value.where == str(bare)
        assert info.value.hint and "git clone" in info.value.hint


def test_repository_without_store_hints_init(repo: Path) -> None:
    with pytest.raises(NotFoundError) as info:
        discover(repo)
    assert info.value.hint and "yoi init" in info.value.hint


def test_transaction_commits_all_files(store_repo: Path) -> None:
    store = Store.discover(store_repo)
    a = store.yoi_dir / "tickets" / "open" / "x" / "a.txt"
    b = store.yoi_dir / "tickets" / "open" / "x" / "b.txt"
    with store.transaction() as tx:
        tx.write_text(a, "A\n")
        tx.write_text(b, "B\n")
    assert a.read_text() == "A\n" and b.read_text() == "B\n"
    assert journal.pending(store.runtime_dir / "journal") == []


def test_create_if_absent_never_overwrites(store_repo: Path) -> None:
    store = Store.discover(store_repo)
    path = store.yoi_dir / "tickets" / "open" / "x" / "c.txt"
    with store.transaction() as tx:
        assert tx.write_text(path, "first\n", create=True)
    with store.transaction() as tx:
        assert not tx.write_text(path, "second\n", create=True)
    assert path.read_text() == "first\n"


CRASHER = """
import sys
from pathlib import Path
from yoi.store import Store
store = Store.discover(Path(sys.argv[1]))
base = store.yoi_dir / "tickets" / "open" / "t"
with store.transaction() as tx:
    tx.write_text(base / "one.txt", "1\\n")
    tx.write_text(base / "two.txt", "2\\n")
    tx.move(base, store.yoi_dir / "tickets" / "done" / "t")
"""


@pytest.mark.parametrize("point", ["txn.journal", "txn.op0", "txn.op1"])
def test_crash_mid_commit_is_rolled_forward(store_repo: Path, point: str) -> None:
    env = {
        **os.environ,
        "YOI_TEST_CRASH_AT": point,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", CRASHER, str(store_repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 137, proc.stderr
    store = Store.discover(store_repo)
    assert len(journal.pending(store.runtime_dir / "journal")) == 1
    with store.transaction():
        pass  # the next lock holder completes the interrupted commit
    done = store.yoi_dir / "tickets" / "done" / "t"
    assert (done / "one.txt").read_text() == "1\n"
    assert (done / "two.txt").read_text() == "2\n"
    assert not (store.yoi_dir / "tickets" / "open" / "t").exists()
    assert journal.pending(store.runtime_dir / "journal") == []


def test_roll_forward_twice_is_harmless(store_repo: Path) -> None:
    store = Store.discover(store_repo)
    ops: list[journal.Op] = [
        journal.Write("tickets/open/q/f.txt", b"x\n"),
        journal.Move("tickets/open/q", "tickets/done/q"),
    ]
    journal.apply_ops(store.yoi_dir, ops)
    journal.apply_ops(store.yoi_dir, ops)  # replay: resumes after the completed move
    assert (store.yoi_dir / "tickets" / "done" / "q" / "f.txt").read_text() == "x\n"
    assert not (store.yoi_dir / "tickets" / "open" / "q").exists()


def test_writing_through_a_symlinked_directory_is_refused(store_repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (store_repo / ".yoi" / "tickets" / "open" / "evil").symlink_to(outside)
    store = Store.discover(store_repo)
    with pytest.raises(UsageError, match="symlink"), store.transaction() as tx:
        tx.write_text(store.yoi_dir / "tickets" / "open" / "evil" / "x.txt", "pwned")
    assert list(outside.iterdir()) == []


def test_symlinked_store_is_refused(repo: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (repo / ".yoi").symlink_to(real)
    with pytest.raises(UsageError, match="symlink"):
        discover(repo)


def test_plain_round_trip_of_yois_own_tickets_keeps_the_data_of_ruamels() -> None:
    """Store.load_ticket hands out plain data for front matter in yoi's own layout; after
    any edit it dumps to the same data as the ruamel round trip, in yoi's own layout
    (ruamel would keep the quotes of a value it replaced: a style, not data)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.test_fastticket import VALID
    from yoi import store as store_mod
    from yoi import tickets, yamlio

    edits = st.lists(
        st.one_of(
            st.tuples(
                st.sampled_from(["state", "updated_at", "branch", "queued_by", "title"]),
                st.sampled_from(["done", "2026-11-21T00:00:00Z", "yoi/x", "a: b", "say 'hi'"]),
            ),
            st.tuples(st.sampled_from(["queued_at", "blocked_reason", "labels"]), st.none()),
            st.tuples(st.just("labels"), st.lists(st.sampled_from(["a", "b-c"]), unique=True)),
        ),
        max_size=4,
    )
    vouched: list[bool] = []

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(VALID, edits)
    def check(data: dict[str, Any], changes: list[tuple[str, Any]]) -> None:
        text = yamlio.dump(data)
        plain = store_mod._canonical_ticket(text)
        vouched.append(plain is not None)
        if plain is None:
            return
        rt = yamlio.load_rt(text, path="x")
        for key, value in changes:
            for front in (plain, rt):
                if value is None:
                    front.pop(key, None)
                else:
                    front[key] = list(value) if isinstance(value, list) else value
        fast, slow = tickets.render_ticket(plain, "b\n"), tickets.render_ticket(rt, "b\n")
        front = yamlio.split_front_matter(fast, path="x")[0]
        assert front == yamlio.dump(yamlio.load_plain(front, path="x"))  # canonical
        assert yamlio.load_plain(front, path="x") == yamlio.load_plain(
            yamlio.split_front_matter(slow, path="x")[0], path="x"
        )

    check()
    assert sum(vouched) >= 0.6 * len(vouched)  # a coverage guard: most are vouched for


def test_a_busy_lock_is_polled_often_not_every_fifty_ms(
    store_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """filelock's default poll (50 ms) is longer than a whole commit: a second engine or a
    CLI writer waiting for the lock slept through most of the time it was free."""
    from yoi import store as store_module

    store = Store.discover(store_repo)
    lock = store.lock()
    polls: list[float | None] = []
    real = lock.acquire

    def acquire(*args: Any, **kwargs: Any) -> Any:
        polls.append(kwargs.get("poll_interval"))
        return real(*args, **kwargs)

    monkeypatch.setattr(lock, "acquire", acquire)
    with store.locked(), store.locked():  # the nested entry does not poll again
        pass
    assert polls == [store_module.LOCK_POLL_S]
    assert store_module.LOCK_POLL_S <= 0.005
    assert not lock.is_locked


def test_a_record_read_again_is_a_fresh_copy_of_the_same_data(
    store_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``read_record`` remembers valid records by text (``store._MEMO``): a second read of
    the same text gives equal data without parsing again, as a copy the caller may edit,
    and a changed file is read anew. The memo is bounded by the text it holds."""
    from yoi import fastyaml
    from yoi import store as store_mod

    store = Store.discover(store_repo)
    path = store.runtime("x") / "ev.yaml"
    text = (
        "event_id: ev-20260101000000-0123456789\ntype: TICKET_READY\n"
        'ticket: 20260101-000000-a\ncreated_at: "2026-01-01T00:00:00Z"\nsource: cli\n'
        "dedup_key: k\nprocessed: false\nprocessed_at: null\nprocessed_reason: null\n"
        "run_id: null\n"
    )
    path.write_text(text)
    first = store.read_record(path, "event")
    parsed: list[str] = []
    real = fastyaml.load

    def counted(t: str) -> Any:
        parsed.append(t)
        return real(t)

    monkeypatch.setattr(fastyaml, "load", counted)
    first["processed"] = True  # the caller's own copy
    second = store.read_record(path, "event")
    assert parsed == [] and second["processed"] is False and second is not first
    path.write_text(text.replace("source: cli", "source: hook"))
    assert store.read_record(path, "event")["source"] == "hook" and len(parsed) == 1
    monkeypatch.setattr(store_mod, "_MEMO_MAX_CHARS", len(text) * 2)
    for n in range(5):
        path.write_text(text.replace("dedup_key: k", f"dedup_key: k{n}"))
        store.read_record(path, "event")
        assert store_mod._MEMO_CHARS[0] <= len(text) * 2 + 10
