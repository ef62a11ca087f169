"""`yoi events list [--pending]`: TICKET_READY events, oldest first."""

from __future__ import annotations

from yoi import events
from yoi.output import Output, table
from yoi.store import Store


def _state(record: dict[str, object]) -> str:
    if not record.get("processed"):
        return "pending"
    return str(record.get("processed_reason") or "processed")


def list_(store: Store, *, pending: bool = False) -> Output:
    found = [e.record for e in events.all_events(store, pending_only=pending)]
    rows = [
        [str(r["event_id"]), _state(r), str(r["ticket"]), str(r.get("run_id") or "")] for r in found
    ]
    text = (
        table([["EVENT", "STATE", "TICKET", "RUN"], *rows])
        if rows
        else ("no pending events" if pending else "no events")
    )
    return Output({"events": found}, text)
