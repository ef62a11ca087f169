"""`yoi thread decisions [NAME] [--since REF]`: the decision log for reviewers."""

from __future__ import annotations

from yoi import history
from yoi.output import Output
from yoi.store import Store


def _markdown(items: list[history.Decision], since: str | None) -> str:
    if not items:
        return "No decisions" + (f" added since {since}." if since else ".")
    heading = "## Decisions" + (f" (added since {since})" if since else "")
    lines = [heading]
    current = None
    for d in items:
        if d.ticket != current:
            current = d.ticket
            lines += ["", f"### {d.title} (`{d.ticket}`)" if d.title else f"### `{d.ticket}`"]
        when = d.entry.at.replace("T", " ").replace("Z", " UTC")
        lines += ["", f"**{d.entry.author}**, {when}:", "", d.entry.body.strip("\n")]
    return "\n".join(lines)


def decisions(store: Store, *, name: str | None, since: str | None) -> Output:
    items, warnings = history.decisions(store, name=name, since=since)
    data = {"decisions": [d.as_dict() for d in items]}
    return Output(data, _markdown(items, since), warnings=warnings)
