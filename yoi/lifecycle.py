"""The ticket state machine (SPEC §4), pure: ``(ticket, action) -> Change`` or an error.

No I/O. Callers apply the ``Change`` to the front matter inside a store transaction,
after re-reading the ticket under the lock (compare-and-swap on ``from_state``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from yoi.errors import GuardError, TransitionError, UsageError
from yoi.model import State, Ticket


class Action(StrEnum):
    READY = "ready"
    QUEUE = "queue"
    RETURN = "return"
    REQUEUE = "requeue"
    ACCEPT = "accept"  # engine only: queued -> inprogress
    BLOCK = "block"  # engine only: queued -> blocked (unresolved blockers at tick time)
    FINISH_DONE = "finish-done"  # engine only: inprogress -> done
    FINISH_BLOCKED = "finish-blocked"  # engine only: inprogress -> blocked


ENGINE_ONLY: frozenset[Action] = frozenset(
    {Action.ACCEPT, Action.BLOCK, Action.FINISH_DONE, Action.FINISH_BLOCKED}
)

_EDGES: dict[Action, tuple[tuple[State, ...], State]] = {
    Action.READY: ((State.PLANNING,), State.READY),
    Action.QUEUE: ((State.READY,), State.QUEUED),
    Action.RETURN: ((State.READY, State.QUEUED, State.BLOCKED), State.PLANNING),
    Action.REQUEUE: ((State.BLOCKED,), State.QUEUED),
    Action.ACCEPT: ((State.QUEUED,), State.INPROGRESS),
    Action.BLOCK: ((State.QUEUED,), State.BLOCKED),
    Action.FINISH_DONE: ((State.INPROGRESS,), State.DONE),
    Action.FINISH_BLOCKED: ((State.INPROGRESS,), State.BLOCKED),
}

_HINTS: dict[Action, str] = {
    Action.READY: "only planning tickets can be made ready",
    Action.QUEUE: "`yoi ticket ready {slug}` first",
    Action.RETURN: "done and inprogress tickets cannot be returned to planning",
    Action.REQUEUE: "requeue is for blocked tickets; use `yoi ticket queue` for ready ones",
}


@dataclass(frozen=True, slots=True)
class Change:
    """What a transition does to the front matter."""

    action: Action
    from_state: State
    to_state: State
    set: Mapping[str, Any] = field(default_factory=dict)
    clear: tuple[str, ...] = ()
    reason: str = ""


def edge(action: Action) -> tuple[tuple[State, ...], State]:
    return _EDGES[action]


def check_state(ticket: Ticket, action: Action, *, where: str | None = None) -> State:
    sources, target = _EDGES[action]
    if ticket.state not in sources:
        hint = _HINTS.get(action, "").format(slug=ticket.slug) or None
        raise TransitionError(
            ticket.slug,
            ticket.state.value,
            action.value,
            [s.value for s in sources],
            where=where,
            hint=hint,
        )
    return target


def plan(
    ticket: Ticket,
    action: Action,
    *,
    now: str,
    by: str = "",
    reason: str = "",
    dependency_problems: Sequence[str] = (),
    where: str | None = None,
) -> Change:
    """Check every guard for ``action`` and return the change it makes."""
    target = check_state(ticket, action, where=where)
    sets: dict[str, Any] = {"state": target.value, "updated_at": now}
    clear: list[str] = []
    if action is Action.READY:
        if not ticket.acceptance_criteria:
            raise GuardError(
                f"ticket '{ticket.slug}' has no acceptance criteria; ready needs at least one",
                where=where,
                hint=f"yoi ticket edit {ticket.slug} --ac-add 'what must be true when done'",
            )
        clear.append("planning_reason")
    elif action in (Action.QUEUE, Action.REQUEUE):
        _check_blockers(ticket, action, dependency_problems, where)
        sets.update({"queued_by": by or "unknown", "queued_at": now})
        clear.append("blocked_reason")
    elif action is Action.RETURN:
        if not reason.strip():
            raise UsageError("return needs a reason", hint="--reason 'what is missing'")
        sets["planning_reason"] = reason.strip()
        clear.extend(["queued_by", "queued_at", "blocked_reason"])
    elif action in (Action.BLOCK, Action.FINISH_BLOCKED):
        sets["blocked_reason"] = reason or "blocked"
    elif action in (Action.ACCEPT, Action.FINISH_DONE):
        clear.append("blocked_reason")
    return Change(action, ticket.state, target, sets, tuple(clear), reason)


def _check_blockers(
    ticket: Ticket, action: Action, dependency_problems: Sequence[str], where: str | None
) -> None:
    open_blockers = ticket.unresolved_blockers
    if open_blockers:
        listed = "; ".join(
            f"{b.blocker_id} ({b.kind.value}): {b.description}" for b in open_blockers
        )
        first = open_blockers[0].blocker_id
        raise GuardError(
            f"ticket '{ticket.slug}' has unresolved blockers: {listed}; {action.value} needs none",
            where=where,
            hint=f"yoi ticket resolve {ticket.slug} {first}",
        )
    if dependency_problems:
        raise GuardError(
            f"ticket '{ticket.slug}' cannot be {action.value}d: " + "; ".join(dependency_problems),
            where=where,
            hint=f"queue or finish the tickets it depends on first (`yoi plan list {ticket.slug}`)",
        )


def apply(front: Any, change: Change) -> None:
    """Apply ``change`` to a (round-trip) front-matter mapping in place."""
    for key, value in change.set.items():
        front[key] = value
    for key in change.clear:
        if key in front:
            del front[key]
