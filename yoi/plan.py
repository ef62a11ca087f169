"""Orchestration plan records (SPEC §6): reading, writing, the relations the queue gate
and the engine consult, and the engine hooks. Records never change a ticket's state by
themselves: no automatic topological scheduling, no queue reordering.

Validation of new records lives in ``plan_check``, hand edits in ``plan_edit``, the work
set and the kick rules in ``orchestrate``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import cache_plan, clock, views
from yoi.model import PlanKind, State, Ticket
from yoi.store import BUCKETS, Store, Transaction

if TYPE_CHECKING:
    from yoi.orchestrate import KickResult

PLAN_DIR = "plan"
ENGINE_AUTHOR = "engine"
FINISHING = (State.QUEUED, State.INPROGRESS)  # will finish on their own
SATISFIED = (State.DONE, *FINISHING)
RELATION_KINDS = (
    PlanKind.BEFORE,
    PlanKind.AFTER,
    PlanKind.DEPENDS_ON,
    PlanKind.BLOCKS,
    PlanKind.CONFLICTS_WITH,
)


@dataclass(frozen=True, slots=True)
class PlanRecord:
    path: Path
    data: dict[str, Any]
    kind: PlanKind = field(init=False)
    order: tuple[datetime, str] = field(init=False)  # oldest first: (at, record_id)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", PlanKind.parse(str(self.data["kind"])))
        object.__setattr__(self, "order", (when(str(self.data["at"])), self.record_id))

    @property
    def record_id(self) -> str:
        return str(self.data["record_id"])

    @property
    def ticket(self) -> str:
        return str(self.data["ticket"])

    @property
    def related(self) -> str | None:
        value = self.data.get("related_ticket")
        return None if value is None else str(value)

    @property
    def note(self) -> str | None:
        value = self.data.get("note")
        return None if value is None else str(value)

    @property
    def at(self) -> str:
        return str(self.data["at"])


# ---- reading ---------------------------------------------------------------------------
def ticket_records(store: Store, tdir: Path) -> list[PlanRecord]:
    """The valid plan records in one ticket directory, oldest first. Invalid files are
    skipped here (``yoi doctor`` reports them)."""
    return sorted(_dir_records(store, f"{tdir}/{PLAN_DIR}"), key=_order)


def all_records(store: Store) -> list[PlanRecord]:
    """Every valid plan record of every ticket, oldest first."""
    return views.get(store, _ALL)


def _every_record(
    store: Store, kinds: frozenset[str] | None = None, buckets: Sequence[str] = BUCKETS
) -> list[PlanRecord]:
    cache_plan.load(store)
    out: list[PlanRecord] = []
    for bucket in buckets:
        for name in store.bucket_names(bucket):
            out.extend(_one_dir(store, bucket, name, kinds))
    cache_plan.save(store)
    return sorted(out, key=_order)


def _order(record: PlanRecord) -> tuple[datetime, str]:
    return record.order


def _one_dir(
    store: Store, bucket: str, slug: str, kinds: frozenset[str] | None = None
) -> list[PlanRecord]:
    return _dir_records(store, f"{store.tickets_dir}/{bucket}/{slug}/{PLAN_DIR}", kinds)


_ALL = views.Kind("plan-records", _every_record, _one_dir, _order)

# The kinds that relate two tickets: all that the waiting and blocking rules read. Far
# fewer records than all of them (every accepted run adds an `accepted_plan`), so the
# engine's rules per tick cost what the relations hold, not what the store has done.
RELATIONS = frozenset(
    {PlanKind.BEFORE, PlanKind.AFTER, PlanKind.DEPENDS_ON, PlanKind.BLOCKS, PlanKind.CONFLICTS_WITH}
)


def relation_records(store: Store) -> list[PlanRecord]:
    """Every valid plan record of a ``RELATIONS`` kind, oldest first."""
    return views.get(store, _RELATED)


_RELATION_NAMES = frozenset(k.value for k in RELATIONS)

_RELATED = views.Kind(
    "plan-relations",
    lambda store: _every_record(store, _RELATION_NAMES),
    lambda store, bucket, slug: _one_dir(store, bucket, slug, _RELATION_NAMES),
    _order,
)


def open_relation_records(store: Store) -> list[PlanRecord]:
    """``relation_records`` of the open tickets, oldest first: the ones the waiting and
    blocking rules act on. A record lies in the directory of the ticket it belongs to,
    and one in a done ticket's relates that ticket, which has finished: as a
    prerequisite or a predecessor it is satisfied, in a conflict it is not running. So
    the rules read what the open tickets hold, not what the store has done."""
    return views.get(store, _OPEN_RELATED)


def _every_open_relation(store: Store) -> list[PlanRecord]:
    return _every_record(store, _RELATION_NAMES, _OPEN_RELATED.buckets)


_OPEN_RELATED = views.Kind(
    "open-plan-relations", _every_open_relation, _RELATED.one, _order, buckets=("open",)
)


def _dir_records(store: Store, base: str, kinds: frozenset[str] | None = None) -> list[PlanRecord]:
    """The valid records of a plan directory (of ``kinds`` only, when given), through
    ``cache_plan``: an unchanged directory costs a ``lstat``, an unchanged record one."""
    return [
        PlanRecord(Path(path), data)
        for path, data in cache_plan.dir_records(store, base)
        if kinds is None or data.get("kind") in kinds
    ]


def when(ts: str | None) -> datetime:
    """A timestamp for comparisons; anything unparsable sorts first."""
    try:
        return clock.parse_ts(ts or "")
    except ValueError:
        return clock.parse_ts("0001-01-01T00:00:00Z")


def since(records: Sequence[PlanRecord], kind: PlanKind, queued_at: str | None) -> list[PlanRecord]:
    """Records of ``kind`` written at or after ``queued_at`` (all of them when unset)."""
    start = when(queued_at) if queued_at else None
    return [r for r in records if r.kind is kind and (start is None or r.order[0] >= start)]


# ---- writing ---------------------------------------------------------------------------
def new_record_id(kind: PlanKind, now: str) -> str:
    stamp = clock.compact(clock.parse_ts(now))
    return f"plan-{stamp}-{kind.value.replace('_', '-')}-{os.urandom(3).hex()}"


def record_path(ticket_dir: Path, record_id: str) -> Path:
    return ticket_dir / PLAN_DIR / f"{record_id}.yaml"


def write_record(
    tx: Transaction,
    ticket_dir: Path,
    slug: str,
    kind: PlanKind,
    *,
    now: str,
    by: str,
    related: str | None = None,
    note: str | None = None,
    accepted: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Create one plan record (schema-validated, create-if-absent) and return it."""
    data: dict[str, Any] = {"record_id": "", "ticket": slug, "kind": kind.value}
    if related is not None:
        data["related_ticket"] = related
    if note is not None:
        data["note"] = note
    if accepted is not None:
        data["accepted_plan"] = dict(accepted)
    data.update({"author": by, "at": now})
    while True:
        data["record_id"] = new_record_id(kind, now)
        if tx.write_record(
            record_path(ticket_dir, data["record_id"]), "plan_record", data, create=True
        ):
            return data


