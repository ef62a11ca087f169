"""The engine, events and runs commands (JSON shapes of SPEC §7, human output), `engine
watch` under SIGTERM/SIGINT, and the janitor."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import run_yoi
from tests.engine_helpers import (
    PASS_GATE,
    PY,
    config,
    make_store,
    queue,
    queue_with_patch,
    spawn_engine,
)
from tests.helpers import git, user_state
from yoi import claims, events, janitor
from yoi.commands import engine as engine_cmd
from yoi.commands import events as events_cmd
from yoi.commands import runs as runs_cmd
from yoi.errors import NotFoundError, UsageError
from yoi.git import Repo
from yoi.store import Store


@pytest.fixture
def store(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.chdir(repo)
    return make_store(repo, config(gates=[PASS_GATE]))


def test_engine_tick_json_and_text(store: Store, repo: Path) -> None:
    slug = queue_with_patch(store, repo, "Note")
    result = run_yoi("engine", "tick", "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    eid = data["event_id"]
    assert data == {
        "schema_version": 1,
        "outcome": "processed",
        "event_id": eid,
        "ticket": slug,
        "reason": "EXECUTED",
        "run_id": "run-" + eid[3:],
    }
    idle = run_yoi("engine", "tick", cwd=repo)
    assert (idle.returncode, idle.stdout) == (0, "idle\n")


def test_engine_run_reports_every_tick_and_respects_max(store: Store, repo: Path) -> None:
    for i in range(3):
        queue_with_patch(store, repo, f"Note {i}")
    first = engine_cmd.run(store, max_ticks=2)
    assert [t["outcome"] for t in first.data["ticks"]] == ["processed", "processed"]
    rest = run_yoi("engine", "run", "--json", cwd=repo)
    ticks = json.loads(rest.stdout)["ticks"]
    assert [t["outcome"] for t in ticks] == ["processed", "idle"]
    assert "yoi: engine:" in rest.stderr
    assert set(ticks[0]) == {"outcome", "event_id", "ticket", "reason", "run_id"}


def test_remote_errors_are_clear(store: Store, repo: Path) -> None:
    with pytest.raises(UsageError, match="--push-branch needs --remote"):
        engine_cmd.tick(store, push_branch=True)
    queue_with_patch(store, repo, "Note")
    out = run_yoi("engine", "run", "--remote", "nowhere", cwd=repo)
    assert out.returncode == 1, out.stderr
    assert "yoi: error:" in out.stderr and "nowhere" in out.stderr
    assert "Traceback" not in out.stderr
    assert [e.record["processed"] for e in events.all_events(store)] == [False]
    assert [c.status for c in claims.list_claims(store)] == ["released"]


def test_engine_run_kick_emits_the_planned_ticket(store: Store, repo: Path) -> None:
    slug = queue_with_patch(store, repo, "Kicked")
    eid = next(e.record["event_id"] for e in events.all_events(store))
    with store.transaction() as tx:  # as if the event had never been emitted
        tx.remove(events.event_path(store.ticket_dir(slug), str(eid)))
    assert engine_cmd.run(store).data["ticks"] == [
        {"outcome": "idle", "event_id": None, "ticket": None, "reason": None, "run_id": None}
    ]
    out = engine_cmd.run(store, kick=True)
    assert [t["outcome"] for t in out.data["ticks"]] == ["processed", "idle"]
    assert store.read_ticket(slug).state.value == "done"


def test_events_list(store: Store, repo: Path) -> None:
    slug = queue_with_patch(store, repo, "Note")
    pending = events_cmd.list_(store, pending=True)
    assert [e["ticket"] for e in pending.data["events"]] == [slug]
    assert "pending" in pending.text
    engine_cmd.run(store)
    assert events_cmd.list_(store, pending=True).data == {"events": []}
    done = json.loads(run_yoi("events", "list", "--json", cwd=repo).stdout)
    assert done["schema_version"] == 1
    assert [(e["processed"], e["processed_reason"]) for e in done["events"]] == [(True, "EXECUTED")]


def test_runs_list_and_show(store: Store, repo: Path) -> None:
    slug = queue_with_patch(store, repo, "Note")
    run_id = engine_cmd.run(store).data["ticks"][0]["run_id"]
    listed = runs_cmd.list_(store)
    assert [r["run_id"] for r in listed.data["runs"]] == [run_id]
    assert runs_cmd.list_(store, name=slug).data == listed.data
    shown = runs_cmd.show(store, run_id)
    run = shown.data["run"]
    assert run["gate_result"] == "PASS" and run["workorder"]["status"] == "EXECUTED"
    assert run["output_bundle"]["output_id"] == "out-" + run_id[4:]
    assert "has-notes" in shown.text and f"yoi/{slug}" in shown.text
    assert "next actions (RUN_COMPLETE)" in shown.text
    patch = run_yoi("runs", "show", run_id, "--patch", cwd=repo)
    assert (
        patch.stdout.encode()
        == (store.ticket_dir(slug) / "runs" / run_id / "patch.diff").read_bytes()
    )
    data = json.loads(run_yoi("runs", "show", run_id, "--json", cwd=repo).stdout)
    assert set(data["run"]) >= {
        "run_id",
        "gate_result",
        "gates",
        "commit_sha",
        "branch",
        "workorder",
        "output_bundle",
    }
    with pytest.raises(NotFoundError):
        runs_cmd.show(store, "run-20200101000000-0123456789")
    with pytest.raises(UsageError):
        runs_cmd.show(store, "../../etc")


def test_runners_and_gates_get_no_checkout_of_the_ticket_store(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Their private worktrees leave .yoi/ out; the work branch keeps the base's store."""
    monkeypatch.chdir(repo)
    probe = [PY, "-c", "import os, sys; sys.exit(3 if os.path.exists('.yoi') else 0)"]
    agent = [
        PY,
        "-c",
        "import os; assert not os.path.exists('.yoi'); os.makedirs('notes', exist_ok=True); "
        "open('notes/a.txt', 'w').write('a\\n')",
    ]
    cfg = config(
        gates=[{"name": "no-store", "command": probe}],
        runners={"default": {"type": "command", "command": agent}},
    )
    store = make_store(repo, cfg)
    slug = queue(store, "Agent")
    engine_cmd.run(store)
    assert store.read_ticket(slug).state.value == "done"
    branch = f"yoi/{slug}"
    assert ".yoi/config.yaml" in git(repo, "ls-tree", "-r", "--name-only", branch).split()
    assert git(repo, "diff", "--name-only", "HEAD", branch).split() == ["notes/a.txt"]


