"""Plan records by hand: ``add`` and ``rm`` as store transactions (each also appends a
`plan` entry to the ticket's thread), and the query behind ``yoi plan list``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from yoi import clock, plan
from yoi.errors import NotFoundError, UsageError
from yoi.model import PlanKind, State
from yoi.plan import ENGINE_AUTHOR, RELATION_KINDS, PlanRecord
from yoi.plan_check import PlanRefusedError, edge, new_cycle, render_cycle
from yoi.store import Store

MAX_TEXT = 16 * 1024

# How a record of another ticket reads from the related ticket's side.
INCOMING_VIEW = {
    PlanKind.BEFORE: "after",
    PlanKind.AFTER: "before",
    PlanKind.DEPENDS_ON: "depended_on_by",
    PlanKind.BLOCKS: "blocked_by",
    PlanKind.CONFLICTS_WITH: "conflicts_with",
    PlanKind.WAITING: "waited_on_by",
    PlanKind.PLANNED: "related_to",
    PlanKind.ACCEPTED_PLAN: "related_to",
}


@dataclass(frozen=True, slots=True)
class NewRecord:
    kind: PlanKind
    related: str | None = None
    note: str | None = None
    summary: str | None = None
    branch: str | None = None


@dataclass(frozen=True, slots=True)
class Added:
    record: dict[str, Any]
    path: str
    warnings: tuple[str, ...]


def _text(what: str, value: str | None) -> str | None:
    if value is None:
        return None
    if not value.strip():
        raise UsageError(f"{what} is empty")
    if len(value.encode("utf-8")) > MAX_TEXT:
        raise UsageError(f"{what} is longer than {MAX_TEXT} bytes")
    return value.strip()


def check_shape(spec: NewRecord) -> None:
    """The flags each kind needs or refuses (checked before anything is read)."""
    k = spec.kind.value
    if spec.kind in RELATION_KINDS and spec.related is None:
        raise UsageError(f"kind {k} needs the other ticket", hint=f"--kind {k} --related TICKET")
    if spec.kind in (PlanKind.PLANNED, PlanKind.ACCEPTED_PLAN) and spec.related is not None:
        raise UsageError(f"kind {k} takes no --related")
    if spec.kind is PlanKind.ACCEPTED_PLAN and spec.summary is None:
        raise UsageError("kind accepted_plan needs --summary TEXT (what will be done)")
    if spec.kind is not PlanKind.ACCEPTED_PLAN and (spec.summary or spec.branch) is not None:
        raise UsageError("--summary and --branch are for kind accepted_plan only")
    if spec.kind is PlanKind.WAITING and spec.note is None:
        raise UsageError("kind waiting needs --note TEXT (what it waits for)")
    for what, value in (
        ("--note", spec.note),
        ("--summary", spec.summary),
        ("--branch", spec.branch),
        ("--related", spec.related),
    ):
        _text(what, value)


def add(store: Store, name: str, spec: NewRecord, *, by: str | None = None) -> Added:
    """Validate and write one plan record; nothing is written when a check fails."""
    from yoi.tickets import author

    check_shape(spec)
    who = by or author()
    with store.transaction() as tx:
        t = store.read_ticket(store.resolve(name))
        related = None if spec.related is None else store.resolve(spec.related)
        records = plan.all_records(store)
        _check_relation(records, t.slug, spec.kind, related)
        accepted = None
        if spec.summary is not None:
            accepted = {"summary": str(_text("--summary", spec.summary))}
            if spec.branch:
                accepted["branch"] = spec.branch.strip()
        now = clock.format_ts(clock.now())
        record = plan.write_record(
            tx,
            t.path,
            t.slug,
            spec.kind,
            now=now,
            by=who,
            related=related,
            note=_text("--note", spec.note),
            accepted=accepted,
        )
        plan.thread_note(tx, t, record, f"Plan record: {describe(record)}.")
        path = store.rel(plan.record_path(t.path, record["record_id"]))
    return Added(record, path, tuple(_warnings(store, record)))


def _check_relation(
    records: Sequence[PlanRecord], slug: str, kind: PlanKind, related: str | None
) -> None:
    if related is None:
        return
    if related == slug:
        raise UsageError(f"a ticket cannot have a {kind.value} relation to itself ('{slug}')")
    if kind in RELATION_KINDS:
        for r in records:
            if (r.ticket, r.kind, r.related) == (slug, kind, related):
                raise PlanRefusedError(
                    f"'{slug}' {kind.value} '{related}' is already recorded ({r.record_id})",
                    where=r.path.name,
                    hint="`yoi plan list " + slug + "` shows its records",
                )
    e = edge(kind, slug, related)
    found = new_cycle(records, kind, e) if e is not None else None
    if found is not None:
        what, cycle = found
        raise PlanRefusedError(
            f"'{slug}' {kind.value} '{related}' would create a {what} cycle: "
            f"{render_cycle(cycle)} (each ticket would wait for the one before it)",
            hint="remove a record of the cycle first (`yoi plan list TICKET`, `yoi plan rm ID`)",
        )


def _warnings(store: Store, record: dict[str, Any]) -> list[str]:
    """A queued ticket that now depends on one that will not finish on its own."""
    kind = PlanKind.parse(str(record["kind"]))
    related = record.get("related_ticket")
    e = edge(kind, str(record["ticket"]), str(related)) if related else None
    if e is None or kind not in (PlanKind.DEPENDS_ON, PlanKind.BLOCKS):
        return []
    first, then = store.read_ticket(e.first), store.read_ticket(e.then)
    if then.state is State.QUEUED and first.state not in plan.SATISFIED:
        return [
            f"'{then.slug}' is queued but '{first.slug}' is {first.state.value}: the "
            f"engine will block '{then.slug}' until '{first.slug}' is queued or done"
        ]
    return []


def describe(record: dict[str, Any]) -> str:
    """One line: what a record says."""
    text = f"{record['kind']}"
    if record.get("related_ticket"):
        text += f" '{record['related_ticket']}'"
    accepted = record.get("accepted_plan")
    if accepted:
        text += f": {accepted['summary']}"
        if accepted.get("branch"):
            text += f" (branch {accepted['branch']})"
    if record.get("note"):
        text += f" — {record['note']}"
    return f"{text} [{record['record_id']}]"


def find(store: Store, record_id: str) -> PlanRecord:
    for _bucket, _slug, tdir in store.iter_ticket_dirs():
        for r in plan.ticket_records(store, tdir):
            if record_id in (r.record_id, r.path.stem):
                return r
    raise NotFoundError(f"no plan record '{record_id}'", hint="`yoi plan list` shows every record")


def rm(store: Store, record_id: str, *, by: str | None = None) -> PlanRecord:
    """Remove a hand-written record. Engine-written records (author `engine`: waiting,
    planned, accepted_plan) are history and are not removed."""
    from yoi.tickets import author

    who = by or author()
    with store.transaction() as tx:
        r = find(store, record_id)
        if r.data.get("author") == ENGINE_AUTHOR:
            raise PlanRefusedError(
                f"plan record {r.record_id} ({r.kind.value}) was written by the engine and "
                "is kept as history",
                where=store.rel(r.path),
                hint="to re-plan a queued ticket, return it to planning and queue it again",
            )
        tdir = r.path.parent.parent
        title = _title(store, tdir.name)
        tx.remove(r.path)
        now = clock.format_ts(clock.now())
        plan.thread_entry(
            tx,
            tdir,
            title,
            r.data,
            f"Removed plan record: {describe(r.data)} (written by {r.data['author']} at {r.at}).",
            by=who,
            at=now,
        )
    return r


def _title(store: Store, slug: str) -> str:
    try:
        return store.read_ticket(slug).title
    except UsageError:
        return slug


# ---- query -------------------------------------------------------------------------------
def query(
    store: Store, name: str | None = None, kind: PlanKind | None = None
) -> list[dict[str, Any]]:
    """Records as `plan list` shows them: every record, or one ticket's outgoing records
    and the records of other tickets that name it (incoming, with the derived view)."""
    slug = None if name is None else store.resolve(name)
    items = []
    for r in plan.all_records(store):
        if kind is not None and r.kind is not kind:
            continue
        if slug is None or r.ticket == slug:
            items.append(_item(store, r, "outgoing", r.kind.value))
        elif r.related == slug:
            items.append(_item(store, r, "incoming", INCOMING_VIEW[r.kind]))
    return items


def _item(store: Store, r: PlanRecord, direction: str, view: str) -> dict[str, Any]:
    return {**r.data, "direction": direction, "view": view, "path": store.rel(r.path)}
