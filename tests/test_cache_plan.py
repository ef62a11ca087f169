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
