"""Deferred syncs (``yoi.checkpoint``, docs/reliability.md): in a deferred block a commit
appends a record to the process's journal segment and syncs that alone, its files are
made durable by one ``syncfs`` for many commits, and an applied record is never replayed
over later changes in the same boot, but is replayed (where its moves took its files)
after the operating system stopped, in commit order across segments."""

from __future__ import annotations

import base64
import errno
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine_helpers import make_store, queue_with_patch
from tests.helpers import counted_fsyncs
from yoi import checkpoint, janitor, journal
from yoi.fsio import StoreIOError
from yoi.store import Store

pytestmark = pytest.mark.skipif(not checkpoint.available(), reason="needs Linux syncfs")
ROOT = Path(__file__).resolve().parents[1]
OTHER_BOOT = "0" * 32


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    store, jdir = tmp_path / "store", tmp_path / "journal"
    (store / "t").mkdir(parents=True)
    (store / "t" / "old.txt").write_text("old\n")
    yield store, jdir
    journal.flush()


def moving_ops() -> list[journal.Op]:
    return [
        journal.Write("t/old.txt", b"new\n"),
        journal.Write("t/runs/r1/new.txt", b"made\n", create=True),  # a new directory
        journal.Move("t", "done/t"),
    ]


def journal_files(jdir: Path) -> list[str]:
    return sorted(p.name for p in jdir.iterdir()) if jdir.is_dir() else []


def synced_paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The path of everything ``os.fsync`` syncs from now on, in order."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_a_deferred_commit_syncs_its_journal_alone_and_settles_at_the_end(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, jdir = dirs
    warm = [journal.Write("warm", b"up"), journal.Write("warm2", b"up")]
    journal.commit(jdir, store, warm)  # the journal directory is made and synced
    journal.flush()
    synced = synced_paths(monkeypatch)
    settled: list[list[str]] = []
    real_syncfs = checkpoint.syncfs

    def syncfs(paths: Iterator[Path]) -> None:
        settled.append(journal_files(jdir))
        real_syncfs(paths)

    monkeypatch.setattr(checkpoint, "syncfs", syncfs)
    with checkpoint.deferred():
        journal.commit(jdir, store, moving_ops())
        (segment,) = journal_files(jdir)
        assert segment.endswith(f".{checkpoint.boot()}.seg")
        assert synced == [str(jdir / segment), str(jdir)]  # a new segment: its entry too
        assert (store / "done" / "t" / "old.txt").read_text() == "new\n"
        assert (store / "done" / "t" / "runs" / "r1" / "new.txt").read_text() == "made\n"
        synced.clear()
        journal.commit(jdir, store, [journal.Write("done/t/old.txt", b"newer\n")])
        assert synced == [str(jdir / segment)]  # a single write is a record too
        assert journal.pending(jdir) == []  # in effect: nothing to replay
        assert [r.applied for r in checkpoint.records(jdir / segment)] == [True, True]
        assert settled == []
    assert settled == [[segment]]  # one syncfs, before the segment went
    assert journal_files(jdir) == []


