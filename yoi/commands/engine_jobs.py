"""`yoi engine run|watch --jobs N`: N engine processes work the queue together.

Each worker is a plain ``yoi engine run`` (a process of its own: runners, gates and
commits of different tickets overlap, and the store's claims keep any two engines off
one event, SPEC §5/§9), so nothing here decides anything. There are never more workers
than ``engine.capacity``, the tickets that may be in progress at once: one more would
only find the capacity full and record that its ticket waits. ``--max`` is shared out
among the workers, ``--kick`` goes to the first. The result is the workers' ticks
merged: every processed event, oldest first, then (``run``) one closing tick, deferred
when a worker's last one was, else idle; the exit code is the first failing worker's.
``watch --jobs N`` starts N watchers; a SIGINT or SIGTERM reaches each, and each
finishes its current step, releases its claims and stops.
"""

from __future__ import annotations

import json
import sys

from yoi import proc
from yoi.engine_result import DEFERRED, IDLE, PROCESSED, TickResult
from yoi.errors import ExitCode
from yoi.store import Store


def workers(store: Store, jobs: int, max_ticks: int | None) -> list[int | None]:
    """Each worker's ``--max`` (None: no limit): at most ``jobs`` and ``engine.capacity``
    workers, and no more than there are ticks to share. Says so (stderr) when the
    capacity allows fewer than ``jobs``."""
    capacity = int(store.config()["engine"]["capacity"])
    count = min(jobs, capacity)
    if count < jobs:
        sys.stderr.write(
            f"yoi: engine: --jobs {jobs}: engine.capacity is {capacity}, "
            f"so at most {max(count, 1)} engine(s) at once\n"
        )
    if max_ticks is None:
        return [None] * max(count, 1)
    count = max(1, min(count, max_ticks))
    return [max_ticks // count + (1 if i < max_ticks % count else 0) for i in range(count)]


def run(
    store: Store,
    shares: list[int | None],
    *,
    kick: bool,
    remote: str | None,
    push_branch: bool,
) -> tuple[list[TickResult], ExitCode]:
    """One ``engine run`` worker per share: their ticks merged (a closing tick last),
    and the exit code."""
    argvs = []
    for i, share in enumerate(shares):
        argv = _worker("run", remote, push_branch)
        argv += ["--max", str(share)] if share is not None else []
        argv += ["--kick"] if kick and i == 0 else []
        argvs.append(argv)
    processed, last, code = _together(store, argvs)
    closing = next((t for t in last if t.outcome == DEFERRED), TickResult(IDLE))
    return [*processed, closing], code


def watch(
    store: Store,
    count: int,
    *,
    interval: float,
    kick: bool,
    remote: str | None,
    push_branch: bool,
) -> tuple[list[TickResult], ExitCode]:
    """``count`` ``engine watch`` workers until each stops (SIGINT/SIGTERM: each
    finishes its step first); the events they processed, and the exit code. Only the
    first applies the kick rules."""
    argvs = []
    for i in range(count):
        argv = [*_worker("watch", remote, push_branch), "--interval", repr(interval)]
        argv += ["--kick"] if kick and i == 0 else ["--no-kick"]
        argvs.append(argv)
    processed, _last, code = _together(store, argvs)
    return processed, code


def _worker(verb: str, remote: str | None, push_branch: bool) -> list[str]:
    argv = [sys.executable, "-m", "yoi", "engine", verb, "--json", "--jobs", "1"]
    argv += ["--remote", remote] if remote is not None else []
    return [*argv, "--push-branch"] if push_branch else argv


def _together(
    store: Store, argvs: list[list[str]]
) -> tuple[list[TickResult], list[TickResult], ExitCode]:
    """Run the workers; every processed tick (oldest event first), each worker's last
    tick when it processed nothing, and the first failing worker's exit code."""
    results = proc.run_together(argvs, cwd=store.root)
    processed: list[TickResult] = []
    last: list[TickResult] = []
    code = ExitCode.OK
    for returncode, stdout in results:
        if returncode != 0 and code == ExitCode.OK:
            code = _exit_code(returncode)
        ticks = [_tick(t) for t in _ticks(stdout)]
        processed += [t for t in ticks if t.outcome == PROCESSED]
        last += [t for t in ticks[-1:] if t.outcome != PROCESSED]
    processed.sort(key=lambda t: (t.event_id or "", t.run_id or ""))
    return processed, last, code


def _tick(d: dict[str, str | None]) -> TickResult:
    return TickResult(
        str(d.get("outcome")), d.get("event_id"), d.get("ticket"), d.get("reason"), d.get("run_id")
    )


def _ticks(stdout: bytes) -> list[dict[str, str | None]]:
    """The ticks a worker printed (none when it failed before printing them)."""
    try:
        doc = json.loads(stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return []
    ticks = doc.get("ticks") if isinstance(doc, dict) else None
    return [t for t in ticks if isinstance(t, dict)] if isinstance(ticks, list) else []


def _exit_code(returncode: int) -> ExitCode:
    if returncode < 0:  # died of a signal
        return ExitCode.INTERRUPTED
    try:
        return ExitCode(returncode)
    except ValueError:
        return ExitCode.FAILED
