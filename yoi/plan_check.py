"""Plan record validation: the checks ``yoi plan add`` makes before writing, and the same
checks across the whole store for ``yoi doctor`` (records also arrive by merge).

Precedence graph: an edge ``x -> y`` means x must finish before y may start.
``A depends_on B`` and ``B blocks A`` are the same edge ``B -> A``; ``A before B`` and
``B after A`` are the ordering edge ``A -> B``. A cycle of dependency edges is a
`depends_on`/`blocks` cycle; a cycle that needs an ordering edge is an ordering cycle.
Both would leave every ticket on the cycle waiting forever, so both are rejected.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from yoi.errors import Problem, YoiError
from yoi.model import PlanKind
from yoi.plan import RELATION_KINDS, PlanRecord
from yoi.store import Store

DEPENDENCY_KINDS = (PlanKind.DEPENDS_ON, PlanKind.BLOCKS)
ORDERING_KINDS = (PlanKind.BEFORE, PlanKind.AFTER)
ARROW = " → "

Graph = Mapping[str, Iterable[str]]


class PlanRefusedError(YoiError):
    """A plan record refused because of what the store already holds (exit 1)."""


@dataclass(frozen=True, slots=True)
class Edge:
    first: str  # must finish before ...
    then: str  # ... this one may start


def edge(kind: PlanKind, ticket: str, related: str) -> Edge | None:
    """The precedence edge a relation record stands for (None: not a precedence)."""
    if kind in (PlanKind.DEPENDS_ON, PlanKind.AFTER):
        return Edge(related, ticket)
    if kind in (PlanKind.BLOCKS, PlanKind.BEFORE):
        return Edge(ticket, related)
    return None


def graph(records: Iterable[PlanRecord], kinds: Sequence[PlanKind]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in records:
        e = edge(r.kind, r.ticket, r.related) if r.related and r.kind in kinds else None
        if e is not None and e.first != e.then:
            out.setdefault(e.first, set()).add(e.then)
    return out


def path(g: Graph, start: str, goal: str) -> list[str] | None:
    """A shortest path start ... goal in ``g`` (deterministic), or None."""
    previous: dict[str, str | None] = {start: None}
    todo = deque([start])
    while todo:
        node = todo.popleft()
        if node == goal:
            out: list[str] = []
            at: str | None = node
            while at is not None:
                out.append(at)
                at = previous[at]
            return out[::-1]
        for nxt in sorted(g.get(node, ())):
            if nxt not in previous:
                previous[nxt] = node
                todo.append(nxt)
    return None


def render_cycle(cycle: Sequence[str]) -> str:
    return ARROW.join(cycle)


def new_cycle(
    records: Sequence[PlanRecord], kind: PlanKind, e: Edge
) -> tuple[str, list[str]] | None:
    """(what, cycle path) if adding the ``kind`` edge ``e`` closes a cycle:
    ``first → then → … → first``."""
    checks = (
        ("depends_on/blocks", DEPENDENCY_KINDS),
        ("ordering", (*DEPENDENCY_KINDS, *ORDERING_KINDS)),
    )
    for what, kinds in checks if kind in DEPENDENCY_KINDS else checks[1:]:
        back = path(graph(records, kinds), e.then, e.first)
        if back is not None:
            return what, [e.first, *back]
    return None


# ---- store-wide checks (doctor) -------------------------------------------------------------
def validate_records(store: Store) -> list[Problem]:
    """Every plan-record problem across the store, each with its path and the fix:
    misplaced records, dangling related tickets, self-relations, duplicates, and cycles
    (typically created by merging two branches that were each fine)."""
    from yoi import plan

    slugs = {slug for _bucket, slug, _dir in store.iter_ticket_dirs()}
    return check_records(store, plan.all_records(store), slugs)


def check_records(store: Store, records: Sequence[PlanRecord], slugs: set[str]) -> list[Problem]:
    """``validate_records`` on given records (oldest first) and ticket slugs, e.g. the
    records of one git revision."""
    problems: list[Problem] = []
    for r in records:
        problems.extend(_record_problems(store, r, slugs))
    problems.extend(_duplicates(store, records))
    problems.extend(_cycles(store, [r for r in records if r.related in slugs]))
    return problems


def _fix(r: PlanRecord) -> str:
    return f"fix: `yoi plan rm {r.record_id}`"


def _record_problems(store: Store, r: PlanRecord, slugs: set[str]) -> list[Problem]:
    rel = store.rel(r.path)
    out = []
    if r.path.parent.parent.name != r.ticket:
        out.append(
            Problem(
                rel,
                "/ticket",
                f"record of ticket '{r.ticket}' is stored under "
                f"'{r.path.parent.parent.name}'; move it to that ticket's plan/",
            )
        )
    if r.path.stem != r.record_id:
        out.append(
            Problem(
                rel,
                "/record_id",
                f"record id '{r.record_id}' does not match the "
                f"file name; rename the file to {r.record_id}.yaml",
                "warning",
            )
        )
    if r.related is None:
        return out
    if r.related not in slugs:
        out.append(
            Problem(
                rel,
                "/related_ticket",
                f"{r.kind.value} names ticket '{r.related}', which does not exist; {_fix(r)}",
            )
        )
    elif r.related == r.ticket:
        out.append(
            Problem(
                rel,
                "/related_ticket",
                f"ticket '{r.ticket}' has a {r.kind.value} relation to itself; {_fix(r)}",
            )
        )
    return out


def _duplicates(store: Store, records: Sequence[PlanRecord]) -> list[Problem]:
    seen: dict[tuple[str, PlanKind, str], PlanRecord] = {}
    out = []
    for r in records:  # oldest first: the later copies are the duplicates
        if r.kind not in RELATION_KINDS or r.related is None:
            continue
        key = (r.ticket, r.kind, r.related)
        if key in seen:
            out.append(
                Problem(
                    store.rel(r.path),
                    "",
                    f"duplicate of {seen[key].record_id}: "
                    f"'{r.ticket}' {r.kind.value} '{r.related}'; {_fix(r)}",
                )
            )
        else:
            seen[key] = r
    return out


def components(g: Graph) -> list[list[str]]:
    """Strongly connected components with more than one node, each sorted."""
    nodes = sorted(set(g) | {n for targets in g.values() for n in targets})
    reach = {n: _reachable(g, n) for n in nodes}
    done: set[str] = set()
    out = []
    for n in nodes:
        if n in done:
            continue
        comp = sorted(m for m in reach[n] if n in reach[m])
        done.update(comp)
        if len(comp) > 1:
            out.append(comp)
    return out


def _reachable(g: Graph, start: str) -> set[str]:
    seen = {start}
    todo = [start]
    while todo:
        for nxt in g.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _cycles(store: Store, records: Sequence[PlanRecord]) -> list[Problem]:
    out = []
    dep_components: list[list[str]] = []
    for what, kinds in (
        ("depends_on/blocks", DEPENDENCY_KINDS),
        ("ordering", (*DEPENDENCY_KINDS, *ORDERING_KINDS)),
    ):
        g = graph(records, kinds)
        for comp in components(g):
            if comp in dep_components:
                continue  # already reported as a dependency cycle
            if what == "depends_on/blocks":
                dep_components.append(comp)
            out.append(_cycle_problem(store, records, g, comp, what))
    return out


def _cycle_problem(
    store: Store, records: Sequence[PlanRecord], g: Graph, comp: list[str], what: str
) -> Problem:
    inside = {n: sorted(set(g.get(n, ())) & set(comp)) for n in comp}
    start = comp[0]
    back = min((p for p in (path(inside, nxt, start) for nxt in inside[start]) if p), key=len)
    cycle = [start, *back]
    pairs = set(pairwise(cycle))
    involved = [
        r
        for r in records
        if r.related and (e := edge(r.kind, r.ticket, r.related)) and (e.first, e.then) in pairs
    ]
    newest = involved[-1]
    ids = ", ".join(r.record_id for r in involved)
    return Problem(
        store.rel(newest.path),
        "",
        f"{what} cycle: {render_cycle(cycle)} "
        f"(each ticket waits for the one before it; records {ids}); remove one "
        f"record of the cycle, e.g. `yoi plan rm {newest.record_id}`",
    )
