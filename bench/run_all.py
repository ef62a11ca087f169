"""Every benchmark at 1k and 10k tickets (``--big`` adds 50k), one table at the end.

    python bench/run_all.py [--repeat 5] [--big] [--sizes 1000,10000] [--json out.json]

For each size it generates a store with tickets in every state (``gen_store``) for
``ticket list``, ``ticket show``, name resolution, ``doctor`` and a run's private
worktree (``bench_worktree``), and an idle store for
``engine tick`` (then grows its done tickets). Startup and engine throughput are
measured once, and what the disk charges for creating and syncing files
(``bench_fs``). Every figure is a median over ``--repeat`` runs with its baseline
measured in the same run; the last table shows how each cost grows with the store.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import (
    bench_commands,
    bench_engine,
    bench_fs,
    bench_list,
    bench_startup,
    bench_tick,
    bench_worktree,
    gen_store,
)
from bench._common import Row, table


def sized(
    work: Path, n: int, repeat: int, templates: dict[str, gen_store.Template], only: set[str]
) -> list[Row]:
    started = time.monotonic()
    repo = work / f"store-{n}"
    clones = gen_store.generate(repo, n, templates)
    print(f"generated {n:,} tickets in {time.monotonic() - started:.0f}s", flush=True)
    rows = bench_list.measure(repo, n, repeat) if "list" in only else []
    if "commands" in only:
        rows += bench_commands.measure(repo, n, repeat, clones)
    if "worktree" in only:  # git's side writes every file of the store: at most 3 rounds
        rows += bench_worktree.measure(repo, work, n, min(repeat, 3))
    shutil.rmtree(repo, ignore_errors=True)
    if "tick" in only:
        idle = work / f"idle-{n}"
        gen_store.generate(idle, n, templates, idle=True)
        rows += bench_tick.measure(idle, n, repeat, templates, grow=2 if n <= 10_000 else 1)
        shutil.rmtree(idle, ignore_errors=True)
    print(table(rows), flush=True)
    return rows


def growth(rows: list[Row]) -> str:
    """Cost at each size relative to the smallest, divided by the size ratio: 1.0 is
    linear, below 1.0 grows slower than the store."""
    by_case: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        if r.tickets and r.bench not in ("engine tick (idle)", "engine throughput", "pending scan"):
            by_case.setdefault((r.bench, r.case.split(" ")[0]), []).append(r)
    lines = ["bench / case: seconds at each size (growth vs size: 1.0 = linear)"]
    for (bench, case), found in by_case.items():
        found.sort(key=lambda r: r.tickets)
        first = found[0]
        parts = [
            f"{r.tickets:,}: {r.seconds:.3f}s"
            + (
                f" ({(r.seconds / first.seconds) / (r.tickets / first.tickets):.2f})"
                if r is not first
                else ""
            )
            for r in found
        ]
        lines.append(f"  {bench} / {case}: " + ", ".join(parts))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--sizes", default="1000,10000")
    p.add_argument("--big", action="store_true", help="also 50,000 tickets")
    p.add_argument("--engine-tickets", type=int, default=200)
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    p.add_argument(
        "--only",
        default="startup,list,commands,worktree,tick,engine,fs",
        help="comma-separated subset of: startup,list,commands,worktree,tick,engine,fs",
    )
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] + ([50_000] if args.big else [])
    work = Path(tempfile.mkdtemp(prefix="yoi-bench-"))
    rows: list[Row] = []
    try:
        only = set(args.only.split(","))
        templates = gen_store.build_templates(work)
        if "startup" in only:
            rows += bench_startup.measure(work, max(args.repeat, 10))
        for n in sizes:
            rows += sized(work, n, args.repeat, templates, only)
        if "engine" in only and bench_engine.engine_available():
            try:
                rows += bench_engine.measure(work, args.engine_tickets, templates, 1)
            except RuntimeError as exc:
                print(f"engine throughput failed: {str(exc)[-500:]}", file=sys.stderr)
        if "fs" in only:  # what the disk charges: read next to the engine's row
            rows += bench_fs.measure(work, bench_fs.OPS, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"python {platform.python_version()} on {platform.platform()}")
    print(table(rows))
    print()
    print(growth(rows))
    if args.json:
        args.json.write_text(
            json.dumps([{**asdict(r), "ratio": r.ratio} for r in rows], indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
