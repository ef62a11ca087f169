"""The crash matrix (R17, SPEC §9 "kill -9 at any point, then restart").

For each operation, one traced run lists every crash point it passes
(``YOI_TEST_CRASH_TRACE``): the temp file of every atomic write (``fsio.tmp``), every
journal and journaled operation (``txn.journal``, ``txn.op<N>``) and every engine step
(``engine.<step>``), each with its occurrence number. Then, for each point, a fresh copy
of the same repository runs the operation with ``YOI_TEST_CRASH_AT=<point>#<k>`` (exit
137, like kill -9), a restart recovers (the next write rolls the journal forward; a
fresh engine resumes), and the invariants are checked: every file whole and valid,
doctor without errors, the operation applied all-or-nothing (and applied when the crash
came after its commit point), no duplicate workorder, every event processed exactly
once, the user's checkout untouched. A second matrix crashes the recovery itself.

The quick profile covers every point of the CLI writes and every engine step of a tick;
``--soak`` adds every point of a three-ticket ``engine run`` and of its recovery.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import init_repo, user_state
from tests.reliability import figures
from tests.reliability import support as s
from tests.reliability.plugin import Profile
from yoi import janitor, tickets
from yoi.lifecycle import Action
from yoi.model import BlockerKind
from yoi.store import Store

Views = dict[str, s.TicketView]
Check = Callable[[Views, Views, bool], list[str]]


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    check: Check  # (before, after, committed) -> problems
    drain: bool = False  # it may emit an event: an engine run must then process it once


def _by_title(views: Views, title: str) -> s.TicketView | None:
    return next((v for v in views.values() if v.title == title), None)


def _one_of(name: str, value: object, old: object, new: object, committed: bool) -> list[str]:
    if value == new or (value == old and not committed):
        return []
    return [f"{name}: {value!r}, expected {new!r}" + ("" if committed else f" or {old!r}")]


def check_create(before: Views, after: Views, committed: bool) -> list[str]:
    count = sum(v.title == "Crash me" for v in after.values())
    return _one_of("tickets titled 'Crash me'", count, 0, 1, committed)


def check_comment(before: Views, after: Views, committed: bool) -> list[str]:
    view = _by_title(after, "Plain one")
    count = view.comments.count("crash comment") if view else -1
    return _one_of("copies of the comment", count, 0, 1, committed)


def check_ready(before: Views, after: Views, committed: bool) -> list[str]:
    view = _by_title(after, "Plain one")
    return _one_of("state", view and view.state, "planning", "ready", committed)


def check_queue(before: Views, after: Views, committed: bool) -> list[str]:
    view = _by_title(after, "Ready one")
    if view is None:
        return ["the ticket vanished"]
    state_and_events = (view.state, len(view.events))
    return _one_of("(state, events)", state_and_events, ("ready", 0), ("queued", 1), committed)


def check_edit(before: Views, after: Views, committed: bool) -> list[str]:
    view = _by_title(after, "Plain one")
    has = view is not None and "crash-label" in view.labels
    return _one_of("label present", has, False, True, committed)


CLI_CASES = [
    Case("create", ("ticket", "create", "Crash me", "--ac", "x"), check_create),
    Case("comment", ("ticket", "comment", "plain-one", "-m", "crash comment"), check_comment),
    Case("ready", ("ticket", "ready", "plain-one"), check_ready),
    Case("queue", ("ticket", "queue", "ready-one"), check_queue, drain=True),
    Case("edit", ("ticket", "edit", "plain-one", "--label-add", "crash-label"), check_edit),
]


# ---- templates ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = init_repo(tmp_path_factory.mktemp("cli") / "repo")
    store = s.make_store(repo)
    s.new_ticket(store, "Plain one")
    ready = s.new_ticket(store, "Ready one")
    tickets.transition(store, ready, Action.READY, by="ada")
    s.new_ticket(store, "Other one")
    return repo


@pytest.fixture(scope="module")
def engine_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One queued ticket whose patch applies (a tick runs it to done)."""
    repo = init_repo(tmp_path_factory.mktemp("engine") / "repo")
    store = s.make_store(repo)
    s.queued_with_patch(store, repo, "Good one")
    return repo


@pytest.fixture(scope="module")
def run_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three queued tickets: one passes, one is blocked at tick time, one's runner fails."""
    repo = init_repo(tmp_path_factory.mktemp("run") / "repo")
    store = s.make_store(repo)
    s.queued_with_patch(store, repo, "Good one")
    blocked = s.queued(store, "Blocked one")
    tickets.add_blocker(store, blocked, kind=BlockerKind.USER_INPUT, description="need input")
    s.queued(store, "Broken one", runner="broken")
    return repo


