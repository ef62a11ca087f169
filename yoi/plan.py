"""Orchestration plan records (SPEC §6): reading and the dependency checks the queue
gate and the engine consult. Records never change a ticket's state by themselves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yoi.errors import YoiError
from yoi.model import PlanKind, State
from yoi.store import Store

PLAN_DIR = "plan"
FINISHING = (State.QUEUED, State.INPROGRESS)  # will finish on their own
SATISFIED = (State.DONE, *FINISHING)


@dataclass(frozen=True, slots=True)
class PlanRecord:
    path: Path
    data: dict[str, Any]

    @property
    def kind(self) -> PlanKind:
        return PlanKind.parse(str(self.data["kind"]))

    @property
    def ticket(self) -> str:
        return str(self.data["ticket"])

    @property
    def related(self) -> str | None:
        value = self.data.get("related_ticket")
        return None if value is None else str(value)


def ticket_records(store: Store, tdir: Path) -> list[PlanRecord]:
    out = []
    for path in store.record_files(tdir, PLAN_DIR):
        try:
            out.append(PlanRecord(path, store.read_record(path, "plan_record")))
        except YoiError:
            continue  # doctor reports invalid records
    return sorted(out, key=lambda r: (str(r.data["at"]), str(r.data["record_id"])))


def all_records(store: Store) -> list[PlanRecord]:
    out: list[PlanRecord] = []
    for _bucket, _slug, tdir in store.iter_ticket_dirs():
        out.extend(ticket_records(store, tdir))
    return out


def _states(store: Store) -> dict[str, State]:
    tickets, _invalid = store.list_tickets()
    return {t.slug: t.state for t in tickets}


def prerequisites(records: list[PlanRecord], slug: str) -> list[tuple[str, str]]:
    """(other ticket, why) for every ticket that must finish before ``slug`` may start:
    its `depends_on` targets and every ticket with a `blocks` record against it."""
    out = []
    for r in records:
        if r.kind is PlanKind.DEPENDS_ON and r.ticket == slug and r.related:
            out.append((r.related, "it depends on"))
        elif r.kind is PlanKind.BLOCKS and r.related == slug:
            out.append((r.ticket, "it is blocked by"))
    return out


def queue_problems(store: Store, slug: str) -> list[str]:
    """Why ``slug`` may not be queued: a prerequisite that will not finish on its own."""
    records = all_records(store)
    states = _states(store)
    problems = []
    for other, why in prerequisites(records, slug):
        state = states.get(other)
        if state is None:
            problems.append(f"{why} '{other}', which does not exist")
        elif state not in SATISFIED:
            problems.append(f"{why} '{other}', which is {state.value}")
    return problems