def test_a_batch_is_settled_once_it_is_full(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, jdir = dirs
    monkeypatch.setattr(checkpoint, "BATCH", 3)
    with checkpoint.deferred():
        for n in range(2):
            journal.commit(jdir, store, [journal.Write(f"f{n}", b"x"), journal.Write("g", b"y")])
        (segment,) = journal_files(jdir)
        assert len(checkpoint.records(jdir / segment)) == 2
        journal.commit(jdir, store, [journal.Write("f2", b"x"), journal.Write("g", b"z")])
        assert journal_files(jdir) == []
        journal.commit(jdir, store, [journal.Write("g", b"w")])  # a new segment
        assert len(journal_files(jdir)) == 1
    assert (store / "g").read_bytes() == b"w"
    assert journal_files(jdir) == []


def test_a_commit_left_waiting_is_settled_by_the_timer(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long run or an idle watch commits nothing for a while: what waits is settled."""
    store, jdir = dirs
    monkeypatch.setattr(checkpoint, "MAX_AGE_S", 0.2)
    with checkpoint.deferred():
        journal.commit(jdir, store, [journal.Write("a", b"1"), journal.Write("b", b"2")])
        assert len(journal_files(jdir)) == 1
        deadline = time.monotonic() + 10
        while journal_files(jdir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert journal_files(jdir) == []


def test_a_failed_sync_keeps_the_segment_until_a_sync_succeeds(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, jdir = dirs

    def failing(_paths: Iterator[Path]) -> None:
        raise OSError(errno.EIO, "injected EIO", str(store))

    monkeypatch.setattr(checkpoint, "syncfs", failing)
    with pytest.raises(StoreIOError) as info, checkpoint.deferred():
        journal.commit(jdir, store, moving_ops())
    assert "completed by the next yoi command" in info.value.message
    assert len(journal_files(jdir)) == 1  # kept: its files are not known durable
    monkeypatch.undo()
    assert journal.roll_forward(jdir) == 0  # in effect: settled, not replayed
    assert (store / "done" / "t" / "old.txt").read_text() == "new\n"
    assert journal_files(jdir) == []


def _segment_fd(path: Path) -> int:
    """The descriptor this process holds the segment ``path`` open with."""
    return next(
        int(fd) for fd in os.listdir("/proc/self/fd") if _link(f"/proc/self/fd/{fd}") == str(path)
    )


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def test_a_failed_commit_point_leaves_no_record(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record is taken back: the caller was told nothing changed, so nothing of it may
    be replayed; the next commit uses the same segment."""
    store, jdir = dirs
    with checkpoint.deferred():
        journal.commit(jdir, store, [journal.Write("a", b"1"), journal.Write("b", b"1")])
        (segment,) = journal_files(jdir)
        real = os.fsync
        counted_fsyncs(monkeypatch, failing=_segment_fd(jdir / segment))
        with pytest.raises(StoreIOError) as info:
            journal.commit(jdir, store, [journal.Write("a", b"2")])
        assert "nothing was changed" in info.value.message
        monkeypatch.setattr(os, "fsync", real)
        assert [r.applied for r in checkpoint.records(jdir / segment)] == [True]
        assert (store / "a").read_bytes() == b"1"
        journal.commit(jdir, store, [journal.Write("a", b"3")])
        assert journal_files(jdir) == [segment]
    assert (store / "a").read_bytes() == b"3"


def from_an_earlier_boot(jdir: Path, saved: Path) -> Path:
    """The saved segment put back as the operating system's stop left it: named, and its
    records marked, with another boot's id."""
    lines = []
    for line in saved.read_bytes().splitlines(keepends=True):
        if line != checkpoint.MARK:
            body = json.loads(line)
            body["deferred"] = OTHER_BOOT
            line = json.dumps(body).encode() + b"\n"
        lines.append(line)
    name = saved.name.split(".")[0] + f".{OTHER_BOOT}{checkpoint.SEGMENT}"
    (jdir / name).write_bytes(b"".join(lines))
    return jdir / name


def committed_and_saved(store: Path, jdir: Path, tmp_path: Path) -> Path:
    """A deferred commit of ``moving_ops``; a copy of its segment."""
    with checkpoint.deferred():
        journal.commit(jdir, store, moving_ops())
        (name,) = journal_files(jdir)
        saved = tmp_path / name
        saved.write_bytes((jdir / name).read_bytes())
    return saved


@pytest.mark.parametrize("move_lost", [False, True])
def test_an_applied_journal_of_an_earlier_boot_is_replayed_where_its_move_took_it(
    dirs: tuple[Path, Path], tmp_path: Path, move_lost: bool
) -> None:
    """After an operating-system stop the files of an unsettled commit may be empty (the
    renames reached the disk, the data did not), and its move may be lost too."""
    store, jdir = dirs
    saved = committed_and_saved(store, jdir, tmp_path)
    done = store / "done" / "t"
    (done / "old.txt").write_bytes(b"")
    (done / "runs" / "r1" / "new.txt").write_bytes(b"")  # a created file, emptied
    if move_lost:
        done.rename(store / "t")
    replayed = from_an_earlier_boot(jdir, saved)
    assert journal.pending(jdir) == [replayed]
    assert journal.roll_forward(jdir) == 1
    assert (done / "old.txt").read_text() == "new\n"
    assert (done / "runs" / "r1" / "new.txt").read_text() == "made\n"
    assert not (store / "t").exists()
    assert journal_files(jdir) == []


def test_records_of_an_earlier_boot_are_replayed_in_commit_order_across_segments(
    dirs: tuple[Path, Path],
) -> None:
    """Two engines' segments: their records interleave in time; a replay by segment would
    leave the older write last."""
    store, jdir = dirs
    jdir.mkdir()

    def record(seq: int, data: bytes) -> bytes:
        op = {"op": "write", "path": "shared.txt", "create": False}
        op["data"] = base64.b64encode(data).decode()
        body = {"version": 1, "seq": seq, "deferred": OTHER_BOOT, "store": str(store), "ops": [op]}
        return json.dumps(body).encode() + b"\n" + checkpoint.MARK

    tail = f".{OTHER_BOOT}{checkpoint.SEGMENT}"
    (jdir / f"{1:020d}-a{tail}").write_bytes(record(1, b"first") + record(4, b"last"))
    (jdir / f"{2:020d}-b{tail}").write_bytes(record(2, b"second") + record(3, b"third"))
    assert journal.roll_forward(jdir) == 4
    assert (store / "shared.txt").read_bytes() == b"last"
    assert journal_files(jdir) == []


CRASHER = """
import os, signal, sys
from pathlib import Path
from yoi import checkpoint
from yoi.store import Store
store = Store.discover(Path(sys.argv[1]))
with checkpoint.deferred():
    with store.transaction() as tx:
        tx.write_text(store.yoi_dir / "notes" / "x.txt", "engine\\n")
        tx.write_text(store.yoi_dir / "notes" / "y.txt", "engine\\n")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_after_a_deferred_commit(repo: Path) -> Store:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", CRASHER, str(repo)], env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    store = Store.discover(repo)
    (segment,) = checkpoint.segments(store.runtime_dir / "journal")
    assert checkpoint.in_effect(segment)
    return store


def test_a_writer_outside_settles_a_killed_engines_commit_without_replaying_it(
    store_repo: Path,
) -> None:
    """Same boot: the killed process's files are in effect. A later edit that took no
    lock (a checkout, an editor) survives, and the journal is gone before the writer's
    own change, so nothing can replay it over that change after a later stop."""
    store = killed_after_a_deferred_commit(store_repo)
    x = store.yoi_dir / "notes" / "x.txt"
    assert x.read_text() == "engine\n"
    x.write_text("edited by hand\n")
    assert store.journal_pending()  # an engine run starts and settles it
    with store.transaction() as tx:
        tx.write_text(store.yoi_dir / "notes" / "z.txt", "cli\n")
    assert journal_files(store.runtime_dir / "journal") == []
    assert x.read_text() == "edited by hand\n"
    assert (store.yoi_dir / "notes" / "y.txt").read_text() == "engine\n"


def test_the_janitor_settles_a_killed_engines_commit(store_repo: Path) -> None:
    store = killed_after_a_deferred_commit(store_repo)
    report = janitor.clean(store)
    assert report.journals == 1 and "settled 1 journal segment" in report.summary()
    assert journal_files(store.runtime_dir / "journal") == []


def test_an_engine_run_syncs_twice_a_ticket(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Acceptance and outcome: a record each. The counts are the point of the design
    (docs/performance.md): a ticket made about thirty syncs before."""
    monkeypatch.chdir(repo)
    store = make_store(repo)
    for n in range(3):
        queue_with_patch(store, repo, f"Note {n}")
    from yoi.commands import engine

    engine.run(Store.discover(repo))  # warm: the first run's one-time writes
    for n in range(3, 8):
        queue_with_patch(store, repo, f"Note {n}")
    synced = synced_paths(monkeypatch)
    out = engine.run(Store.discover(repo))
    assert sum(t["outcome"] == "processed" for t in out.data["ticks"]) == 5
    assert sum(name.endswith(checkpoint.SEGMENT) for name in synced) == 5 * 2, synced
    assert len(synced) <= 5 * 2 + 3, synced  # directories: a new segment's, its removal's
    assert journal_files(store.runtime_dir / "journal") == []


def test_a_mark_that_cannot_be_written_settles_the_batch_at_once(
    dirs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unmarked, the record would be replayed by the next lock holder although the
    process ended well: the batch is synced and its segment removed instead."""
    store, jdir = dirs
    real_write = os.write

    def write(fd: int, data: bytes | memoryview) -> int:
        if bytes(data) == checkpoint.MARK:
            raise OSError(errno.EIO, "injected EIO")
        return real_write(fd, data)

    with checkpoint.deferred():
        journal.commit(jdir, store, [journal.Write("a", b"1"), journal.Write("b", b"1")])
        monkeypatch.setattr(os, "write", write)
        journal.commit(jdir, store, moving_ops())
        assert journal_files(jdir) == []
        monkeypatch.undo()
    assert (store / "done" / "t" / "old.txt").read_text() == "new\n"
    assert journal.pending(jdir) == []
