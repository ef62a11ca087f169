"""The ticket cache: a warm `list_tickets` equals reading every ticket.md, and no edit,
addition or removal made behind yoi's back is ever served stale, whatever the cache
file holds (damaged, foreign, from another yoi) and whoever writes it concurrently."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from yoi import cache, cache_tickets, tickets
from yoi.errors import InvalidRecordError, Problem
from yoi.lifecycle import Action
from yoi.model import BlockerKind, Ticket
from yoi.store import TICKET_FILE, Store

OLD = 1_600_000_000  # a whole second well in the past: keys are never racy


@pytest.fixture
def store(store_repo: Path) -> Store:
    return Store.discover(store_repo)


def reference(store: Store) -> tuple[list[Ticket], list[Problem]]:
    """Every ticket.md read with the full loader (what list_tickets did before caching)."""
    found: list[Ticket] = []
    invalid: list[Problem] = []
    for _bucket, slug, tdir in store.iter_ticket_dirs():
        try:
            found.append(store.load_ticket(slug, tdir).ticket)
        except InvalidRecordError as exc:
            first = exc.problems[0]
            invalid.append(Problem(store.rel(tdir / TICKET_FILE), first.pointer, first.message))
    return found, invalid


def age(store: Store) -> None:
    """Give every ticket file an old timestamp (ctime stays recent: utime sets it)."""
    for _b, _s, tdir in store.iter_ticket_dirs():
        os.utime(tdir / TICKET_FILE, (OLD, OLD))


def settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat every key as stable (the files of a test are seconds old at most)."""
    monkeypatch.setattr(cache, "RACY_NS", -(10**18))
    monkeypatch.setattr(cache, "RACY_COARSE_NS", -(10**18))


def populate(store: Store) -> list[str]:
    slugs = []
    for i, title in enumerate(["Plain one", "Queued two", "Blocked three", "Ready four"]):
        spec = tickets.NewTicket(
            title=title, acceptance_criteria=["works"], labels=("x",), body=f"Body {i}.\n"
        )
        slug = tickets.create(store, spec, by="ada").slug
        slugs.append(slug)
    tickets.transition(store, slugs[1], Action.READY, by="ada")
    tickets.transition(store, slugs[1], Action.QUEUE, by="ada")
    tickets.add_blocker(store, slugs[2], kind=BlockerKind.USER_INPUT, description="db?", by="ada")
    tickets.transition(store, slugs[3], Action.READY, by="ada")
    return slugs


def listed(store: Store) -> tuple[list[Ticket], list[Problem]]:
    return store.list_tickets()


def same(a: tuple[list[Ticket], list[Problem]], b: tuple[list[Ticket], list[Problem]]) -> None:
    assert a[0] == b[0]
    assert [t.path for t in a[0]] == [t.path for t in b[0]]
    assert a[1] == b[1]


