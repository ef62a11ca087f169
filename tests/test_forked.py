"""split_map: the same list as a plain map, with the work really shared by a forked
child when that is safe, and the parent's own computation when the child fails."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from yoi import cache_tickets, forked
from yoi.store import Store


@pytest.fixture(autouse=True)
def _forkable() -> None:
    if not forked.can_fork():
        pytest.skip("needs Linux, two usable CPUs and no other thread in this process")


def test_results_equal_a_plain_map_and_half_come_from_a_child() -> None:
    parent = os.getpid()
    items = list(range(101))
    got = forked.split_map(lambda x: (x * x, os.getpid()), items, min_items=10)
    assert [v for v, _pid in got] == [x * x for x in items]
    pids = {pid for _v, pid in got}
    assert parent in pids and len(pids) == 2  # every other item ran in the child


def test_short_lists_stay_in_the_process() -> None:
    got = forked.split_map(lambda x: os.getpid(), [1, 2, 3], min_items=10)
    assert set(got) == {os.getpid()}


def test_no_fork_with_other_threads_or_when_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        got = forked.split_map(lambda x: os.getpid(), list(range(50)), min_items=1)
        assert set(got) == {os.getpid()}
    finally:
        stop.set()
        thread.join()
    monkeypatch.setenv("YOI_PARALLEL", "0")
    assert not forked.can_fork()


def test_a_child_that_dies_is_replaced_by_the_parent() -> None:
    parent = os.getpid()

    def work(x: int) -> int:
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)  # the child dies mid-way
        return x + 1

    assert forked.split_map(work, list(range(40)), min_items=2) == list(range(1, 41))


def test_a_child_that_raises_or_sends_garbage_is_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parent = os.getpid()

    def work(x: int) -> object:
        if os.getpid() != parent:
            return object()  # not marshal-able: the child exits with an error
        return x

    assert forked.split_map(work, list(range(20)), min_items=2) == list(range(20))
    monkeypatch.setattr(forked, "_decode", lambda data, count: None)
    assert forked.split_map(lambda x: x, list(range(20)), min_items=2) == list(range(20))
    assert sys.exc_info() == (None, None, None)


def test_a_cold_list_read_by_two_processes_equals_one(
    store_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's cold listing through split_map gives what one process gives."""
    from tests.test_cache import populate, reference, same, settle

    store = Store.discover(store_repo)
    settle(monkeypatch)
    populate(store)
    (store.tickets_dir / "open" / "20200101-000000-broken").mkdir()
    (store.tickets_dir / "open" / "20200101-000000-broken" / "ticket.md").write_text("no\n")
    monkeypatch.setattr(cache_tickets, "PARALLEL_MIN", 1)
    calls: list[int] = []
    real = forked.split_map

    def counted(fn: Callable[[Any], Any], items: Sequence[Any], *, min_items: int) -> list[Any]:
        calls.append(len(items))
        return real(fn, items, min_items=1)

    monkeypatch.setattr(forked, "split_map", counted)
    same(store.list_tickets(), reference(store))
    rows, invalid = cache_tickets.list_rows(store, {"ready", "queued", "planning", "blocked"})
    assert calls and calls[0] >= 4
    assert len(invalid) == 1 and "broken" in invalid[0].path
    assert sorted(r[0] for r in rows) == sorted(t.slug for t in reference(store)[0])
    assert all(r[5] for r in rows if r[1] != "done")