def trace(template: Path, work: Path, argv: Sequence[str], *, copy: bool = True) -> list[str]:
    """Every crash point ``argv`` passes, as ``<point>#<k>``, in order. ``copy=False``
    runs in ``template`` itself (a pending journal names its store by absolute path, so
    a copy would roll it forward into the original)."""
    repo = s.clone(template, work / "traced") if copy else template
    log = work / "trace.txt"
    proc = s.yoi(repo, *argv, env={"YOI_TEST_CRASH_TRACE": str(log)})
    assert proc.returncode == 0, proc.stderr
    return log.read_text().split() if log.exists() else []


def committed_at(points: Sequence[str], point: str) -> bool:
    """Whether ``point`` comes at or after the operation's first commit point."""
    commits = [i for i, p in enumerate(points) if p.startswith("txn.")]
    return bool(commits) and points.index(point) >= commits[0]


def crash(repo: Path, argv: Sequence[str], point: str) -> str | None:
    proc = s.yoi(repo, *argv, env={"YOI_TEST_CRASH_AT": point})
    if proc.returncode != 137:
        return f"expected the crash (137), got {proc.returncode}: {proc.stderr[-400:]}"
    return None


def whole_files(store: Store) -> list[str]:
    """Before any recovery: every file is whole (old or new), even mid-transaction."""
    return s.validity_problems(store, settled=False)


def leftovers(store: Store, *points: str | None) -> list[str]:
    """Orphan temp files: only after a crash between a temp write and its rename (in
    ``atomic_write``; at a journal's commit point, whose first files are staged and synced
    with it: ``journal.commit``; or between the renames of a journaled batch, whose later
    files are staged first: ``journal.apply_ops``); the janitor removes them once they
    are old."""
    temps = s.temp_files(store)
    staging = ("fsio.tmp", "txn.journal", "txn.op", "roll.op")
    if temps and not any(p and p.startswith(staging) for p in points):
        return [f"temp files after a crash at {points}: {temps}"]
    janitor.clean(store, now=time.time() + 3600)
    left = s.temp_files(store)
    return [f"the janitor left temp files: {left}"] if left else []


# ---- CLI writes -----------------------------------------------------------------------------
def cli_trial(
    template: Path,
    work: Path,
    case: Case,
    points: Sequence[str],
    point: str,
    recovery_crash: str | None = None,
) -> list[str]:
    repo = s.clone(template, work)
    store = Store.discover(repo)
    user = user_state(repo)
    before = s.ticket_views(store)
    problems = [p for p in [crash(repo, case.argv, point)] if p]
    problems += whole_files(store)
    recover = ("ticket", "comment", "other-one", "-m", "recovery")
    if recovery_crash:
        problems += [p for p in [crash(repo, recover, recovery_crash)] if p]
        problems += whole_files(store)
    proc = s.yoi_here(repo, *recover)
    if proc.returncode != 0:
        return [*problems, f"recovery write failed: {proc.stderr[-400:]}"]
    after = s.ticket_views(store)
    problems += case.check(before, after, committed_at(points, point))
    if case.drain:
        ran = s.yoi_here(repo, "engine", "run")
        if ran.returncode != 0:
            problems.append(f"the engine failed after recovery: {ran.stderr[-400:]}")
    problems += s.invariants(store, quiescent=case.drain)
    problems += leftovers(store, point, recovery_crash)
    if user_state(repo) != user:
        problems.append("the user's checkout changed")
    return problems


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.name for c in CLI_CASES])
def test_cli_write_crash_matrix(cli_template: Path, tmp_path: Path, case: Case) -> None:
    started = time.monotonic()
    points = trace(cli_template, tmp_path, case.argv)
    assert any(p.startswith("txn.") for p in points), points
    failures = {}
    for i, point in enumerate(points):
        problems = cli_trial(cli_template, tmp_path / f"t{i}", case, points, point)
        if problems:
            failures[point] = problems
    figures.record(
        "crash matrix (CLI writes)",
        trials=len(points),
        failures=len(failures),
        seconds=time.monotonic() - started,
    )
    assert failures == {}


def test_crash_during_recovery_of_a_queue(cli_template: Path, tmp_path: Path) -> None:
    """kill -9 after the queue's journal, then kill -9 the recovering write at every
    point of its roll-forward; the third process finishes the queue exactly once."""
    case = next(c for c in CLI_CASES if c.name == "queue")
    points = trace(cli_template, tmp_path / "q", case.argv)
    work = tmp_path / "first"
    s.clone(cli_template, work)
    assert crash(work, case.argv, "txn.journal#1") is None
    recover = ("ticket", "comment", "other-one", "-m", "recovery")
    roll = [p for p in trace(work, tmp_path, recover, copy=False) if p.startswith("roll.")]
    assert len(roll) >= 3, roll  # ticket.md, thread.md, the event
    failures = {}
    for i, rp in enumerate(roll):
        problems = cli_trial(
            cli_template, tmp_path / f"t{i}", case, points, "txn.journal#1", recovery_crash=rp
        )
        if problems:
            failures[rp] = problems
    figures.record("crash matrix (recovery crashes)", trials=len(roll), failures=len(failures))
    assert failures == {}


