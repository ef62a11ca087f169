"""The context snapshot: the bounded context a runner gets (SPEC §5 step 4).

Built from the ticket (title, body, acceptance criteria), the thread's decisions, the
base commit, the tracked-file list at that commit, and the contents of the ticket's
``context_paths`` read from the base commit (never from the user's working tree), all
within ``context_max_bytes`` (default 64 KiB) of ``full_prompt_text``.

The tracked-file list leaves out the ticket store (``.yoi/``): a patch may never touch
it, and in a store of months its records would be most of the list (it is sorted, and
``.yoi/`` sorts before ``src/``), pushing the repository's own files past the listing's
cap and the context budget.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from yoi.model import Ticket
from yoi.paths import STORE_DIR

if TYPE_CHECKING:
    from yoi.git import Repo
    from yoi.store import Store
    from yoi.thread import Entry

DEFAULT_CONTEXT_MAX_BYTES = 64 * 1024
MAX_LISTED_FILES = 2000
_STORE_FIRST, _STORE_END = STORE_DIR + "/", STORE_DIR + chr(ord("/") + 1)
_TRUNCATED = "\n[... truncated to fit the context budget ...]\n"


@dataclass(frozen=True, slots=True)
class Base:
    ref: str
    commit: str


def base_ref(store: Store, ticket: Ticket) -> str:
    return ticket.base_ref or str(store.config()["engine"].get("base_ref") or "HEAD")


def resolve_base(store: Store, repo: Repo, ticket: Ticket) -> Base:
    ref = base_ref(store, ticket)
    return Base(ref, repo.resolve_commit(ref))


def context_budget(store: Store) -> int:
    value = store.config().get("context_max_bytes")
    return int(value) if isinstance(value, int) and value > 0 else DEFAULT_CONTEXT_MAX_BYTES


class _Budget:
    """Appends text sections until the byte budget is spent."""

    def __init__(self, limit: int):
        self.limit = limit
        self.parts: list[str] = []
        self.used = 0
        self.full = False

    def add(self, text: str) -> bool:
        if self.full:
            return False
        size = len(text.encode("utf-8"))
        room = self.limit - self.used - len(_TRUNCATED)
        if size <= room:
            self.parts.append(text)
            self.used += size
            return True
        cut = text.encode("utf-8")[: max(room, 0)].decode("utf-8", errors="ignore")
        self.parts.append(cut + _TRUNCATED)
        self.used = self.limit
        self.full = True
        return False

    def text(self) -> str:
        return "".join(self.parts)


def _header(ticket: Ticket, decisions: Sequence[Entry]) -> str:
    lines = [f"# Ticket {ticket.slug}: {ticket.title}", ""]
    if ticket.body.strip():
        lines += ["## Objective", "", ticket.body.strip(), ""]
    lines += ["## Acceptance criteria", ""]
    lines += [f"{i}. {ac}" for i, ac in enumerate(ticket.acceptance_criteria, 1)]
    lines.append("")
    if decisions:
        lines += ["## Decisions", ""]
        for d in decisions:
            lines.append(f"- {d.author} at {d.at}: {d.body.strip()}")
        lines.append("")
    return "\n".join(lines) + "\n"


def _context_files(tracked: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """Tracked files named by ``wanted`` (a file, or a directory prefix), in order.
    ``tracked`` is sorted: each name is found by bisection, so the cost follows what is
    named, not how many files the repository holds."""
    out: list[str] = []
    for raw in wanted:
        path = raw.strip().strip("/")
        at = bisect.bisect_left(tracked, path)
        if at < len(tracked) and tracked[at] == path:
            out.append(path)
            continue
        prefix = path + "/"
        at = bisect.bisect_left(tracked, prefix, at)
        while at < len(tracked) and tracked[at].startswith(prefix):
            out.append(tracked[at])
            at += 1
    return list(dict.fromkeys(out))


def _outside_store(tracked: Sequence[str]) -> tuple[list[str], int, int]:
    """(the first ``MAX_LISTED_FILES`` sorted tracked files outside ``.yoi/``, how many
    files there are outside it, how many inside). The store's files are one run of the
    sorted list, found by bisection."""
    lo = bisect.bisect_left(tracked, _STORE_FIRST)
    hi = bisect.bisect_left(tracked, _STORE_END, lo)
    head = list(tracked[: min(lo, MAX_LISTED_FILES)])
    head += tracked[hi : hi + MAX_LISTED_FILES - len(head)]
    return head, len(tracked) - (hi - lo), hi - lo


def _file_section(repo: Repo, commit: str, path: str) -> str:
    data = repo.read_blob(commit, path)
    if data is None:
        return f"### {path}\n\n(not a regular file at the base commit)\n\n"
    if b"\0" in data[:8192]:
        return f"### {path}\n\n(binary file, {len(data)} bytes)\n\n"
    text = data.decode("utf-8", errors="replace")
    fence = "````" if "```" in text else "```"
    return f"### {path}\n\n{fence}\n{text.rstrip()}\n{fence}\n\n"


def prompt_text(
    repo: Repo, ticket: Ticket, base: Base, decisions: Sequence[Entry], limit: int
) -> tuple[str, dict[str, Any]]:
    """(full_prompt_text, facts for the metadata) within ``limit`` bytes."""
    tracked = repo.tracked_files(base.commit)
    budget = _Budget(limit)
    budget.add(_header(ticket, decisions))
    budget.add(f"## Repository\n\nBase: {base.ref} = {base.commit}\n\n")
    files = _context_files(tracked, ticket.context_paths)
    included: list[str] = []
    if files:
        budget.add("## Context files\n\n")
        for path in files:
            if not budget.add(_file_section(repo, base.commit, path)):
                break
            included.append(path)
    listed, count, in_store = _outside_store(tracked)
    more = f"\n(and {count - len(listed)} more)" if count > len(listed) else ""
    if in_store:
        more += f"\n({STORE_DIR}/, the ticket store, is not listed: {in_store} files)"
    budget.add(f"## Tracked files ({count})\n\n" + "\n".join(listed) + more + "\n")
    facts = {
        "tracked_files": count,
        "context_files": included,
        "truncated": budget.full,
        "max_bytes": limit,
    }
    return budget.text(), facts


def build(
    store: Store,
    repo: Repo,
    ticket: Ticket,
    *,
    snapshot_id: str,
    now: str,
    related: Sequence[str] = (),
) -> dict[str, Any]:
    """The context_snapshot record for ``ticket`` (not written)."""
    base = resolve_base(store, repo, ticket)
    decisions = [e for e in store.read_thread(ticket.slug, ticket.path) if e.kind == "decision"]
    text, facts = prompt_text(repo, ticket, base, decisions, context_budget(store))
    return {
        "snapshot_id": snapshot_id,
        "ticket": ticket.slug,
        "metadata": {
            "commit_sha": base.commit,
            "base_ref": base.ref,
            **facts,
            "acceptance_criteria": list(ticket.acceptance_criteria),
            "decisions": len(decisions),
        },
        "related_yield_refs": list(related),
        "full_prompt_text": text,
        "created_at": now,
    }
