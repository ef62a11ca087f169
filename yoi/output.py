"""What commands return and how it is shown: one dict for both JSON and human output."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _quote  # the C encoder where there is one
from typing import TYPE_CHECKING, Any

from yoi.errors import ExitCode, Problem

if TYPE_CHECKING:
    from yoi.model import Ticket
    from yoi.store import Store

SCHEMA_VERSION = 1


class RawList(list[str]):
    """A JSON array in ``Output.data`` given as its items' JSON texts, already indented
    for their place two levels deep (``ticket_json(..., pad="    ")``): a listing of
    thousands of tickets is joined, not encoded."""


@dataclass(frozen=True, slots=True)
class Output:
    """A command's result: ``data`` becomes the JSON document, ``text`` the human view."""

    data: dict[str, Any]
    text: str = ""
    code: ExitCode = ExitCode.OK
    warnings: Sequence[str] = field(default_factory=tuple)
    raw: bytes | None = None  # human mode prints these exact bytes instead of `text`

    def json(self) -> str:
        doc = {"schema_version": SCHEMA_VERSION, **self.data}
        if not any(isinstance(value, RawList) for value in doc.values()):
            return json.dumps(doc, indent=2, ensure_ascii=False)
        parts = []
        for key, value in doc.items():
            if isinstance(value, RawList):
                text = "[\n    " + ",\n    ".join(value) + "\n  ]" if value else "[]"
            else:
                text = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  ")
            parts.append(f"  {_quote(key)}: {text}")
        return "{\n" + ",\n".join(parts) + "\n}"


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


def _strings(items: Sequence[str], pad: str) -> str:
    if not items:
        return "[]"
    inner = pad + "  "
    return f"[\n{inner}" + f",\n{inner}".join(map(_quote, items)) + f"\n{pad}]"


def _nullable(value: str | None) -> str:
    return "null" if value is None else _quote(value)


def ticket_json(t: Ticket, path: str, pad: str = "") -> str:
    """``json.dumps(ticket_dict(...), indent=2, ensure_ascii=False)`` with every line
    after the first indented by ``pad``, written out directly: about five times faster,
    for listings of thousands of tickets (``tests/test_output.py`` holds the two equal)."""
    p = pad + "  "
    if t.blocked_on:
        q, r = p + "  ", p + "    "
        items = [
            f'{q}{{\n{r}"blocker_id": {_quote(b.blocker_id)},\n{r}"kind": {_quote(b.kind.value)},'
            f'\n{r}"description": {_quote(b.description)},'
            f'\n{r}"resolved": {"true" if b.resolved else "false"}\n{q}}}'
            for b in t.blocked_on
        ]
        blocked = "[\n" + ",\n".join(items) + f"\n{p}]"
    else:
        blocked = "[]"
    budget = "null" if t.budget_ms is None else str(int(t.budget_ms))
    return (
        f'{{\n{p}"slug": {_quote(t.slug)},\n{p}"title": {_quote(t.title)},'
        f'\n{p}"state": {_quote(t.state.value)},\n{p}"path": {_quote(path)},'
        f'\n{p}"created_at": {_quote(t.created_at)},\n{p}"updated_at": {_quote(t.updated_at)},'
        f'\n{p}"acceptance_criteria": {_strings(t.acceptance_criteria, p)},'
        f'\n{p}"labels": {_strings(t.labels, p)},'
        f'\n{p}"importance": {int(t.importance)},\n{p}"urgency": {int(t.urgency)},'
        f'\n{p}"blocked_on": {blocked},'
        f'\n{p}"planning_reason": {_nullable(t.planning_reason)},'
        f'\n{p}"queued_by": {_nullable(t.queued_by)},\n{p}"queued_at": {_nullable(t.queued_at)},'
        f'\n{p}"branch": {_nullable(t.branch)},\n{p}"last_run": {_nullable(t.last_run)},'
        f'\n{p}"blocked_reason": {_nullable(t.blocked_reason)},'
        f'\n{p}"assignee": {_nullable(t.assignee)},\n{p}"base_ref": {_nullable(t.base_ref)},'
        f'\n{p}"runner": {_nullable(t.runner)},\n{p}"budget_ms": {budget},'
        f'\n{p}"context_paths": {_strings(t.context_paths, p)},'
        f'\n{p}"patch_file": {_nullable(t.patch_file)}\n{pad}}}'
    )


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