# ---- engine -----------------------------------------------------------------------------------
def engine_trial(
    template: Path, work: Path, argv: Sequence[str], point: str, recovery_crash: str | None = None
) -> list[str]:
    repo = s.clone(template, work)
    store = Store.discover(repo)
    user = user_state(repo)
    problems = [p for p in [crash(repo, argv, point)] if p]
    problems += whole_files(store)
    if recovery_crash:
        problems += [p for p in [crash(repo, ("engine", "run"), recovery_crash)] if p]
        problems += whole_files(store)
    proc = s.yoi_here(repo, "engine", "run")
    if proc.returncode != 0:
        return [*problems, f"the restarted engine failed: {proc.stderr[-400:]}"]
    problems += s.invariants(store)
    problems += engine_outcomes(store)
    problems += leftovers(store, point, recovery_crash)
    if user_state(repo) != user:
        problems.append("the user's checkout changed")
    if s.worktree_count(repo) != 1:
        problems.append("a private worktree was left behind")
    again = s.yoi_here(repo, "engine", "run", "--json")
    if again.returncode != 0 or '"processed"' in again.stdout:
        problems.append(f"a second restart did more work: {again.stdout[-400:]}")
    return problems


def engine_outcomes(store: Store) -> list[str]:
    """Each ticket ends as its event dictates, with exactly one event processed once."""
    out = []
    for view in s.ticket_views(store).values():
        if len(view.events) != 1:
            out.append(f"{view.slug}: {len(view.events)} events")
            continue
        reason = view.events[0][2]
        expected = {
            "Good one": {"done", "blocked"},
            "Blocked one": {"blocked"},
            "Broken one": {"blocked"},
        }[view.title]
        if view.state not in expected:
            out.append(f"{view.slug}: state {view.state}, expected {sorted(expected)}")
        runs = 0 if reason == "BLOCKED" else 1
        if len(view.runs) != runs:
            out.append(f"{view.slug}: {len(view.runs)} runs for reason {reason}")
    return out


def quick_engine_points(points: Sequence[str]) -> list[str]:
    """Every engine step, every journal (commit point), the first journaled operation
    after it and the last one of each transaction (for the final step: the move to
    done/); the rest (every temp file, every middle operation) runs in --soak."""
    steps = [p for p in points if not p.startswith("fsio.")]
    chosen = []
    for i, p in enumerate(steps):
        prev = steps[i - 1] if i else ""
        following = steps[i + 1] if i + 1 < len(steps) else ""
        first_op = p.startswith("txn.op") and prev.startswith("txn.journal")
        last_op = p.startswith("txn.op") and not following.startswith("txn.op")
        if p.startswith(("engine.", "txn.journal")) or first_op or last_op:
            chosen.append(p)
    return chosen


def run_engine_matrix(
    template: Path, work: Path, argv: Sequence[str], quick: bool, label: str
) -> dict[str, list[str]]:
    started = time.monotonic()
    points = trace(template, work, argv)
    assert any(p.startswith("engine.finished") for p in points), points
    chosen = quick_engine_points(points) if quick else points
    failures = {}
    for i, point in enumerate(chosen):
        problems = engine_trial(template, work / f"t{i}", argv, point)
        if problems:
            failures[point] = problems
    figures.record(
        label,
        trials=len(chosen),
        failures=len(failures),
        seconds=time.monotonic() - started,
        points_traced=len(points),
    )
    return failures


def test_engine_tick_crash_matrix(engine_template: Path, tmp_path: Path, profile: Profile) -> None:
    failures = run_engine_matrix(
        engine_template,
        tmp_path,
        ("engine", "tick"),
        quick=not profile.soak,
        label="crash matrix (engine tick)",
    )
    assert failures == {}


@pytest.mark.slow
def test_engine_run_crash_matrix(run_template: Path, tmp_path: Path) -> None:
    failures = run_engine_matrix(
        run_template,
        tmp_path,
        ("engine", "run"),
        quick=False,
        label="crash matrix (engine run, 3 tickets)",
    )
    assert failures == {}


def test_crash_during_engine_recovery(
    engine_template: Path, tmp_path: Path, profile: Profile
) -> None:
    """kill -9 after acceptance, then kill -9 the resuming engine at each of its steps;
    a third engine still finishes the run exactly once."""
    first = s.clone(engine_template, tmp_path / "first")
    assert crash(first, ("engine", "tick"), "engine.accepted#1") is None
    resume = trace(first, tmp_path / "r", ("engine", "run"))
    chosen = resume if profile.soak else [p for p in resume if p.startswith("engine.")]
    failures = {}
    for i, rp in enumerate(chosen):
        problems = engine_trial(
            engine_template,
            tmp_path / f"t{i}",
            ("engine", "tick"),
            "engine.accepted#1",
            recovery_crash=rp,
        )
        if problems:
            failures[rp] = problems
    figures.record(
        "crash matrix (engine recovery crashes)", trials=len(chosen), failures=len(failures)
    )
    assert failures == {}