def thread_note(tx: Transaction, ticket: Ticket, record: Mapping[str, Any], text: str) -> None:
    """Append the `plan` thread entry that says what was recorded."""
    thread_entry(
        tx, ticket.path, ticket.title, record, text, by=str(record["author"]), at=str(record["at"])
    )


def thread_entry(
    tx: Transaction,
    tdir: Path,
    title: str,
    record: Mapping[str, Any],
    text: str,
    *,
    by: str,
    at: str,
) -> None:
    """Append a `plan` entry about ``record`` to the thread in ``tdir``."""
    from yoi.thread import Entry
    from yoi.tickets import append_entry

    attrs = (("record", str(record["record_id"])),)
    entry = Entry(kind="plan", author=by, at=at, attrs=attrs, body=text.rstrip("\n") + "\n")
    append_entry(tx, tdir, entry, title)


# ---- relations -------------------------------------------------------------------------
def prerequisites(records: Sequence[PlanRecord], slug: str) -> list[tuple[str, str]]:
    """(other ticket, why) for every ticket that must finish before ``slug`` may start:
    its `depends_on` targets and every ticket with a `blocks` record against it."""
    out = []
    for r in records:
        if r.kind is PlanKind.DEPENDS_ON and r.ticket == slug and r.related:
            out.append((r.related, "depends on"))
        elif r.kind is PlanKind.BLOCKS and r.related == slug:
            out.append((r.ticket, "is blocked by"))
    return _unique(out)


