"""The batched fsyncs of ``fsio``: every descriptor and directory of a batch is synced
(together, from a thread pool, inside ``parallel_syncs``), the first error is raised after
all have finished, a directory that fails is named, and a forked child gets a pool of its
own."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from yoi import fsio


@pytest.fixture(autouse=True, params=["parallel", "sequential"])
def mode(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.param == "parallel":
        with fsio.parallel_syncs():
            yield
    else:
        yield


def staged(tmp_path: Path, n: int) -> list[tuple[int, str]]:
    return [fsio.stage(tmp_path / f"f{i}.txt", f"data {i}".encode()) for i in range(n)]


def close_all(files: list[tuple[int, str]]) -> None:
    for fd, _tmp in files:
        os.close(fd)


def test_every_staged_file_is_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = staged(tmp_path, 5)
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    fsio.sync_all_staged([fd for fd, _ in files])
    assert sorted(synced) == sorted(fd for fd, _ in files)
    close_all(files)


def test_the_first_error_is_raised_after_the_others_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = staged(tmp_path, 4)
    fds = [fd for fd, _ in files]
    bad = fds[1]
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        if fd == bad:
            raise OSError(5, "injected EIO")
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError, match="injected EIO"):
        fsio.sync_all_staged(fds)
    assert sorted(synced) == sorted(fd for fd in fds if fd != bad)
    close_all(files)


def test_a_directory_that_cannot_be_synced_is_named(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    gone = tmp_path / "gone"
    with pytest.raises(fsio.StoreIOError) as caught:
        fsio.fsync_dirs([good, gone])
    assert caught.value.where == str(gone)
    assert "sync the directory" in caught.value.message


def test_a_forked_child_syncs_with_a_pool_of_its_own(tmp_path: Path) -> None:
    files = staged(tmp_path, 3)
    fsio.sync_all_staged([fd for fd, _ in files])  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:  # the child: the parent's threads do not exist here
        try:
            fsio.sync_all_staged([fd for fd, _ in files])
            fsio.fsync_dirs([tmp_path, tmp_path])
        except BaseException:
            os._exit(1)
        os._exit(0)
    deadline_s = 60
    for _ in range(deadline_s * 20):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung on the parent's thread pool")
    assert os.waitstatus_to_exitcode(status) == 0
    close_all(files)


def test_no_thread_is_left_after_the_block(tmp_path: Path) -> None:
    import threading

    if fsio._parallel:
        pytest.skip("inside the fixture's block: this one is not the outermost")
    before = threading.active_count()
    with fsio.parallel_syncs():
        files = staged(tmp_path, 4)
        fsio.sync_all_staged([fd for fd, _ in files])
        assert threading.active_count() > before
    assert threading.active_count() == before
    close_all(files)
