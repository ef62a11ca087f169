"""Ticket operations as store transactions: create, edit, comment, transitions,
blockers. Each re-reads the ticket under the lock, checks, and writes ticket.md and
thread.md (and the event, for queue/requeue) in one journaled commit."""

from __future__ import annotations

import getpass
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from yoi import clock, events, lifecycle
from yoi.errors import UsageError
from yoi.lifecycle import Action
from yoi.model import BlockerKind, CommentKind, State, Ticket
from yoi.slug import make_slug
from yoi.store import THREAD_FILE, TICKET_FILE, Store, TicketDoc, Transaction
from yoi.thread import Entry, render_entry, thread_header

MAX_TEXT = 64 * 1024


def author() -> str:
    """Who is acting: $YOI_AUTHOR, else $GIT_AUTHOR_NAME, else the login name."""
    for key in ("YOI_AUTHOR", "GIT_AUTHOR_NAME"):
        value = os.environ.get(key, "").strip()
        if value:
            return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _check_text(what: str, text: str) -> str:
    if len(text.encode("utf-8")) > MAX_TEXT:
        raise UsageError(f"{what} is longer than {MAX_TEXT} bytes")
    return text


def render_ticket(front: Any, body: str) -> str:
    from yoi import fastdump, frontmatter

    return frontmatter.join(fastdump.text(front)[0], body)


def write_ticket(tx: Transaction, tdir: Path, front: Any, body: str) -> None:
    from yoi import fastdump, frontmatter, schema, store, yamlrules

    plain = yamlrules.to_plain(front)
    vouched = schema.check("ticket", plain, tx.store.rel(tdir / TICKET_FILE))
    text, fast = fastdump.text(front)  # plain data only (see Store.load_ticket); else ruamel
    if vouched and fast:  # the engine loads it again to conclude the run
        store.remember(store.FRONT_MATTER, text, plain)
    tx.write_text(tdir / TICKET_FILE, frontmatter.join(text, body))


def append_entry(tx: Transaction, tdir: Path, entry: Entry, title: str = "") -> None:
    path = tdir / THREAD_FILE
    current = tx.current_text(path)
    if current is None:
        current = thread_header(title)
    if current and not current.endswith("\n"):
        current += "\n"
    tx.write_text(path, current + render_entry(entry))


def record_entry(tx: Transaction, doc: TicketDoc, entry: Entry) -> None:
    """Write ``doc`` (``updated_at`` = the entry's time) and append ``entry`` to its thread."""
    doc.front["updated_at"] = entry.at
    write_ticket(tx, doc.ticket.path, doc.front, doc.body)
    append_entry(tx, doc.ticket.path, entry, doc.ticket.title)


def state_entry(change: lifecycle.Change, by: str, now: str, body: str = "") -> Entry:
    attrs: list[tuple[str, str]] = [
        ("from", change.from_state.value),
        ("to", change.to_state.value),
    ]
    if change.reason:
        attrs.append(("reason", change.reason))
    return Entry(kind="state", author=by, at=now, attrs=tuple(attrs), body=body)


def apply_change(
    tx: Transaction, doc: TicketDoc, change: lifecycle.Change, *, by: str, now: str, note: str = ""
) -> Path:
    """Write the transition: ticket.md, a `state` thread entry, and the bucket move.
    Returns the ticket directory after the move."""
    lifecycle.apply(doc.front, change)
    tdir = doc.ticket.path
    write_ticket(tx, tdir, doc.front, doc.body)
    append_entry(tx, tdir, state_entry(change, by, now, note), doc.ticket.title)
    if change.from_state.bucket != change.to_state.bucket:
        new_dir = tx.store.tickets_dir / change.to_state.bucket / doc.ticket.slug
        tx.move(tdir, new_dir)
        return new_dir
    return tdir


@dataclass(frozen=True, slots=True)
class NewTicket:
    title: str
    acceptance_criteria: Sequence[str] = ()
    body: str = ""
    importance: int = 2
    urgency: int = 2
    labels: Sequence[str] = ()
    base_ref: str | None = None
    runner: str | None = None
    budget_ms: int | None = None
    context_paths: Sequence[str] = ()
    patch_file: str | None = None


