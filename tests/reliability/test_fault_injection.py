"""The Nth-I/O fault loop (R18, SQLite style): ``YOI_TEST_FAULT=<op>:<n>`` makes the n-th
file-system operation (write, fsync, rename, link, mkdir, or ``any``) fail with EIO;
``<op>:<n>+`` makes every operation from the n-th on fail (a full disk).

For every store write path, n runs from 1 until the command succeeds. After each
failure: the command said so cleanly (exit 1 or 2, ``yoi: error:``, no traceback), the
store is exactly as before (not one byte under .yoi/ changed, no temp file left) or —
only for a persistent fault after the commit point — the error says the change is saved
and the next command completes it; every file is whole and valid; and a retry (or, for
a saved change, any next write) converges to the state a fault-free run produces.

The commands run in-process (``yoi.cli.main``) so a loop costs milliseconds per trial;
``faults.configure`` sets the same knobs the environment variable does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import init_repo
from tests.reliability import figures
from tests.reliability import support as s
from tests.reliability.plugin import Profile
from yoi import cli, faults, journal, tickets
from yoi.lifecycle import Action
from yoi.model import BlockerKind
from yoi.store import Store

MAX_N = 400  # far above the I/O count of any command here


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]


CLI_CASES = [
    Case("create", ("ticket", "create", "Fault me", "--ac", "x")),
    Case("comment", ("ticket", "comment", "plain-one", "-m", "fault comment")),
    Case("ready", ("ticket", "ready", "plain-one")),
    Case("queue (event emit)", ("ticket", "queue", "ready-one")),
    Case("return", ("ticket", "return", "ready-one", "--reason", "not yet")),
    Case("edit", ("ticket", "edit", "plain-one", "--label-add", "fault-label")),
    Case(
        "block",
        ("ticket", "block", "plain-one", "--kind", "USER_INPUT", "--description", "fault blocker"),
    ),
    Case("resolve", ("ticket", "resolve", "blocked-one", "b1")),
]
ENGINE = Case("engine run (done-bucket move)", ("engine", "run"))


@pytest.fixture(autouse=True)
def _no_faults_after() -> Iterator[None]:
    yield
    faults.reset()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = init_repo(tmp_path_factory.mktemp("faults") / "repo")
    store = s.make_store(repo)
    s.new_ticket(store, "Plain one")
    ready = s.new_ticket(store, "Ready one")
    tickets.transition(store, ready, Action.READY, by="ada")
    blocked = s.new_ticket(store, "Blocked one")
    tickets.add_blocker(store, blocked, kind=BlockerKind.USER_INPUT, description="wait")
    s.new_ticket(store, "Other one")
    s.queued_with_patch(store, repo, "Good one")
    return repo


@dataclass
class Trial:
    code: int
    out: str
    err: str
    io_ops: int  # operations of the injected kind counted (n > io_ops: never injected)


def run_cli(argv: Sequence[str], capsys: pytest.CaptureFixture[str], fault: str = "") -> Trial:
    faults.configure(fault=fault)
    try:
        code = cli.main(list(argv))
        count = faults.io_count()
    finally:
        faults.reset()
    captured = capsys.readouterr()
    return Trial(code, captured.out, captured.err, count)


def unclean(trial: Trial) -> str | None:
    if trial.code not in (1, 2):
        return f"exit code {trial.code}"
    if "Traceback" in trial.err or "yoi: error:" not in trial.err:
        return f"unclean error output: {trial.err[-600:]!r}"
    return None


@dataclass
class Loop:
    trials: int = 0
    failures_injected: int = 0  # the command failed
    absorbed: int = 0  # the fault hit, the command retried and succeeded
    saved: int = 0  # failed after the commit point (completed by the next command)


def _leftovers(store: Store) -> list[str]:
    temps = s.temp_files(store)
    return [f"temp files left: {temps}"] if temps else []


def expected_state(
    template: Path,
    work: Path,
    argv: Sequence[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, tuple[object, ...]]:
    repo = s.clone(template, work)
    monkeypatch.chdir(repo)
    trial = run_cli(argv, capsys)
    assert trial.code == 0, trial.err
    return s.semantic(Store.discover(repo))


def fault_loop(
    template: Path,
    work: Path,
    case: Case,
    kind: str,
    *,
    persistent: bool,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stride: int = 1,
) -> tuple[Loop, dict[str, list[str]]]:
    """n = 1, 1+stride, ... until the n-th operation is never reached (the command ran
    without a fault). A command that absorbs a fault (a retried apply) must still end in
    the fault-free state. Returns figures and problems by fault spec."""
    new = expected_state(template, work / "reference", case.argv, capsys, monkeypatch)
    loop, failures = Loop(), {}
    for n in range(1, MAX_N, stride):
        repo = s.clone(template, work / f"n{n}")
        monkeypatch.chdir(repo)
        store = Store.discover(repo)
        before_files, before = s.store_files(store), s.semantic(store)
        spec = f"{kind}:{n}{'+' if persistent else ''}"
        trial = run_cli(case.argv, capsys, fault=spec)
        loop.trials += 1
        if trial.code == 0:
            problems = _same(s.semantic(store), new, "after a successful run")
            problems += s.invariants(store, quiescent=False) + _leftovers(store)
            if problems:
                failures[spec] = problems
            if trial.io_ops < n:
                return loop, failures
            loop.absorbed += 1
            continue
        loop.failures_injected += 1
        problems = after_failure(store, trial, before_files, before, new, loop)
        problems += converge(store, case, trial, new, capsys)
        if problems:
            failures[spec] = problems
    failures["loop"] = [f"still failing at n={MAX_N}"]
    return loop, failures


def _same(got: object, want: object, when: str) -> list[str]:
    return [] if got == want else [f"{when}: state {got!r}, expected {want!r}"]


def committed(trial: Trial) -> bool:
    """The error says the change happened (saved in the journal, or written but not
    synced): the caller must not repeat it."""
    return journal.SAVED in trial.err or journal.WRITTEN in trial.err


def after_failure(
    store: Store,
    trial: Trial,
    before_files: dict[str, bytes],
    before: object,
    new: object,
    loop: Loop,
) -> list[str]:
    problems = [p for p in [unclean(trial)] if p]
    problems += s.validity_problems(store, settled=not committed(trial)) + _leftovers(store)
    if journal.SAVED in trial.err:
        loop.saved += 1
        if not journal.pending(store.runtime_dir / "journal"):
            problems.append("the error says the change is saved, but no journal is pending")
    elif journal.WRITTEN in trial.err:
        loop.saved += 1
        problems += _same(s.semantic(store), new, "written but not synced")
    elif s.store_files(store) != before_files:
        changed = sorted(
            k
            for k in {*before_files, *s.store_files(store)}
            if before_files.get(k) != s.store_files(store).get(k)
        )
        problems.append(f"a failed command changed files: {changed}")
    return problems


def converge(
    store: Store,
    case: Case,
    failed: Trial,
    new: dict[str, tuple[object, ...]],
    capsys: pytest.CaptureFixture[str],
) -> list[str]:
    """Retry without faults (or, for a saved change, make any other write)."""
    if committed(failed):
        retry = run_cli(("ticket", "comment", "other-one", "-m", "later"), capsys)
    else:
        retry = run_cli(case.argv, capsys)
    if retry.code != 0:
        return [f"the retry failed: {retry.err[-400:]}"]
    problems = _same(_without_other(s.semantic(store)), _without_other(new), "after the retry")
    return problems + s.invariants(store, quiescent=False)


def _without_other(state: dict[str, tuple[object, ...]]) -> dict[str, tuple[object, ...]]:
    return {k: v for k, v in state.items() if k != "Other one"}


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.name for c in CLI_CASES])
def test_every_single_io_fault_on_a_cli_write(
    template: Path,
    tmp_path: Path,
    case: Case,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    profile: Profile,
) -> None:
    started = time.monotonic()
    kinds = ["any", *faults.OPS] if profile.soak else ["any"]
    failures: dict[str, list[str]] = {}
    for kind in kinds:
        loop, found = fault_loop(
            template,
            tmp_path / kind,
            case,
            kind,
            persistent=False,
            capsys=capsys,
            monkeypatch=monkeypatch,
        )
        failures.update(found)
        figures.record(
            "fault injection (one-shot)",
            trials=loop.trials,
            operations=loop.failures_injected,
            failures=len(found),
            absorbed=loop.absorbed,
        )
        if kind == "any":
            hit = loop.failures_injected + loop.absorbed
            assert hit >= 5, "the command does fewer I/O ops than expected"
    figures.record("fault injection (one-shot)", seconds=time.monotonic() - started)
    assert failures == {}


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.name for c in CLI_CASES])
def test_persistent_io_fault_on_a_cli_write(
    template: Path,
    tmp_path: Path,
    case: Case,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A disk that stays broken from the n-th operation on: old state, or the change
    saved in the journal and completed by the next command, exactly once."""
    loop, failures = fault_loop(
        template, tmp_path, case, "any", persistent=True, capsys=capsys, monkeypatch=monkeypatch
    )
    figures.record(
        "fault injection (persistent)",
        trials=loop.trials,
        operations=loop.failures_injected,
        failures=len(failures),
        saved=loop.saved,
        absorbed=loop.absorbed,
    )
    assert failures == {}


