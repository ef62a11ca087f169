"""Local claims: acquire, heartbeat, fencing, release, dead-owner takeover, and a
hypothesis state machine against a model (at most one unexpired owner; versions
strictly increasing)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from tests.helpers import counted_fsyncs
from yoi import claims
from yoi.claims import Claim, Claims, Lease
from yoi.errors import FencedError, UsageError
from yoi.paths import Layout
from yoi.store import Store

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_800_000_000.0


def make_store(root: Path) -> Store:
    (root / ".git").mkdir(parents=True, exist_ok=True)
    (root / ".yoi").mkdir(exist_ok=True)
    return Store(Layout(root, root / ".git", root / ".git", root / ".yoi"))


@dataclass
class FakeClock:
    t: float = T0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return make_store(tmp_path / "r")


def test_acquire_writes_a_valid_record_with_version_1(store: Store) -> None:
    clock = FakeClock()
    book = Claims(store, owner="h:1:a", clock=clock, lease_seconds=30)
    claim = book.acquire("EVENT", "ev-1")
    assert claim == Claim("EVENT", "ev-1", "h:1:a", 1, T0 + 30)
    record = claims.read_record(store.runtime_dir / "claims" / "EVENT-ev-1.yaml")
    assert record is not None
    assert record["owner_id"] == "h:1:a"
    assert record["claim_version"] == 1
    assert record["released"] is False
    assert record["pid"] == os.getpid()
    assert claims.parse_time(record["lease_expires_at"]) == T0 + 30
    assert sorted(p.name for p in (store.runtime_dir / "claims").iterdir()) == ["EVENT-ev-1.yaml"]


def test_live_claim_refuses_another_owner_until_it_expires(store: Store) -> None:
    clock = FakeClock()
    a = Claims(store, owner="a", clock=clock, lease_seconds=30)
    b = Claims(store, owner="b", clock=clock, lease_seconds=30)
    held = a.acquire("EVENT", "ev-1")
    assert held is not None
    clock.advance(29.9)
    assert b.acquire("EVENT", "ev-1") is None
    a.check(held)
    clock.advance(0.1)
    with pytest.raises(FencedError, match="expired"):
        a.check(held)
    taken = b.acquire("EVENT", "ev-1")
    assert taken is not None and taken.claim_version == 2 and taken.owner_id == "b"
    with pytest.raises(FencedError, match="taken over by b"):
        a.check(held)
    with pytest.raises(FencedError):
        a.heartbeat(held)
    assert a.release(held) is False
    b.check(taken)


def test_heartbeat_extends_the_lease_and_bumps_the_version(store: Store) -> None:
    clock = FakeClock()
    a = Claims(store, owner="a", clock=clock, lease_seconds=30)
    first = a.acquire("WORKORDER", "wo-1")
    assert first is not None
    clock.advance(20)
    renewed = a.heartbeat(first)
    assert renewed.claim_version == 2
    assert renewed.lease_expires_at == T0 + 50
    clock.advance(20)  # past the first lease, within the renewed one
    a.check(renewed)
    with pytest.raises(FencedError):
        a.check(first)  # the stale token is fenced


def test_release_keeps_the_version_and_frees_the_claim(store: Store) -> None:
    clock = FakeClock()
    a = Claims(store, owner="a", clock=clock, lease_seconds=30)
    b = Claims(store, owner="b", clock=clock, lease_seconds=30)
    held = a.acquire("EVENT", "ev-1")
    assert held is not None
    assert a.release(held) is True
    record = a.read("EVENT", "ev-1")
    assert record is not None and record["released"] is True and record["claim_version"] == 1
    with pytest.raises(FencedError, match="released"):
        a.check(held)
    again = b.acquire("EVENT", "ev-1")
    assert again is not None and again.claim_version == 2


def test_invalid_names_are_refused(store: Store) -> None:
    book = Claims(store, owner="a", lease_seconds=30)
    with pytest.raises(UsageError):
        book.acquire("EVENT", "../../etc/passwd")
    with pytest.raises(UsageError):
        book.acquire("TICKET", "ev-1")


_HOLDER = """
import sys, time
from pathlib import Path
from yoi.claims import Claims
from yoi.paths import Layout
from yoi.store import Store
root = Path(sys.argv[1])
store = Store(Layout(root, root / ".git", root / ".git", root / ".yoi"))
claim = Claims(store, owner="other", lease_seconds=600).acquire("EVENT", "ev-1")
print(claim.claim_version if claim else "none", flush=True)
if sys.argv[2] == "wait":
    sys.stdin.read()
