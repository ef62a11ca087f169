"""The plan-record cache across processes (``cache_plan``): every command sees plan
records added, edited (same size, old mtime), replaced and removed behind its back, a
damaged cache file is ignored, and a warm pass parses no record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.test_cache import OLD, edit_in_place, populate, settle, yoi
from yoi import cache, cache_plan, plan
from yoi import store as store_mod
from yoi.store import Store


@pytest.fixture
def store(store_repo: Path) -> Store:
    return Store.discover(store_repo)


def _records(repo: Path) -> list[tuple[str, str, str | None, str | None]]:
    listing = json.loads(yoi(repo, "plan", "list", "--json"))
    return sorted(
        (r["record_id"], r["kind"], r.get("related_ticket"), r.get("note"))
        for r in listing["records"]
    )


def _age_plan_files(store: Store) -> None:
    for path in store.tickets_dir.glob("*/*/plan/*.yaml"):
        os.utime(path, (OLD, OLD))


def test_commands_see_plan_records_changed_behind_their_back(
    store: Store, store_repo: Path
) -> None:
    slugs = populate(store)
    for other in slugs[1:3]:
        yoi(
            store_repo,
            "plan",
            "add",
            slugs[0],
            "--kind",
            "conflicts_with",
            "--related",
            other,
            "--note",
            "note AAAA",
        )
    _age_plan_files(store)
    first = _records(store_repo)  # cold: writes the cache file
    assert len(first) == 2 and cache_plan._path(store).exists()
    assert _records(store_repo) == first  # warm
    files = sorted(store.tickets_dir.glob("*/*/plan/*.yaml"))
    edit_in_place(files[0], "note AAAA", "note BBBB")  # same size, same inode, old mtime
    files[1].unlink()
    yoi(store_repo, "plan", "add", slugs[3], "--kind", "depends_on", "--related", slugs[0])
    seen = _records(store_repo)
    assert len(seen) == 2
    assert [r[3] for r in seen if r[1] == "conflicts_with"] == ["note BBBB"]
    assert [r[2] for r in seen if r[1] == "depends_on"] == [slugs[0]]
    # a replaced file with the same size and times is seen too
    st = files[0].stat()
    tmp = files[0].with_name("replacement.tmp")
    tmp.write_text(files[0].read_text().replace("note BBBB", "note CCCC"))
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, files[0])
    assert [r[3] for r in _records(store_repo) if r[1] == "conflicts_with"] == ["note CCCC"]


def test_damaged_cache_file_is_ignored(store: Store, store_repo: Path) -> None:
    slugs = populate(store)
    yoi(store_repo, "plan", "add", slugs[0], "--kind", "before", "--related", slugs[1])
    _age_plan_files(store)
    expected = _records(store_repo)
    path = cache_plan._path(store)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    assert _records(store_repo) == expected


def test_a_warm_pass_parses_no_record(
    store: Store, store_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settle(monkeypatch)
    slugs = populate(store)
    for kind in ("before", "blocks"):
        yoi(store_repo, "plan", "add", slugs[0], "--kind", kind, "--related", slugs[1])
    yoi(store_repo, "plan", "add", slugs[0], "--kind", "accepted_plan", "--summary", "s")
    cold = [(r.path, r.data) for r in plan._every_record(store)]
    assert len(cold) == 3
    cache_plan._NAMES.clear()
    cache_plan._DATA.clear()
    cache_plan._LOADED.clear()  # as a new process: only the cache file is left
    reads: list[Path] = []
    real = store_mod.Store.read_record

    def counting(self: Store, path: Path, kind: str) -> dict[str, object]:
        reads.append(path)
        return real(self, path, kind)

    monkeypatch.setattr(store_mod.Store, "read_record", counting)
    assert [(r.path, r.data) for r in plan._every_record(store)] == cold
    assert reads == []
    relations = plan._every_record(store, plan._RELATION_NAMES)
    assert sorted(r.kind.value for r in relations) == ["before", "blocks"]
    assert cache.enabled()


def test_a_record_that_vanishes_while_it_is_read_is_skipped(store: Store) -> None:
    """Readers do not take the lock (the queue gate reads every relation before its
    transition): a record listed, then gone before it is opened (its ticket moved to
    done/ by an engine, a checkout) is absent from the pass, not an internal error."""
    slugs = populate(store)
    base = f"{store.ticket_dir(slugs[0])}/plan"
    gone = f"{base}/plan-20260301100000-note-ffffff.yaml"
    assert cache_plan._read(str(store.yoi_dir), store, gone) is None
    assert cache_plan._read(str(store.yoi_dir), store, f"{gone}/inside.yaml") is None


def test_relations_read_while_records_come_and_go(store: Store, store_repo: Path) -> None:
    """Real processes: one writes and deletes plan records over and over (new inodes,
    so every pass reads them), another reads every relation meanwhile; the reader never
    fails."""
    import subprocess
    import sys

    slugs = populate(store)
    plan_dir = store.ticket_dir(slugs[0]) / "plan"
    plan_dir.mkdir(exist_ok=True)
    churn = (
        "import os, sys, time\n"
        "d, text = sys.argv[1], sys.argv[2]\n"
        "end = time.monotonic() + 3\n"
        "i = 0\n"
        "while time.monotonic() < end:\n"
        "    p = os.path.join(d, f'plan-20260301100000-depends-on-{i % 7:06d}.yaml')\n"
        "    with open(p, 'w') as f: f.write(text.replace('IDX', f'{i % 7:06d}'))\n"
        "    os.unlink(p)\n"
        "    i += 1\n"
    )
    record = (
        "record_id: plan-20260301100000-depends-on-IDX\n"
        f"ticket: {slugs[0]}\nkind: depends_on\nrelated_ticket: {slugs[1]}\n"
        "author: ada\nat: '2026-03-01T10:00:00Z'\n"
    )
    reader = (
        "import time\n"
        "from yoi import cache, plan\n"
        "from yoi.store import Store\n"
        "cache.RACY_NS = cache.RACY_COARSE_NS = -10**18\n"
        "store = Store.discover()\n"
        "end = time.monotonic() + 3\n"
        "while time.monotonic() < end:\n"
        "    plan.relation_records(store)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", churn, str(plan_dir), record])
    read = subprocess.run(
        [sys.executable, "-c", reader], cwd=store_repo, capture_output=True, text=True, timeout=120
    )
    writer.wait(timeout=60)
    assert read.returncode == 0, read.stderr
