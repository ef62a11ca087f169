"""The context files a snapshot includes: ``context_paths`` resolved against the sorted
list of tracked files by bisection (the cost follows what is named, not the repository);
the tracked-file list it shows: every file outside the ticket store (``.yoi/``)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.helpers import init_repo
from yoi import snapshot
from yoi.git import Repo
from yoi.model import State, Ticket
from yoi.snapshot import _context_files, _outside_store

TRACKED = sorted(
    [
        "a.py",
        "src/a.py",
        "src/b/c.py",
        "src-old/x.py",
        "src2/x.py",
        "srcfile",
        "docs/guide.md",
        "docs/img/logo.png",
        "z/last.txt",
    ]
)


def _by_scan(tracked: list[str], wanted: list[str]) -> list[str]:
    """The plain reading of the rule: a tracked file, else every file under the dir."""
    out: list[str] = []
    for raw in wanted:
        path = raw.strip().strip("/")
        if path in tracked:
            out.append(path)
        else:
            out.extend(t for t in tracked if t.startswith(path + "/"))
    return list(dict.fromkeys(out))


def test_files_and_directories_in_the_order_named() -> None:
    wanted = ["src", "a.py", "missing", "/src2/", " docs/img ", "src/a.py"]
    assert _context_files(tuple(TRACKED), wanted) == [
        "src/a.py",
        "src/b/c.py",
        "a.py",
        "src2/x.py",
        "docs/img/logo.png",
    ]
    assert _context_files(tuple(TRACKED), ["sr", "", "/", "z/last.txt/"]) == ["z/last.txt"]


def test_agrees_with_a_scan_of_every_file() -> None:
    rng = random.Random(7)
    names = ["a", "b", "a-b", "a.b", "ab", "a_b"]
    tracked = sorted(
        {"/".join(rng.choice(names) for _ in range(rng.randint(1, 4))) for _ in range(300)}
    )
    dirs = {t.rsplit("/", 1)[0] for t in tracked if "/" in t}
    tracked = [t for t in tracked if t not in dirs]  # a path is a file or a directory
    candidates = [*tracked[:40], *sorted(dirs)[:40], "a/", "zz", "a-b/a"]
    for _ in range(200):
        wanted = rng.sample(candidates, rng.randint(0, 6))
        assert _context_files(tuple(tracked), wanted) == _by_scan(tracked, wanted)


def test_the_ticket_store_is_left_out_of_the_listing() -> None:
    rng = random.Random(11)
    names = [".yoi", ".yoi-example", ".yoi.bak", ".yoi0", ".yoia", ".gitignore", "src", "a"]
    for _ in range(300):

        def name() -> str:
            return "/".join([rng.choice(names), *rng.choices("xyz", k=rng.randint(1, 2))])

        tracked = sorted({name() for _ in range(rng.randint(0, 40))})
        outside = [t for t in tracked if not t.startswith(".yoi/")]
        cap = rng.choice([1, 3, 1000])
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(snapshot, "MAX_LISTED_FILES", cap)
            listed, count, in_store = _outside_store(tuple(tracked))
        assert listed == outside[:cap]
        assert (count, in_store) == (len(outside), len(tracked) - len(outside))


def test_a_store_of_many_tickets_does_not_crowd_the_repository_out(tmp_path: Path) -> None:
    """Sorted, ``.yoi/`` comes before ``src/``: with more store files than the listing's
    cap, a listing that kept them would show no file of the repository itself."""
    files: dict[str, str | bytes] = {"README.md": "hi\n", "src/app.py": "print(1)\n"}
    files.update({f".yoi/tickets/done/t{i:04d}/ticket.md": f"{i}\n" for i in range(30)})
    repo = Repo.open(init_repo(tmp_path / "repo", files))
    ticket = Ticket("t", tmp_path, "Title", State.QUEUED, "2026-01-01T00:00:00Z", "x")
    base = snapshot.Base("HEAD", repo.resolve_commit("HEAD"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(snapshot, "MAX_LISTED_FILES", 10)
        text, facts = snapshot.prompt_text(repo, ticket, base, [], 64 * 1024)
    listing = text.split("## Tracked files (2)\n\n", 1)[1]
    assert listing == "README.md\nsrc/app.py\n(.yoi/, the ticket store, is not listed: 30 files)\n"
    assert facts["tracked_files"] == 2 and not facts["truncated"]