def engine_with_fault(repo: Path, work: Path, n: int) -> Trial:
    """``yoi engine run`` in its own process with the n-th I/O failing: the process ends
    as a real one does (its claims are then a dead process's, taken over at once)."""
    count = work / f"count-{n}"
    proc = s.yoi(
        repo, *ENGINE.argv, env={"YOI_TEST_FAULT": f"any:{n}", "YOI_TEST_IO_COUNT": str(count)}
    )
    io_ops = int(count.read_text()) if count.exists() else n
    return Trial(proc.returncode, proc.stdout, proc.stderr, io_ops)


def test_io_faults_in_an_engine_run(
    template: Path,
    tmp_path: Path,
    profile: Profile,
) -> None:
    """The engine's writes (claims, acceptance, bundle, run record, the done-bucket move):
    a failed run reports cleanly and the next run converges — the event processed once,
    one workorder, the ticket done (or blocked with the stopped run recorded)."""
    started = time.monotonic()
    stride = 1 if profile.soak else 7
    failures: dict[str, list[str]] = {}
    trials = injected = absorbed = 0
    for n in range(1, MAX_N, stride):
        repo = s.clone(template, tmp_path / f"n{n}")
        store = Store.discover(repo)
        trial = engine_with_fault(repo, tmp_path, n)
        trials += 1
        if trial.io_ops < n:
            break
        problems = s.validity_problems(store, settled=not committed(trial))
        if trial.code == 0:
            absorbed += 1
        else:
            injected += 1
            problems += [p for p in [unclean(trial)] if p]
            retry = s.yoi_here(repo, *ENGINE.argv)  # the user runs the engine again
            if retry.returncode != 0:
                problems.append(f"the retry failed: {retry.stderr[-400:]}")
        problems += s.invariants(store) + engine_outcome(store, stopped=trial.code != 0)
        if problems:
            failures[f"any:{n}"] = problems
    figures.record(
        "fault injection (engine run)",
        trials=trials,
        operations=injected,
        failures=len(failures),
        seconds=time.monotonic() - started,
        absorbed=absorbed,
    )
    assert injected + absorbed >= 5
    assert failures == {}


