"""gates.evaluate: built-in gates and configured command gates, with real processes in a
real private worktree of the result commit."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import user_state
from tests.support_diazotroph import FixedRunner, Rig, make_rig
from yoi import clock, diazotroph, schema
from yoi.runner.command import CommandRunner

FIX = b"""\
diff --git a/src/app.py b/src/app.py
--- a/src/app.py
+++ b/src/app.py
@@ -1 +1 @@
-print('hi')
+print('hello, friend')
"""
PY = sys.executable


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path / "repo")


def gate(name: str, code: str, timeout_s: float = 60, **env: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "command": [PY, "-c", code], "timeout_s": timeout_s}
    if env:
        entry["env"] = env
    return entry


def config(rig: Rig, *gates: dict[str, Any]) -> dict[str, Any]:
    return {**rig.store.config(), "gates": list(gates)}


def check_record(workorder: dict[str, Any], outcome: Any, ex: Any) -> None:
    """The gates fit the run_record schema (the engine writes them there)."""
    now = clock.format_ts(clock.now())
    record = {
        "run_id": workorder["run_id"],
        "work_order_id": workorder["work_order_id"],
        "ticket": workorder["ticket"],
        "output_id": ex.bundle["output_id"],
        "gate_result": outcome.gate_result,
        "gate_reason": outcome.gate_reason,
        "gates": outcome.gates,
        "commit_sha": ex.commit_sha,
        "branch": workorder["branch_name"],
        "started_at": now,
        "finished_at": now,
        "created_at": now,
    }
    schema.check("run_record", record, "run_record")


def test_all_gates_pass_and_the_gate_sees_the_result_commit(rig: Rig) -> None:
    workorder, ex = rig.execute(FixedRunner(FIX))
    before = user_state(rig.root)
    code = (
        "import os; text = open('src/app.py').read(); print('checked', os.environ['YOI_COMMIT']);"
        "assert text == \"print('hello, friend')\\n\", text"
    )
    outcome = rig.evaluate(workorder, ex, config(rig, gate("tests", code)))
    assert outcome.gate_result == "PASS", outcome.gate_reason
    assert outcome.gate_reason == "all 8 gates passed"
    assert [g["name"] for g in outcome.gates] == [
        "bundle-schema",
        "runner-status",
        "non-empty-patch",
        "applied-cleanly",
        "path-policy",
        "branch-and-pr-draft",
        "within-budget",
        "tests",
    ]
    tests = outcome.gates[-1]
    assert tests["kind"] == "command" and tests["exit_code"] == 0 and not tests["timed_out"]
    assert f"checked {ex.commit_sha}" in tests["log_tail"]
    assert isinstance(tests["duration_ms"], int)
    assert user_state(rig.root) == before  # the user's src/app.py still says 'hi'
    assert rig.worktree_leftovers() == []
    check_record(workorder, outcome, ex)


def test_a_failing_gate_fails_the_run_and_later_gates_are_skipped(rig: Rig) -> None:
    workorder, ex = rig.execute(FixedRunner(FIX))
    marker = rig.root.parent / "later-ran"
    failing = gate("tests", "import sys; print('1 failed'); sys.stderr.write('boom\\n'); exit(3)")
    later = gate("lint", f"open({str(marker)!r}, 'w')")
    outcome = rig.evaluate(workorder, ex, config(rig, failing, later))
    assert outcome.gate_result == "FAIL"
    assert outcome.gate_reason.startswith("gate tests failed: exit 3")
    tests, lint = outcome.gates[-2:]
    assert tests["result"] == "FAIL" and tests["exit_code"] == 3
    assert "1 failed" in tests["log_tail"] and "boom" in tests["log_tail"]
    assert lint["result"] == "SKIP" and "tests failed" in lint["detail"]
    assert not marker.exists()
    check_record(workorder, outcome, ex)


def test_a_gate_that_times_out_is_killed_and_fails(rig: Rig) -> None:
    workorder, ex = rig.execute(FixedRunner(FIX))
    slow = gate("slow", "import time; print('started', flush=True); time.sleep(30)", 0.5)
    started = time.monotonic()
    outcome = rig.evaluate(workorder, ex, config(rig, slow))
    assert time.monotonic() - started < 10
    result = outcome.gates[-1]
    assert result["result"] == "FAIL" and result["timed_out"] is True
    assert result["exit_code"] is None and "started" in result["log_tail"]
    assert outcome.gate_reason.startswith("gate slow failed: timed out after 0.5 s")
    assert rig.worktree_leftovers() == []
    check_record(workorder, outcome, ex)


def test_a_gate_that_cannot_start_is_an_infrastructure_failure(rig: Rig) -> None:
    workorder, ex = rig.execute(FixedRunner(FIX))
    missing = {"name": "tests", "command": ["/nonexistent/bin/pytest", "-q"]}
    outcome = rig.evaluate(workorder, ex, config(rig, missing))
    result = outcome.gates[-1]
    assert result["result"] == "FAIL" and result["exit_code"] is None
    assert result["detail"].startswith("gate infrastructure error: cannot run command")
    assert "gate infrastructure error" in outcome.gate_reason
    check_record(workorder, outcome, ex)


def test_gate_env_and_repo_relative_commands(rig: Rig) -> None:
    workorder, ex = rig.execute(
        CommandRunner(
            name="agent",
            command=(
                PY,
                "-c",
                "import os, pathlib; p = pathlib.Path('tools/check.sh');"
                "p.parent.mkdir();"
                "p.write_text('#!/bin/sh\\necho \"$GREETING from $YOI_TICKET\"\\n');"
                "p.chmod(0o755)",
            ),
        )
    )
    entry = {"name": "check", "command": ["./tools/check.sh"], "env": {"GREETING": "hey"}}
    outcome = rig.evaluate(workorder, ex, config(rig, entry))
    assert outcome.gate_result == "PASS", outcome.gate_reason
    assert f"hey from {rig.ticket.slug}" in outcome.gates[-1]["log_tail"]


def test_builtin_failure_skips_the_configured_gates(rig: Rig) -> None:
    workorder, ex = rig.execute(FixedRunner(b""))  # COMPLETED, but nothing changed
    marker = rig.root.parent / "gate-ran"
    outcome = rig.evaluate(workorder, ex, config(rig, gate("tests", f"open({str(marker)!r}, 'w')")))
    assert outcome.gate_result == "FAIL"
    assert outcome.gate_reason.startswith("non empty patch: the normalized patch is empty")
    result = outcome.gates[-1]
    assert result["result"] == "SKIP" and "built-in gate non-empty-patch failed" in result["detail"]
    assert not marker.exists()
    check_record(workorder, outcome, ex)


def test_budget_exhausted_run_fails_the_budget_gate(rig: Rig) -> None:
    runner = CommandRunner(name="slow", command=(PY, "-c", "import time; time.sleep(30)"))
    workorder, ex = rig.execute(runner, budget_ms=300)
    outcome = rig.evaluate(workorder, ex)
    by_name = {g["name"]: g for g in outcome.gates}
    assert by_name["within-budget"]["result"] == "FAIL"
    assert by_name["runner-status"]["detail"].startswith("BUDGET_EXHAUSTED")
    assert outcome.gate_reason.startswith("runner status: BUDGET_EXHAUSTED: budget exhausted")


def test_the_gates_recheck_git_instead_of_trusting_the_bundle(rig: Rig) -> None:
    workorder, ex = rig.execute(FixedRunner(FIX))
    other_tree = rig.repo.tree_of(ex.base_commit)
    forged = diazotroph.execution_from_bundle(
        rig.store,
        {**ex.bundle, "metadata": {**ex.bundle["metadata"], "result_tree": other_tree}},
        ex.patch,
    )
    outcome = rig.evaluate(workorder, forged)
    by_name = {g["name"]: g for g in outcome.gates}
    assert by_name["applied-cleanly"]["result"] == "FAIL"
    assert "does not match" in by_name["applied-cleanly"]["detail"]


def test_the_result_tree_is_rechecked_with_the_current_policy(rig: Rig) -> None:
    workorder, ex = rig.execute(FixedRunner(FIX))
    stricter = {**rig.store.config(), "protected_paths": ["src/**"]}
    outcome = rig.evaluate(workorder, ex, stricter)
    assert outcome.gate_result == "FAIL"
    assert outcome.gate_reason == "path policy: path 'src/app.py' is protected (matches 'src/**')"


def test_evaluate_on_a_resumed_execution_matches_the_original(rig: Rig) -> None:
    workorder, ex = rig.execute(FixedRunner(FIX))
    first = rig.evaluate(workorder, ex)
    resumed = diazotroph.execution_from_bundle(rig.store, ex.bundle, ex.patch)
    second = rig.evaluate(workorder, resumed)
    assert [(g["name"], g["result"]) for g in first.gates] == [
        (g["name"], g["result"]) for g in second.gates
    ]
    assert first.gate_result == second.gate_result == "PASS"
