"""`yoi ticket list --json` on a large store, cold and warm, against the plain-read floor.

- floor: one Python process opening and reading every ticket.md and splitting it at the
  closing ``---`` (``bench/floors.py front-matter``), no YAML parsing;
- cold: the first run after yoi's derived cache (``.git/yoi/cache/``) was removed;
- warm: a run right after another run.

The three run in turn, one of each per round, so a burst of load on a shared machine
slows the floor as much as the listings.

    python bench/bench_list.py [--tickets 10000] [--repeat 5]

Targets at 10k tickets: warm <= 1.0x and cold <= 2.0x the floor (medians, same run).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gen_store
from bench._common import PY, Row, interleaved, parser, report, run, workspace, yoi

FLOOR = str(Path(__file__).with_name("floors.py"))


def drop_cache(repo: Path) -> None:
    shutil.rmtree(repo / ".git" / "yoi" / "cache", ignore_errors=True)


def measure(repo: Path, n: int, repeat: int) -> list[Row]:
    tickets = repo / ".yoi" / "tickets"
    listing = yoi("ticket", "list", "--json")
    outputs: list[bytes] = []

    def listed() -> None:
        outputs.append(run(listing, repo).stdout)

    def floor() -> None:
        run([PY, FLOOR, "front-matter", str(tickets)], repo)

    floor()  # the page cache holds every ticket.md for both
    # One round: the floor, a cold listing (cache dropped), a warm one (cache just built).
    floor_s, cold, warm = interleaved(
        [(floor, None), (listed, lambda: drop_cache(repo)), (listed, None)], repeat
    )
    if len(set(outputs)) != 1:
        raise RuntimeError("ticket list printed different documents cold and warm")
    return [
        Row("ticket list --json", "cold", n, cold, "plain read", floor_s, "<= 2.0x"),
        Row("ticket list --json", "warm", n, warm, "plain read", floor_s, "<= 1.0x"),
    ]


def main() -> None:
    args = parser(__doc__.split("\n\n")[0]).parse_args()
    with workspace("list", args.keep) as work:
        templates = gen_store.build_templates(work)
        repo = work / "store"
        gen_store.generate(repo, args.tickets, templates)
        report(measure(repo, args.tickets, args.repeat))


if __name__ == "__main__":
    main()
