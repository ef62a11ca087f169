"""kill -9 of an engine (at named crash points, and at random moments), then a fresh
`yoi engine run`: every event processed exactly once, one workorder per event, one
output bundle and run record per workorder, one pause state per terminal outcome,
every file valid, no leftover worktree or temp file, the user's checkout untouched."""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_yoi
from tests.engine_helpers import (
    PASS_GATE,
    config,
    make_store,
    queue,
    queue_with_patch,
    spawn_engine,
    thread_kinds,
    validate_store,
)
from tests.helpers import git, user_state
from yoi import events, janitor
from yoi.commands import engine as engine_cmd
from yoi.store import Store

CRASH_POINTS = [
    "engine.claimed",
    "engine.accepted",
    "engine.bundle",
    "engine.run_record",
    "engine.finished",
    "engine.released",
    "txn.journal",
    "txn.op1",
    "txn.op3",
]
KILLED = -9
# Points after which the acceptance is durable (or rolled forward) but no bundle exists:
# the resumed run is recorded as RUNNER_ERROR, never run a second time.
ACCEPTED = {"engine.accepted", "txn.journal", "txn.op1", "txn.op3"}


def check_invariants(store: Store, repo: Path) -> Counter[str]:
    """The SPEC §9 guarantees on disk; returns how each event ended."""
    janitor.clean(store, now=time.time() + 3600)  # as the next engine would, later
    outcomes: Counter[str] = Counter()
    for ev in events.all_events(store):
        record = ev.record
        assert record["processed"] is True, record
        outcomes[str(record["processed_reason"])] += 1
        tdir = ev.path.parent.parent
        runs = [d.name for d in store.run_dirs(tdir)]
        run_id = "run-" + str(record["event_id"]).removeprefix("ev-")
        if record["processed_reason"] == "EXECUTED":
            assert record["run_id"] == run_id and run_id in runs
            run_dir = tdir / "runs" / run_id
            names = {p.name for p in run_dir.iterdir()} - {"patch.diff"}
            assert names == {
                "workorder.yaml",
                "context_snapshot.yaml",
                "output_bundle.yaml",
                "run_record.yaml",
            }
            assert store.read_record(run_dir / "workorder.yaml", "workorder")["status"] == (
                "EXECUTED"
            )
        else:
            assert run_id not in runs
    for _b, slug, tdir in store.iter_ticket_dirs():
        kinds = [k for k, _ in thread_kinds(store, slug)]
        executed = len(store.run_dirs(tdir))
        assert kinds.count("run") == executed, (slug, kinds)
        accepted = [
            a for k, a in thread_kinds(store, slug) if k == "state" and a["to"] == "inprogress"
        ]
        assert len(accepted) == executed
        pauses = store.record_files(tdir, "pause_states")
        assert len(pauses) == kinds.count("pause")
        assert store.read_ticket(slug).state.value in ("done", "blocked")
    assert validate_store(store) == []
    assert sorted(p.name for p in store.yoi_dir.rglob(".*.tmp")) == []
    worktrees = store.runtime_dir / "worktrees"
    assert not worktrees.exists() or list(worktrees.iterdir()) == []
    assert git(repo, "worktree", "list").count("\n") == 1
    return outcomes


# Without a configured gate the bundle and the run record are written in the transaction
# that finishes the run (engine_steps): those two points do not exist there.
ONE_STEP_POINTS = [p for p in CRASH_POINTS if p not in ("engine.bundle", "engine.run_record")]


@pytest.mark.parametrize(
    ("point", "gates"),
    [(p, [PASS_GATE]) for p in CRASH_POINTS] + [(p, []) for p in ONE_STEP_POINTS],
    ids=[f"{p}-gated" for p in CRASH_POINTS] + [f"{p}-one-step" for p in ONE_STEP_POINTS],
)
def test_crash_at_a_named_point_then_engine_run_finishes_exactly_once(
    repo: Path, monkeypatch: pytest.MonkeyPatch, point: str, gates: list[dict[str, Any]]
) -> None:
    monkeypatch.chdir(repo)
    store = make_store(repo, config(gates=gates))
    first = queue_with_patch(store, repo, "First note")
    second = queue_with_patch(store, repo, "Second note")
    user = user_state(repo)
    crashed = spawn_engine(repo, "run", YOI_TEST_CRASH_AT=point)
    crashed.communicate(timeout=120)
    assert crashed.returncode == 137, point
    after = engine_cmd.run(store)  # `yoi engine run`, in this process (faster)
    assert [t["outcome"] for t in after.data["ticks"]][-1] == "idle"
    assert user_state(repo) == user
    outcomes = check_invariants(store, repo)
    assert outcomes == Counter({"EXECUTED": 2})
    states = {store.read_ticket(s).state.value for s in (first, second)}
    if point in ACCEPTED:
        assert states == {"done", "blocked"}  # the stopped run is recorded, not repeated
        blocked = next(s for s in (first, second) if store.read_ticket(s).state.value == "blocked")
        record = next(iter(store.run_dirs(store.ticket_dir(blocked)))) / "output_bundle.yaml"
        notes = store.read_record(record, "output_bundle")["notes"]
        assert "the engine stopped during the run" in notes
    else:
        assert states == {"done"}
    assert [t["outcome"] for t in engine_cmd.run(store).data["ticks"]] == ["idle"]
    assert check_invariants(store, repo) == outcomes


def test_doctor_is_clean_after_a_crash_and_recovery(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(repo)
    store = make_store(repo, config(gates=[PASS_GATE]))
    queue_with_patch(store, repo, "Note")
    crashed = spawn_engine(repo, "run", YOI_TEST_CRASH_AT="engine.bundle")
    crashed.communicate(timeout=120)
    assert crashed.returncode == 137
    assert run_yoi("engine", "run", cwd=repo).returncode == 0
    doctor = run_yoi("doctor", "--json", cwd=repo)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr


def _random_trials(repo: Path, store: Store, trials: int, seed: int) -> Counter[str]:
    """Each trial queues work and kills an engine at a random moment; the next trial's
    engine recovers what the last one left (and may be killed while doing so)."""
    rng = random.Random(seed)
    queued = 0
    for i in range(trials):
        queue_with_patch(store, repo, f"Trial {i}")
        queued += 1
        if rng.random() < 0.2:
            queue(store, f"Slow {i}", runner="sleepy")
            queued += 1
        user = user_state(repo)
        proc = spawn_engine(repo, "run")
        time.sleep(rng.uniform(0.3, 1.6))
        proc.kill()
        proc.communicate(timeout=60)
        assert proc.returncode in (0, KILLED)
        assert user_state(repo) == user
    user = user_state(repo)
    recovered = run_yoi("engine", "run", cwd=repo)
    assert recovered.returncode == 0, recovered.stderr
    assert user_state(repo) == user
    outcomes = check_invariants(store, repo)
    assert sum(outcomes.values()) == queued
    return outcomes


def test_random_kill_9_then_engine_run(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    store = make_store(repo, config(gates=[PASS_GATE]))
    outcomes = _random_trials(repo, store, trials=30, seed=1234)
    assert set(outcomes) == {"EXECUTED"}


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("YOI_SOAK"), reason="soak test: set YOI_SOAK=1")
def test_random_kill_9_soak(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    store = make_store(repo, config(gates=[PASS_GATE]))
    seed = random.randrange(1 << 30)
    outcomes = _random_trials(repo, store, trials=150, seed=seed)
    assert set(outcomes) == {"EXECUTED"}, seed