def engine_outcome(store: Store, *, stopped: bool) -> list[str]:
    """The ticket passes; only an engine stopped by a fault after acceptance may leave
    it blocked (the interrupted run is recorded, never repeated)."""
    view = s.semantic(store)["Good one"]
    bucket, state, _labels, _comments, _chain, events, runs = view[:7]
    problems = []
    ends = [("done", "done"), ("open", "blocked")] if stopped else [("done", "done")]
    if (bucket, state) not in ends:
        problems.append(f"Good one ended as {state} in {bucket}")
    if events != ((True, "EXECUTED"),) or runs != 1:
        problems.append(f"Good one: events {events}, runs {runs}")
    return problems


@pytest.mark.parametrize("spec", ["write:1", "rename:1"])
def test_a_claim_write_that_fails_leaves_the_claim_free(tmp_path: Path, spec: str) -> None:
    """Claim records are replaced without fsync (yoi.claims), so the write fails before the
    rename or not at all: acquire raises cleanly, no record or temp file is left, and the
    same engine (``yoi engine watch`` keeps its process) takes the claim at once after."""
    from yoi.claims import Claims
    from yoi.fsio import StoreIOError
    from yoi.paths import Layout

    root = tmp_path / "r"
    (root / ".git").mkdir(parents=True)
    (root / ".yoi").mkdir()
    store = Store(Layout(root, root / ".git", root / ".git", root / ".yoi"))
    book = Claims(store, owner="engine-1", lease_seconds=60)
    eid = "ev-20260101000000-0000000000"
    book.path("EVENT", eid)  # the claims directory exists
    faults.configure(fault=spec)
    with pytest.raises(StoreIOError):
        book.acquire("EVENT", eid)
    faults.reset()
    assert sorted(p.name for p in book.path("EVENT", eid).parent.iterdir()) == []
    assert book.acquire("EVENT", eid) is not None


def test_the_fault_knobs_count_as_documented(tmp_path: Path) -> None:
    def outcomes(spec: str, op: str = "rename", times: int = 4) -> list[bool]:
        faults.configure(fault=spec)
        out = []
        for _ in range(times):
            try:
                faults.io(op)
                out.append(True)
            except OSError:
                out.append(False)
        return out

    assert outcomes("rename:2") == [True, False, True, True]
    assert outcomes("rename:2+") == [True, False, False, False]
    assert outcomes("any:3", op="fsync") == [True, True, False, True]
    assert outcomes("write:1", op="rename") == [True] * 4  # another kind is not counted
    assert outcomes("bogus:1") == [True] * 4
    trace = tmp_path / "trace"
    faults.configure(trace=str(trace))
    for name in ("a", "b", "a"):
        faults.crashpoint(name)
    assert trace.read_text().split() == ["a#1", "b#1", "a#2"]
