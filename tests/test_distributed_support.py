"""Worker processes for the distributed tests: real engines-to-be on separate clones.

Run as ``python -m tests.test_distributed_support MODE CLONE WORKDIR [SLUG...]``; each
mode writes what it did as files under WORKDIR, so the test can check the history:

- ``race``: wait for ``WORKDIR/go``, try to claim every slug once, write
  ``won-<slug>-<pid>`` for each win (claims are kept, never released).
- ``drain``: claim -> fence check -> write ``run-<slug>-<pid>`` -> release as done, over
  all slugs until every one is known done; ``skipped`` wins are impossible by design.
- ``hold``: claim the first slug with a heartbeat, write ``holding-<slug>``, then sleep
  (the test kills it with SIGKILL).
- ``fenced``: claim the first slug with a heartbeat, write ``ready``; after ``go``
  appears, check the fence and write ``wrote`` or ``fenced``.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from yoi.errors import FencedError
from yoi.remote_claims import RemoteClaimer
from yoi.remote_lease import RemoteLease

LEASE = 3.0
DEADLINE_S = 90.0


def event_of(slug: str) -> str:
    return f"ev-{slug}"


def _wait_for(path: Path) -> None:
    end = time.time() + DEADLINE_S
    while not path.exists():
        if time.time() > end:
            raise SystemExit(f"timed out waiting for {path}")
        time.sleep(0.01)


def _touch(path: Path, text: str = "") -> None:
    path.write_text(text)


def race(claimer: RemoteClaimer, work: Path, slugs: list[str]) -> None:
    _wait_for(work / "go")
    for slug in slugs:
        if claimer.acquire(slug, event_of(slug)) is not None:
            _touch(work / f"won-{slug}-{os.getpid()}")


def _run_one(claimer: RemoteClaimer, work: Path, slug: str) -> bool:
    """One attempt; True when the slug is known done (by us or anyone)."""
    claim = claimer.acquire(slug, event_of(slug))
    if claim is None:
        state = claimer.last_state
        return state is not None and event_of(slug) in state.done
    lease = RemoteLease(claimer, claim).start()
    done = False
    try:
        lease.check()  # the fence before the write
        _touch(work / f"run-{slug}-{os.getpid()}", claim.owner_id)
        time.sleep(random.uniform(0.0, 0.05))
        done = True
    finally:
        lease.release(done=done)
    return True


def drain(claimer: RemoteClaimer, work: Path, slugs: list[str]) -> None:
    _wait_for(work / "go")
    left = list(slugs)
    end = time.time() + DEADLINE_S
    while left and time.time() < end:
        random.shuffle(left)
        left = [s for s in left if not _run_one(claimer, work, s)]
        if left:
            time.sleep(0.2)
    if left:
        raise SystemExit(f"not done: {left}")


def hold(claimer: RemoteClaimer, work: Path, slugs: list[str]) -> None:
    claim = claimer.acquire(slugs[0], event_of(slugs[0]))
    assert claim is not None
    RemoteLease(claimer, claim).start()
    _touch(work / f"holding-{slugs[0]}", claim.oid)
    time.sleep(DEADLINE_S)


def fenced(claimer: RemoteClaimer, work: Path, slugs: list[str]) -> None:
    claim = claimer.acquire(slugs[0], event_of(slugs[0]))
    assert claim is not None
    lease = RemoteLease(claimer, claim).start(interval=0.2)
    _touch(work / "ready", claim.oid)
    _wait_for(work / "go")
    try:
        lease.check()
    except FencedError as exc:
        _touch(work / "fenced", exc.message)
        return
    _touch(work / "wrote")


MODES = {"race": race, "drain": drain, "hold": hold, "fenced": fenced}


def main(argv: list[str]) -> None:
    mode, clone, work, *slugs = argv
    claimer = RemoteClaimer(Path(clone), "origin", lease_seconds=LEASE)
    MODES[mode](claimer, Path(work), slugs)


if __name__ == "__main__":
    main(sys.argv[1:])
