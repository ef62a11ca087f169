"""An idle ``yoi engine tick`` on a large store, and how it grows with done tickets.

The store has no pending event (planning, ready, blocked and done tickets). The tick is
measured warm (after one tick), then ``--grow`` times as many done tickets are added
(the open tickets stay the same) and it is measured again: the second figure divided by
the first should be about 1.0 (idle ticks must not grow with the number of done
tickets). Baseline of the first row: ``python -c "import click"``.

    python bench/bench_tick.py [--tickets 10000] [--repeat 5] [--grow 2]

Target at 10k tickets: <= 0.25 s wall, and independent of the number of done tickets.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gen_store
from bench._common import PY, Row, guarded, median_of, parser, report, run, workspace, yoi
from bench.bench_commands import click_floor


def idle_tick(repo: Path, repeat: int) -> float:
    def tick() -> None:
        out = json.loads(run(yoi("engine", "tick", "--json"), repo).stdout)
        if out.get("outcome") != "idle":
            raise RuntimeError(f"the tick was not idle: {out}")

    tick()  # warm: the first tick after a change may rebuild the index
    return median_of(tick, repeat)


SCAN = (
    "from yoi.store import Store; from yoi import events; "
    "assert not events.all_events(Store.discover(), pending_only=True)"
)


def pending_scan(repo: Path, repeat: int) -> float:
    """The store's share of an idle tick: one process finding no pending event."""
    run([PY, "-c", SCAN], repo)  # warm
    return median_of(lambda: run([PY, "-c", SCAN], repo), repeat)


def done_count(repo: Path) -> int:
    base = repo / ".yoi" / "tickets" / "done"
    return sum(1 for p in base.iterdir() if not p.name.startswith("."))


def measure(
    repo: Path, n: int, repeat: int, templates: dict[str, gen_store.Template], grow: int
) -> list[Row]:
    click = click_floor(repo, repeat)
    first_done = done_count(repo)
    first = guarded("engine tick", lambda: idle_tick(repo, repeat))
    first_scan = pending_scan(repo, repeat)
    gen_store.add_done(repo, templates, n, first_done * grow)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "more done tickets"], repo)
    second_done = done_count(repo)
    second = guarded("engine tick", lambda: idle_tick(repo, repeat))
    second_scan = pending_scan(repo, repeat)
    grown = n + first_done * grow
    return [
        Row(
            "engine tick (idle)",
            f"{first_done:,} done",
            n,
            first,
            "import click",
            click,
            "<= 0.25 s",
        ),
        Row(
            "engine tick (idle)",
            f"{second_done:,} done",
            grown,
            second,
            f"tick, {first_done:,} done",
            first,
            "~1.0x",
        ),
        Row(
            "pending scan",
            f"{first_done:,} done",
            n,
            first_scan,
            "import click",
            click,
            "<= 0.25 s",
        ),
        Row(
            "pending scan",
            f"{second_done:,} done",
            grown,
            second_scan,
            f"scan, {first_done:,} done",
            first_scan,
            "~1.0x",
        ),
    ]


def main() -> None:
    p = parser(__doc__.split("\n\n")[0])
    p.add_argument("--grow", type=int, default=2, help="add this many times the done tickets")
    args = p.parse_args()
    with workspace("tick", args.keep) as work:
        templates = gen_store.build_templates(work)
        repo = work / "store"
        gen_store.generate(repo, args.tickets, templates, idle=True)
        report(measure(repo, args.tickets, args.repeat, templates, args.grow))


if __name__ == "__main__":
    main()