elif sys.argv[2] == "lock":  # and the store lock too
    with store.locked():
        print("locked", flush=True)
        sys.stdin.read()
"""


def _holder(store: Store, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(store.root), mode],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_claim_of_a_dead_process_on_this_host_is_taken_over_at_once(store: Store) -> None:
    holder = _holder(store, "exit")
    assert holder.communicate(timeout=60)[0].strip() == "1"
    record = Claims(store, owner="me", lease_seconds=30).read("EVENT", "ev-1")
    assert record is not None and record["pid"] == holder.pid
    assert [c.status for c in claims.stale_claims(store)] == ["dead-owner"]
    taken = Claims(store, owner="me", lease_seconds=30).acquire("EVENT", "ev-1")
    assert taken is not None and taken.claim_version == 2


def test_claim_of_a_live_process_waits_until_it_dies(store: Store) -> None:
    holder = _holder(store, "wait")
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "1"
        mine = Claims(store, owner="me", lease_seconds=30)
        assert mine.acquire("EVENT", "ev-1") is None
        assert [c.status for c in claims.list_claims(store)] == ["held"]
        assert claims.stale_claims(store) == []
        assert claims.held(store, "EVENT", "ev-1")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    taken = Claims(store, owner="me", lease_seconds=30).acquire("EVENT", "ev-1")
    assert taken is not None and taken.claim_version == 2


def _lock_holder(store: Store) -> subprocess.Popen[str]:
    """Another process that holds claim ev-1 and the store lock until its stdin closes."""
    holder = _holder(store, "lock")
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "1"
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _returns_while_locked(call: Callable[[], object]) -> list[object]:
    """``call``'s result (or exception) from a thread, which must not wait for the lock."""
    answers: list[object] = []

    def run() -> None:
        try:
            answers.append(call())
        except Exception as exc:
            answers.append(exc)

    asking = threading.Thread(target=run)
    asking.start()
    asking.join(timeout=20)  # the lock is held until the holder's stdin closes
    assert not asking.is_alive(), "waited for the store lock"
    return answers


def test_a_claim_held_by_another_is_refused_without_waiting_for_the_lock(store: Store) -> None:
    """Engines sharing a store try the same pending events: a live claim of another
    owner is answered without the store lock, which its holder may be committing under
    (it was one lock wait per event tried, for nothing)."""
    holder = _lock_holder(store)
    try:
        mine = Claims(store, owner="me", lease_seconds=30)
        assert _returns_while_locked(lambda: mine.acquire("EVENT", "ev-1")) == [None]
    finally:
        holder.communicate(timeout=60)
    free = Claims(store, owner="me", lease_seconds=30)
    assert free.acquire("EVENT", "ev-2") is not None  # a free claim still takes the lock


def test_a_lease_fence_outside_a_transaction_needs_no_lock_while_the_claim_is_ours(
    store: Store,
) -> None:
    """Before a ref move (outside any transaction) the fence reads the claim without the
    lock when it shows the claim ours and unexpired; anything else (here: expired and
    taken over) is still decided under the lock and fences the holder."""
    clock = FakeClock()
    mine = Claims(store, owner="me", clock=clock, lease_seconds=30)
    claim = mine.acquire("EVENT", "ev-2")
    assert claim is not None
    lease = Lease(mine, claim)
    holder = _lock_holder(store)
    try:
        assert _returns_while_locked(lease.check) == [None]
    finally:
        holder.communicate(timeout=60)
    clock.advance(31)
    taken = Claims(store, owner="other", clock=clock, lease_seconds=30).acquire("EVENT", "ev-2")
    assert taken is not None
    with pytest.raises(FencedError, match="taken over by other"):
        lease.check()
    with pytest.raises(FencedError):
        lease.check()  # and it stays lost


