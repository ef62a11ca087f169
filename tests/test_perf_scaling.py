"""How the work grows, counted rather than timed (no wall-time assertions here; the
timings live in bench/): a warm listing opens no ticket file and loads neither ruamel
nor jsonschema, a cold one opens each ticket.md once, reading a ticket or resolving a
name never parses another ticket, and an idle scan for pending events opens nothing that
belongs to done tickets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import git
from yoi import cache, tickets
from yoi.lifecycle import Action
from yoi.store import Store

PROBE = """
import json, sys
opened = []
def hook(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and ".yoi" in str(args[0]):
        opened.append((event, str(args[0])))
from yoi import cache
cache.RACY_NS = cache.RACY_COARSE_NS = -10**18
from yoi.store import Store
from yoi import events
store = Store.discover()
what = sys.argv[1]
if what == "warm":
    store.list_tickets()
sys.addaudithook(hook)
if what in ("warm", "cold"):
    found, invalid = store.list_tickets()
elif what == "show":
    found = [store.read_ticket(store.resolve(sys.argv[2]))]
elif what == "pending":
    events.all_events(store, pending_only=True)
    del opened[:]
    found = events.all_events(store, pending_only=True)
heavy = sorted(m for m in ("ruamel", "jsonschema", "pygit2") if m in sys.modules)
print(json.dumps({"n": len(found), "opened": opened, "heavy": heavy}))
"""


def probe(repo: Path, *args: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=repo, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.fixture
def store(store_repo: Path) -> Store:
    return Store.discover(store_repo)


def make(store: Store, count: int, prefix: str = "Task") -> list[str]:
    slugs = []
    for i in range(count):
        spec = tickets.NewTicket(title=f"{prefix} {i}", acceptance_criteria=["ok"])
        slugs.append(tickets.create(store, spec, by="ada").slug)
    return slugs


def ticket_files(opened: object) -> list[str]:
    assert isinstance(opened, list)
    return [p for event, p in opened if event == "open" and p.endswith("ticket.md")]


def test_cold_list_opens_each_ticket_once_and_warm_opens_none(
    store: Store, store_repo: Path
) -> None:
    make(store, 6)
    cold = probe(store_repo, "cold")
    assert cold["n"] == 6
    assert len(ticket_files(cold["opened"])) == 6
    assert cold["heavy"] == []
    warm = probe(store_repo, "warm")
    assert warm["n"] == 6 and ticket_files(warm["opened"]) == []
    assert warm["heavy"] == []
    opened = warm["opened"]
    assert isinstance(opened, list)
    assert all(
        (event == "open" and ".git/yoi/cache/" in p) or event == "os.scandir" for event, p in opened
    ), opened


def test_warm_list_cost_does_not_depend_on_ticket_count(store: Store, store_repo: Path) -> None:
    make(store, 3)
    small = probe(store_repo, "warm")
    make(store, 9, prefix="More")
    large = probe(store_repo, "warm")
    assert (small["n"], large["n"]) == (3, 12)
    assert len(small["opened"]) == len(large["opened"])  # type: ignore[arg-type]


def test_show_by_word_suffix_reads_one_ticket(store: Store, store_repo: Path) -> None:
    make(store, 5)
    slug = make(store, 1, prefix="Needle in haystack")[0]
    shown = probe(store_repo, "show", "in-haystack-0")
    assert shown["n"] == 1
    assert ticket_files(shown["opened"]) == [str(store.ticket_dir(slug) / "ticket.md")]
    assert shown["heavy"] == []


def test_idle_pending_scan_does_not_look_into_done(store: Store, store_repo: Path) -> None:
    slugs = make(store, 4)
    for slug in slugs[:3]:  # queued (a pending event each), then moved to done/
        tickets.transition(store, slug, Action.READY, by="ada")
        tickets.transition(store, slug, Action.QUEUE, by="ada")
    with store.transaction() as tx:
        for slug in slugs[:3]:
            tx.move(store.ticket_dir(slug), store.tickets_dir / "done" / slug)
    git(store_repo, "add", "-A")
    git(store_repo, "commit", "-q", "-m", "tickets")
    scan = probe(store_repo, "pending")
    assert scan["n"] == 3  # the index knows the done tickets' pending events
    opened = scan["opened"]
    assert isinstance(opened, list)
    assert [p for _e, p in opened if "/done/" in p] == []
    assert scan["heavy"] == []


def test_cache_files_hold_no_more_than_the_tickets(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "RACY_NS", -(10**18))
    make(store, 4)
    store.list_tickets()
    entries = cache.load(cache.cache_path(store.runtime_dir, store.yoi_dir, "tickets-open"))
    assert isinstance(entries, dict) and len(entries) == 4
