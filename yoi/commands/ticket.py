"""`yoi ticket ...`: create, list, show, edit, comment, lifecycle actions, blockers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from yoi import events, tickets
from yoi.errors import YoiError
from yoi.lifecycle import Action
from yoi.model import BlockerKind, CommentKind, Ticket
from yoi.output import Output, ticket_dict, ticket_text
from yoi.store import Store


def _one(store: Store, t: Ticket, text: str) -> Output:
    d = ticket_dict(store, t)
    return Output({"ticket": d}, f"{text}\n{ticket_text(d)}" if text else ticket_text(d))


def create(store: Store, spec: tickets.NewTicket) -> Output:
    t = tickets.create(store, spec)
    return _one(store, t, f"created {t.slug}")


def _read_optional(store: Store, path: Path, kind: str) -> dict[str, Any] | None:
    try:
        return store.read_record(path, kind)
    except YoiError:
        return None


def show(store: Store, name: str) -> Output:
    slug = store.resolve(name)
    t = store.read_ticket(slug)
    d = ticket_dict(store, t)
    thread = [
        {"kind": e.kind, "author": e.author, "at": e.at, "attrs": dict(e.attrs), "body": e.body}
        for e in store.read_thread(slug)
    ]
    evs = [e.record for e in events.ticket_events(store, t.path)]
    runs = [
        r
        for r in (
            _read_optional(store, rd / "run_record.yaml", "run_record")
            for rd in store.run_dirs(t.path)
        )
        if r is not None
    ]
    pauses = [
        p
        for p in (
            _read_optional(store, f, "pause_state")
            for f in store.record_files(t.path, "pause_states")
        )
        if p is not None
    ]
    pauses.sort(key=lambda p: (p["created_at"], p["pause_id"]))
    pause = pauses[-1] if pauses else None
    data = {"ticket": {**d, "thread": thread, "events": evs, "runs": runs, "pause_state": pause}}
    return Output(data, _show_text(d, thread, evs, runs, pause))


def _show_text(
    d: dict[str, Any],
    thread: list[dict[str, Any]],
    evs: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    pause: dict[str, Any] | None,
) -> str:
    lines = [ticket_text(d)]
    if evs:
        lines.append("  events:")
        for e in evs:
            status = f"processed {e['processed_reason']}" if e["processed"] else "pending"
            lines.append(f"    {e['event_id']}  {status}")
    if runs:
        lines.append("  runs:")
        lines.extend(f"    {r['run_id']}  {r['gate_result']}  {r['gate_reason']}" for r in runs)
    if pause:
        lines.append(f"  paused: {pause['reason']}; next:")
        lines.extend(f"    {a['priority']}. {a['action']}" for a in pause["prioritized_actions"])
    lines.append(f"  thread: {len(thread)} entries")
    for e in thread[-5:]:
        lines.append(f"    {e['at']} {e['kind']} by {e['author']}")
    return "\n".join(lines)


def edit(store: Store, name: str, change: tickets.TicketEdit) -> Output:
    t = tickets.edit(store, name, change)
    return _one(store, t, f"edited {t.slug}")


def comment(store: Store, name: str, *, kind: str, message: str) -> Output:
    t = tickets.comment(
        store, name, kind=CommentKind.parse(kind, what="comment kind"), message=message
    )
    return _one(store, t, f"added a {kind} to {t.slug}")


def act(
    store: Store, name: str, action: Action, *, by: str | None = None, reason: str = ""
) -> Output:
    problems: Sequence[str] = ()
    if action in (Action.QUEUE, Action.REQUEUE):
        from yoi import plan

        problems = plan.queue_problems(store, store.resolve(name))
    t = tickets.transition(store, name, action, by=by, reason=reason, dependency_problems=problems)
    return _one(store, t, f"{t.slug}: now {t.state.value}")


def block(store: Store, name: str, *, kind: str, description: str) -> Output:
    t, bid = tickets.add_blocker(
        store, name, kind=BlockerKind.parse(kind, what="blocker kind"), description=description
    )
    out = _one(store, t, f"added blocker {bid} to {t.slug}")
    return Output({**out.data, "blocker_id": bid}, out.text)


def resolve(store: Store, name: str, blocker_id: str) -> Output:
    t = tickets.resolve_blocker(store, name, blocker_id)
    return _one(store, t, f"resolved blocker {blocker_id} of {t.slug}")