def test_lease_heartbeat_keeps_a_short_claim_alive(store: Store) -> None:
    book = Claims(store, owner="a", lease_seconds=0.6)
    claim = book.acquire("EVENT", "ev-1")
    assert claim is not None
    lease = Lease(book, claim).start(interval=0.1)
    try:
        time.sleep(1.5)
        lease.check()
        assert lease.claim.claim_version > 3
        assert Claims(store, owner="b", lease_seconds=0.6).acquire("EVENT", "ev-1") is None
    finally:
        assert lease.release() is True
    record = book.read("EVENT", "ev-1")
    assert record is not None and record["released"] is True
    assert record["claim_version"] == lease.claim.claim_version


def test_lost_lease_stops_the_heartbeat_and_fences_every_write(store: Store) -> None:
    clock = FakeClock()
    a = Claims(store, owner="a", clock=clock, lease_seconds=30)
    claim = a.acquire("EVENT", "ev-1")
    assert claim is not None
    lease = Lease(a, claim)
    clock.advance(31)
    taker = Claims(store, owner="b", clock=clock, lease_seconds=30).acquire("EVENT", "ev-1")
    assert taker is not None
    lease.start(interval=0.02)
    deadline = time.monotonic() + 10
    while lease.lost is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lease.lost is not None and "taken over by b" in lease.lost
    with pytest.raises(FencedError):
        lease.check()
    with pytest.raises(FencedError), store.transaction(fence=lease.check) as tx:
        tx.write_text(store.yoi_dir / "x.txt", "never\n")
    assert not (store.yoi_dir / "x.txt").exists()
    assert lease.release() is False
    record = a.read("EVENT", "ev-1")
    assert record is not None and record["owner_id"] == "b" and record["claim_version"] == 2


def test_release_by_name_needs_force_for_a_held_claim(store: Store) -> None:
    a = Claims(store, owner="a", lease_seconds=300)
    assert a.acquire("EVENT", "ev-1") is not None
    with pytest.raises(UsageError, match="held by a"):
        claims.release_by_name(store, "ev-1")
    info = claims.release_by_name(store, "EVENT-ev-1", force=True)
    assert info.status == "released" and info.record["claim_version"] == 1
    assert [c.status for c in claims.list_claims(store)] == ["released"]
    with pytest.raises(UsageError, match="no claim"):
        claims.release_by_name(store, "ev-2")


RESOURCES = ("ev-a", "ev-b")
LEASE = 10


