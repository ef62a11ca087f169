"""`yoi engine tick|run|watch`: drive the control plane (SPEC §5, §7).

Progress goes to stderr; the returned ``Output`` is the JSON document (SPEC §7) and the
human summary. ``watch`` turns SIGINT/SIGTERM into "finish the current step, release
the claims, exit 0".
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from yoi import engine_view, proc
from yoi.engine_result import IDLE, PROCESSED, TickResult
from yoi.errors import UsageError, YoiError
from yoi.output import Output
from yoi.store import Store

if TYPE_CHECKING:
    from collections.abc import Iterator

    from yoi.remote_claims import RemoteClaimer


def _progress(line: str) -> None:
    sys.stderr.write(f"yoi: engine: {line}\n")
    sys.stderr.flush()


JANITOR_EVERY_S = 60.0  # `watch` sweeps stale worktrees and temp files this often


TEMP_SWEEP_EVERY_S = 600.0  # the store-wide temp-file walk, at most this often


def _sweep(store: Store) -> None:
    from yoi import janitor

    report = janitor.clean(store, temp_every_s=TEMP_SWEEP_EVERY_S)
    if not report.empty:
        _progress(f"janitor: {report.summary()}")


def _check_remote(remote: str | None, push_branch: bool) -> None:
    if push_branch and remote is None:
        raise UsageError("--push-branch needs --remote NAME")


@dataclass
class _Engine:
    """One engine instance: its owner id and, with ``--remote``, its remote claimer."""

    store: Store
    owner: str
    claimer: RemoteClaimer | None = None
    push_branch: bool = False

    @classmethod
    def start(cls, store: Store, remote: str | None, push_branch: bool) -> _Engine:
        _check_remote(remote, push_branch)
        from yoi.claims import new_owner_id

        _sweep(store)
        owner = new_owner_id()
        if remote is None:
            return cls(store, owner)
        from yoi.remote_claims import RemoteClaimer

        claimer = RemoteClaimer.for_store(store, remote, owner=owner, push_branch=push_branch)
        return cls(store, owner, claimer, push_branch)

    def tick(self) -> TickResult:
        from yoi import engine

        result = engine.tick(self.store, owner=self.owner, remote=self.claimer)
        if self.push_branch and self.claimer is not None and result.run_id and result.ticket:
            from yoi.remote_lease import push_work_branch

            pushed = push_work_branch(self.claimer, self.store, result.ticket, warn=_warn)
            if pushed:
                _progress(f"pushed the work branch of {result.ticket} ({pushed[:12]})")
        return result


def _warn(line: str) -> None:
    _progress(f"warning: {line}")


def tick_text(r: TickResult) -> str:
    if r.outcome == IDLE:
        return "idle"
    if r.outcome == PROCESSED and r.run_id:
        return r.run_id
    return f"{r.outcome} {r.event_id} ({r.ticket}): {r.reason}"


def _describe(r: TickResult) -> str:
    if r.outcome == PROCESSED and r.run_id:
        return f"{r.event_id} ({r.ticket}) -> {r.run_id}"
    return tick_text(r)


def _idle(store: Store, remote: str | None, push_branch: bool) -> bool:
    """Nothing to do, known without starting an engine: no pending TICKET_READY event
    (what ``engine.tick`` checks first) and no interrupted change to complete (an engine
    takes the store lock, and the lock holder rolls a pending journal forward). The
    janitor then waits for a tick with work (or ``watch``'s periodic sweep): what it
    cleans only matters to a run. With ``--remote`` the engine starts anyway, so a wrong
    remote is reported."""
    if remote is not None or push_branch or store.journal_pending():
        return False
    return not engine_view.has_work(store)


def tick(store: Store, *, remote: str | None = None, push_branch: bool = False) -> Output:
    from yoi import checkpoint

    if _idle(store, remote, push_branch):
        result = TickResult(IDLE)
    else:
        with checkpoint.deferred():  # the engine's syncs: docs/reliability.md
            result = _Engine.start(store, remote, push_branch).tick()
    return Output(result.as_dict(), tick_text(result))


def _kick(store: Store) -> bool:
    """Apply the kick rules once; True when they changed anything."""
    from yoi import plan

    result = plan.kick(store)
    if result.changed:
        _progress(f"kick: {result.reason}")
    return bool(result.changed)


def _ticks_output(ticks: list[TickResult]) -> Output:
    processed = [t for t in ticks if t.outcome == PROCESSED]
    lines = [tick_text(t) for t in processed]
    last = ticks[-1] if ticks else None
    if last is not None and last.outcome != PROCESSED:
        lines.append(tick_text(last))
    lines.append(f"{len(processed)} event(s) processed")
    return Output({"ticks": [t.as_dict() for t in ticks]}, "\n".join(lines))


def run(
    store: Store,
    *,
    max_ticks: int | None = None,
    kick: bool = False,
    remote: str | None = None,
    push_branch: bool = False,
    jobs: int = 1,
) -> Output:
    """Tick until nothing is processed (idle, or every pending event deferred); with
    ``jobs`` > 1, that many engine processes at once (``engine_jobs``)."""
    from yoi import views

    with views.trusting():  # the pending events found below are the first tick's too
        return _run(store, max_ticks, kick, remote, push_branch, jobs)


def _run(
    store: Store,
    max_ticks: int | None,
    kick: bool,
    remote: str | None,
    push_branch: bool,
    jobs: int,
) -> Output:
    if not kick and _idle(store, remote, push_branch):
        _progress(tick_text(TickResult(IDLE)))
        return _ticks_output([TickResult(IDLE)])
    if jobs > 1:
        from yoi.commands import engine_jobs

        shares = engine_jobs.workers(store, jobs, max_ticks)
        if len(shares) > 1:
            _check_remote(remote, push_branch)  # once here, not once per worker
            merged, code = engine_jobs.run(
                store, shares, kick=kick, remote=remote, push_branch=push_branch
            )
            return dataclasses.replace(_ticks_output(merged), code=code)
    from yoi import cache, checkpoint, views

    eng = _Engine.start(store, remote, push_branch)
    ticks: list[TickResult] = []
    kicked = False
    # The derived caches are written once a second, not per tick, and the store-wide
    # views are kept between ticks while no other process commits (``views``). The
    # files of each commit are synced in the background, many commits at once (its
    # journal is synced before it returns: ``checkpoint``).
    with (
        _stop_on_signals((signal.SIGTERM,)) as stop,  # the step finishes, then the loop ends
        cache.deferred(),
        views.trusting(),
        checkpoint.deferred(),
    ):
        while (max_ticks is None or len(ticks) < max_ticks) and not stop.is_set():
            result = eng.tick()
            if result.outcome != PROCESSED and kick and not kicked and _kick(store):
                kicked = True
                continue
            ticks.append(result)
            _progress(_describe(result))
            if result.outcome != PROCESSED:
                break
            kicked = False
    if stop.is_set():
        _progress(f"stopped; {len(ticks)} event(s) processed")
    return _ticks_output(ticks)


class _Stop:
    """Set by SIGINT/SIGTERM: the current step finishes, then the loop ends. A second
    SIGINT (Ctrl-C again) stops at once, as Ctrl-C stops ``engine run``: the runner's
    process group is killed and the next engine records the run as RUNNER_ERROR.

    The handler runs in the main thread between any two bytecodes, also inside the loop's
    own wait or while it writes to stderr, and a second signal may arrive while it runs
    (a terminal's Ctrl-C reaches a ``--jobs`` worker directly and again from its parent).
    So it takes no lock: a ``threading.Event`` would deadlock when the main thread holds
    the event's lock (inside ``wait``, or inside ``set`` from a first signal), and
    ``sys.stderr`` raises "reentrant call" when a write of the main thread's is under
    way. It sets plain flags, wakes ``wait`` through a pipe, and writes its message
    straight to file descriptor 2."""

    def __init__(self) -> None:
        self.stopping = False
        self.interrupted = False  # a SIGINT came (a SIGTERM first does not count: the
        # parent of ``--jobs`` workers passes the terminal's Ctrl-C on as SIGTERM)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def is_set(self) -> bool:
        return self.stopping

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, less when a stop signal comes; True once one
        has come."""
        if not self.stopping:
            select.select([self._wake_r], [], [], timeout)
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 64)
        return self.stopping

    def close(self) -> None:
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT:
            if self.interrupted:
                _say("SIGINT again: stopping now")
                raise KeyboardInterrupt
            self.interrupted = True
        if self.stopping:
            return
        self.stopping = True  # first: a signal may arrive while this handler runs
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")
        again = " (Ctrl-C again to stop now)" if signum == signal.SIGINT else ""
        _say(
            f"{signal.Signals(signum).name}: finishing the current step, "
            f"then releasing claims{again}"
        )


def _say(line: str) -> None:
    """``_progress`` for a signal handler: one unbuffered write to fd 2, no lock."""
    with contextlib.suppress(OSError):
        os.write(2, f"yoi: engine: {line}\n".encode("utf-8", "replace"))


@contextlib.contextmanager
def _stop_on_signals(
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
) -> Iterator[_Stop]:
    """A ``_Stop`` handling ``signals`` while in the block."""
    stop = _Stop()
    try:
        with proc.on_stop_signals(stop, signals):
            yield stop
    finally:
        stop.close()


def watch(
    store: Store,
    *,
    interval: float = 2.0,
    kick: bool = True,
    remote: str | None = None,
    push_branch: bool = False,
    max_polls: int | None = None,
    jobs: int = 1,
) -> Output:
    """Poll until SIGINT/SIGTERM (or ``max_polls`` idle polls, for tests). An expected
    error in one poll (an unreachable remote, a busy lock) is a warning; the next poll
    tries again. With ``jobs`` > 1, that many watchers at once (``engine_jobs``)."""
    from yoi import views

    if jobs > 1:
        from yoi.commands import engine_jobs

        count = len(engine_jobs.workers(store, jobs, None))
        if count > 1:
            _check_remote(remote, push_branch)  # once here, not once per worker
            _progress(f"{count} watchers; Ctrl-C to stop them all")
            merged, code = engine_jobs.watch(
                store, count, interval=interval, kick=kick, remote=remote, push_branch=push_branch
            )
            _progress(f"stopped; {len(merged)} event(s) processed")
            return dataclasses.replace(_ticks_output(merged), code=code)

    from yoi import checkpoint

    ticks: list[TickResult] = []
    polls = 0
    with _stop_on_signals() as stop, views.trusting(), checkpoint.deferred():
        eng = _Engine.start(store, remote, push_branch)
        _progress(f"watching (every {interval:g}s) as {eng.owner}; Ctrl-C to stop")
        swept = time.monotonic()
        while not stop.is_set():
            result = _poll(eng, kick)
            if result is not None and result.outcome == PROCESSED:
                ticks.append(result)
                _progress(_describe(result))
                continue
            polls += 1
            if max_polls is not None and polls >= max_polls:
                break
            if time.monotonic() - swept > JANITOR_EVERY_S:
                _sweep(store)
                swept = time.monotonic()
            stop.wait(interval)
    _progress(f"stopped; {len(ticks)} event(s) processed")
    return _ticks_output(ticks)


def _poll(eng: _Engine, kick: bool) -> TickResult | None:
    """One tick and, when it processed nothing, the kick rules (and one more tick if they
    changed anything). None after an expected error, which is printed as a warning."""
    try:
        result = eng.tick()
        if result.outcome != PROCESSED and kick and _kick(eng.store):
            result = eng.tick()
        return result
    except YoiError as exc:
        _warn(exc.render() + (f" (hint: {exc.hint})" if exc.hint else ""))
        return None