def predecessors(records: Sequence[PlanRecord], slug: str) -> list[str]:
    """Tickets explicitly ordered before ``slug`` (`X before slug` or `slug after X`)."""
    out = []
    for r in records:
        if r.kind is PlanKind.BEFORE and r.related == slug:
            out.append(r.ticket)
        elif r.kind is PlanKind.AFTER and r.ticket == slug and r.related:
            out.append(r.related)
    return list(dict.fromkeys(out))


def conflicting(records: Sequence[PlanRecord], slug: str) -> list[str]:
    """Tickets in a `conflicts_with` record with ``slug``, either direction."""
    out = []
    for r in records:
        if r.kind is PlanKind.CONFLICTS_WITH and r.related:
            if r.ticket == slug:
                out.append(r.related)
            elif r.related == slug:
                out.append(r.ticket)
    return list(dict.fromkeys(out))


def _unique(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(pairs))


def _states(tickets: Sequence[Ticket]) -> dict[str, State]:
    return {t.slug: t.state for t in tickets}


@dataclass(frozen=True, slots=True)
class Standing:
    """Every ticket's state and the slugs in progress: what the waiting and blocking
    rules read of the tickets. Made once per list of tickets (``standing``) and handed
    to each rule, so a tick passes over every ticket once, not once per rule."""

    states: Mapping[str, State]
    running: tuple[str, ...]


def standing(tickets: Sequence[Ticket]) -> Standing:
    states = _states(tickets)
    return Standing(states, tuple(s for s, state in states.items() if state is State.INPROGRESS))


def open_standing(store: Store, open_tickets: Sequence[Ticket]) -> Standing:
    """``standing`` of every ticket, from the open ones: a ticket in progress is open, and
    the state of any other ticket a rule names is read from ``done/`` when it is asked
    for (``_States``), so a tick does not load every done ticket."""
    states = _States(store, open_tickets)
    running = tuple(t.slug for t in open_tickets if t.state is State.INPROGRESS)
    return Standing(states, running)


class _States(Mapping[str, State]):
    """Ticket states by slug: the open tickets' as listed; another slug's looked up in
    ``done/`` on first use and kept (missing or invalid: absent, as in ``_states``)."""

    def __init__(self, store: Store, open_tickets: Sequence[Ticket]):
        self._store = store
        self._known: dict[str, State | None] = {t.slug: t.state for t in open_tickets}
        self._complete = False  # every done ticket is in ``_known``

    def __getitem__(self, slug: str) -> State:
        if slug not in self._known:
            self._known[slug] = None if self._complete else _done_state(self._store, slug)
        state = self._known[slug]
        if state is None:
            raise KeyError(slug)
        return state

    def __iter__(self) -> Iterator[str]:
        return iter([slug for slug, state in self._every().items() if state is not None])

    def __len__(self) -> int:
        return sum(1 for state in self._every().values() if state is not None)

    def _every(self) -> dict[str, State | None]:
        """``_known`` with every done ticket: iterating lists ``done/`` (no rule does)."""
        if not self._complete:
            from yoi import cache_tickets

            for ticket in cache_tickets.list_tickets(self._store, ("done",))[0]:
                if self._known.get(ticket.slug) is None:
                    self._known[ticket.slug] = ticket.state
            self._complete = True
        return self._known


def _done_state(store: Store, slug: str) -> State | None:
    from yoi import cache_tickets
    from yoi.slug import is_valid_slug

    if not is_valid_slug(slug):  # a name from a record: never a path
        return None
    found = cache_tickets.load_one(store, "done", slug)
    return found[0].state if found else None


def unfinished_prerequisites(
    records: Sequence[PlanRecord], slug: str, states: Mapping[str, State]
) -> list[str]:
    problems = []
    for other, why in prerequisites(records, slug):
        state = states.get(other)
        if state is None:
            problems.append(f"it {why} '{other}', which does not exist")
        elif state not in SATISFIED:
            problems.append(
                f"it {why} '{other}', which is {state.value} and will not finish on its own"
            )
    return problems