def create(store: Store, spec: NewTicket, *, by: str | None = None) -> Ticket:
    title = spec.title.strip()
    if not title:
        raise UsageError("a ticket needs a non-empty title")
    if "\n" in title or "\r" in title:
        raise UsageError("the title must be one line")
    who = by or author()
    when = clock.now()
    now = clock.format_ts(when)
    front: dict[str, Any] = {
        "title": title,
        "state": State.PLANNING.value,
        "created_at": now,
        "updated_at": now,
    }
    optional: dict[str, Any] = {
        "acceptance_criteria": [a.strip() for a in spec.acceptance_criteria if a.strip()],
        "importance": spec.importance,
        "urgency": spec.urgency,
        "labels": list(dict.fromkeys(spec.labels)),
        "base_ref": spec.base_ref,
        "runner": spec.runner,
        "budget_ms": spec.budget_ms,
        "context_paths": list(spec.context_paths),
        "patch_file": spec.patch_file,
    }
    front.update({k: v for k, v in optional.items() if v not in (None, [], "")})
    body = _check_text("body", spec.body)
    if body and not body.endswith("\n"):
        body += "\n"
    with store.transaction() as tx:
        existing = {slug for _, slug, _ in store.iter_ticket_dirs()}
        slug = make_slug(title, when, lambda s: s in existing)
        tdir = store.tickets_dir / "open" / slug
        write_ticket(tx, tdir, front, body)
        entry = Entry(
            kind="created", author=who, at=now, attrs=(), body=f"Created ticket '{title}'.\n"
        )
        append_entry(tx, tdir, entry, title)
    return store.read_ticket(slug)


def comment(
    store: Store, name: str, *, kind: CommentKind, message: str, by: str | None = None
) -> Ticket:
    text = _check_text("message", message).strip("\n")
    if not text.strip():
        raise UsageError("the message is empty", hint="--message TEXT or --file F")
    who = by or author()
    with store.transaction() as tx:
        slug = store.resolve(name)
        doc = store.load_ticket(slug)
        now = clock.format_ts(clock.now())
        record_entry(tx, doc, Entry(kind=kind.value, author=who, at=now, body=text + "\n"))
    return store.read_ticket(slug)


def transition(
    store: Store,
    name: str,
    action: Action,
    *,
    by: str | None = None,
    reason: str = "",
    dependency_problems: Sequence[str] = (),
) -> Ticket:
    """A human lifecycle action (ready, queue, return, requeue)."""
    if action in lifecycle.ENGINE_ONLY:
        raise UsageError(f"'{action.value}' is done by the engine only")
    who = by or author()
    with store.transaction() as tx:
        slug = store.resolve(name)
        doc = store.load_ticket(slug)
        now = (
            _fresh_queue_time(doc)
            if action in (Action.QUEUE, Action.REQUEUE)
            else (clock.format_ts(clock.now()))
        )
        change = lifecycle.plan(
            doc.ticket,
            action,
            now=now,
            by=who,
            reason=reason,
            dependency_problems=dependency_problems,
            where=store.rel(doc.ticket.path / TICKET_FILE),
        )
        tdir = apply_change(tx, doc, change, by=who, now=now, note=reason)
        if action in (Action.QUEUE, Action.REQUEUE):
            events.emit_ready(tx, tdir, slug, now, "cli", now)
    return store.read_ticket(slug)


def _fresh_queue_time(doc: TicketDoc) -> str:
    """A queued_at whose TICKET_READY event does not exist yet (one event per queueing)."""
    when = clock.now()
    while True:
        stamp = clock.format_ts(when)
        eid = events.event_id(doc.ticket.slug, stamp)
        if not events.event_path(doc.ticket.path, eid).exists():
            return stamp
        when += timedelta(seconds=1)


def add_blocker(
    store: Store, name: str, *, kind: BlockerKind, description: str, by: str | None = None
) -> tuple[Ticket, str]:
    text = description.strip()
    if not text:
        raise UsageError("a blocker needs a description")
    who = by or author()
    with store.transaction() as tx:
        slug = store.resolve(name)
        doc = store.load_ticket(slug)
        if doc.ticket.state is State.DONE:
            raise UsageError(f"ticket '{slug}' is done; blockers cannot be added")
        now = clock.format_ts(clock.now())
        numbers = [int(b.blocker_id[1:]) for b in doc.ticket.blocked_on]
        bid = f"b{max(numbers, default=0) + 1}"
        blockers = doc.front.get("blocked_on")
        if blockers is None:
            doc.front["blocked_on"] = blockers = []
        blockers.append(
            {
                "blocker_id": bid,
                "kind": kind.value,
                "description": text,
                "resolved": False,
                "created_at": now,
            }
        )
        body = f"Blocker {bid} ({kind.value}): {text}\n"
        record_entry(tx, doc, Entry("comment", who, now, (("blocker", bid),), body))
    return store.read_ticket(slug), bid