SLOW = [PY, "-c", "import time; time.sleep(1.5); open('notes.txt', 'w').write('x\\n')"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_watch_finishes_the_current_step_on_a_signal(
    repo: Path, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals
) -> None:
    monkeypatch.chdir(repo)
    store = make_store(repo, config(runners={"default": {"type": "command", "command": SLOW}}))
    slug = queue(store, "Slow")
    user = user_state(repo)
    proc = spawn_engine(repo, "watch", "--interval", "0.2", "--json")
    deadline = time.monotonic() + 60
    while not list(store.yoi_dir.rglob("workorder.yaml")):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert [t["outcome"] for t in json.loads(out)["ticks"]] == ["processed"]
    assert store.read_ticket(slug).state.value == "done"
    assert [c.status for c in claims.list_claims(store)] == ["released"]
    assert b"finishing the current step" in err
    assert user_state(repo) == user


def test_a_second_ctrl_c_stops_watch_at_once(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first SIGINT lets the run finish; the second kills the runner's group and
    exits 130; the next engine records the cut run as RUNNER_ERROR."""
    monkeypatch.chdir(repo)
    marker = repo.parent / "runner.pid"
    runner = [
        PY,
        "-c",
        f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)",
    ]
    store = make_store(repo, config(runners={"default": {"type": "command", "command": runner}}))
    slug = queue(store, "Slow")
    proc = spawn_engine(repo, "watch", "--interval", "0.2")
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    seen = b""
    while b"Ctrl-C again" not in seen:  # the first was handled: the second is not merged
        line = proc.stderr.readline()
        assert line, seen.decode()
        seen += line
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (seen + err).decode()
    assert time.monotonic() - started < 20  # not the runner's 60 s
    assert b"stopping now" in err and b"Traceback" not in err
    runner_pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(runner_pid, 0)
    assert store.read_ticket(slug).state.value == "inprogress"
    engine_cmd.tick(store)
    assert store.read_ticket(slug).state.value == "blocked"
    assert "RUNNER_ERROR" in (store.ticket_dir(slug) / "thread.md").read_text()


def test_watch_polls_and_stops_after_max_polls(store: Store, repo: Path) -> None:
    queue_with_patch(store, repo, "Note")
    out = engine_cmd.watch(store, interval=0.05, kick=False, max_polls=2)
    assert [t["outcome"] for t in out.data["ticks"]] == ["processed"]


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old), follow_symlinks=False)


def test_janitor_removes_dead_worktrees_old_temp_files_and_stale_ref_locks(
    store: Store, repo: Path
) -> None:
    git_repo = Repo.open(repo)
    head = git_repo.resolve_commit("HEAD")
    base = store.runtime("worktrees")
    dead = "run-20260101000000-0123456789"
    git_repo.add_private_worktree(head, base / dead, dead)
    orphan = base / "run-20260101000001-abcdefabcd-scratch"
    orphan.mkdir()
    live = "run-20260101000002-fedcbafedc"
    git_repo.add_private_worktree(head, base / live, live)
    assert claims.Claims(store, lease_seconds=600).acquire("EVENT", "ev-" + live[4:])
    old_tmp = store.yoi_dir / "tickets" / ".ticket.md.x1.tmp"
    new_tmp = store.yoi_dir / "tickets" / ".ticket.md.x2.tmp"
    old_tmp.write_text("partial")
    new_tmp.write_text("partial")
    _age(old_tmp, 3600)
    common = store.layout.common_dir
    stale_lock = common / "refs" / "heads" / "yoi" / "t1.lock"
    fresh_lock = common / "refs" / "yoi" / "backup" / "t2.lock"
    foreign = common / "refs" / "heads" / "main.lock"
    for lock in (stale_lock, fresh_lock, foreign):
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.write_text("x")
    _age(stale_lock, 3600)
    _age(foreign, 3600)
    store_lock = store.runtime_dir / "locks" / "store.lock"
    _age(store_lock, 3600)
    report = janitor.clean(store)
    assert sorted(report.worktrees) == sorted([dead, orphan.name])
    assert not (base / dead).exists() and not orphan.exists()
    assert (base / live).is_dir()
    assert git(repo, "worktree", "list").count("\n") == 2
    assert report.temp_files == [str(old_tmp)]
    assert new_tmp.exists() and not old_tmp.exists()
    assert report.ref_locks == ["refs/heads/yoi/t1.lock"]
    assert fresh_lock.exists() and foreign.exists() and store_lock.exists()
    again = janitor.clean(store)
    assert again.empty, again


IDLE_PROBE = (
    "import sys; from yoi.commands import engine; from yoi.store import Store; "
    "out = engine.tick(Store.discover()); "
    "print(out.text, 'yoi.engine' in sys.modules, 'pygit2' in sys.modules)"
)


def test_an_idle_tick_starts_no_engine_but_completes_an_interrupted_change(
    store: Store, repo: Path
) -> None:
    """Idle: nothing pending, so no engine (no claims, no git) is started. A change that
    a killed writer left in its journal is completed first: the engine takes the lock."""
    slug = queue_with_patch(store, repo, "Note")
    assert run_yoi("engine", "run", cwd=repo).returncode == 0
    probe = subprocess.run([PY, "-c", IDLE_PROBE], cwd=repo, capture_output=True, text=True)
    assert probe.stdout.split() == ["idle", "False", "False"], probe.stderr
    killed = run_yoi(
        "ticket", "comment", slug, "-m", "half done", cwd=repo,
        env={"YOI_TEST_CRASH_AT": "txn.journal#1"},
    )  # fmt: skip
    assert killed.returncode != 0 and store.journal_pending()
    idle = run_yoi("engine", "tick", cwd=repo)
    assert (idle.returncode, idle.stdout) == (0, "idle\n"), idle.stderr
    assert not store.journal_pending()
    assert "half done" in (store.ticket_dir(slug) / "thread.md").read_text()
