"""`yoi orchestrate status|kick`: the work set, wait reasons, and the kick rules."""

from __future__ import annotations

from typing import Any

from yoi import orchestrate
from yoi.output import Output
from yoi.store import Store


def status(store: Store) -> Output:
    snap = orchestrate.Snapshot.read(store)
    work = orchestrate.work_set(snap)
    decided = orchestrate.decide(snap)
    data = {
        "new_queued": list(work.new_queued),
        "planned_queued": [{"slug": w.slug, "waiting": w.reason} for w in work.planned_queued],
        "inprogress": list(work.inprogress),
        "new_queued_waiting": [{"slug": w.slug, "waiting": w.reason} for w in work.new_waiting],
        "kick": {"due": decided.due, "reason": decided.reason},
    }
    return Output(data, _status_text(data))


def _status_text(d: dict[str, Any]) -> str:
    lines = ["new queued:" + ("" if d["new_queued"] else " none")]
    new_waits = {w["slug"]: w["waiting"] for w in d["new_queued_waiting"]}
    for s in d["new_queued"]:
        lines.append(f"  {s}" + (f"  waiting: {new_waits[s]}" if s in new_waits else ""))
    lines.append("planned queued:" + ("" if d["planned_queued"] else " none"))
    for w in d["planned_queued"]:
        lines.append(f"  {w['slug']}" + (f"  waiting: {w['waiting']}" if w["waiting"] else ""))
    lines.append("in progress:" + ("" if d["inprogress"] else " none"))
    lines.extend(f"  {s}" for s in d["inprogress"])
    due = "kick due" if d["kick"]["due"] else "no kick due"
    lines.append(f"{due}: {d['kick']['reason']}")
    return "\n".join(lines)


def kick(store: Store) -> Output:
    result = orchestrate.kick(store)
    data = {
        "planned": list(result.planned),
        "started": list(result.started),
        "event_ids": list(result.event_ids),
        "waiting": [{"slug": w.slug, "waiting": w.reason} for w in result.waiting],
        "reason": result.reason,
        "changed": result.changed,
    }
    lines = [f"kick: {result.reason}"]
    lines.extend(f"  planned {s}" for s in result.planned)
    lines.extend(f"  emitted TICKET_READY {e}" for e in result.event_ids)
    lines.extend(f"  waiting {w.slug}: {w.reason}" for w in result.waiting)
    return Output(data, "\n".join(lines))
