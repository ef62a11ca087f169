"""Helpers shared by the plan and orchestrate tests (no tests here): tickets in any state
on a real store, hand-written plan record files, and a snapshot of every store file."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from yoi import clock, lifecycle, tickets, yamlio
from yoi.commands import ticket as ticket_cmd
from yoi.lifecycle import Action
from yoi.model import State
from yoi.store import Store

T0 = "2026-03-01T10:00:00Z"


def at(monkeypatch: pytest.MonkeyPatch, ts: str) -> None:
    """Pin the clock (every write after this uses ``ts``)."""
    monkeypatch.setenv(clock.TEST_NOW_ENV, ts)


def new(store: Store, title: str) -> str:
    return tickets.create(store, tickets.NewTicket(title=title, acceptance_criteria=["ok"])).slug


def ready(store: Store, title: str) -> str:
    slug = new(store, title)
    tickets.transition(store, slug, Action.READY)
    return slug


def queue(store: Store, slug: str) -> None:
    """The human Queue gate, through the command (so the plan records are consulted)."""
    ticket_cmd.act(store, slug, Action.QUEUE)


def queued(store: Store, title: str) -> str:
    slug = ready(store, title)
    queue(store, slug)
    return slug


def engine_move(store: Store, slug: str, action: Action) -> None:
    """An engine-only transition, as the engine makes it (tests stand in for it)."""
    with store.transaction() as tx:
        doc = store.load_ticket(slug)
        now = clock.format_ts(clock.now())
        change = lifecycle.plan(doc.ticket, action, now=now, reason="test")
        tickets.apply_change(tx, doc, change, by="engine", now=now)


def inprogress(store: Store, title: str) -> str:
    slug = queued(store, title)
    drop_events(store, slug)
    engine_move(store, slug, Action.ACCEPT)
    return slug


def done(store: Store, title: str) -> str:
    slug = inprogress(store, title)
    engine_move(store, slug, Action.FINISH_DONE)
    assert store.read_ticket(slug).state is State.DONE
    return slug


def drop_events(store: Store, slug: str) -> None:
    """Remove a ticket's event files (as when a branch carrying them is not merged)."""
    for path in (store.ticket_dir(slug) / "events").glob("*.yaml"):
        path.unlink()


def set_capacity(store: Store, capacity: int) -> Store:
    """Rewrite engine.capacity in config.yaml and return a fresh Store (config is cached)."""
    path = store.yoi_dir / "config.yaml"
    text = path.read_text(encoding="utf-8").replace("capacity: 1 ", f"capacity: {capacity} ")
    assert f"capacity: {capacity}" in text
    path.write_text(text, encoding="utf-8")
    return Store.discover(store.root)


def hand_record(store: Store, slug: str, data: dict[str, Any], name: str | None = None) -> Path:
    """Write a plan record file by hand (as a merge or an editor would)."""
    record = {"author": "ada", "at": T0, "ticket": slug, **data}
    path = store.ticket_dir(slug) / "plan" / f"{name or record['record_id']}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yamlio.dump(record), encoding="utf-8")
    return path


def files(store: Store) -> dict[str, str]:
    """Every file under .yoi/ with a hash of its bytes."""
    return {
        str(p.relative_to(store.yoi_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.yoi_dir.rglob("*"))
        if p.is_file()
    }


def plan_files(store: Store, slug: str) -> list[Path]:
    return sorted((store.ticket_dir(slug) / "plan").glob("*.yaml"))


def thread_kinds(store: Store, slug: str) -> list[str]:
    return [e.kind for e in store.read_thread(slug)]
