"""Full engines on three machines (clones of one bare remote), two `yoi engine watch
--remote origin` processes each, over twenty queued tickets, one engine killed mid-run:
every ticket runs exactly once across all machines and each workorder has exactly one
run record."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.engine_helpers import PY, config, make_store, queue, queue_with_patch, validate_store
from tests.helpers import commit_all, git
from tests.test_remote_claims_support import bare_remote, clone
from yoi import engine
from yoi.store import Store
from yoi.yamlio import load_plain

pytestmark = pytest.mark.skipif(
    "remote" not in inspect.signature(engine.tick).parameters,
    reason="engine.tick(remote=...) is not wired yet (see docs/distributed.md)",
)
TICKETS = 20
LEASE = 4


def slow_runner(flag: Path, pidfile: Path) -> dict[str, object]:
    """Sleeps while ``flag`` exists (the first, doomed run), then edits the worktree."""
    code = (
        "import os, time\n"
        f"open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
        f"while os.path.exists({str(flag)!r}): time.sleep(0.05)\n"
        "open('slow.txt', 'w').write('slow\\n')\n"
    )
    return {"type": "command", "command": [PY, "-c", code], "budget_ms": 120000}


def spawn(clone_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PY, "-m", "yoi", "engine", *args],
        cwd=clone_dir,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def records(clones: list[Path], name: str) -> list[tuple[Path, dict[str, object]]]:
    """Every ``name`` record in the clones (read once the engines are stopped)."""
    found = []
    for c in clones:
        for path in sorted((c / ".yoi" / "tickets").glob(f"*/*/runs/*/{name}")):
            found.append((c, load_plain(path.read_text(), path=str(path))))
    return found


def count(clones: list[Path], name: str) -> int:
    """How many ``name`` files the clones hold now (engines may be moving directories)."""
    return len({p.parent.name for c in clones for p in c.glob(f".yoi/tickets/*/*/runs/*/{name}")})


def wait_until(predicate: object, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_three_machines_two_engines_each_run_twenty_tickets_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag, pidfile = tmp_path / "slow-flag", tmp_path / "slow-pid"
    flag.touch()
    remote = bare_remote(tmp_path)
    seed = clone(remote, tmp_path / "seed")
    monkeypatch.chdir(seed)
    runners = {"default": {"type": "patch-file"}, "slow": slow_runner(flag, pidfile)}
    store = make_store(seed, config(capacity=TICKETS, lease=LEASE, runners=runners))
    slow = queue(store, "Slow one", runner="slow")
    time.sleep(1.1)  # its event is the oldest: the first tick takes it
    slugs = [slow] + [queue_with_patch(store, seed, f"Shared {i}") for i in range(TICKETS - 1)]
    commit_all(seed, "twenty queued tickets")
    git(seed, "push", "-q", "origin", "HEAD:main")
    clones = [clone(remote, tmp_path / f"machine-{i}") for i in range(3)]

    victim = spawn(clones[0], "tick", "--remote", "origin")
    wait_until(lambda: count(clones[:1], "workorder.yaml"), 60, "the victim's acceptance")
    wait_until(pidfile.exists, 30, "the slow runner")
    victim.send_signal(signal.SIGKILL)  # mid-run, holding the remote claim
    victim.wait()
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    flag.unlink()

    engines = [
        spawn(c, "watch", "--remote", "origin", "--no-kick", "--interval", "0.3", "--json")
        for c in clones
        for _ in range(2)
    ]
    started = time.monotonic()
    try:
        wait_until(lambda: count(clones, "run_record.yaml") >= TICKETS, 240, "all runs")
    finally:
        for p in engines:
            p.send_signal(signal.SIGTERM)
        outputs = [p.communicate(timeout=60) for p in engines]
    for p, (_out, err) in zip(engines, outputs, strict=True):
        assert p.returncode == 0, err.decode(errors="replace")[-3000:]

    print(f"all runs recorded {time.monotonic() - started:.1f}s after the engines started")
    runs = records(clones, "run_record.yaml")
    by_workorder = Counter(str(r["work_order_id"]) for _c, r in runs)
    assert len(by_workorder) == TICKETS and set(by_workorder.values()) == {1}
    assert {str(r["ticket"]) for _c, r in runs} == set(slugs)
    workorders = {str(w["work_order_id"]) for _c, w in records(clones, "workorder.yaml")}
    assert workorders == set(by_workorder)  # the killed run's workorder has its one record
    assert len({c for c, _r in runs}) >= 2  # the machines really shared the work
    processed = [json.loads(out)["ticks"] for out, _err in outputs]
    assert sum(len(t) for t in processed) == TICKETS
    claim = load_plain(git(remote, "show", f"refs/yoi/claims/{slow}:claim.yaml"), path="claim.yaml")
    assert claim["claim_version"] >= 2 and claim["released"] is True  # taken over
    for c in clones:
        assert validate_store(Store.discover(c)) == []
