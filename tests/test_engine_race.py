"""Real engine processes at once: four racing over forty tickets, and a holder stopped
past its lease while another engine takes over."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.engine_helpers import PY, config, make_store, queue, queue_with_patch, spawn_engine
from tests.helpers import git, user_state
from tests.test_engine_crash import check_invariants
from yoi import events
from yoi.store import Store


def test_four_engines_over_forty_tickets_run_each_exactly_once(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    store = make_store(repo, config(capacity=40))
    slugs = [queue_with_patch(store, repo, f"Race {i}") for i in range(40)]
    user = user_state(repo)
    procs = [spawn_engine(repo, "run", "--json") for _ in range(4)]
    run_ids: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err.decode()
        ticks = json.loads(out)["ticks"]
        run_ids += [t["run_id"] for t in ticks if t["outcome"] == "processed"]
    assert user_state(repo) == user
    assert len(run_ids) == 40 and len(set(run_ids)) == 40
    outcomes = check_invariants(store, repo)
    assert outcomes == {"EXECUTED": 40}
    workorders = list(store.yoi_dir.rglob("workorder.yaml"))
    records = list(store.yoi_dir.rglob("run_record.yaml"))
    assert len(workorders) == 40 and len(records) == 40
    # Every run ends done; a run may still end blocked with RUNNER_ERROR when the git
    # layer fails under contention, but never because the engine resumed or repeated it.
    assert {store.read_ticket(s).state.value for s in slugs} <= {"done", "blocked"}
    for path in records:
        record = store.read_record(path, "run_record")
        assert record["gate_result"] == "PASS" or record["runner_status"] == "RUNNER_ERROR"
        assert "the engine stopped" not in record["gate_reason"]
    assert all(len(store.run_dirs(store.ticket_dir(s))) == 1 for s in slugs)


def _files(store: Store) -> dict[str, tuple[int, bytes]]:
    out = {}
    for path in sorted(store.yoi_dir.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(store.yoi_dir))] = (path.stat().st_mtime_ns, path.read_bytes())
    return out


def _refs(repo: Path) -> str:
    return git(repo, "for-each-ref", "--format=%(refname) %(objectname)")


def _wait_for(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _stop_outside_the_lock(proc: subprocess.Popen[bytes], store: Store) -> None:
    """SIGSTOP ``proc`` at a moment it does not hold the store lock (a stopped lock holder
    would block every other engine, which is not what this test is about)."""
    path = store.runtime_dir / "locks" / "store.lock"
    for _ in range(100):
        proc.send_signal(signal.SIGSTOP)
        with open(path, "a+b") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                proc.send_signal(signal.SIGCONT)
                time.sleep(0.01)
                continue
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            return
    raise AssertionError("the engine never let go of the store lock")


SLOW_EDIT = (
    "import time; time.sleep(2.5); open('notes.txt', 'w').write('written by a stopped engine\\n')"
)


def test_holder_stopped_past_its_lease_writes_nothing_after_takeover(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    runners = {"default": {"type": "command", "command": [PY, "-c", SLOW_EDIT]}}
    store = make_store(repo, config(lease=3, runners=runners))
    slug = queue(store, "Slow edit")
    user = user_state(repo)
    holder = spawn_engine(repo, "run")
    try:
        _wait_for(lambda: bool(list(store.yoi_dir.rglob("workorder.yaml"))))
        time.sleep(0.5)  # inside the runner now
        _stop_outside_the_lock(holder, store)
        time.sleep(3.6)  # past the lease (heartbeats stopped with the process)
        taker = spawn_engine(repo, "run", "--json")
        out, err = taker.communicate(timeout=120)
        assert taker.returncode == 0, err.decode()
        assert [t["outcome"] for t in json.loads(out)["ticks"]] == ["processed", "idle"]
        files, refs = _files(store), _refs(repo)
        bundle = next(store.yoi_dir.rglob("output_bundle.yaml"))
        notes = store.read_record(bundle, "output_bundle")["notes"]
        assert "the engine stopped during the run" in notes
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    _out, err = holder.communicate(timeout=120)
    assert holder.returncode == 0, err.decode()
    assert b"lost the claim" in err
    assert _files(store) == files
    assert _refs(repo) == refs
    assert git(repo, "branch", "--list", f"yoi/{slug}").strip() == ""
    assert user_state(repo) == user
    assert store.read_ticket(slug).state.value == "blocked"
    assert all(e.record["processed"] for e in events.all_events(store))


def test_capacity_one_never_runs_two_tickets_at_once(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    slow = [PY, "-c", "import time; time.sleep(1.2); open('notes.txt', 'w').write('x\\n')"]
    store = make_store(
        repo, config(capacity=1, runners={"default": {"type": "command", "command": slow}})
    )
    slugs = [queue(store, f"Serial {i}") for i in range(3)]
    procs = [spawn_engine(repo, "watch", "--interval", "0.1", "--json") for _ in range(2)]
    deadline = time.monotonic() + 120
    while {store.read_ticket(s).state.value for s in slugs} != {"done"}:
        assert time.monotonic() < deadline, "the tickets did not finish"
        time.sleep(0.2)
    for p in procs:
        p.send_signal(signal.SIGTERM)
        _out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    spans = []
    for s in slugs:
        entries = store.read_thread(s)
        start = next(e.at for e in entries if e.kind == "state" and e.get("to") == "inprogress")
        end = next(e.at for e in entries if e.kind == "state" and e.get("to") == "done")
        spans.append((start, end))
    spans.sort()
    assert all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(spans)), spans


def test_heartbeat_keeps_a_run_longer_than_its_lease(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    slow = [PY, "-c", "import time; time.sleep(5); open('notes.txt', 'w').write('x\\n')"]
    store = make_store(
        repo, config(lease=3, runners={"default": {"type": "command", "command": slow}})
    )
    slug = queue(store, "Longer than the lease")
    holder = spawn_engine(repo, "run", "--json")
    _wait_for(lambda: bool(list(store.yoi_dir.rglob("workorder.yaml"))))
    time.sleep(3.5)  # past the first lease: only heartbeats keep the claim
    other = spawn_engine(repo, "run", "--json")
    out, err = other.communicate(timeout=120)
    assert other.returncode == 0, err.decode()
    assert [t["outcome"] for t in json.loads(out)["ticks"]] == ["idle"]
    out, err = holder.communicate(timeout=120)
    assert holder.returncode == 0, err.decode()
    assert [t["outcome"] for t in json.loads(out)["ticks"]] == ["processed", "idle"]
    assert store.read_ticket(slug).state.value == "done"
    claim = next((store.runtime_dir / "claims").iterdir())
    assert json.loads(claim.read_text())["claim_version"] >= 3  # acquired + heartbeats
