"""The decision log, and what makes two thread entries the same.

``entry_key`` is the identity of an entry for the append-only check
(``doctor_history``) and for ``decisions(..., since=REF)``: kind, author, time,
attributes and body (without the blank lines around it, which a union merge may move).
``decisions`` backs ``yoi thread decisions [NAME] [--since REF]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from yoi.doctor_git import resolve_tree
from yoi.doctor_layout import THREAD_FILE, classify
from yoi.doctor_sources import Kind, TreeSource
from yoi.errors import YoiError
from yoi.store import MAX_RECORD_BYTES, Store
from yoi.thread import Entry, parse_thread

EntryKey = tuple[str, str, str, tuple[tuple[str, str], ...], str]


def entry_key(e: Entry) -> EntryKey:
    """What must not change in an entry (the body compared without edge blank lines)."""
    return (e.kind, e.author, e.at, tuple(e.attrs), e.body.strip("\n").rstrip())


@dataclass(frozen=True, slots=True)
class Decision:
    ticket: str
    title: str
    entry: Entry

    def as_dict(self) -> dict[str, str]:
        return {
            "ticket": self.ticket,
            "title": self.title,
            "author": self.entry.author,
            "at": self.entry.at,
            "body": self.entry.body.strip("\n"),
        }


def entries_at(store: Store, ref: str, slugs: Iterable[str]) -> dict[str, set[EntryKey]]:
    """The entry keys of each ticket's thread at ``ref`` (empty when it had none)."""
    tree = resolve_tree(store.root, ref)
    source = TreeSource(store.root, tree, label=ref)
    view = classify(e.path for e in source.entries() if e.kind is Kind.FILE)
    wanted = {}
    for slug in slugs:
        for files in view.by_slug().get(slug, []):
            if THREAD_FILE in files.top:
                wanted[files.top[THREAD_FILE]] = slug
    out: dict[str, set[EntryKey]] = {slug: set() for slug in slugs}
    for path, raw in source.read_many(wanted, MAX_RECORD_BYTES).items():
        if isinstance(raw, bytes):
            try:
                entries = parse_thread(raw.decode("utf-8"), path=path)
            except (UnicodeDecodeError, YoiError):
                continue
            out[wanted[path]].update(entry_key(e) for e in entries)
    return out


def _title(store: Store, slug: str, path: Path) -> str:
    try:
        return store.load_ticket(slug, path, edit=False).ticket.title
    except YoiError:
        return ""  # an invalid ticket.md does not hide its decisions


def decisions(
    store: Store, *, name: str | None = None, since: str | None = None
) -> tuple[list[Decision], list[str]]:
    """Decision entries of one ticket or all (thread order, tickets by slug), optionally
    only those absent at ``since``; and warnings for threads that could not be read."""
    tickets = [(slug, path) for _b, slug, path in store.iter_ticket_dirs()]
    if name is not None:
        slug = store.resolve(name)
        tickets = [(s, p) for s, p in tickets if s == slug][:1]
    old = entries_at(store, since, [s for s, _ in tickets]) if since else {}
    out: list[Decision] = []
    warnings: list[str] = []
    for slug, path in tickets:
        try:
            entries = store.read_thread(slug, path)
        except YoiError as exc:
            warnings.append(f"skipped {slug}: {exc.render()}")
            continue
        seen = old.get(slug, set())
        found = [e for e in entries if e.kind == "decision" and entry_key(e) not in seen]
        if found:
            title = _title(store, slug, path)
            out.extend(Decision(slug, title, e) for e in found)
    return out, warnings
