"""The pending-event index: `all_events(pending_only=True)` equals reading every event file,
through yoi's own writes, writes behind its back, git checkouts and damaged index files,
and a warm scan never opens or lists anything under tickets/done/."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.helpers import git
from yoi import cache, events, tickets, yamlio
from yoi.lifecycle import Action
from yoi.model import EventReason
from yoi.store import Store

OLD = 1_600_000_000


@pytest.fixture
def store(store_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setattr(cache, "RACY_NS", -(10**18))  # keys of test files are stable
    monkeypatch.setattr(cache, "RACY_COARSE_NS", -(10**18))
    return Store.discover(store_repo)


def pending(store: Store) -> list[tuple[str, dict[str, object]]]:
    return [(str(e.path), e.record) for e in events.all_events(store, pending_only=True)]


def full(store: Store) -> list[tuple[str, dict[str, object]]]:
    """The reference: every event file read, the unprocessed ones kept."""
    return [(str(e.path), e.record) for e in events.all_events(store) if not e.record["processed"]]


def check(store: Store) -> list[tuple[str, dict[str, object]]]:
    got = pending(store)
    assert got == full(store)
    assert pending(store) == got  # warm
    return got


def queued(store: Store, title: str) -> str:
    slug = tickets.create(
        store, tickets.NewTicket(title=title, acceptance_criteria=["ok"]), by="ada"
    ).slug
    tickets.transition(store, slug, Action.READY, by="ada")
    tickets.transition(store, slug, Action.QUEUE, by="ada")
    return slug


def close(store: Store, path: Path) -> None:
    """What the engine does to an event it processed (a transaction)."""
    with store.transaction() as tx:
        record = store.read_record(path, "event")
        done = events.mark_processed(
            record, EventReason.NON_EXECUTABLE_STATUS, "2026-01-01T00:00:00Z"
        )
        tx.write_record(path, "event", done)


def to_done(store: Store, slug: str) -> Path:
    src = store.ticket_dir(slug)
    dst = store.tickets_dir / "done" / slug
    with store.transaction() as tx:
        tx.move(src, dst)
    return dst


def emit(store: Store, slug: str, queued_at: str) -> Path:
    with store.transaction() as tx:
        tdir = store.ticket_dir(slug)
        events.emit_ready(tx, tdir, slug, queued_at, "hook:post-merge", queued_at)
    return events.event_path(store.ticket_dir(slug), events.event_id(slug, queued_at))


def behind_back(tdir: Path, slug: str, queued_at: str) -> Path:
    record = events.new_event(slug, queued_at, "cli", queued_at)
    path = events.event_path(tdir, record["event_id"])
    path.parent.mkdir(exist_ok=True)
    path.write_text(yamlio.dump(record))
    return path


def test_pending_through_yois_own_writes(store: Store) -> None:
    a, b = queued(store, "First"), queued(store, "Second")
    assert sorted(str(r["ticket"]) for _p, r in check(store)) == sorted([a, b])
    close(store, next(Path(p) for p, r in check(store) if r["ticket"] == a))
    assert [r["ticket"] for _p, r in check(store)] == [b]
    done = to_done(store, a)
    assert [r["ticket"] for _p, r in check(store)] == [b]
    path = emit(store, a, "2020-01-01T00:00:00Z")  # a late hook, on a done ticket
    assert path.parent.parent == done
    assert [r["ticket"] for _p, r in check(store)] == [a, b]  # 2020 sorts first
    close(store, path)
    assert [r["ticket"] for _p, r in check(store)] == [b]


def test_a_ticket_moved_to_done_keeps_its_pending_event(store: Store) -> None:
    slug = queued(store, "Moved")
    check(store)
    to_done(store, slug)
    assert [r["ticket"] for _p, r in check(store)] == [slug]


def test_open_events_written_or_edited_behind_the_back(store: Store) -> None:
    slug = queued(store, "Hand made")
    tdir = store.ticket_dir(slug)
    first = check(store)
    path = behind_back(tdir, slug, "2021-01-01T00:00:00Z")
    assert len(check(store)) == len(first) + 1
    st = path.stat()
    text = path.read_text()
    path.write_text(text.replace("processed: false", "processed: true "))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
    assert check(store) == first  # processed: true without processed_at is invalid: skipped
    path.unlink()
    assert check(store) == first
    (tdir / "events" / "junk.yaml").write_text("processed: [\n")
    assert check(store) == first


def test_done_events_arriving_with_a_git_checkout(store: Store, store_repo: Path) -> None:
    slug = queued(store, "Branchy")
    close(store, Path(check(store)[0][0]))
    done = to_done(store, slug)
    git(store_repo, "add", "-A")
    git(store_repo, "commit", "-q", "-m", "done")
    git(store_repo, "checkout", "-q", "-b", "other")
    behind_back(done, slug, "2022-01-01T00:00:00Z")
    git(store_repo, "add", "-A")
    git(store_repo, "commit", "-q", "-m", "a pending event on a done ticket")
    git(store_repo, "checkout", "-q", "main")
    assert check(store) == []
    git(store_repo, "checkout", "-q", "other")
    assert [r["ticket"] for _p, r in check(store)] == [slug]
    git(store_repo, "checkout", "-q", "main")
    assert check(store) == []


def test_a_new_done_ticket_dir_is_seen(store: Store) -> None:
    check(store)
    tdir = store.tickets_dir / "done" / "20200101-000000-imported"
    tdir.mkdir()
    behind_back(tdir, "20200101-000000-imported", "2020-01-01T00:00:00Z")
    assert [r["ticket"] for _p, r in check(store)] == ["20200101-000000-imported"]


def test_warm_idle_scan_touches_nothing_under_done(store: Store) -> None:
    for i in range(3):
        slug = queued(store, f"Finished {i}")
        close(store, Path(pending(store)[0][0]))
        to_done(store, slug)
    open_slug = queued(store, "Still open")
    check(store)
    seen: list[str] = []

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event in ("open", "os.listdir", "os.scandir") and args and "/done/" in str(args[0]):
            seen.append(f"{event} {args[0]}")

    sys.addaudithook(hook)
    got = pending(store)
    assert [r["ticket"] for _p, r in got] == [open_slug]
    assert seen == []


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_index_is_rebuilt(store: Store, damage: str) -> None:
    a = queued(store, "Damaged")
    to_done(store, a)
    b = queued(store, "Other")
    expected = check(store)
    for name in ("events", "events-done"):
        path = cache.cache_path(store.runtime_dir, store.yoi_dir, name)
        blob = path.read_bytes()
        path.write_bytes(blob[: len(blob) // 2] if damage == "truncate" else os.urandom(99))
    assert check(store) == expected
    assert {r["ticket"] for _p, r in expected} == {a, b}


def test_index_stays_right_when_cache_is_off(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOI_CACHE", "0")
    slug = queued(store, "No cache")
    to_done(store, slug)
    assert [r["ticket"] for _p, r in check(store)] == [slug]


def test_a_cold_index_of_many_done_tickets_is_read_by_two_processes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first scan of a fresh clone's done bucket is split with a forked child
    (``PARALLEL_MIN`` lowered here): the same pending events as one process finds."""
    from yoi import cache_events, forked

    slugs = [queued(store, f"Many {i}") for i in range(6)]
    for slug in slugs[::2]:  # half of them processed, all of them done
        close(store, next(Path(p) for p, r in pending(store) if r["ticket"] == slug))
    for slug in slugs:
        to_done(store, slug)
    expected = check(store)  # and the index written
    forks: list[int] = []
    real = os.fork

    def counted() -> int:
        forks.append(1)
        return real()

    monkeypatch.setattr(cache_events, "PARALLEL_MIN", 2)
    monkeypatch.setattr(forked, "can_fork", lambda: True)
    monkeypatch.setattr(os, "fork", counted)  # the module forked calls it through
    for name in ("events", "events-done"):  # as in a fresh clone: no index at all
        cache.cache_path(store.runtime_dir, store.yoi_dir, name).unlink(missing_ok=True)
    assert pending(store) == expected
    assert forks == [1]
    assert {r["ticket"] for _p, r in expected} == set(slugs[1::2])
    assert pending(store) == expected  # warm: what the two processes found was kept
    assert forks == [1]