class ClaimMachine(RuleBasedStateMachine):
    """The real claims on disk against a model, with an injectable clock."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="yoi-claims-"))
        self.store = make_store(self.dir)
        self.clock = FakeClock()
        self.books = [
            Claims(self.store, owner=f"o{i}", clock=self.clock, lease_seconds=LEASE)
            for i in range(3)
        ]
        self.held: dict[tuple[int, str], Claim] = {}
        self.model: dict[str, tuple[str, int, float, bool]] = {}  # owner, version, exp, released
        self.versions: dict[str, int] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _free(self, r: str) -> bool:
        m = self.model.get(r)
        return m is None or m[3] or m[2] <= self.clock()

    def _wrote(self, r: str, version: int) -> None:
        assert version > self.versions.get(r, 0)
        self.versions[r] = version

    @rule(o=st.integers(0, 2), r=st.sampled_from(RESOURCES))
    def acquire(self, o: int, r: str) -> None:
        # Free, or already ours (re-acquiring fences our older handle with a new version).
        free = self._free(r) or self.model[r][0] == f"o{o}"
        got = self.books[o].acquire("EVENT", r)
        assert (got is not None) == free
        if got is not None:
            prev = self.model.get(r)
            assert got.claim_version == (prev[1] if prev else 0) + 1
            self._wrote(r, got.claim_version)
            self.model[r] = (f"o{o}", got.claim_version, got.lease_expires_at, False)
            self.held[(o, r)] = got

    def _valid(self, o: int, r: str) -> bool:
        claim, m = self.held.get((o, r)), self.model.get(r)
        return (
            claim is not None
            and m is not None
            and m[0] == f"o{o}"
            and m[1] == claim.claim_version
            and not m[3]
            and m[2] > self.clock()
        )

    @rule(o=st.integers(0, 2), r=st.sampled_from(RESOURCES))
    def heartbeat(self, o: int, r: str) -> None:
        if (o, r) not in self.held:
            return
        ok = self._valid(o, r)
        try:
            renewed = self.books[o].heartbeat(self.held[(o, r)])
        except FencedError:
            assert not ok
            del self.held[(o, r)]
            return
        assert ok
        self._wrote(r, renewed.claim_version)
        self.model[r] = (f"o{o}", renewed.claim_version, renewed.lease_expires_at, False)
        self.held[(o, r)] = renewed

    @rule(o=st.integers(0, 2), r=st.sampled_from(RESOURCES))
    def release(self, o: int, r: str) -> None:
        if (o, r) not in self.held:
            return
        claim = self.held.pop((o, r))
        m = self.model.get(r)
        mine = m is not None and m[0] == f"o{o}" and m[1] == claim.claim_version and not m[3]
        assert self.books[o].release(claim) == mine
        if mine and m is not None:
            self.model[r] = (m[0], m[1], min(m[2], self.clock()), True)

    @rule(seconds=st.integers(0, 15))
    def advance(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @invariant()
    def at_most_one_unexpired_owner(self) -> None:
        for r in RESOURCES:
            passing = []
            for (o, res), claim in self.held.items():
                if res != r:
                    continue
                try:
                    self.books[o].check(claim)
                    passing.append(o)
                except FencedError:
                    pass
                assert (o in passing) == self._valid(o, r)
            assert len(passing) <= 1

    @invariant()
    def disk_matches_model(self) -> None:
        for r in RESOURCES:
            record = self.books[0].read("EVENT", r)
            m = self.model.get(r)
            if m is None:
                assert record is None
                continue
            assert record is not None
            assert (record["owner_id"], record["claim_version"], bool(record["released"])) == (
                m[0],
                m[1],
                m[3],
            )


ClaimMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=20, deadline=None)
TestClaimMachine = ClaimMachine.TestCase


@pytest.mark.parametrize("left", [b"", b'{\n  "resource_type": "EVENT",\n  "resou'])
def test_a_claim_record_an_os_crash_cut_short_is_taken_as_free(store: Store, left: bytes) -> None:
    """Claim records are not fsynced (yoi.claims): after an operating-system crash one may
    be empty or cut short. Its holder died with the system, so the claim is free."""
    book = Claims(store, owner="me", lease_seconds=30)
    path = book.path("EVENT", "ev-1")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(left)
    claim = book.acquire("EVENT", "ev-1")
    assert claim is not None and claim.claim_version == 1
    assert claims.read_record(path) is not None  # rewritten whole
    book.check(claim)
    path.write_bytes(left)  # cut short under a holder: its fence fails, it writes no more
    with pytest.raises(FencedError, match="vanished"):
        book.check(claim)


def test_claim_writes_issue_no_fsync(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the rule above: taking and releasing a claim waits for no disk."""
    book = Claims(store, owner="me", lease_seconds=30)
    book.acquire("EVENT", "ev-0")  # the claims directory exists (made once, synced)
    synced = counted_fsyncs(monkeypatch)
    claim = book.acquire("EVENT", "ev-1")
    assert claim is not None
    assert book.release(book.heartbeat(claim))
    assert synced == []


def test_a_claim_record_read_again_is_a_fresh_copy(store: Store) -> None:
    """Claim records are remembered by their bytes (``claims_records._READ``): the same
    bytes give an equal record, as a copy; new bytes are read anew."""
    book = Claims(store, owner="me", lease_seconds=30)
    claim = book.acquire("EVENT", "ev-1")
    assert claim is not None
    path = book.path("EVENT", "ev-1")
    first = claims.read_record(path)
    assert first is not None
    first["owner_id"] = "changed by the caller"
    again = claims.read_record(path)
    assert again is not None and again["owner_id"] == "me"
    book.release(claim)
    released = claims.read_record(path)
    assert released is not None and released["released"] is True