def resolve_blocker(store: Store, name: str, blocker_id: str, *, by: str | None = None) -> Ticket:
    who = by or author()
    with store.transaction() as tx:
        slug = store.resolve(name)
        doc = store.load_ticket(slug)
        match = [b for b in doc.front.get("blocked_on") or () if b["blocker_id"] == blocker_id]
        if not match:
            known = ", ".join(b.blocker_id for b in doc.ticket.blocked_on) or "none"
            raise UsageError(f"ticket '{slug}' has no blocker '{blocker_id}' (blockers: {known})")
        if match[0]["resolved"]:
            raise UsageError(f"blocker {blocker_id} of '{slug}' is already resolved")
        now = clock.format_ts(clock.now())
        match[0]["resolved"] = True
        match[0]["resolved_at"] = now
        body = f"Blocker {blocker_id} resolved.\n"
        record_entry(tx, doc, Entry("comment", who, now, (("blocker", blocker_id),), body))
    return store.read_ticket(slug)


@dataclass(frozen=True, slots=True)
class TicketEdit:
    title: str | None = None
    ac_add: Sequence[str] = ()
    ac_remove: Sequence[int] = ()  # 1-based positions in the current list
    body: str | None = None
    importance: int | None = None
    urgency: int | None = None
    labels_add: Sequence[str] = ()
    labels_remove: Sequence[str] = ()
    assignee: str | None = None
    base_ref: str | None = None
    runner: str | None = None
    budget_ms: int | None = None
    context_paths_add: Sequence[str] = ()
    patch_file: str | None = None


def _edit_list(front: Any, key: str, add: Sequence[str], remove_items: Sequence[str]) -> None:
    current = list(front.get(key) or [])
    current = [v for v in current if v not in remove_items]
    current.extend(v for v in add if v not in current)
    if current:
        front[key] = current
    elif key in front:
        del front[key]


def _edit_criteria(front: Any, edit: TicketEdit, slug: str) -> None:
    current = list(front.get("acceptance_criteria") or [])
    bad = [n for n in edit.ac_remove if not 1 <= n <= len(current)]
    if bad:
        raise UsageError(
            f"ticket '{slug}' has {len(current)} acceptance criteria; cannot remove #{bad[0]}",
            hint=f"`yoi ticket show {slug}` lists them, numbered from 1",
        )
    removed = {current[n - 1] for n in edit.ac_remove}
    _edit_list(
        front, "acceptance_criteria", [a.strip() for a in edit.ac_add if a.strip()], sorted(removed)
    )


def edit(store: Store, name: str, change: TicketEdit) -> Ticket:
    if change.title is not None and (not change.title.strip() or "\n" in change.title):
        raise UsageError("the title must be one non-empty line")
    with store.transaction() as tx:
        slug = store.resolve(name)
        doc = store.load_ticket(slug)
        front = doc.front
        scalars = {
            "title": change.title and change.title.strip(),
            "importance": change.importance,
            "urgency": change.urgency,
            "assignee": change.assignee,
            "base_ref": change.base_ref,
            "runner": change.runner,
            "budget_ms": change.budget_ms,
            "patch_file": change.patch_file,
        }
        for key, value in scalars.items():
            if value is not None:
                front[key] = value
        _edit_criteria(front, change, slug)
        _edit_list(front, "labels", change.labels_add, change.labels_remove)
        _edit_list(front, "context_paths", change.context_paths_add, ())
        body = doc.body if change.body is None else _check_text("body", change.body)
        if body and not body.endswith("\n"):
            body += "\n"
        front["updated_at"] = clock.format_ts(clock.now())
        write_ticket(tx, doc.ticket.path, front, body)
    return store.read_ticket(slug)