# ---- the queue gate and the engine hooks ---------------------------------------------------
def queue_problems(store: Store, slug: str) -> list[str]:
    """Why ``slug`` may not be queued (SPEC §4): a `depends_on` target or a ticket that
    `blocks` it which is missing or in planning, ready or blocked."""
    tickets, _invalid = store.list_tickets()
    return unfinished_prerequisites(relation_records(store), slug, _states(tickets))


def blocking_prerequisites(
    store: Store,
    ticket: Ticket,
    *,
    tickets: Sequence[Ticket],
    records: Sequence[PlanRecord] | None = None,
    known: Standing | None = None,
) -> list[str]:
    """Prerequisites of ``ticket`` that will not finish on their own (planning, ready,
    blocked) or do not exist, in plain words naming each: the engine's BLOCKED path.
    ``records``: the relation records (or every record), when the caller has read them;
    ``known``: ``standing(tickets)``, when the caller has made it."""
    found = relation_records(store) if records is None else records
    states = known.states if known is not None else _states(tickets)
    return unfinished_prerequisites(found, ticket.slug, states)


def start_wait_reason(
    store: Store,
    ticket: Ticket,
    *,
    tickets: Sequence[Ticket],
    records: Sequence[PlanRecord] | None = None,
    known: Standing | None = None,
) -> str | None:
    """Why the queued ``ticket`` must wait before it may start, or None (SPEC §5 step 1)."""
    found = relation_records(store) if records is None else records
    capacity = store.config()["engine"]["capacity"]
    return wait_reason(found, ticket, tickets, capacity, known=known)


def wait_reason(
    records: Sequence[PlanRecord],
    ticket: Ticket,
    tickets: Sequence[Ticket],
    capacity: int,
    *,
    known: Standing | None = None,
) -> str | None:
    """``start_wait_reason`` on already-loaded records (used by the work set). ``known``:
    the ``standing`` of ``tickets``, when the caller has it (then ``tickets`` is not
    read again)."""
    now = known or standing(tickets)
    states = now.states
    running = [slug for slug in now.running if slug != ticket.slug]
    if len(running) >= capacity:
        names = ", ".join(f"'{s}'" for s in running)
        return (
            f"waits for capacity: {len(running)} ticket(s) already in progress ({names}); "
            f"engine.capacity is {capacity}"
        )
    for other in conflicting(records, ticket.slug):
        if states.get(other) is State.INPROGRESS:
            return f"conflicts with '{other}', which is in progress"
    for other in predecessors(records, ticket.slug):
        state = states.get(other)
        if state is not None and state is not State.DONE:
            return f"waits for '{other}', ordered before it, which is {state.value}"
    for other, why in prerequisites(records, ticket.slug):
        state = states.get(other)
        if state in FINISHING:
            assert state is not None
            return f"{why} '{other}', which is {state.value} and will finish on its own"
    return None


def record_waiting(tx: Transaction, store: Store, ticket: Ticket, reason: str, *, now: str) -> None:
    """Record why ``ticket`` waits, unless its latest `waiting` record since it was queued
    already says the same."""
    waits = since(ticket_records(store, ticket.path), PlanKind.WAITING, ticket.queued_at)
    if waits and waits[-1].note == reason:
        return
    record = write_record(
        tx, ticket.path, ticket.slug, PlanKind.WAITING, now=now, by=ENGINE_AUTHOR, note=reason
    )
    thread_note(tx, ticket, record, f"Waiting: {reason}")


def record_accepted(
    tx: Transaction, store: Store, ticket: Ticket, *, summary: str, branch: str, now: str
) -> None:
    """The `accepted_plan` record the engine writes when it accepts ``ticket``."""
    accepted = {"summary": summary, "branch": branch} if branch else {"summary": summary}
    record = write_record(
        tx,
        ticket.path,
        ticket.slug,
        PlanKind.ACCEPTED_PLAN,
        now=now,
        by=ENGINE_AUTHOR,
        accepted=accepted,
    )
    where = f" on branch `{branch}`" if branch else ""
    thread_note(tx, ticket, record, f"Accepted plan{where}: {summary}")


def kick(store: Store) -> KickResult:
    """Apply the four kick rules once (SPEC §6); see ``yoi.orchestrate.kick``."""
    from yoi import orchestrate

    return orchestrate.kick(store)
