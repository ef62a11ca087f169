"""Shared helpers for the benchmarks: the environment, timing, medians, ratios, tables.

Every benchmark runs this checkout's yoi as a separate process (``python -m yoi ...``
with ``PYTHONPATH`` set to the repository root), exactly as a user would, and compares
it with a baseline measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_TERMINAL_PROMPT": "0",
    "YOI_AUTHOR": "bench",
}


# Byte code is cached (as after `pip install`), in a directory of its own so the
# checkout is not touched, whatever PYTHONDONTWRITEBYTECODE says in the caller's shell.
PYCACHE = Path(tempfile.gettempdir()) / "yoi-bench-pycache"
_DROPPED = ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")


def env(**extra: str) -> dict[str, str]:
    """The environment of every spawned command: this checkout first on the path, a
    fixed git identity, byte-code caching on, no stray YOI_/GIT_ settings."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("YOI_", "GIT_")) and k not in _DROPPED
    }
    return {
        **base,
        **GIT_ENV,
        "PYTHONPATH": str(ROOT),
        "PYTHONPYCACHEPREFIX": str(PYCACHE),
        **extra,
    }


def run(
    argv: Sequence[str], cwd: Path, *, extra_env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        list(argv), cwd=cwd, env=env(**(extra_env or {})), capture_output=True, timeout=3600
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({proc.returncode}):\n"
            f"{proc.stdout.decode(errors='replace')[-2000:]}\n"
            f"{proc.stderr.decode(errors='replace')[-2000:]}"
        )
    return proc


def yoi(*args: str) -> list[str]:
    return [PY, "-m", "yoi", *args]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Spent:
    """Wall time and the CPU time of the child processes ``fn`` waited for."""

    wall: float
    user: float
    system: float

    def per(self, n: int) -> Spent:
        return Spent(self.wall / n, self.user / n, self.system / n)


def timed_cpu(fn: Callable[[], object]) -> Spent:
    """``timed``, with the user and system CPU time of the processes ``fn`` ran (and
    waited for): where the time went, user space or the kernel."""
    before = os.times()
    start = time.perf_counter()
    fn()
    wall = time.perf_counter() - start
    after = os.times()
    return Spent(
        wall,
        after.children_user - before.children_user,
        after.children_system - before.children_system,
    )


def median_of(
    fn: Callable[[], object], repeat: int, *, before: Callable[[], object] | None = None
) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs; ``before`` runs untimed first."""
    samples = []
    for _ in range(repeat):
        if before is not None:
            before()
        samples.append(timed(fn))
    return statistics.median(samples)


def interleaved(
    cases: Sequence[tuple[Callable[[], object], Callable[[], object] | None]], repeat: int
) -> list[float]:
    """Median wall times of several ``(fn, before)`` cases run in turn, one of each per
    round, ``repeat`` rounds: a baseline and what it is compared with see the same
    moments of a noisy machine (a burst of load slows both, not one of them)."""
    samples: list[list[float]] = [[] for _ in cases]
    for _ in range(repeat):
        for i, (fn, before) in enumerate(cases):
            if before is not None:
                before()
            samples[i].append(timed(fn))
    return [statistics.median(s) for s in samples]


def guarded(what: str, measure: Callable[[], float]) -> float:
    """``measure()``, or NaN (shown as "failed") when a command fails; the reason goes to
    stderr, the other measurements go on."""
    try:
        return measure()
    except RuntimeError as exc:
        tail = str(exc).strip().splitlines()[-3:]
        print(f"{what} failed:\n  " + "\n  ".join(tail), file=sys.stderr, flush=True)
        return float("nan")


@dataclass(frozen=True)
class Row:
    """One measurement: what, at which size, the median, and its baseline."""

    bench: str
    case: str
    tickets: int
    seconds: float
    baseline: str
    baseline_seconds: float
    target: str = ""

    @property
    def ratio(self) -> float:
        return self.seconds / self.baseline_seconds if self.baseline_seconds else float("nan")

    def cells(self) -> list[str]:
        failed = self.seconds != self.seconds or self.baseline_seconds != self.baseline_seconds
        return [
            self.bench,
            self.case,
            f"{self.tickets:,}",
            "failed" if self.seconds != self.seconds else f"{self.seconds * 1000:,.1f}",
            self.baseline,
            f"{self.baseline_seconds * 1000:,.1f}",
            "-" if failed else f"{self.ratio:.2f}x",
            self.target,
        ]


HEADER = ["bench", "case", "tickets", "median ms", "baseline", "baseline ms", "ratio", "target"]


def table(rows: Sequence[Row]) -> str:
    grid = [HEADER, *(r.cells() for r in rows)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(HEADER))]
    out = []
    for n, line in enumerate(grid):
        out.append(
            "  ".join(
                c.rjust(w) if i in (2, 3, 5, 6) else c.ljust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def parser(description: str, *, tickets: int = 10_000, repeat: int = 5) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--tickets", type=int, default=tickets, help=f"store size (default {tickets})")
    p.add_argument("--repeat", type=int, default=repeat, help=f"runs per median (default {repeat})")
    p.add_argument("--keep", action="store_true", help="keep the generated store")
    return p


@contextmanager
def workspace(name: str, keep: bool) -> Iterator[Path]:
    """A scratch directory for one benchmark's stores; removed afterwards unless kept."""
    work = Path(tempfile.mkdtemp(prefix=f"yoi-bench-{name}-"))
    try:
        yield work
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(rows: Sequence[Row]) -> None:
    print(table(rows), flush=True)
