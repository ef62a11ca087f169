"""The batched fsyncs of ``fsio``: every descriptor and directory of a batch is synced,
the first error is raised after all have run, and a directory that fails is named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import counted_fsyncs
from yoi import fsio


def staged(tmp_path: Path, n: int) -> list[tuple[int, str]]:
    return [fsio.stage(tmp_path / f"f{i}.txt", f"data {i}".encode()) for i in range(n)]


def close_all(files: list[tuple[int, str]]) -> None:
    for fd, _tmp in files:
        os.close(fd)


def test_every_staged_file_is_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = staged(tmp_path, 5)
    synced = counted_fsyncs(monkeypatch)
    fsio.sync_all_staged([fd for fd, _ in files])
    assert sorted(synced) == sorted(fd for fd, _ in files)
    close_all(files)


def test_the_first_error_is_raised_after_the_others_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = staged(tmp_path, 4)
    fds = [fd for fd, _ in files]
    bad = fds[1]
    synced = counted_fsyncs(monkeypatch, failing=bad)
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
