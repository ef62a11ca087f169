"""The scratch project of ``yoi demo``, as data: a tiny ``textstats`` package with a real
bug (``median`` of an even number of values reads one element too far), a stdlib
``unittest`` suite that fails on it, and ``tools/fix_bug.py``, a deterministic stand-in
for a coding agent that edits the file in place (the ``command`` runner turns its edit
into the candidate patch)."""

from __future__ import annotations

import json

BUGGY_LINE = "    return (ordered[middle] + ordered[middle + 1]) / 2\n"
FIXED_LINE = "    return (ordered[middle - 1] + ordered[middle]) / 2\n"

TICKET_TITLE = "Fix median() for an even number of values"
TICKET_BODY = """\
`textstats.median([4, 1, 3, 2])` returns 3.5 instead of 2.5, and `median([10, 20])`
raises IndexError: for an even count it averages the wrong pair of middle values.
"""
ACCEPTANCE_CRITERIA = (
    "median() of an even number of values is the mean of the two middle values",
    "median([10, 20]) == 15 and median([4, 1, 3, 2]) == 2.5",
    "the unittest suite passes (gate `tests`)",
)
CONTEXT_PATHS = ("textstats/stats.py", "tests/test_stats.py")
DECISION = """\
Fix it in `textstats/stats.py` only: average `ordered[middle - 1]` and `ordered[middle]`.
No API change; keep raising ValueError for an empty sequence.
"""
RUNNER_BUDGET_MS = 60_000
GATE_TIMEOUT_S = 120

_STATS = f'''\
"""Small statistics helpers for sequences of numbers."""

from __future__ import annotations

from collections.abc import Sequence


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean; ValueError for an empty sequence."""
    if not values:
        raise ValueError("mean() of an empty sequence")
    return sum(values) / len(values)


def median(values: Sequence[float]) -> float:
    """The middle value; for an even count, the mean of the two middle values."""
    if not values:
        raise ValueError("median() of an empty sequence")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2 == 1:
        return ordered[middle]
{BUGGY_LINE}'''

_TESTS = """\
import unittest

from textstats import mean, median


class MeanTest(unittest.TestCase):
    def test_mean(self) -> None:
        self.assertEqual(mean([1, 2, 3, 4]), 2.5)

    def test_empty(self) -> None:
        with self.assertRaises(ValueError):
            mean([])


class MedianTest(unittest.TestCase):
    def test_odd_count(self) -> None:
        self.assertEqual(median([3, 1, 2]), 2)

    def test_even_count(self) -> None:
        self.assertEqual(median([4, 1, 3, 2]), 2.5)

    def test_two_values(self) -> None:
        self.assertEqual(median([10, 20]), 15)

    def test_empty(self) -> None:
        with self.assertRaises(ValueError):
            median([])


if __name__ == "__main__":
    unittest.main()
"""

_FIXER = f'''\
"""A deterministic stand-in for a coding agent, run by yoi's `command` runner.

yoi runs it in a private worktree of the base commit with YOI_TICKET, YOI_RUN_ID,
YOI_PROMPT_FILE (the context snapshot), YOI_BUDGET_MS and YOI_PATCH_OUT set. It edits
the file in place; yoi turns the edit into the candidate patch, checks it, commits it on
the work branch and runs the gates.
"""

import os
import pathlib
import sys

TARGET = pathlib.Path("textstats/stats.py")
BUGGY = {BUGGY_LINE!r}
FIXED = {FIXED_LINE!r}


def main() -> int:
    ticket = os.environ.get("YOI_TICKET", "?")
    prompt = pathlib.Path(os.environ.get("YOI_PROMPT_FILE", "missing"))
    if prompt.is_file():
        size = len(prompt.read_text(encoding="utf-8"))
        print(f"fix_bug: ticket {{ticket}}: read a {{size}}-character prompt")
    text = TARGET.read_text(encoding="utf-8")
    if BUGGY not in text:
        print("fix_bug: the known bug is not in textstats/stats.py", file=sys.stderr)
        return 1
    TARGET.write_text(text.replace(BUGGY, FIXED), encoding="utf-8")
    print("fix_bug: median() now averages the two middle values")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

_README = """\
# textstats (yoi demo project)

A tiny package with a known bug, used by `yoi demo`. Run the tests with:

    python -m unittest -q
"""

FILES: dict[str, str] = {
    "README.md": _README,
    ".gitignore": "__pycache__/\n*.pyc\n",
    "textstats/__init__.py": '"""textstats: tiny statistics helpers."""\n\n'
    "from textstats.stats import mean, median\n\n"
    '__all__ = ["mean", "median"]\n',
    "textstats/stats.py": _STATS,
    "tests/__init__.py": "",
    "tests/test_stats.py": _TESTS,
    "tools/fix_bug.py": _FIXER,
}


def config_yaml(python: str) -> str:
    """``.yoi/config.yaml`` of the demo: the fixer as the default runner, the unittest
    suite as the ``tests`` gate, both run with the interpreter ``python``."""
    exe = json.dumps(python)  # a JSON string is a valid YAML double-quoted scalar
    return f"""\
# yoi demo configuration (schema: config)
version: 1
engine:
  capacity: 1
  base_ref: HEAD
  branch_prefix: yoi/
  lease_seconds: 60
runners:
  default:
    type: command
    command: [{exe}, tools/fix_bug.py]
    budget_ms: {RUNNER_BUDGET_MS}
gates:
  - name: tests
    command: [{exe}, -m, unittest, -q]
    timeout_s: {GATE_TIMEOUT_S}
"""
