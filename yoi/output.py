"""What commands return and how it is shown: one dict for both JSON and human output."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from yoi.errors import ExitCode, Problem

if TYPE_CHECKING:
    from yoi.model import Ticket
    from yoi.store import Store

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Output:
    """A command's result: ``data`` becomes the JSON document, ``text`` the human view."""

    data: dict[str, Any]
    text: str = ""
    code: ExitCode = ExitCode.OK
    warnings: Sequence[str] = field(default_factory=tuple)
    raw: bytes | None = None  # human mode prints these exact bytes instead of `text`

    def json(self) -> str:
        return json.dumps(
            {"schema_version": SCHEMA_VERSION, **self.data},
            indent=2,
            ensure_ascii=False,
            sort_keys=False,
        )


def ticket_dict(store: Store, t: Ticket) -> dict[str, Any]:
    return {
        "slug": t.slug,
        "title": t.title,
        "state": t.state.value,
        "path": store.rel(t.path),
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "acceptance_criteria": list(t.acceptance_criteria),
        "labels": list(t.labels),
        "importance": t.importance,
        "urgency": t.urgency,
        "blocked_on": [
            {
                "blocker_id": b.blocker_id,
                "kind": b.kind.value,
                "description": b.description,
                "resolved": b.resolved,
            }
            for b in t.blocked_on
        ],
        "planning_reason": t.planning_reason,
        "queued_by": t.queued_by,
        "queued_at": t.queued_at,
        "branch": t.branch,
        "last_run": t.last_run,
        "blocked_reason": t.blocked_reason,
        "assignee": t.assignee,
        "base_ref": t.base_ref,
        "runner": t.runner,
        "budget_ms": t.budget_ms,
        "context_paths": list(t.context_paths),
        "patch_file": t.patch_file,
    }


def ticket_line(t: Ticket) -> str:
    return f"{t.slug}  {t.state.value:<10}  {t.title}"


def ticket_text(d: dict[str, Any]) -> str:
    lines = [f"{d['slug']}  [{d['state']}]", f"  {d['title']}", f"  path: {d['path']}"]
    for key in (
        "planning_reason",
        "blocked_reason",
        "queued_by",
        "queued_at",
        "branch",
        "last_run",
        "assignee",
        "runner",
        "base_ref",
    ):
        if d.get(key):
            lines.append(f"  {key}: {d[key]}")
    if d["labels"]:
        lines.append(f"  labels: {', '.join(d['labels'])}")
    lines.append(f"  importance {d['importance']}, urgency {d['urgency']}")
    if d["acceptance_criteria"]:
        lines.append("  acceptance criteria:")
        lines.extend(f"    {i}. {ac}" for i, ac in enumerate(d["acceptance_criteria"], 1))
    if d["blocked_on"]:
        lines.append("  blockers:")
        for b in d["blocked_on"]:
            mark = "resolved" if b["resolved"] else "OPEN"
            lines.append(f"    {b['blocker_id']} [{mark}] {b['kind']}: {b['description']}")
    return "\n".join(lines)


def problems_text(problems: Iterable[Problem]) -> str:
    return "\n".join(f"{p.severity}: {p.render()}" for p in problems)


def table(rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    out = []
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        out.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(out)
