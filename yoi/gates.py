"""Gates (SPEC §5): built-in checks of a run, then the configured command gates.

Built-in gates, always all evaluated, in this order (names as recorded):
``bundle-schema``, ``runner-status``, ``non-empty-patch``, ``applied-cleanly``,
``path-policy``, ``branch-and-pr-draft``, ``within-budget``.

Configured gates (``gates:`` in config) run only when every built-in gate passed, in
order, in ONE private detached worktree of the result commit (they share it, like the
steps of a CI job), each with its timeout and process-group kill. The first failing
gate stops the list: later ones are recorded as SKIP. A gate that cannot start (missing
executable) fails with "gate infrastructure error: ...".

``gate_result`` is PASS only when every gate is PASS (a SKIP only ever follows a FAIL).
``gate_reason`` names the first failure, or says "all N gates passed".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import proc
from yoi.diazotroph import WORKTREES_DIR, Execution
from yoi.diazotroph_git import clear_worktree
from yoi.errors import YoiError
from yoi.gates_builtin import builtin_gates
from yoi.model import Ticket

if TYPE_CHECKING:
    from yoi.git import Repo
    from yoi.store import Store

__all__ = ["GateOutcome", "GateSpec", "evaluate", "gate_specs"]

LOG_TAIL_CHARS = 4000
DEFAULT_TIMEOUT_S = 600.0
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"


@dataclass(frozen=True)
class GateOutcome:
    gate_result: str  # PASS | FAIL
    gate_reason: str
    gates: list[dict[str, Any]]


@dataclass(frozen=True)
class GateSpec:
    name: str
    command: tuple[str, ...]
    timeout_s: float = DEFAULT_TIMEOUT_S
    env: Mapping[str, str] = field(default_factory=dict)


def gate_specs(config: Mapping[str, Any]) -> list[GateSpec]:
    """The configured command gates (config validated against its schema already)."""
    specs = []
    for entry in config.get("gates") or ():
        specs.append(
            GateSpec(
                name=str(entry["name"]),
                command=tuple(str(a) for a in entry["command"]),
                timeout_s=float(entry.get("timeout_s", DEFAULT_TIMEOUT_S)),
                env={str(k): str(v) for k, v in (entry.get("env") or {}).items()},
            )
        )
    return specs


def evaluate(
    store: Store,
    repo: Repo,
    *,
    ticket: Ticket,
    workorder: Mapping[str, Any],
    execution: Execution,
    config: Mapping[str, Any],
) -> GateOutcome:
    """Evaluate every gate of one run (see the module docstring)."""
    gates = builtin_gates(repo, workorder, execution, config)
    specs = gate_specs(config)
    failed = next((g for g in gates if g["result"] != PASS), None)
    if failed is not None:
        why = f"not run: built-in gate {failed['name']} failed"
        gates += [_skipped(spec, why) for spec in specs]
    elif specs:
        gates += _run_commands(store, repo, ticket, workorder, execution, specs)
    return _outcome(gates)


def _outcome(gates: list[dict[str, Any]]) -> GateOutcome:
    failed = next((g for g in gates if g["result"] != PASS), None)
    if failed is None:
        return GateOutcome(PASS, f"all {len(gates)} gates passed", gates)
    if failed.get("kind") == "command":
        reason = f"gate {failed['name']} failed: {failed['detail']}"
    else:
        reason = f"{str(failed['name']).replace('-', ' ')}: {failed['detail']}"
    return GateOutcome(FAIL, reason.splitlines()[0][:1000], gates)


def _skipped(spec: GateSpec, why: str) -> dict[str, Any]:
    return {"name": spec.name, "result": SKIP, "detail": why, "kind": "command"}


def _run_commands(
    store: Store,
    repo: Repo,
    ticket: Ticket,
    workorder: Mapping[str, Any],
    execution: Execution,
    specs: Sequence[GateSpec],
) -> list[dict[str, Any]]:
    assert execution.commit_sha is not None  # the applied-cleanly gate passed
    run_id = str(workorder["run_id"])
    name = f"{run_id}-gates"
    path = store.runtime(WORKTREES_DIR) / name
    env = {
        "YOI_TICKET": ticket.slug,
        "YOI_RUN_ID": run_id,
        "YOI_COMMIT": execution.commit_sha,
        "YOI_BRANCH": str(workorder["branch_name"]),
    }
    results: list[dict[str, Any]] = []
    try:
        clear_worktree(repo, name, path)
        worktree = repo.add_private_worktree(execution.commit_sha, path, name)
    except (YoiError, OSError) as exc:
        text = exc.render() if isinstance(exc, YoiError) else str(exc)
        detail = f"gate infrastructure error: cannot check out {execution.commit_sha[:12]}: {text}"
        first = {**_skipped(specs[0], detail), "result": FAIL}
        return [first, *(_skipped(s, f"not run: gate {specs[0].name} failed") for s in specs[1:])]
    try:
        for spec in specs:
            if results and results[-1]["result"] != PASS:
                results.append(_skipped(spec, f"not run: gate {results[-1]['name']} failed"))
            else:
                results.append(run_gate(spec, worktree.path, env))
    finally:
        with contextlib.suppress(YoiError, OSError):
            clear_worktree(repo, name, path)
    return results


def _argv(command: Sequence[str], root: Path) -> list[str]:
    """``./tools/check`` (a slash, not absolute) is the repository's own tool."""
    program = command[0]
    if "/" in program and not os.path.isabs(program):
        program = os.path.normpath(os.path.join(root, program))
    return [program, *command[1:]]


def run_gate(spec: GateSpec, cwd: Path, extra_env: Mapping[str, str]) -> dict[str, Any]:
    """Run one command gate in ``cwd`` and describe it as a run_record gate entry."""
    env = {**proc.base_env(), **extra_env, **spec.env}
    gate: dict[str, Any] = {"name": spec.name, "kind": "command"}
    try:
        done = proc.run(_argv(spec.command, cwd), cwd=cwd, env=env, timeout_s=spec.timeout_s)
    except proc.ProcError as exc:
        return {
            **gate,
            "result": FAIL,
            "detail": f"gate infrastructure error: {exc.message}",
            "exit_code": None,
            "duration_ms": 0,
            "log_tail": "",
            "timed_out": False,
        }
    if done.timed_out:
        detail = f"timed out after {spec.timeout_s:g} s (process group killed)"
    elif done.returncode is not None and done.returncode < 0:
        detail = f"killed by signal {-done.returncode}"
    else:
        detail = f"exit {done.returncode}"
    log = done.stdout
    if done.stderr.strip():
        log += (b"\n" if log and not log.endswith(b"\n") else b"") + done.stderr
    return {
        **gate,
        "result": PASS if done.ok else FAIL,
        "detail": f"{detail} in {done.duration_ms} ms",
        "exit_code": done.returncode,
        "duration_ms": done.duration_ms,
        "log_tail": proc.tail_text(log, LOG_TAIL_CHARS),
        "timed_out": done.timed_out,
    }
