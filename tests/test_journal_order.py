"""The order of a journaled commit's disk operations (``yoi.journal``, docs/reliability.md):
every store file is synced before it is renamed into place and its directory after; the
journal and the first temp files are synced together with the journal directory before
any store file changes (the commit point); the journal's removal is synced by the next
commit's first round, or at the end of the process, never later than the next change.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from yoi import faults, journal
from yoi.fsio import StoreIOError

Trace = list[tuple[str, str]]


@pytest.fixture
def trace(monkeypatch: pytest.MonkeyPatch) -> Iterator[Trace]:
    """Every fsync (by the path of what it synced), rename, link and unlink, in order."""
    seen: Trace = []
    real_fsync, real_replace, real_link, real_unlink, real_rename = (
        os.fsync,
        os.replace,
        os.link,
        os.unlink,
        os.rename,
    )

    def fsync(fd: int) -> None:
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str | Path) -> None:
        seen.append(("place", str(dst)))
        real_replace(src, dst)

    def link(src: str, dst: str | Path) -> None:
        seen.append(("place", str(dst)))
        real_link(src, dst)

    def rename(src: str | Path, dst: str | Path) -> None:
        seen.append(("place", str(dst)))
        real_rename(src, dst)

    def unlink(path: str | Path) -> None:
        seen.append(("unlink", str(path)))
        real_unlink(path)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", link)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "unlink", unlink)
    journal.flush()
    yield seen
    journal.flush()
    faults.reset()


def first(trace: Trace, kind: str, path: Path | str) -> int:
    return next(i for i, (k, p) in enumerate(trace) if k == kind and p == str(path))


def synced_dir(trace: Trace, directory: Path, after: int) -> int:
    return next(
        i for i, (k, p) in enumerate(trace) if i > after and k == "fsync" and p == str(directory)
    )


def test_a_commit_syncs_each_file_before_its_rename_and_its_directory_after(
    tmp_path: Path, trace: Trace
) -> None:
    store, jdir = tmp_path / "store", tmp_path / "journal"
    (store / "t").mkdir(parents=True)
    (store / "t" / "old.txt").write_text("old\n")
    ops: list[journal.Op] = [
        journal.Write("t/old.txt", b"new\n"),
        journal.Write("t/runs/r1/new.txt", b"made\n", create=True),  # a new directory
        journal.Move("t", "done/t"),
    ]
    journal.commit(jdir, store, ops)
    assert (store / "done" / "t" / "old.txt").read_text() == "new\n"
    assert (store / "done" / "t" / "runs" / "r1" / "new.txt").read_text() == "made\n"

    journal_syncs = [i for i, (k, p) in enumerate(trace) if k == "fsync" and p.endswith(".json")]
    assert len(journal_syncs) == 1
    commit_point = max(journal_syncs[0], synced_dir(trace, jdir, -1))
    places = [i for i, (k, p) in enumerate(trace) if k == "place" and p.startswith(str(store))]
    assert places and min(places) > commit_point  # nothing changed before the commit point
    for target in (store / "t" / "old.txt", store / "t" / "runs" / "r1" / "new.txt"):
        placed = first(trace, "place", target)
        tmp_synced = [i for i, (k, p) in enumerate(trace[:placed]) if k == "fsync" and ".tmp" in p]
        assert tmp_synced, f"{target.name}: no temp file synced before its rename"
        moved = first(trace, "place", store / "done" / "t")
        assert placed < synced_dir(trace, target.parent, placed) < moved
    removed = first(trace, "unlink", next(p for k, p in trace if p.endswith(".json")))
    assert removed == len(trace) - 1  # the last operation: its directory is synced later
    assert not any(k == "fsync" and p == str(jdir) for k, p in trace[removed:])


def journaled_commit(tmp_path: Path, trace: Trace) -> tuple[Path, Path]:
    """A store and journal directory after one journaled commit; the trace cleared."""
    store, jdir = tmp_path / "store", tmp_path / "journal"
    store.mkdir()
    journal.commit(jdir, store, [journal.Write("a", b"1"), journal.Write("b", b"1")])
    trace.clear()
    return store, jdir


def test_the_next_commit_syncs_the_removal_before_it_changes_anything(
    tmp_path: Path, trace: Trace
) -> None:
    store, jdir = journaled_commit(tmp_path, trace)
    journal.commit(jdir, store, [journal.Write("a", b"2")])  # a single write: no journal
    assert synced_dir(trace, jdir, -1) < first(trace, "place", store / "a")


def test_the_end_of_the_process_syncs_a_removal_no_commit_followed(
    tmp_path: Path, trace: Trace
) -> None:
    _store, jdir = journaled_commit(tmp_path, trace)
    journal.flush()  # what the process does at exit (atexit)
    assert trace == [("fsync", str(jdir))]
    journal.flush()
    assert trace == [("fsync", str(jdir))]  # once


@pytest.mark.parametrize("fault", ["write:1", "write:2", "fsync:1", "fsync:3"])
def test_a_failure_before_the_commit_point_leaves_nothing(
    tmp_path: Path, trace: Trace, fault: str
) -> None:
    """The journal, its temp files and every staged temp file are removed, no directory is
    made, and the error says nothing was changed (the caller may retry)."""
    store, jdir = tmp_path / "store", tmp_path / "journal"
    (store / "t").mkdir(parents=True)
    jdir.mkdir()
    ops: list[journal.Op] = [
        journal.Write("t/a.txt", b"a"),
        journal.Write("t/b.txt", b"b"),
        journal.Write("t/new/c.txt", b"c"),
    ]
    faults.configure(fault=fault)
    with pytest.raises(StoreIOError, match=journal.NOTHING_CHANGED):
        journal.commit(jdir, store, ops)
    faults.reset()
    assert sorted(p.name for p in (store / "t").iterdir()) == []
    assert list(jdir.iterdir()) == []
    journal.commit(jdir, store, ops)  # the retry
    assert (store / "t" / "new" / "c.txt").read_bytes() == b"c"


def test_a_journal_cut_short_before_its_commit_point_is_dropped(tmp_path: Path) -> None:
    """A crash while the journal is written (it is created under its final name, then
    synced with the first round) leaves a journal that does not parse: nothing ran."""
    store, jdir = tmp_path / "store", tmp_path / "journal"
    store.mkdir()
    jdir.mkdir()
    (jdir / "00000000000000000001-cut.json").write_text('{"version": 1, "store": "')
    assert journal.roll_forward(jdir) == 0
    assert list(jdir.iterdir()) == []


def test_a_journal_removal_that_fails_once_is_tried_again(tmp_path: Path, trace: Trace) -> None:
    """The commit is applied; a one-shot failure to remove its journal (the third rename
    kind of operation here: two replaces, then the unlink) leaves no journal behind (the
    soak's fault loop found a successful ``engine run`` leaving one)."""
    store, jdir = tmp_path / "store", tmp_path / "journal"
    store.mkdir()
    faults.configure(fault="rename:3")
    journal.commit(jdir, store, [journal.Write("a", b"1"), journal.Write("b", b"1")])
    faults.reset()
    assert journal.pending(jdir) == []
    assert (store / "a").read_bytes() == b"1"
