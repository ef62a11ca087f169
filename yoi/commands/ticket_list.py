"""`yoi ticket list`: the store's tickets, filtered and sorted, from the row cache.

Kept apart from ``commands/ticket.py`` so listing imports neither ruamel.yaml nor
jsonschema (both load only when a ticket.md changed and is not in yoi's own layout).
A warm listing of 10,000 tickets stats each ticket.md and joins cached JSON texts
(``cache_tickets.list_rows``).
"""

from __future__ import annotations

from collections.abc import Sequence

from yoi.cache_tickets import list_rows
from yoi.model import State
from yoi.output import Output, RawList, table
from yoi.store import Store


def list_(
    store: Store, *, states: Sequence[str] = (), label: str | None = None, limit: int | None = None
) -> Output:
    wanted = wanted_states(states)
    found, invalid = list_rows(store, wanted)
    rows = [r for r in found if r[1] in wanted and (label is None or label in r[4])]
    rows.sort(key=lambda r: (r[2], r[0]))
    if limit is not None:
        rows = rows[:limit]
    data = {
        "tickets": RawList(r[5] for r in rows),
        "invalid": [{"path": p.path, "error": p.render()} for p in invalid],
    }
    text = table([[r[0], r[1], r[3]] for r in rows]) or "no tickets"
    if invalid:
        text += "\n" + "\n".join(f"invalid: {p.render()}" for p in invalid)
    return Output(data, text)


def wanted_states(states: Sequence[str]) -> set[str]:
    """The state values to show: every state but done by default; ``all`` is every one."""
    if not states:
        return {s.value for s in State if s is not State.DONE}
    if "all" in states:
        return {s.value for s in State}
    return {State.parse(s, what="state").value for s in states}
