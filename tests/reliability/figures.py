"""Figures of a harness run (trials, operations, failures found), printed at the end of
the session and, with ``YOI_FIGURES_FILE=path``, written there as JSON lines."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field


@dataclass
class Figure:
    harness: str
    trials: int = 0
    operations: int = 0
    failures: int = 0
    seconds: float = 0.0
    notes: dict[str, int | float | str] = field(default_factory=dict)


_FIGURES: dict[str, Figure] = {}
_FILE = os.environ.get("YOI_FIGURES_FILE", "")  # read before tests isolate the env


def record(
    harness: str,
    *,
    trials: int = 0,
    operations: int = 0,
    failures: int = 0,
    seconds: float = 0.0,
    **notes: int | float | str,
) -> Figure:
    """Add to the figures of ``harness`` (one line in the summary); numeric notes add up."""
    fig = _FIGURES.setdefault(harness, Figure(harness))
    fig.trials += trials
    fig.operations += operations
    fig.failures += failures
    fig.seconds += seconds
    for key, value in notes.items():  # numbers add up over calls, text is replaced
        old = fig.notes.get(key)
        both_numbers = isinstance(old, int | float) and isinstance(value, int | float)
        fig.notes[key] = old + value if both_numbers else value  # type: ignore[operator]
    if _FILE:
        with open(_FILE, "a", encoding="utf-8") as f:
            line = {"at": time.time(), **asdict(fig)}
            f.write(json.dumps(line) + "\n")
    return fig


def all_figures() -> list[Figure]:
    return sorted(_FIGURES.values(), key=lambda f: f.harness)


def summary_lines() -> list[str]:
    lines = []
    for f in all_figures():
        extra = ", ".join(f"{k}={v}" for k, v in sorted(f.notes.items()))
        lines.append(
            f"{f.harness}: {f.trials} trials, {f.operations} operations, "
            f"{f.failures} failures found, {f.seconds:.1f}s" + (f" ({extra})" if extra else "")
        )
    return lines
