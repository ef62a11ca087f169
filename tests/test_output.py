"""The JSON that listings join from cached texts is byte for byte what ``json.dumps``
writes for the same data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from yoi.model import BlockerKind, BlockerRef, State, Ticket
from yoi.output import Output, RawList, ticket_dict, ticket_json


class _Store:
    """What ``ticket_dict`` needs of a store."""

    def rel(self, path: Path) -> str:
        return str(path)


TEXT = st.text(max_size=20)  # any code point: quotes, backslashes, controls, surrogates
OPT = st.one_of(st.none(), TEXT)
TICKET = st.builds(
    Ticket,
    slug=TEXT,
    path=st.sampled_from([Path(".yoi/tickets/open/x"), Path("/abs/ü")]),
    title=TEXT,
    state=st.sampled_from(list(State)),
    created_at=TEXT,
    updated_at=TEXT,
    acceptance_criteria=st.lists(TEXT, max_size=3).map(tuple),
    importance=st.integers(-5, 10**12),
    urgency=st.integers(0, 4),
    labels=st.lists(TEXT, max_size=3).map(tuple),
    assignee=OPT,
    base_ref=OPT,
    runner=OPT,
    budget_ms=st.one_of(st.none(), st.integers(1, 10**15)),
    context_paths=st.lists(TEXT, max_size=2).map(tuple),
    patch_file=OPT,
    blocked_on=st.lists(
        st.builds(BlockerRef, TEXT, st.sampled_from(list(BlockerKind)), TEXT, st.booleans()),
        max_size=3,
    ).map(tuple),
    blocked_reason=OPT,
    planning_reason=OPT,
    queued_by=OPT,
    queued_at=OPT,
    branch=OPT,
    last_run=OPT,
    body=TEXT,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TICKET, st.sampled_from(["", "  ", "    "]))
def test_ticket_json_is_json_dumps(t: Ticket, pad: str) -> None:
    d = ticket_dict(_Store(), t)  # type: ignore[arg-type]
    expected = json.dumps(d, indent=2, ensure_ascii=False).replace("\n", "\n" + pad)
    assert ticket_json(t, str(t.path), pad) == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(TICKET, max_size=4), st.lists(st.dictionaries(TEXT, TEXT), max_size=2))
def test_a_document_with_raw_items_is_json_dumps(
    tickets: list[Ticket], invalid: list[dict[str, Any]]
) -> None:
    dicts = [ticket_dict(_Store(), t) for t in tickets]  # type: ignore[arg-type]
    raw = RawList(ticket_json(t, str(t.path), "    ") for t in tickets)
    joined = Output({"tickets": raw, "invalid": invalid}).json()
    assert joined == Output({"tickets": dicts, "invalid": invalid}).json()
    assert json.loads(joined) == {"schema_version": 1, "tickets": dicts, "invalid": invalid}
