"""hypothesis ``RuleBasedStateMachine``s against pure models (R12, SPEC §4, §5).

- ``LifecycleMachine``: the real store in a real git repository, driven through
  ``yoi.tickets`` (create, ready, queue, return, requeue, block, resolve, comment) and the
  real engine (``engine.tick`` with a patch-file runner or a failing command runner),
  against a model of states, blockers, comments and TICKET_READY events. A refused
  action must raise a ``YoiError`` and change not one byte of the store; each queueing
  yields exactly one event; each tick processes exactly the event the model expects.
- ``ClaimFenceMachine``: claims with an injectable clock (acquire, heartbeat, check,
  release, forced release, time passing) and fenced writes
  (``store.transaction(fence=...)``): at most one unexpired owner, versions strictly
  increasing, and a fenced write lands only while its writer holds the claim.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.helpers import init_repo
from tests.reliability import figures
from tests.reliability import support as s
from tests.reliability.plugin import Profile
from yoi import claims, engine, tickets
from yoi.claims import Claim, Claims
from yoi.errors import FencedError, YoiError
from yoi.lifecycle import Action
from yoi.model import BlockerKind, CommentKind
from yoi.paths import Layout
from yoi.store import Store


@dataclass
class MTicket:
    slug: str
    title: str
    state: str = "planning"
    has_ac: bool = True
    broken: bool = False  # its runner fails: a run ends blocked instead of done
    blockers: dict[str, bool] = field(default_factory=dict)  # id -> resolved
    comments: int = 0
    events: int = 0
    pending: int = 0  # events not processed yet

    @property
    def unresolved(self) -> bool:
        return not all(self.blockers.values())


class LifecycleMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="yoi-lifecycle-"))
        self.repo = init_repo(self.dir / "repo")
        self.store = s.make_store(self.repo)
        self.model: dict[str, MTicket] = {}
        self.refusals = 0
        self.ticks: Counter[str] = Counter()  # tick outcomes (figures)

    def teardown(self) -> None:
        problems = s.invariants(self.store, quiescent=False)
        shutil.rmtree(self.dir, ignore_errors=True)
        figures.record(
            "state machine (lifecycle)",
            trials=1,
            operations=self.refusals,
            **{f"ticks_{k}": v for k, v in self.ticks.items()},
        )
        assert problems == []

    slugs = Bundle("slugs")

    # ---- helpers ------------------------------------------------------------------------
    def _do(self, allowed: bool, action: str, slug: str, call: Callable[[], object]) -> bool:
        """Run ``call``; when the model says it is not allowed it must raise a YoiError
        and leave every store file as it was."""
        if allowed:
            call()
            return True
        before = s.store_files(self.store)
        with pytest.raises(YoiError):
            call()
        assert s.store_files(self.store) == before, f"refused {action} of {slug} wrote"
        self.refusals += 1
        return False

    def _new(self, has_ac: bool, broken: bool) -> str:
        n = len(self.model)
        title = f"Ticket {n}"
        criteria = ["ok"] if has_ac else []
        if broken:
            spec = tickets.NewTicket(title=title, acceptance_criteria=criteria, runner="broken")
        else:
            patch = s.write_patch(self.repo, f"t{n}")
            spec = tickets.NewTicket(title=title, acceptance_criteria=criteria, patch_file=patch)
        slug = tickets.create(self.store, spec, by="ada").slug
        self.model[slug] = MTicket(slug, title, has_ac=has_ac, broken=broken)
        return slug

    def _transition(self, slug: str, action: Action, reason: str = "") -> Callable[[], object]:
        return lambda: tickets.transition(self.store, slug, action, by="ada", reason=reason)

    # ---- rules ------------------------------------------------------------------------------
    @rule(target=slugs, has_ac=st.booleans(), broken=st.booleans())
    def create(self, has_ac: bool, broken: bool) -> str:
        return self._new(has_ac, broken)

    @rule(target=slugs, broken=st.booleans(), blocked=st.booleans())
    def create_queued(self, broken: bool, blocked: bool) -> str:
        """A ticket queued at once (so that ticks have work), maybe blocked afterwards."""
        slug = self._new(True, broken)
        tickets.transition(self.store, slug, Action.READY, by="ada")
        tickets.transition(self.store, slug, Action.QUEUE, by="ada")
        m = self.model[slug]
        m.state, m.events, m.pending = "queued", 1, 1
        if blocked:
            self._block(slug)
        return slug

    @rule(slug=slugs)
    def ready(self, slug: str) -> None:
        m = self.model[slug]
        allowed = m.state == "planning" and m.has_ac
        if self._do(allowed, "ready", slug, self._transition(slug, Action.READY)):
            m.state = "ready"

    @rule(slug=slugs)
    def queue(self, slug: str) -> None:
        m = self.model[slug]
        allowed = m.state == "ready" and not m.unresolved
        if self._do(allowed, "queue", slug, self._transition(slug, Action.QUEUE)):
            m.state, m.events, m.pending = "queued", m.events + 1, m.pending + 1

    @rule(slug=slugs)
    def requeue(self, slug: str) -> None:
        m = self.model[slug]
        allowed = m.state == "blocked" and not m.unresolved
        if self._do(allowed, "requeue", slug, self._transition(slug, Action.REQUEUE)):
            m.state, m.events, m.pending = "queued", m.events + 1, m.pending + 1

    @rule(slug=slugs, reason=st.sampled_from(["", "needs more thought"]))
    def give_back(self, slug: str, reason: str) -> None:
        m = self.model[slug]
        allowed = m.state in ("ready", "queued", "blocked") and bool(reason)
        if self._do(allowed, "return", slug, self._transition(slug, Action.RETURN, reason)):
            m.state = "planning"

    def _block(self, slug: str) -> None:
        m = self.model[slug]

        def call() -> object:
            _ticket, bid = tickets.add_blocker(
                self.store, slug, kind=BlockerKind.USER_INPUT, description="waiting"
            )
            assert bid == f"b{len(m.blockers) + 1}"
            m.blockers[bid] = False
            return bid

        self._do(m.state != "done", "block", slug, call)

    @rule(slug=slugs)
    def block(self, slug: str) -> None:
        self._block(slug)

    @rule(slug=slugs, which=st.integers(1, 3))
    def resolve(self, slug: str, which: int) -> None:
        m = self.model[slug]
        bid = f"b{which}"
        allowed = m.blockers.get(bid) is False
        call = lambda: tickets.resolve_blocker(self.store, slug, bid, by="ada")  # noqa: E731
        if self._do(allowed, "resolve", slug, call):
            m.blockers[bid] = True

    @rule(slug=slugs)
    def comment(self, slug: str) -> None:
        tickets.comment(self.store, slug, kind=CommentKind.COMMENT, message="a note", by="ada")
        self.model[slug].comments += 1

    @rule(slug=slugs)
    def engine_only_actions_are_refused(self, slug: str) -> None:
        for action in (Action.ACCEPT, Action.BLOCK, Action.FINISH_DONE):
            self._do(False, action.value, slug, self._transition(slug, action))

    @precondition(lambda self: any(m.pending for m in self.model.values()))
    @rule()
    def tick(self) -> None:
        result = engine.tick(self.store)
        assert result.outcome == "processed", result
        m = self.model[str(result.ticket)]
        assert m.pending > 0
        m.pending -= 1
        expected = self._tick_outcome(m)
        self.ticks[expected] += 1
        assert result.reason == expected, (result, m)

    def _tick_outcome(self, m: MTicket) -> str:
        if m.state != "queued":
            return "NON_EXECUTABLE_STATUS"
        if m.unresolved:
            m.state = "blocked"
            return "BLOCKED"
        m.state = "blocked" if m.broken else "done"
        return "EXECUTED"

    @precondition(lambda self: any(m.pending for m in self.model.values()))
    @rule()
    def drain(self) -> None:
        """Tick until every pending event is processed (each tick checked like ``tick``)."""
        while any(m.pending for m in self.model.values()):
            self.tick()

    @precondition(lambda self: not any(m.pending for m in self.model.values()))
    @rule()
    def idle_tick(self) -> None:
        before = s.store_files(self.store)
        assert engine.tick(self.store).outcome == "idle"
        assert s.store_files(self.store) == before

    # ---- invariants ---------------------------------------------------------------------------
    @invariant()
    def store_matches_model(self) -> None:
        views = s.ticket_views(self.store)
        assert set(views) == set(self.model)
        for slug, m in self.model.items():
            v = views[slug]
            assert v.state == m.state, (slug, v.state, m)
            assert len(v.events) == m.events, (slug, v.events, m)
            assert sum(not p for _e, p, _r in v.events) == m.pending, (slug, v.events, m)
            assert v.comments.count("a note") == m.comments
            ticket = self.store.read_ticket(slug)
            assert {b.blocker_id: b.resolved for b in ticket.blocked_on} == m.blockers
            assert v.chain.count("queued") == m.events  # one event per queueing
            assert (v.bucket == "done") == (m.state == "done")


def test_lifecycle_machine(profile: Profile) -> None:
    run_state_machine_as_test(  # type: ignore[no-untyped-call]
        LifecycleMachine,
        settings=settings(
            max_examples=150 if profile.soak else 12,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )


# ---- claims and fencing ----------------------------------------------------------------------
T0 = 1_900_000_000.0
LEASE = 30.0
OWNERS = ("a", "b", "c")


@dataclass
class Clock:
    t: float = T0

    def __call__(self) -> float:
        return self.t


@dataclass
class Held:
    owner: str
    version: int
    expires: float
    released: bool = False


class ClaimFenceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="yoi-claims-"))
        root = self.dir / "r"
        (root / ".git").mkdir(parents=True)
        (root / ".yoi").mkdir()
        self.store = Store(Layout(root, root / ".git", root / ".git", root / ".yoi"))
        self.clock = Clock()
        self.books = {
            o: Claims(self.store, owner=o, clock=self.clock, lease_seconds=LEASE) for o in OWNERS
        }
        self.claims: dict[str, Claim] = {}  # what each owner believes it holds
        self.model: Held | None = None
        self.max_version = 0
        self.fenced_writes: list[tuple[str, int]] = []

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        figures.record(
            "state machine (claims and fencing)", trials=1, operations=len(self.fenced_writes)
        )

    def _live(self) -> bool:
        m = self.model
        return m is not None and not m.released and m.expires > self.clock()

    def _valid(self, owner: str) -> bool:
        c, m = self.claims.get(owner), self.model
        return (
            c is not None
            and m is not None
            and self._live()
            and m.owner == owner
            and m.version == c.claim_version
        )

    def _took(self, owner: str, claim: Claim) -> None:
        assert claim.claim_version > self.max_version, "claim_version must strictly increase"
        self.max_version = claim.claim_version
        self.claims[owner] = claim
        self.model = Held(owner, claim.claim_version, claim.lease_expires_at)

    @rule(owner=st.sampled_from(OWNERS))
    def acquire(self, owner: str) -> None:
        got = self.books[owner].acquire("EVENT", "ev-1")
        # A live claim of another owner refuses; our own is re-taken with a new version.
        if self._live() and self.model is not None and self.model.owner != owner:
            assert got is None
        else:
            assert got is not None
            self._took(owner, got)

    @rule(owner=st.sampled_from(OWNERS))
    def heartbeat(self, owner: str) -> None:
        claim = self.claims.get(owner)
        if claim is None:
            return
        if self._valid(owner):
            self._took(owner, self.books[owner].heartbeat(claim))
        else:
            with pytest.raises(FencedError):
                self.books[owner].heartbeat(claim)

    @rule(owner=st.sampled_from(OWNERS))
    def release(self, owner: str) -> None:
        claim = self.claims.get(owner)
        if claim is None:
            return
        m = self.model
        ours = (
            m is not None
            and not m.released
            and m.owner == owner
            and (m.version == claim.claim_version)
        )
        assert self.books[owner].release(claim) is ours
        if ours and m is not None:
            m.released = True

    @rule()
    def forced_release(self) -> None:
        if self.model is None:
            return
        claims.release_by_name(self.store, "EVENT-ev-1", force=True, clock=self.clock)
        self.model.released = True

    @rule(seconds=st.sampled_from([1.0, LEASE / 3, LEASE - 1, LEASE, LEASE + 1]))
    def time_passes(self, seconds: float) -> None:
        self.clock.t += seconds

    @rule(owner=st.sampled_from(OWNERS))
    def fenced_write(self, owner: str) -> None:
        claim = self.claims.get(owner)
        if claim is None:
            return
        book = self.books[owner]
        path = self.store.yoi_dir / "out.txt"
        valid = self._valid(owner)
        try:
            with self.store.transaction(fence=lambda: book.check(claim)) as tx:
                tx.write_text(path, f"{owner} {claim.claim_version}\n")
        except FencedError:
            assert not valid, "a valid holder was fenced"
            return
        assert valid, f"{owner} wrote without holding the claim"
        self.fenced_writes.append((owner, claim.claim_version))
        assert path.read_text() == f"{owner} {claim.claim_version}\n"

    @invariant()
    def disk_matches_model(self) -> None:
        record = claims.read_record(self.store.runtime_dir / "claims" / "EVENT-ev-1.yaml")
        if self.model is None:
            assert record is None
            return
        assert record is not None
        assert record["claim_version"] == self.max_version
        assert record["owner_id"] == self.model.owner
        assert bool(record["released"]) == self.model.released
        unexpired = [o for o in OWNERS if self._valid(o)]
        assert len(unexpired) <= 1

    @invariant()
    def fenced_writes_are_monotonic(self) -> None:
        versions = [v for _o, v in self.fenced_writes]
        assert versions == sorted(versions)


def test_claim_fence_machine(profile: Profile) -> None:
    run_state_machine_as_test(  # type: ignore[no-untyped-call]
        ClaimFenceMachine,
        settings=settings(
            max_examples=400 if profile.soak else 40,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
