"""`yoi engine run --jobs N`: that many engine processes drain the queue together. Runs
overlap (a runner that waits for a second one to start proves it), never more than
`engine.capacity` are in progress, `--max` is a total, and the ticks come back merged.
Real processes and a real command runner; nothing is timed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.engine_helpers import (
    PY,
    config,
    make_store,
    queue,
    spawn_engine,
    validate_store,
    yoi_env,
)
from tests.helpers import commit_all
from yoi.model import State
from yoi.store import Store

# Logs "start <ticket>", waits (up to 20 s) until the log shows two starts, adds a file
# to its worktree (the candidate patch), logs "end <ticket>".
RUNNER = r"""
import os, sys, time
log = sys.argv[1]
me = os.environ["YOI_TICKET"]
with open(log, "a") as f:
    f.write(f"start {me}\n")
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    with open(log) as f:
        if sum(1 for line in f if line.startswith("start ")) >= 2:
            break
    time.sleep(0.02)
os.makedirs("notes", exist_ok=True)
with open(f"notes/{me}.txt", "w") as f:
    f.write("done\n")
with open(log, "a") as f:
    f.write(f"end {me}\n")
"""


def setup(repo: Path, tmp_path: Path, capacity: int, count: int) -> tuple[Store, Path, list[str]]:
    script = tmp_path / "runner.py"
    script.write_text(RUNNER)
    log = tmp_path / "runs.log"
    runners = {"default": {"type": "command", "command": [PY, str(script), str(log)]}}
    store = make_store(repo, config(capacity=capacity, runners=runners))
    slugs = [queue(store, f"Parallel {i}") for i in range(count)]
    commit_all(repo, "queued")
    return store, log, slugs


def engine_run(repo: Path, *args: str) -> tuple[int, dict[str, list[dict[str, str]]], str]:
    proc = spawn_engine(repo, "run", "--json", *args)
    out, err = proc.communicate(timeout=300)
    return proc.returncode, json.loads(out) if out.strip() else {}, err.decode()


def most_at_once(log: Path) -> int:
    running, most = 0, 0
    for line in log.read_text().splitlines():
        running += 1 if line.startswith("start ") else -1
        most = max(most, running)
    return most


def test_jobs_run_tickets_at_once_and_merge_their_ticks(repo: Path, tmp_path: Path) -> None:
    store, log, slugs = setup(repo, tmp_path, capacity=3, count=3)
    code, doc, err = engine_run(repo, "--jobs", "3")
    assert code == 0, err
    assert most_at_once(log) >= 2  # the first runner saw a second start while it ran
    ticks = doc["ticks"]
    assert [t["outcome"] for t in ticks] == ["processed"] * 3 + ["idle"]
    assert sorted(t["ticket"] for t in ticks[:3]) == sorted(slugs)
    assert [t["event_id"] for t in ticks[:3]] == sorted(t["event_id"] for t in ticks[:3])
    assert all(store.read_ticket(s).state is State.DONE for s in slugs)
    assert validate_store(store) == []


def test_never_more_workers_than_capacity(repo: Path, tmp_path: Path) -> None:
    store, log, slugs = setup(repo, tmp_path, capacity=2, count=4)
    code, doc, err = engine_run(repo, "--jobs", "4")
    assert code == 0, err
    assert most_at_once(log) == 2
    assert len([t for t in doc["ticks"] if t["outcome"] == "processed"]) == 4
    assert all(store.read_ticket(s).state is State.DONE for s in slugs)
    waits = list(store.tickets_dir.glob("*/*/plan/*-waiting-*.yaml"))
    assert waits == []  # no worker found the capacity full


def test_max_is_a_total_across_jobs(repo: Path, tmp_path: Path) -> None:
    store, _log, slugs = setup(repo, tmp_path, capacity=4, count=4)
    code, doc, err = engine_run(repo, "--jobs", "2", "--max", "3")
    assert code == 0, err
    assert len([t for t in doc["ticks"] if t["outcome"] == "processed"]) == 3
    states = sorted(store.read_ticket(s).state.value for s in slugs)
    assert states == ["done", "done", "done", "queued"]


def test_a_failing_worker_fails_the_run(repo: Path, tmp_path: Path) -> None:
    setup(repo, tmp_path, capacity=2, count=2)
    code, _doc, err = engine_run(repo, "--jobs", "2", "--push-branch")
    assert code == 2
    assert "--push-branch needs --remote" in err and "Traceback" not in err


def test_human_output_lists_every_processed_event(repo: Path, tmp_path: Path) -> None:
    store, _log, slugs = setup(repo, tmp_path, capacity=2, count=2)
    out = subprocess.run(
        [PY, "-m", "yoi", "engine", "run", "--jobs", "2"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        env=yoi_env(),
    )
    assert out.returncode == 0, out.stderr
    runs = sorted(str(store.read_ticket(s).last_run) for s in slugs)
    assert out.stdout.splitlines() == [*runs, "idle", "2 event(s) processed"]  # as one engine


SLEEPER = r"""
import os, sys, time
me = os.environ["YOI_TICKET"]
with open(sys.argv[1], "a") as f:
    f.write(f"start {me}\n")
time.sleep(2)
os.makedirs("notes", exist_ok=True)
with open(f"notes/{me}.txt", "w") as f:
    f.write("done\n")
"""


def engines_in(repo: Path) -> list[int]:
    """Pids of live `yoi engine` processes working in ``repo``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = (entry / "cwd").resolve()
        except OSError:
            continue
        if b"yoi" in cmd and b"engine" in cmd and cwd == repo.resolve():
            found.append(int(entry.name))
    return found


