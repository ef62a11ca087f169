"""Several machines (clones of one bare remote) and several processes per machine, racing
for remote claims with real git pushes. The history each worker leaves on disk is checked
against the invariants: one winner per claim, every ticket run exactly once, takeover
only after the lease, a fenced holder writes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from tests.test_distributed_support import LEASE, event_of
from tests.test_remote_claims_support import claim_yaml, claimer, machines, remote_ref
from yoi.remote_state import Status
from yoi.yamlio import load_plain

SLUGS = [f"20260101-0000{i:02d}-ticket-{i}" for i in range(20)]


def spawn(mode: str, clone: Path, work: Path, *slugs: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.test_distributed_support",
            mode,
            str(clone),
            str(work),
            *slugs,
        ],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(procs: list[subprocess.Popen[bytes]], timeout: float = 120) -> None:
    for p in procs:
        _out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err.decode(errors="replace")[-3000:]


def wait_for(path: Path, timeout: float = 60) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.02)


def marks(work: Path, prefix: str) -> Counter[str]:
    """How many ``<prefix>-<slug>-<pid>`` files each slug has."""
    found: Counter[str] = Counter()
    for name in os.listdir(work):
        if name.startswith(prefix + "-"):
            found[name[len(prefix) + 1 :].rsplit("-", 1)[0]] += 1
    return found


def test_eight_processes_on_four_machines_race_and_each_claim_has_one_winner(
    tmp_path: Path,
) -> None:
    remote, clones = machines(tmp_path, 4)
    work = tmp_path / "work"
    work.mkdir()
    slugs = SLUGS[:5]
    procs = [spawn("race", clones[i % 4], work, *slugs) for i in range(8)]
    time.sleep(1.0)
    (work / "go").touch()
    finish(procs)
    assert marks(work, "won") == Counter({s: 1 for s in slugs})
    for slug in slugs:
        assert remote_ref(remote, slug) is not None
        assert load_plain(claim_yaml(remote, slug), path="claim.yaml")["claim_version"] == 1


def test_three_machines_two_workers_each_run_twenty_tickets_exactly_once_despite_a_kill(
    tmp_path: Path,
) -> None:
    remote, clones = machines(tmp_path, 3)
    work = tmp_path / "work"
    work.mkdir()
    victim_slug = SLUGS[0]
    victim = spawn("hold", clones[0], work, victim_slug)
    wait_for(work / f"holding-{victim_slug}")
    started = time.time()
    victim.send_signal(signal.SIGKILL)  # dies holding a live claim, mid-"run"
    victim.wait()
    workers = [spawn("drain", clones[i % 3], work, *SLUGS) for i in range(6)]
    (work / "go").touch()
    finish(workers)
    assert marks(work, "run") == Counter({s: 1 for s in SLUGS})  # exactly once, all of them
    owners = {(work / n).read_text() for n in os.listdir(work) if n.startswith("run-")}
    assert len({o.rsplit(":", 1)[0] for o in owners}) > 1  # the work was really shared
    taken = load_plain(claim_yaml(remote, victim_slug), path="claim.yaml")
    assert taken["claim_version"] >= 2  # taken over from the killed holder
    taken_at = _seconds(str(taken["acquired_at"]))
    assert taken_at >= started + LEASE - 1.0  # not before its lease ran out
    for slug in SLUGS:
        state = claimer(clones[1]).read(slug)
        assert state.status is Status.RELEASED and state.done == (event_of(slug),)


def test_a_stopped_holder_is_fenced_after_a_takeover_and_writes_nothing(tmp_path: Path) -> None:
    remote, (a, b) = machines(tmp_path, 2)
    work = tmp_path / "work"
    work.mkdir()
    slug = SLUGS[0]
    holder = spawn("fenced", a, work, slug)
    wait_for(work / "ready")
    holder.send_signal(signal.SIGSTOP)
    try:
        taker = claimer(b, lease=LEASE)
        end = time.time() + 20
        taken = taker.acquire(slug, event_of(slug))
        while taken is None and time.time() < end:
            time.sleep(0.2)
            taken = taker.acquire(slug, event_of(slug))
        assert taken is not None and taken.claim_version >= 2
    finally:
        holder.send_signal(signal.SIGCONT)
    (work / "go").touch()
    finish([holder])
    assert (work / "fenced").exists() and not (work / "wrote").exists()
    assert remote_ref(remote, slug) == taken.oid  # the woken holder did not renew over it


def _seconds(ts: str) -> float:
    from yoi.claims import parse_time

    return parse_time(ts)
