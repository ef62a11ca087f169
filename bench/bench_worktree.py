"""A run's private worktree in a big store: what a `command` runner or a command gate
costs before it starts, against git's own worktree of the same commit.

- yoi: one process that makes the private worktree a run or a gate gets
  (``Repo.add_private_worktree``, the ticket store left out), reads its files back as a
  run does (``workdir_diff``), and removes it.
- baseline: ``git worktree add --detach`` of the same commit and ``git worktree remove
  --force`` (every tracked file, the store's ten per ticket included, written and
  deleted).

The store's repository commits its `.yoi/` (as a team's does), so it holds about ten
files per ticket. Runs alternate between the two cases (``interleaved``).

    python bench/bench_worktree.py [--tickets 2000] [--repeat 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gen_store
from bench._common import PY, Row, interleaved, parser, report, run, workspace

PRIVATE = """
import sys
from pathlib import Path
from yoi.git import Repo
repo = Repo.open(Path("."))
worktree = repo.add_private_worktree(repo.resolve_commit("HEAD"), Path(sys.argv[1]), "bench-wt")
assert worktree.workdir_diff() == b""
assert repo.remove_private_worktree("bench-wt")
"""


def measure(repo: Path, work: Path, n: int, repeat: int) -> list[Row]:
    target = work / "wt"

    def yoi_worktree() -> None:
        run([PY, "-c", PRIVATE, str(target)], repo)

    def git_worktree() -> None:
        run(["git", "worktree", "add", "--detach", "-q", str(target), "HEAD"], repo)
        run(["git", "worktree", "remove", "--force", str(target)], repo)

    ours, floor = interleaved([(yoi_worktree, None), (git_worktree, None)], repeat)
    files = len(run(["git", "ls-files"], repo).stdout.splitlines())
    return [
        Row(
            "run worktree",
            f"make, read back, remove ({files:,} tracked files)",
            n,
            ours,
            "git worktree add+remove",
            floor,
        )
    ]


def main() -> None:
    p = parser(__doc__.split("\n\n")[0], tickets=2000, repeat=3)
    args = p.parse_args()
    with workspace("worktree", args.keep) as work:
        templates = gen_store.build_templates(work)
        repo = work / "store"
        gen_store.generate(repo, args.tickets, templates)
        gen_store.settle()
        report(measure(repo, work, args.tickets, args.repeat))


if __name__ == "__main__":
    main()
