"""Parser timings that unit tests must not assert: strict YAML rejections, thread
parsing, slug resolution.

Run from anywhere (plain Python, this checkout's ``yoi`` is imported in-process)::

    python bench/parsers.py              # median of 5 samples per case
    python bench/parsers.py --repeat 9   # steadier numbers on a noisy machine

Each case is printed with its median time, a baseline measured in the same run on the
same machine, their ratio, and the ratio it should stay under. Absolute milliseconds
depend on the machine; the ratios should not. ``over`` marks a ratio above its target
(rerun before believing it: another process may have stolen the CPU).

The unit tests check the mechanisms behind these numbers with counted work instead of
seconds: tests/test_yamlio.py (scanner tokens before a rejection), tests/test_thread.py
(steps per entry), tests/test_slug.py (comparisons per lookup).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

Fn = Callable[[], object]


@dataclass(frozen=True)
class Case:
    """One timed case, its baseline, and the ratio (case / baseline) it should stay under."""

    group: str
    name: str
    run: Fn
    baseline: str
    target: float | None  # None: this case is the baseline


def median_s(fn: Fn, repeat: int) -> float:
    """Median seconds per call of ``fn`` (calls batched so one sample takes >= 0.2 s)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    return statistics.median(timer.repeat(repeat, number)) / number


def _rejected(load: Callable[..., object], text: str) -> Fn:
    from yoi.errors import InvalidRecordError

    def run() -> None:
        try:
            load(text, path="bench.yaml")
        except InvalidRecordError:
            return
        raise AssertionError("the loader accepted a text it must reject")

    return run


def _record_1k() -> str:
    """A ~1 KiB machine record, the size of a typical ticket's front matter."""
    lines = ["title: Fix the parser so it rejects hostile input early", "state: queued"]
    lines += ['created_at: "2026-11-20T10:00:00Z"', "importance: 2", "labels: [yaml, parser]"]
    lines += ["acceptance_criteria:"] + [f"  - criterion number {n} holds" for n in range(18)]
    lines += ["blocked_on:"] + [f"  - blocker_id: b{n}\n    resolved: true" for n in range(8)]
    return "\n".join(lines) + "\n"


def yaml_cases() -> Iterator[Case]:
    from yoi import yamlio

    laughs = (ROOT / "tests" / "fuzz_corpus" / "yaml" / "bad_billion_laughs.yaml").read_text()
    deep = {
        "flow-seq": "[" * 1000 + "]" * 1000,
        "flow-map": "{a: " * 1000 + "}" * 1000,
        "block-seq": "- " * 1000 + "x\n",
        "block-map": "".join("  " * i + "k:\n" for i in range(1000)),
    }
    record = _record_1k()
    base = f"load_plain {len(record)} B record"
    yield Case("yaml", base, lambda: yamlio.load_plain(record, path="b.yaml"), base, None)
    big = "x" * (10 << 20)
    for loader in (yamlio.load_plain, yamlio.load_rt):
        tag = loader.__name__
        yield Case("yaml", f"{tag}: 10 MiB over the cap", _rejected(loader, big), base, 1.0)
        for shape, text in deep.items():
            yield Case("yaml", f"{tag}: 1000-deep {shape}", _rejected(loader, text), base, 8.0)
        yield Case("yaml", f"{tag}: billion laughs", _rejected(loader, laughs), base, 1.0)


def thread_cases() -> Iterator[Case]:
    from yoi.thread import make_entry, parse_thread, render_entry

    entry = make_entry(
        "state", "ada", "2026-11-20T10:00:00Z", "body\nmore", {"from": "queued", "to": "done"}
    )
    small, big = render_entry(entry) * 1_000, render_entry(entry) * 10_000
    base = "parse 1k entries"
    yield Case("thread", base, lambda: parse_thread(small, path="t.md"), base, None)
    # Linear: ten times the entries, about ten times the time (quadratic would be ~100x).
    yield Case("thread", "parse 10k entries", lambda: parse_thread(big, path="t.md"), base, 15.0)


def slug_cases() -> Iterator[Case]:
    from yoi import slug

    slugs = [f"2026{n % 12 + 1:02d}01-{n % 240000:06d}-task-number-{n}" for n in range(50_000)]
    index = slug.SlugIndex(slugs)
    names = [f"number-{n}" for n in range(0, 50_000, 500)]

    def lookups() -> None:
        for name in names:
            index.resolve(name)

    base = "one dict pass, 50k slugs"  # {slug: its words}, no yoi code
    yield Case("slug", base, lambda: {s: s[16:].split("-") for s in slugs}, base, None)
    yield Case("slug", "SlugIndex(50k slugs)", lambda: slug.SlugIndex(slugs), base, 12.0)
    yield Case("slug", "100 index lookups", lookups, base, 0.1)
    yield Case("slug", "1 linear resolve, 50k", lambda: slug.resolve(names[-1], slugs), base, 4.0)


HEADER = ("group", "case", "median ms", "baseline", "ratio", "target", "")
WIDTHS = (6, 32, 10, 26, 9, 8, 4)


def _line(cells: Sequence[str]) -> str:
    shaped = [
        cell.rjust(width) if column in (2, 4) else cell.ljust(width)
        for column, (cell, width) in enumerate(zip(cells, WIDTHS, strict=True))
    ]
    return "  ".join(shaped).rstrip()


def measure(cases: Sequence[Case], repeat: int) -> list[str]:
    """Time every case, printing its row as soon as it is known; the names over target."""
    print(_line(HEADER))
    print(_line(["-" * width for width in WIDTHS[:-1]] + [""]))
    seconds: dict[str, float] = {}
    over = []
    for case in cases:
        seconds[case.name] = median_s(case.run, repeat)
        ratio = seconds[case.name] / seconds[case.baseline]
        verdict = "" if case.target is None or ratio < case.target else "over"
        if verdict:
            over.append(case.name)
        target = "(base)" if case.target is None else f"< {case.target:g}x"
        row = [case.group, case.name, f"{seconds[case.name] * 1000:,.3f}", case.baseline]
        print(_line([*row, f"{ratio:,.2f}x", target, verdict]), flush=True)
    return over


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time yoi's parsers against same-run baselines.")
    parser.add_argument("--repeat", type=int, default=5, help="samples per median (default 5)")
    args = parser.parse_args(argv)
    cases = [*yaml_cases(), *thread_cases(), *slug_cases()]
    over = measure(cases, args.repeat)
    print(
        f"\n{len(cases)} cases, {len(over)} over target" + "".join(f"\n  over: {n}" for n in over)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
