"""Build `.yoi-example/` with yoi itself: a realistic store with tickets in every state.

    python -m tests.example_store .yoi-example

It runs `yoi demo` (a done ticket with a complete PASS run), then, in the demo's
repository, a ticket whose run fails its test gate, one blocked by a blocker_ref, one
accepted by an engine that stopped mid-run (inprogress), a queued one waiting for
capacity, a ready one, and planning ones with plan records. Only `.yoi/` is copied out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAILING_TEST = """\

class NanTest(unittest.TestCase):
    def test_mean_rejects_nan(self) -> None:
        with self.assertRaises(ValueError):
            mean([1.0, float("nan")])
"""


def yoi(repo: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "YOI_AUTHOR": "ada", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "yoi", *args, "--json"],
        cwd=repo,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode not in (0, 1, 137) or (proc.returncode == 1 and "engine" not in args):
        raise SystemExit(f"yoi {args} failed ({proc.returncode}): {proc.stderr}")
    return json.loads(proc.stdout) if proc.stdout.strip() else {}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


def new_ticket(repo: Path, title: str, *extra: str) -> str:
    out = yoi(repo, "ticket", "create", title, *extra)
    ticket = out["ticket"]
    assert isinstance(ticket, dict)
    return str(ticket["slug"])


def make_patch(repo: Path, name: str, path: str, append: str) -> str:
    target = repo / path
    original = target.read_text()
    target.write_text(original + append)
    diff = git(repo, "diff", "--", path)
    target.write_text(original)
    (repo / "patches").mkdir(exist_ok=True)
    (repo / "patches" / name).write_text(diff)
    return f"patches/{name}"


def configure(repo: Path) -> None:
    config = repo / ".yoi" / "config.yaml"
    text = config.read_text().replace(sys.executable, "python3")
    text = text.replace("gates:", "  replay:\n    type: patch-file\n    budget_ms: 60000\ngates:")
    config.write_text(text)


def build(dest: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="yoi-example-"))
    repo = work / "textstats"
    yoi(work, "demo", "--dir", str(repo))
    configure(repo)

    failing = make_patch(repo, "nan-test.diff", "tests/test_stats.py", FAILING_TEST)
    nan = new_ticket(
        repo,
        "Reject NaN values in mean()",
        "--ac",
        "mean() raises ValueError on NaN",
        "--runner",
        "replay",
        "--patch-file",
        failing,
        "--label",
        "bug",
    )
    yoi(
        repo,
        "ticket",
        "comment",
        nan,
        "--kind",
        "decision",
        "-m",
        "Validate in mean() itself; do not silently drop NaN values.",
    )
    yoi(repo, "ticket", "ready", nan)
    yoi(repo, "ticket", "queue", nan, "--by", "bob")
    yoi(repo, "engine", "run")  # the added test fails: blocked, GATE_FAILED

    dec = new_ticket(
        repo,
        "Support Decimal inputs",
        "--ac",
        "mean() of Decimals is a Decimal",
        "--importance",
        "3",
    )
    yoi(repo, "ticket", "ready", dec)
    yoi(repo, "ticket", "queue", dec, "--by", "bob")
    yoi(
        repo,
        "ticket",
        "block",
        dec,
        "--kind",
        "DESIGN_DECISION",
        "--description",
        "Which rounding mode should median() use for Decimal?",
    )
    yoi(repo, "engine", "run")  # unresolved blocker at tick time: blocked, BLOCKED

    var = new_ticket(
        repo,
        "Speed up variance() on large inputs",
        "--ac",
        "variance of 10^6 values in under 1 s",
        "--runner",
        "replay",
        "--patch-file",
        failing,
    )
    yoi(repo, "ticket", "ready", var)
    yoi(repo, "ticket", "queue", var, "--by", "carol")
    yoi(repo, "engine", "tick", env={"YOI_TEST_CRASH_AT": "engine.accepted"})  # inprogress

    mode = new_ticket(
        repo,
        "Add mode() for multimodal data",
        "--ac",
        "mode() returns every mode",
        "--ac",
        "documented in README",
    )
    yoi(repo, "ticket", "ready", mode)
    yoi(repo, "ticket", "queue", mode, "--by", "bob")  # queued: waits for capacity

    docs = new_ticket(repo, "Document the public API", "--ac", "every function has a docstring")
    yoi(repo, "ticket", "ready", docs)

    cli = new_ticket(
        repo,
        "Add a command-line entry point",
        "--body",
        "A `textstats` command that reads numbers from stdin.",
    )
    yoi(
        repo,
        "plan",
        "add",
        cli,
        "--kind",
        "depends_on",
        "--related",
        mode,
        "--note",
        "the CLI prints the mode too",
    )
    yoi(repo, "plan", "add", docs, "--kind", "before", "--related", cli)
    yoi(
        repo,
        "plan",
        "add",
        var,
        "--kind",
        "conflicts_with",
        "--related",
        nan,
        "--note",
        "both touch the validation helpers",
    )
    yoi(repo, "ticket", "comment", cli, "-m", "Blocked on the API shape of mode().")
    new_ticket(repo, "Histogram helper")  # planning, nothing else yet
    yoi(repo, "ticket", "return", mode, "--reason", "decide how ties are ordered first")
    yoi(repo, "ticket", "ready", mode)
    yoi(repo, "ticket", "queue", mode, "--by", "bob")

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(repo / ".yoi", dest)
    shutil.rmtree(work)


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else ".yoi-example").resolve())
