"""Single-ticket commands and the store-wide check on a large store.

- ``yoi ticket show <slug>`` and name resolution (``yoi ticket show <word-suffix>``),
  against the least a click CLI can cost: ``python -c "import click"``;
- ``yoi doctor`` (first run after dropping yoi's caches, and a second run), against
  reading every file of the store once in one Python process (``floors.py all-files``).

    python bench/bench_commands.py [--tickets 10000] [--repeat 5]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import gen_store
from bench._common import PY, Row, guarded, median_of, parser, report, run, workspace, yoi
from bench.bench_list import drop_cache

FLOOR = str(Path(__file__).with_name("floors.py"))


def click_floor(repo: Path, repeat: int) -> float:
    return median_of(lambda: run([PY, "-c", "import click"], repo), repeat)


def _pick(clones: list[gen_store.Clone]) -> gen_store.Clone:
    """A done ticket in the middle of the store (it has a full run to show)."""
    done = [c for c in clones if c.state == "done"]
    return done[len(done) // 2]


def measure(repo: Path, n: int, repeat: int, clones: list[gen_store.Clone]) -> list[Row]:
    target = _pick(clones)
    suffix = target.slug.split("-", 2)[2].split("-", 1)[1]  # "<i>-<noun>"
    click = click_floor(repo, repeat)
    show = median_of(lambda: run(yoi("ticket", "show", target.slug), repo), repeat)
    named = run(yoi("ticket", "show", suffix, "--json"), repo).stdout
    if target.slug.encode() not in named:
        raise RuntimeError(f"{suffix!r} did not resolve to {target.slug}")
    resolve = median_of(lambda: run(yoi("ticket", "show", suffix), repo), repeat)
    files = median_of(lambda: run([PY, FLOOR, "all-files", str(repo / ".yoi")], repo), repeat)
    slow = 1 if n >= 5_000 else repeat  # a cold doctor reads and parses every file
    doctor_cold = guarded(
        "doctor (cold)",
        lambda: median_of(lambda: run(yoi("doctor"), repo), slow, before=lambda: drop_cache(repo)),
    )
    doctor_warm = guarded(
        "doctor (warm)", lambda: median_of(lambda: run(yoi("doctor"), repo), repeat)
    )
    return [
        Row("ticket show", "full slug", n, show, "import click", click),
        Row("ticket show", f"word-suffix {suffix}", n, resolve, "import click", click),
        Row("doctor", "cold", n, doctor_cold, "read all files", files),
        Row("doctor", "warm", n, doctor_warm, "read all files", files),
    ]


def main() -> None:
    args = parser(__doc__.split("\n\n")[0]).parse_args()
    with workspace("commands", args.keep) as work:
        templates = gen_store.build_templates(work)
        repo = work / "store"
        clones = gen_store.generate(repo, args.tickets, templates)
        report(measure(repo, args.tickets, args.repeat, clones))


if __name__ == "__main__":
    main()