def test_warm_list_equals_reading_every_file(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    settle(monkeypatch)
    populate(store)
    bad = store.tickets_dir / "open" / "20260101-000000-broken"
    bad.mkdir()
    (bad / TICKET_FILE).write_text("---\ntitle: x\nstate: nope\n---\n")
    commented = store.tickets_dir / "open" / "20260101-000001-commented"
    commented.mkdir()
    (commented / TICKET_FILE).write_text(
        "---\n# a comment people wrote\ntitle: Commented\nstate: planning\n"
        'created_at: "2026-01-01T00:00:01Z"\nupdated_at: "2026-01-01T00:00:01Z"\n---\n\nHi\n'
    )
    cold = listed(store)
    assert cache.cache_path(store.runtime_dir, store.yoi_dir, "tickets-open").is_file()
    warm = listed(store)
    same(cold, reference(store))
    same(warm, reference(store))
    assert [p.path for p in warm[1]] == [".yoi/tickets/open/20260101-000000-broken/ticket.md"]


def test_warm_list_reads_no_ticket_file(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    settle(monkeypatch)
    populate(store)
    listed(store)
    opened: list[str] = []

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event == "open" and str(args[0]).endswith(TICKET_FILE):
            opened.append(str(args[0]))

    sys.addaudithook(hook)
    warm = listed(store)
    assert opened == [] and len(warm[0]) == 4


def edit_in_place(path: Path, old: str, new: str) -> None:
    """Same size, written in place (same inode), mtime put back to what it was."""
    assert len(old) == len(new)
    st = path.stat()
    text = path.read_text()
    assert old in text
    with open(path, "r+", encoding="utf-8") as f:
        f.write(text.replace(old, new, 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_ino, after.st_mtime_ns) == (
        st.st_size,
        st.st_ino,
        st.st_mtime_ns,
    )


def test_same_size_edit_with_the_old_mtime_is_seen(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle(monkeypatch)
    slug = populate(store)[0]
    age(store)
    listed(store)
    path = store.ticket_dir(slug) / TICKET_FILE
    edit_in_place(path, "title: Plain one", "title: Plain two")
    assert [t.title for t in listed(store)[0] if t.slug == slug] == ["Plain two"]
    assert store.read_ticket(slug).title == "Plain two"


def test_replaced_file_with_same_size_and_times_is_seen(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle(monkeypatch)
    slug = populate(store)[0]
    age(store)
    listed(store)
    path = store.ticket_dir(slug) / TICKET_FILE
    st = path.stat()
    tmp = path.with_name("new.md")
    tmp.write_text(path.read_text().replace("Plain one", "Plain 1!!"))
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, path)
    assert [t.title for t in listed(store)[0] if t.slug == slug] == ["Plain 1!!"]


def test_added_removed_and_moved_tickets_are_seen(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle(monkeypatch)
    slugs = populate(store)
    listed(store)
    src = store.ticket_dir(slugs[0])
    copy = store.tickets_dir / "open" / "20260102-000000-copied"
    copy.mkdir()
    (copy / TICKET_FILE).write_bytes((src / TICKET_FILE).read_bytes())
    os.utime(copy / TICKET_FILE, (OLD, OLD))
    (store.ticket_dir(slugs[3]) / TICKET_FILE).unlink()
    os.rename(store.ticket_dir(slugs[2]), store.tickets_dir / "done" / slugs[2])
    found, invalid = listed(store)
    same((found, invalid), reference(store))
    assert "20260102-000000-copied" in [t.slug for t in found]
    assert [p.message for p in invalid] == ["ticket.md is missing"]
    assert [t.path.parent.name for t in found if t.slug == slugs[2]] == ["done"]


def test_invalid_ticket_result_is_cached_and_refreshed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle(monkeypatch)
    slug = populate(store)[0]
    path = store.ticket_dir(slug) / TICKET_FILE
    edit_in_place(path, "state: planning", "state: planxing")
    first = listed(store)
    assert [p.pointer for p in first[1]] == ["/state"]
    assert listed(store) == first
    edit_in_place(path, "state: planxing", "state: planning")
    assert listed(store)[1] == [] and len(listed(store)[0]) == 4


def test_a_symlinked_ticket_file_is_listed_as_invalid(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle(monkeypatch)
    slug = populate(store)[0]
    path = store.ticket_dir(slug) / TICKET_FILE
    target = store.root / "elsewhere.md"
    target.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(target)
    for _ in range(2):  # cold, then from the cache
        found, invalid = listed(store)
        assert slug not in [t.slug for t in found] and len(found) == 3
        assert [p.path for p in invalid] == [store.rel(path)]
        assert "symlink" in invalid[0].message


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty", "foreign"])
def test_damaged_cache_file_is_ignored_and_rebuilt(
    store: Store, damage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle(monkeypatch)
    populate(store)
    listed(store)
    path = cache.cache_path(store.runtime_dir, store.yoi_dir, "tickets-open")
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        path.write_bytes(blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(blob)))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        monkeypatch.setattr(cache, "_fingerprint", "another yoi")
    assert cache.load(path) is None
    same(listed(store), reference(store))
    assert cache.load(path) is not None  # rebuilt


def test_poisoned_entry_with_a_wrong_key_is_not_trusted(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache that lies about content but not about keys can only come from a writer that
    stat()ed after reading; we stat before. A lying key never matches: the file is read."""
    settle(monkeypatch)
    slug = populate(store)[0]
    listed(store)
    path = cache.cache_path(store.runtime_dir, store.yoi_dir, "tickets-open")
    entries = cache.load(path)
    key = entries[slug]
    fields = list(key[4])
    fields[cache_tickets._FIELDS.index("title")] = "poisoned"
    entries[slug] = (key[0] - 1, *key[1:4], tuple(fields), None)
    cache.save(path, entries)
    assert "poisoned" not in [t.title for t in listed(store)[0]]


def test_recent_files_are_not_cached_until_they_age(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cache.is_racy((OLD * 10**9, 1, 1, cache.now_ns()), cache.now_ns())
    assert not cache.is_racy((OLD * 10**9, 1, 1, OLD * 10**9 + 5), cache.now_ns())
    coarse = cache.now_ns() // 10**9 * 10**9 - 10**9  # a second ago, whole seconds
    assert cache.is_racy((coarse, 1, 1, coarse), cache.now_ns())
    slug = populate(store)[0]
    monkeypatch.setattr(cache, "RACY_NS", 600 * 10**9)  # everything changed "just now"
    same(listed(store), reference(store))
    path = cache.cache_path(store.runtime_dir, store.yoi_dir, "tickets-open")
    assert slug not in (cache.load(path) or {})
    settle(monkeypatch)
    listed(store)
    assert slug in (cache.load(path) or {})


def test_cache_off_writes_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    settle(monkeypatch)
    populate(store)
    monkeypatch.setenv("YOI_CACHE", "0")
    same(listed(store), reference(store))
    assert not (store.runtime_dir / cache.CACHE_DIR).exists() or not any(
        p.suffix == ".bin" for p in (store.runtime_dir / cache.CACHE_DIR).iterdir()
    )


def test_drop_removes_the_cache_files(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    settle(monkeypatch)
    populate(store)
    listed(store)
    assert cache.drop(store.runtime_dir) >= 1
    same(listed(store), reference(store))


def test_worktree_stores_do_not_share_entries(tmp_path: Path) -> None:
    a, b = Path("/x/a/.yoi"), Path("/x/b/.yoi")
    assert cache.cache_path(tmp_path, a, "t") != cache.cache_path(tmp_path, b, "t")


# ---- real processes: every command sees changes made behind yoi's back -----------------


def yoi(repo: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "yoi", *args], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_commands_see_edits_made_behind_their_back(store: Store, store_repo: Path) -> None:
    slugs = populate(store)
    age(store)
    for _ in range(2):
        yoi(store_repo, "ticket", "list", "--json")  # cold, then warm
    edit_in_place(store.ticket_dir(slugs[0]) / TICKET_FILE, "Plain one", "Plain ONE")
    (store.ticket_dir(slugs[3]) / TICKET_FILE).unlink()
    listing = json.loads(yoi(store_repo, "ticket", "list", "--json"))
    assert [t["title"] for t in listing["tickets"] if t["slug"] == slugs[0]] == ["Plain ONE"]
    assert [i["path"] for i in listing["invalid"]] == [f".yoi/tickets/open/{slugs[3]}/ticket.md"]
    shown = json.loads(yoi(store_repo, "ticket", "show", slugs[0], "--json"))
    assert shown["ticket"]["title"] == "Plain ONE"


# ---- concurrency: readers and writers in parallel processes ------------------------------

READER = """
import sys, json
from yoi.store import Store
store = Store.discover()
for _ in range(int(sys.argv[1])):
    found, invalid = store.list_tickets()
found, invalid = store.list_tickets()
print(json.dumps(sorted((t.slug, t.title, t.updated_at) for t in found)))
"""


def test_parallel_readers_and_a_writer_agree_at_the_end(
    store: Store, store_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slugs = populate(store)
    age(store)
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, "15"], cwd=store_repo, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    for i in range(6):
        tickets.edit(store, slugs[i % 2], tickets.TicketEdit(title=f"Edited {i}"))
    for r in readers:
        r.wait(timeout=300)
    settle(monkeypatch)
    expected = sorted((t.slug, t.title, t.updated_at) for t in reference(store)[0])
    final = subprocess.run(
        [sys.executable, "-c", READER, "1"],
        cwd=store_repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(final.stdout) == [list(e) for e in expected]
    same(listed(store), reference(store))


def expected_listing(store: Store) -> str:
    """`ticket list --json --state all` as the full loader and json.dumps make it."""
    from yoi.output import Output, ticket_dict

    found, invalid = reference(store)
    found.sort(key=lambda t: (t.created_at, t.slug))
    data = {
        "tickets": [ticket_dict(store, t) for t in found],
        "invalid": [{"path": p.path, "error": p.render()} for p in invalid],
    }
    return Output(data).json() + "\n"


def test_the_listing_rows_follow_every_change_behind_yois_back(
    store: Store, store_repo: Path
) -> None:
    """The CLI listing (row cache, ready JSON texts) is byte for byte what reading every
    file gives, after in-place same-size edits, added, removed and moved tickets, and
    after a listing that hid the done tickets (their rows are completed on demand)."""
    slugs = populate(store)
    age(store)
    tickets.transition(store, slugs[3], Action.QUEUE, by="ada")
    yoi(store_repo, "ticket", "list", "--json")  # cold: done rows stay incomplete
    assert yoi(store_repo, "ticket", "list", "--json", "--state", "all") == expected_listing(store)
    edit_in_place(store.ticket_dir(slugs[0]) / TICKET_FILE, "Plain one", "Plain ONE")
    copy = store.tickets_dir / "open" / "20200101-000000-copied-by-hand"
    shutil.copytree(store.ticket_dir(slugs[1]), copy)
    shutil.rmtree(store.ticket_dir(slugs[2]))
    moved = store.tickets_dir / "done" / slugs[3]
    store.ticket_dir(slugs[3]).rename(moved)  # a ticket moved to done/ by hand (invalid)
    for _ in range(2):  # cold for the changed files, then warm
        listing = yoi(store_repo, "ticket", "list", "--json", "--state", "all")
        assert listing == expected_listing(store)
    assert "Plain ONE" in listing and "copied-by-hand" in listing
