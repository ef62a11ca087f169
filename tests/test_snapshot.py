"""The context files a snapshot includes: ``context_paths`` resolved against the sorted
list of tracked files by bisection (the cost follows what is named, not the repository)."""

from __future__ import annotations

import random

from yoi.snapshot import _context_files

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
