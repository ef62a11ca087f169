"""Engine throughput: ``yoi engine run`` over N queued tickets with the patch-file runner,
against the same work done with plain git plumbing, one spawn per step.

- engine: a store with ``--tickets`` queued tickets (each with its own patch file that
  adds one file), then one ``yoi engine run`` until idle: every ticket is accepted, its
  patch applied in a private worktree, committed on its work branch, gated, recorded.
- two engines: the same store, drained by ``yoi engine run --jobs 2`` (two engine
  processes at once; each event is claimed by one of them). Reported against the same
  floor, for what a second core gives; the target is the one-engine row.
- floor: for each patch, from a copy of the base commit's index: ``git apply --cached``,
  ``git write-tree``, ``git commit-tree``, ``git update-ref`` (create-only) on a branch;
  four processes per ticket (``commit-tree`` needs the tree that ``write-tree`` makes).

The figures are seconds per ticket; ratio = engine / floor (<= 1.0 means the engine's
throughput is at least the floor's). Two more rows split the one-engine run's CPU time
per ticket into user and system (kernel) time, each against the floor's: on a disk where
creating a file is dear, the system row is where it shows.

No store is deleted until every run is done: on ext4 without a journal (the disk of the
machine these figures come from), the inode allocator passes over every inode freed in
the last minute or more each time it creates a file (``recently_deleted``), so deleting a
store next to the one about to be timed makes each file the engine creates cost several
times more for a while.

``--store-tickets N`` times the same 200 (``--tickets``) queued tickets in a store of N
tickets, the rest done (what a store looks like after months of use), the floor working
on the same repository: a run's cost should follow its own ticket, not the store.

When ``yoi.engine`` has no ``tick``/``run`` yet the script waits for it (``--wait``
seconds, default 0: report "not available").

    python bench/bench_engine.py [--tickets 200] [--store-tickets N] [--repeat 1] [--wait 0]
"""

from __future__ import annotations

import importlib
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gen_store
from bench._common import Row, Spent, env, parser, report, run, timed_cpu, workspace, yoi


def engine_available() -> bool:
    try:
        engine = importlib.import_module("yoi.engine")
    except ImportError:
        return False
    return callable(getattr(engine, "tick", None)) or callable(getattr(engine, "run", None))


def wait_for_engine(seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not engine_available():
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(30.0, max(0.0, deadline - time.monotonic())))
        importlib.invalidate_caches()
        sys.modules.pop("yoi.engine", None)
    return True


def floor_run(repo: Path, clones: list[gen_store.Clone]) -> Spent:
    """Time spent by the plumbing floor over every queued ticket's patch."""
    base = run(["git", "rev-parse", "HEAD"], repo).stdout.decode().strip()
    index = repo / ".git" / "bench-floor-index"
    run(["git", "read-tree", base], repo, extra_env={"GIT_INDEX_FILE": str(index)})
    work = repo / ".git" / "bench-floor-work"

    def one(clone: gen_store.Clone) -> None:
        shutil.copyfile(index, work)
        idx = {"GIT_INDEX_FILE": str(work)}
        patch = str(repo / "patches" / f"{clone.patch_name}.diff")
        run(["git", "apply", "--cached", patch], repo, extra_env=idx)
        tree = run(["git", "write-tree"], repo, extra_env=idx).stdout.decode().strip()
        commit = run(["git", "commit-tree", tree, "-p", base, "-m", clone.title], repo)
        sha = commit.stdout.decode().strip()
        run(["git", "update-ref", f"refs/heads/floor/{clone.slug}", sha, "0" * 40], repo)

    def every() -> None:
        for clone in clones:
            one(clone)

    return timed_cpu(every)


def engine_run(repo: Path, count: int, engines: int = 1) -> Spent:
    """Time spent by ``yoi engine run --jobs engines`` to finish every ticket."""

    def drain() -> None:
        argv = yoi("engine", "run", "--jobs", str(engines))
        proc = subprocess.Popen(argv, cwd=repo, env=env(), stdout=subprocess.PIPE)
        proc.communicate(timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"yoi engine run failed ({proc.returncode})")

    done = repo / ".yoi" / "tickets" / "done"

    def finished() -> int:
        return sum(1 for p in done.iterdir() if not p.name.startswith("."))

    before = finished()
    spent = timed_cpu(drain)
    if finished() - before != count:
        raise RuntimeError(f"the engines finished {finished() - before} of {count} tickets")
    return spent


def measure(
    work: Path,
    n: int,
    templates: dict[str, gen_store.Template],
    repeat: int,
    total: int | None = None,
) -> list[Row]:
    """Medians over ``repeat`` fresh stores of the time spent per ticket. The stores stay
    until the workspace goes (see the module docstring: no deletion before a timed run).
    ``total``: tickets in the store, ``n`` of them queued and the rest done (the floor
    works on the same repository); without it every ticket is queued, and the two-engine
    row is measured too."""
    size = total or n
    floors: list[Spent] = []
    engines: list[Spent] = []
    pairs: list[Spent] = []
    for k in range(repeat):
        repo = work / f"engine-{size}-{k}"
        clones = gen_store.generate(repo, size, templates, queued=n)
        queued = [c for c in clones if (repo / "patches" / f"{c.patch_name}.diff").exists()]
        floors.append(floor_run(repo, queued).per(n))
        gen_store.settle()  # the floor's writes reach the disk before the engine is timed
        engines.append(engine_run(repo, n).per(n))
        if total is None:
            repo = work / f"engines-{n}-{k}"
            gen_store.generate(repo, n, templates, queued=n)
            pairs.append(engine_run(repo, n, engines=2).per(n))

    def med(spent: list[Spent], field: str) -> float:
        return statistics.median(float(getattr(s, field)) for s in spent)

    def row(case: str, field: str, spent: list[Spent], target: str = "") -> Row:
        floor = med(floors, field)
        return Row("engine throughput", case, n, med(spent, field), "git plumbing", floor, target)

    if total is not None:
        return [row(f"s per ticket, {total}-ticket store", "wall", engines)]
    return [
        row("s per ticket", "wall", engines, "<= 1.0x"),
        row("2 engines (--jobs 2)", "wall", pairs),
        row("user CPU per ticket", "user", engines),
        row("system CPU per ticket", "system", engines),
    ]


def main() -> None:
    p = parser(__doc__.split("\n\n")[0], tickets=200, repeat=1)
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the engine")
    p.add_argument(
        "--store-tickets",
        type=int,
        default=None,
        help="tickets in the store: --tickets of them queued, the rest done (default: all queued)",
    )
    args = p.parse_args()
    if args.store_tickets is not None and args.store_tickets <= args.tickets:
        p.error("--store-tickets must be more than --tickets")
    if not wait_for_engine(args.wait):
        print("yoi.engine has no tick/run yet: engine throughput not measured")
        return
    with workspace("engine", args.keep) as work:
        templates = gen_store.build_templates(work)
        report(measure(work, args.tickets, templates, args.repeat, args.store_tickets))


if __name__ == "__main__":
    main()
