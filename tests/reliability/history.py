"""A Jepsen-style history of concurrent operations and the checker of their outcome.

Each client operation is recorded at invocation and completion with its outcome:
``ok`` (the command said it happened), ``fail`` (the command said it did not: exit 1/2
with a clean error) or ``info`` (unknown: the process was killed, or timed out). The
checker compares the history with what is on disk once everything is quiescent:

- no lost update: every ``ok`` comment is in its ticket's thread exactly once, every
  ``ok`` label is on its ticket; a ``fail`` left no trace; an ``info`` at most one;
- no phantom: nothing in a thread that no client asked for;
- no duplicate: one event per queueing (state entry ``to=queued``), one workorder per
  event (a run dir is named after its event), one acceptance per run, one run entry
  per run record, one pause state per pause entry;
- every event processed (exactly once: ``processed`` is set once and run ids are unique);
- no invalid file (every record parses and matches its schema; doctor has no error);
- claim_version strictly increasing per resource in the sampled claim records, and
  never two owners with the same version.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.reliability import support as s
from yoi.store import Store

OK, FAIL, INFO = "ok", "fail", "info"


@dataclass
class Op:
    id: int
    process: str
    kind: str  # comment | label | ready | queue | return | requeue | ...
    ticket: str  # the ticket's title
    value: str  # the comment text or label (unique per op); "" for transitions
    invoked: float
    completed: float | None = None
    outcome: str | None = None
    detail: str = ""


@dataclass
class ClaimSample:
    at: float
    resource: str
    owner: str
    version: int
    released: bool


@dataclass
class History:
    """Thread-safe record of invocations, completions and claim samples."""

    ops: list[Op] = field(default_factory=list)
    claims: list[ClaimSample] = field(default_factory=list)
    nemesis: list[tuple[float, str, str]] = field(default_factory=list)
    # state entries per ticket title before the run: {title: Counter(to-state)}
    baseline: dict[str, Counter[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, store: Store) -> None:
        """Record the thread state entries that exist before any client runs."""
        self.baseline = {v.title: Counter(v.chain) for v in s.ticket_views(store).values()}

    def invoke(self, process: str, kind: str, ticket: str, value: str = "") -> Op:
        with self._lock:
            op = Op(len(self.ops), process, kind, ticket, value, time.monotonic())
            self.ops.append(op)
            return op

    def complete(self, op: Op, outcome: str, detail: str = "") -> None:
        assert outcome in (OK, FAIL, INFO)
        with self._lock:
            op.completed, op.outcome, op.detail = time.monotonic(), outcome, detail

    def sample(self, resource: str, record: dict[str, Any]) -> None:
        with self._lock:
            self.claims.append(
                ClaimSample(
                    time.monotonic(),
                    resource,
                    str(record["owner_id"]),
                    int(record["claim_version"]),
                    bool(record.get("released")),
                )
            )

    def fault(self, action: str, target: str) -> None:
        with self._lock:
            self.nemesis.append((time.monotonic(), action, target))

    def counts(self) -> Counter[str]:
        return Counter(f"{op.kind}:{op.outcome}" for op in self.ops)


@dataclass
class Report:
    anomalies: list[str]
    stats: dict[str, int]


def check(history: History, store: Store) -> Report:
    """Every anomaly between the history and the quiescent store (empty = linearizable
    enough for our guarantees)."""
    anomalies = s.validity_problems(store) + s.doctor_errors(store)
    views = {v.title: v for v in s.ticket_views(store).values()}
    anomalies += _comments(history, views) + _labels(history, views)
    anomalies += _transitions(history, views)
    anomalies += _queueings(store, views) + _runs(store, views) + _claims(history)
    anomalies += [p for p in s.invariants(store) if p not in anomalies]
    events = sum(len(v.events) for v in views.values())
    runs = sum(len(v.runs) for v in views.values())
    stats = {
        "ops": len(history.ops),
        "events": events,
        "runs": runs,
        "claim_samples": len(history.claims),
        "nemesis": len(history.nemesis),
    }
    stats.update(history.counts())
    return Report(anomalies, stats)


def _comments(history: History, views: dict[str, s.TicketView]) -> list[str]:
    out = []
    asked = {op.value: op for op in history.ops if op.kind == "comment"}
    seen: Counter[tuple[str, str]] = Counter()
    for title, view in views.items():
        for body in view.comments:
            seen[(title, body)] += 1
            if body.startswith("h-") and body not in asked:
                out.append(f"phantom comment {body!r} on {title}")
    for text, op in asked.items():
        n = seen[(op.ticket, text)]
        elsewhere = sum(c for (t, b), c in seen.items() if b == text and t != op.ticket)
        if elsewhere:
            out.append(f"comment {text!r} landed on another ticket")
        if op.outcome == OK and n != 1:
            out.append(
                f"acknowledged comment {text!r} is in the thread {n} times (lost update)"
                if n == 0
                else f"acknowledged comment {text!r} landed {n} times"
            )
        elif op.outcome == FAIL and n:
            out.append(f"failed comment {text!r} landed anyway")
        elif n > 1:
            out.append(f"comment {text!r} landed {n} times")
    return out


def _labels(history: History, views: dict[str, s.TicketView]) -> list[str]:
    out = []
    for op in history.ops:
        if op.kind != "label" or op.ticket not in views:
            continue
        present = op.value in views[op.ticket].labels
        if op.outcome == OK and not present:
            out.append(f"acknowledged label {op.value} of {op.ticket} is lost")
        if op.outcome == FAIL and present:
            out.append(f"failed label {op.value} of {op.ticket} is present")
    return out


TARGET_STATE = {"ready": "ready", "queue": "queued", "requeue": "queued", "return": "planning"}


def _transitions(history: History, views: dict[str, s.TicketView]) -> list[str]:
    """Each acknowledged transition is in the thread, failed ones are not: the number of
    state entries into ready, queued and planning lies between the acknowledged and the
    acknowledged-or-unknown client transitions into it (only clients make these)."""
    out = []
    for title, view in views.items():
        base = history.baseline.get(title, Counter())
        got = Counter(view.chain)
        for state in ("ready", "queued", "planning"):
            ops = [
                o for o in history.ops if o.ticket == title and TARGET_STATE.get(o.kind) == state
            ]
            low = base[state] + sum(o.outcome == OK for o in ops)
            high = low + sum(o.outcome == INFO for o in ops)
            if not low <= got[state] <= high:
                out.append(
                    f"{title}: {got[state]} entries into {state}, expected "
                    f"{low}..{high} from the history (lost or phantom transition)"
                )
    return out


def _queueings(store: Store, views: dict[str, s.TicketView]) -> list[str]:
    """One TICKET_READY per queueing, and a thread whose state entries chain."""
    out = []
    for title, view in views.items():
        entries = store.read_thread(view.slug, store.ticket_dir(view.slug))
        previous = None
        for e in entries:
            if e.kind != "state":
                continue
            if previous is not None and e.get("from") != previous:
                out.append(f"{title}: state entry from {e.get('from')} after {previous}")
            previous = e.get("to")
        queueings = view.chain.count("queued")
        if queueings != len(view.events):
            out.append(f"{title}: {queueings} queueings but {len(view.events)} events")
    return out


def _runs(store: Store, views: dict[str, s.TicketView]) -> list[str]:
    out = []
    for title, view in views.items():
        entries = store.read_thread(view.slug, store.ticket_dir(view.slug))
        run_ids = [e.get("run_id") for e in entries if e.kind == "run"]
        dupes = [r for r, n in Counter(run_ids).items() if n > 1]
        if dupes:
            out.append(f"{title}: run entries repeated for {dupes} (duplicate run records)")
        blocked = sum(reason == "BLOCKED" for _e, _p, reason in view.events)
        pauses = sum(e.kind == "pause" for e in entries)
        if pauses != blocked + len(run_ids):
            out.append(
                f"{title}: {pauses} pauses for {blocked} blocked events and "
                f"{len(run_ids)} finished runs"
            )
    return out


def _claims(history: History) -> list[str]:
    out = []
    by_resource: dict[str, list[ClaimSample]] = defaultdict(list)
    for sample in sorted(history.claims, key=lambda c: c.at):
        by_resource[sample.resource].append(sample)
    for resource, samples in by_resource.items():
        owners: dict[int, str] = {}
        last = 0
        for c in samples:
            if c.version < last:
                out.append(f"{resource}: claim_version went back from {last} to {c.version}")
            last = max(last, c.version)
            if owners.setdefault(c.version, c.owner) != c.owner:
                out.append(
                    f"{resource}: version {c.version} held by {owners[c.version]} and {c.owner}"
                )
    return out
