"""Concurrency soak (R24, SPEC §9 "any number of concurrent engines and CLI writers"):
M writer threads run real `yoi` commands (comments, label edits, lifecycle transitions)
while K engine loops run `yoi engine run`, and a nemesis kill -9s or SIGSTOPs (then
SIGCONTs) random processes, sometimes past the claim lease so another engine takes
over. A sampler reads every claim record as it changes. Once everything has stopped, a
last engine run drains the events and ``history.check`` compares the history with disk.

Quick profile: 6 writers and 2 engines for about 20 seconds. ``--soak``: 8 writers and
3 engines for ``--soak-seconds``. Figures: operations, outcomes, kills, stops, events,
runs, anomalies (must be 0).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import user_state
from tests.reliability import figures, history
from tests.reliability import support as s
from tests.reliability.history import FAIL, INFO, OK, History
from tests.reliability.plugin import Profile
from yoi import claims
from yoi.store import Store

BUSY = [f"Busy {i}" for i in range(3)]
PASSING = [f"Flow {i}" for i in range(2)]  # their patch applies: they end done
CYCLING = [f"Flow {i}" for i in range(2, 6)]  # their runner fails: blocked, requeued, ...
TRANSITIONS = {
    "ready": ("ticket", "ready"),
    "queue": ("ticket", "queue"),
    "requeue": ("ticket", "requeue"),
    "return": ("ticket", "return"),
}
LEASE = 3


@dataclass
class Cluster:
    """The processes under test, so that the nemesis can pick one."""

    repo: Path
    env: dict[str, str]
    running: dict[int, tuple[subprocess.Popen[str], str]] = field(default_factory=dict)
    stopped: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    unclean: list[str] = field(default_factory=list)

    def run(self, label: str, argv: Sequence[str], timeout: float = 120) -> tuple[int, str]:
        proc = subprocess.Popen(
            [s.PY, "-m", "yoi", *argv],
            cwd=self.repo,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with self.lock:
            self.running[proc.pid] = (proc, label)
        try:
            _out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, err = proc.communicate()
        finally:
            with self.lock:
                self.running.pop(proc.pid, None)
                self.stopped.discard(proc.pid)
        if proc.returncode not in (0, 1, 2, -signal.SIGKILL) or "Traceback" in err:
            self.unclean.append(f"{label} {list(argv)}: exit {proc.returncode}: {err[-800:]}")
        return proc.returncode, err

    def victim(self, rng: random.Random) -> tuple[int, str] | None:
        with self.lock:
            live = [
                (pid, label) for pid, (_p, label) in self.running.items() if pid not in self.stopped
            ]
        return rng.choice(live) if live else None

    def signal(self, pid: int, sig: int) -> bool:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        with self.lock:
            if sig == signal.SIGSTOP:
                self.stopped.add(pid)
            elif sig == signal.SIGCONT:
                self.stopped.discard(pid)
        return True

    def continue_all(self) -> None:
        with self.lock:
            pids = list(self.stopped)
        for pid in pids:
            self.signal(pid, signal.SIGCONT)


def outcome_of(code: int, err: str) -> str:
    if code == 0:
        return OK
    if code in (1, 2) and "yoi: error:" in err:
        return FAIL
    return INFO  # killed, timed out, or an unclean exit (reported separately)


def writer(i: int, cluster: Cluster, hist: History, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    seq = 0
    while not stop.is_set():
        seq += 1
        roll = rng.random()
        if roll < 0.45:
            title = rng.choice(BUSY + PASSING + CYCLING)
            text = f"h-{i}-{seq}"
            op = hist.invoke(f"w{i}", "comment", title, text)
            argv: Sequence[str] = ("ticket", "comment", _name(title), "-m", text)
        elif roll < 0.6:
            title = rng.choice(BUSY)
            label = f"l-{i}-{seq}"
            op = hist.invoke(f"w{i}", "label", title, label)
            argv = ("ticket", "edit", _name(title), "--label-add", label)
        else:
            title = rng.choice(PASSING + CYCLING)
            action = rng.choice(list(TRANSITIONS))
            op = hist.invoke(f"w{i}", action, title)
            argv = (*TRANSITIONS[action], _name(title))
            if action == "return":
                argv = (*argv, "--reason", "soak")
        code, err = cluster.run(f"w{i}", argv)
        hist.complete(op, outcome_of(code, err), err[-300:])


def _name(title: str) -> str:
    return title.lower().replace(" ", "-")


def engine_loop(k: int, cluster: Cluster, stop: threading.Event) -> None:
    while not stop.is_set():
        cluster.run(f"e{k}", ("engine", "run"), timeout=180)
        stop.wait(0.2)


def nemesis(cluster: Cluster, hist: History, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    while not stop.wait(rng.uniform(0.8, 2.0)):
        found = cluster.victim(rng)
        if found is None:
            continue
        pid, label = found
        if rng.random() < 0.6:
            if cluster.signal(pid, signal.SIGKILL):
                hist.fault("kill", label)
            continue
        long = label.startswith("e") and rng.random() < 0.3  # past the lease: a takeover
        pause = rng.uniform(LEASE + 0.5, LEASE + 2.0) if long else rng.uniform(0.1, 1.0)
        if cluster.signal(pid, signal.SIGSTOP):
            hist.fault("stop-long" if long else "stop", label)
            stop.wait(pause)
            cluster.signal(pid, signal.SIGCONT)


def sampler(store: Store, hist: History, stop: threading.Event, torn: list[str]) -> None:
    base = store.runtime_dir / claims.CLAIMS_DIR
    while not stop.wait(0.05):
        try:
            names = sorted(os.listdir(base))
        except FileNotFoundError:
            continue
        for name in names:
            if name.startswith(".") or not name.endswith(".yaml"):
                continue
            try:
                record = claims.read_record(base / name)
            except FileNotFoundError:
                continue
            except Exception as exc:  # a torn or invalid claim record
                torn.append(f"{name}: {exc}")
                continue
            if record is not None:
                hist.sample(name.removesuffix(".yaml"), record)


@pytest.fixture
def soak_repo(repo: Path) -> Iterator[Path]:
    store = s.make_store(repo, s.engine_config(lease=LEASE))
    for title in BUSY:
        s.new_ticket(store, title)
    for title in PASSING:
        s.queued_with_patch(store, repo, title)
    for title in CYCLING:
        s.queued(store, title, runner="broken")
    yield repo


def soak(repo: Path, *, writers: int, engines: int, seconds: float, seed: int) -> list[str]:
    store = Store.discover(repo)
    hist = History()
    hist.start(store)
    env = {**os.environ, "PYTHONPATH": str(s.ROOT), "YOI_LOCK_TIMEOUT": "20"}
    cluster = Cluster(repo, env)
    user = user_state(repo)
    stop, sample_stop = threading.Event(), threading.Event()
    torn: list[str] = []
    threads = [
        threading.Thread(target=writer, args=(i, cluster, hist, stop, seed + i))
        for i in range(writers)
    ]
    threads += [
        threading.Thread(target=engine_loop, args=(k, cluster, stop)) for k in range(engines)
    ]
    chaos = threading.Thread(target=nemesis, args=(cluster, hist, stop, seed))
    watch = threading.Thread(target=sampler, args=(store, hist, sample_stop, torn))
    started = time.monotonic()
    for t in [*threads, chaos, watch]:
        t.start()
    time.sleep(seconds)
    stop.set()
    chaos.join()
    cluster.continue_all()
    for t in threads:
        t.join(timeout=300)
    for _ in range(3):  # drain: a quiet engine processes every pending event
        code, err = cluster.run("final", ("engine", "run"), timeout=300)
        assert code == 0, err
    sample_stop.set()
    watch.join()
    report = history.check(hist, store)
    anomalies = report.anomalies + cluster.unclean + [f"torn claim record {t}" for t in torn]
    if user_state(repo) != user:
        anomalies.append("the user's checkout changed")
    if s.worktree_count(repo) != 1:
        anomalies.append("private worktrees were left behind")
    kills = sum(a == "kill" for _t, a, _l in hist.nemesis)
    stops = len(hist.nemesis) - kills
    figures.record(
        "concurrency soak",
        trials=1,
        operations=len(hist.ops),
        failures=len(anomalies),
        seconds=time.monotonic() - started,
        writers=writers,
        engines=engines,
        kills=kills,
        stops=stops,
        events=report.stats["events"],
        runs=report.stats["runs"],
        ok=sum(op.outcome == OK for op in hist.ops),
        refused=sum(op.outcome == FAIL for op in hist.ops),
        unknown=sum(op.outcome == INFO for op in hist.ops),
        claim_samples=len(hist.claims),
    )
    return anomalies


def test_concurrency_soak_quick(soak_repo: Path, profile: Profile) -> None:
    if profile.soak:
        pytest.skip("the soak profile runs test_concurrency_soak_long instead")
    anomalies = soak(soak_repo, writers=6, engines=2, seconds=20, seed=20261121)
    assert anomalies == []


@pytest.mark.slow
def test_concurrency_soak_long(soak_repo: Path, profile: Profile) -> None:
    seed = random.randrange(1 << 30)
    anomalies = soak(soak_repo, writers=8, engines=3, seconds=profile.seconds, seed=seed)
    assert anomalies == [], f"seed {seed}"


# ---- the checker can fail ------------------------------------------------------------------
def _history_store(repo: Path) -> Store:
    store = s.make_store(repo)
    slug = s.new_ticket(store, "Busy 0")
    from yoi import tickets
    from yoi.model import CommentKind

    for text in ("h-0-1", "h-0-3", "h-0-3", "h-9-9"):
        tickets.comment(store, slug, kind=CommentKind.COMMENT, message=text, by="ada")
    return store


def test_history_checker_finds_lost_duplicate_failed_and_phantom_comments(repo: Path) -> None:
    store = _history_store(repo)
    hist = History()
    for value, outcome in (("h-0-1", OK), ("h-0-2", OK), ("h-0-3", OK), ("h-0-4", INFO)):
        hist.complete(hist.invoke("w0", "comment", "Busy 0", value), outcome)
    found = history.check(hist, store).anomalies
    assert found == [
        "phantom comment 'h-9-9' on Busy 0",
        "acknowledged comment 'h-0-2' is in the thread 0 times (lost update)",
        "acknowledged comment 'h-0-3' landed 2 times",
    ]
    hist.complete(hist.invoke("w0", "comment", "Busy 0", "h-9-9"), FAIL)
    assert "failed comment 'h-9-9' landed anyway" in history.check(hist, store).anomalies


def test_history_checker_finds_lost_transitions_and_claim_versions_going_back(
    repo: Path,
) -> None:
    store = _history_store(repo)
    hist = History()
    hist.start(store)
    hist.complete(hist.invoke("w0", "ready", "Busy 0"), OK)  # acknowledged, not on disk
    record = {"owner_id": "a", "claim_version": 2}
    hist.sample("EVENT-ev-1", record)
    hist.sample("EVENT-ev-1", {"owner_id": "b", "claim_version": 2})
    hist.sample("EVENT-ev-1", {"owner_id": "a", "claim_version": 1})
    found = history.check(hist, store).anomalies
    assert (
        "Busy 0: 0 entries into ready, expected 1..1 from the history (lost or phantom "
        "transition)" in found
    )
    assert "EVENT-ev-1: version 2 held by a and b" in found
    assert "EVENT-ev-1: claim_version went back from 2 to 1" in found
