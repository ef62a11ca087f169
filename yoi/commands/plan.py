"""`yoi plan add|list|rm`: orchestration plan records."""

from __future__ import annotations

from typing import Any

from yoi import plan_ops
from yoi.model import PlanKind
from yoi.output import Output, table
from yoi.store import Store


def add(
    store: Store,
    name: str,
    *,
    kind: str,
    related: str | None = None,
    note: str | None = None,
    summary: str | None = None,
    branch: str | None = None,
) -> Output:
    spec = plan_ops.NewRecord(
        PlanKind.parse(kind, what="plan kind"),
        related=related,
        note=note,
        summary=summary,
        branch=branch,
    )
    added = plan_ops.add(store, name, spec)
    record = {**added.record, "path": added.path}
    text = f"{added.record['ticket']}: recorded {plan_ops.describe(added.record)}"
    return Output({"record": record}, text, warnings=added.warnings)


def list_(store: Store, *, name: str | None = None, kind: str | None = None) -> Output:
    wanted = None if kind is None else PlanKind.parse(kind, what="plan kind")
    items = plan_ops.query(store, name, wanted)
    return Output({"records": items}, _list_text(items))


def _list_text(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no plan records"
    rows = [["RECORD", "TICKET", "VIEW", "OTHER", "DETAIL"]]
    for d in items:
        other = d.get("related_ticket") or "-"
        ticket = d["ticket"]
        if d["direction"] == "incoming":
            ticket, other = other, ticket
        detail = d.get("note") or ""
        accepted = d.get("accepted_plan")
        if accepted:
            detail = accepted["summary"] + (
                f" (branch {accepted['branch']})" if accepted.get("branch") else ""
            )
        rows.append([d["record_id"], ticket, d["view"], other, detail])
    return table(rows)


def rm(store: Store, record_id: str) -> Output:
    removed = plan_ops.rm(store, record_id)
    data = {"removed": {**removed.data, "path": store.rel(removed.path)}}
    return Output(data, f"{removed.ticket}: removed {plan_ops.describe(removed.data)}")