def sleepy_store(repo: Path, tmp_path: Path, count: int) -> tuple[Store, Path, list[str]]:
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    log = tmp_path / "runs.log"
    runners = {"default": {"type": "command", "command": [PY, str(script), str(log)]}}
    store = make_store(repo, config(capacity=2, runners=runners))
    slugs = [queue(store, f"Sleepy {i}") for i in range(count)]
    commit_all(repo, "queued")
    return store, log, slugs


def started(log: Path, count: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count("start ") >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} runs did not start")


def test_sigterm_to_run_finishes_the_runs_and_starts_no_more(repo: Path, tmp_path: Path) -> None:
    store, log, slugs = sleepy_store(repo, tmp_path, 2)
    engine = spawn_engine(repo, "run")
    started(log, 1)
    engine.send_signal(signal.SIGTERM)
    _out, err = engine.communicate(timeout=120)
    assert engine.returncode == 0, err.decode()
    assert b"stopped; 1 event(s) processed" in err
    states = sorted(store.read_ticket(s).state.value for s in slugs)
    assert states == ["done", "queued"]  # the run in progress was finished and recorded


def test_sigterm_to_run_jobs_reaches_every_worker(repo: Path, tmp_path: Path) -> None:
    store, log, slugs = sleepy_store(repo, tmp_path, 3)
    parent = spawn_engine(repo, "run", "--jobs", "2", "--json")
    started(log, 2)  # both workers are inside a run
    assert len(engines_in(repo)) == 3  # the parent and its two workers
    parent.send_signal(signal.SIGTERM)
    out, err = parent.communicate(timeout=120)
    assert parent.returncode == 0, err.decode()
    assert engines_in(repo) == []
    assert len([t for t in json.loads(out)["ticks"] if t["outcome"] == "processed"]) == 2
    states = sorted(store.read_ticket(s).state.value for s in slugs)
    assert states == ["done", "done", "queued"]


def test_watch_jobs_run_side_by_side_and_stop_together(repo: Path, tmp_path: Path) -> None:
    store, log, slugs = setup(repo, tmp_path, capacity=2, count=2)
    parent = spawn_engine(repo, "watch", "--jobs", "2", "--interval", "0.1", "--json")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # both runs recorded
        if all(store.read_ticket(s).state is State.DONE for s in slugs):
            break
        time.sleep(0.1)
    assert len(engines_in(repo)) == 3  # the parent and two watchers
    parent.send_signal(signal.SIGTERM)
    out, err = parent.communicate(timeout=60)
    assert parent.returncode == 0, err.decode()
    ticks = json.loads(out)["ticks"]
    assert sorted(t["ticket"] for t in ticks) == sorted(slugs)
    assert most_at_once(log) == 2
    assert engines_in(repo) == []
    assert b"stopped; 2 event(s) processed" in err


def test_jobs_beyond_capacity_say_so(repo: Path, tmp_path: Path) -> None:
    store, _log, slugs = sleepy_store(repo, tmp_path, 1)
    code, doc, err = engine_run(repo, "--jobs", "3")
    assert code == 0, err
    assert "--jobs 3: engine.capacity is 2, so at most 2 engine(s) at once" in err
    assert store.read_ticket(slugs[0]).state is State.DONE
    assert [t["outcome"] for t in doc["ticks"]] == ["processed", "idle"]


def processes_running(script: Path) -> list[int]:
    """Pids of live processes whose command line names ``script``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if str(script).encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def test_ctrl_c_twice_in_a_terminal_stops_watch_jobs_at_once(repo: Path, tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches the whole process group: the workers get it directly
    and, from the parent, as SIGTERM. The first lets both runs go on; the second stops
    everything at once (exit 130), and the next engine records both runs as RUNNER_ERROR."""
    script = tmp_path / "long.py"
    script.write_text(SLEEPER.replace("time.sleep(2)", "time.sleep(60)"))
    log = tmp_path / "runs.log"
    runners = {"default": {"type": "command", "command": [PY, str(script), str(log)]}}
    store = make_store(repo, config(capacity=2, runners=runners))
    slugs = [queue(store, f"Long {i}") for i in range(2)]
    commit_all(repo, "queued")
    parent = subprocess.Popen(
        [PY, "-m", "yoi", "engine", "watch", "--jobs", "2", "--interval", "0.1", "--json"],
        cwd=repo,
        env=yoi_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own group, as a terminal's foreground job
    )
    assert parent.stderr is not None
    started(log, 2)
    os.killpg(parent.pid, signal.SIGINT)
    seen = b""
    while seen.count(b"finishing the current step") < 2:
        line = parent.stderr.readline()
        assert line, seen.decode()
        seen += line
    assert len(engines_in(repo)) == 3 and len(processes_running(script)) == 2
    os.killpg(parent.pid, signal.SIGINT)
    _out, err = parent.communicate(timeout=30)
    assert parent.returncode == 130, (seen + err).decode()
    assert b"Traceback" not in err and err.count(b"stopping now") == 2
    assert engines_in(repo) == [] and processes_running(script) == []
    assert [store.read_ticket(s).state for s in slugs] == [State.INPROGRESS] * 2
    code, _doc, err_text = engine_run(repo)
    assert code == 0, err_text
    assert [store.read_ticket(s).state for s in slugs] == [State.BLOCKED] * 2
