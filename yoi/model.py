"""Typed records: enums that parse themselves and frozen dataclasses built from
validated dictionaries. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from yoi.errors import UsageError


class ParseEnum(StrEnum):
    """A string enum whose ``parse`` lists the valid values on failure."""

    @classmethod
    def parse(cls, value: str, *, what: str | None = None) -> Self:
        member = cls._value2member_map_.get(value) if isinstance(value, str) else None
        if member is not None:
            return member  # type: ignore[return-value]
        valid = ", ".join(m.value for m in cls)
        label = what or cls.__name__
        raise UsageError(f"unknown {label} '{value}'; valid values: {valid}")

    def __str__(self) -> str:
        return str(self.value)


class State(ParseEnum):
    PLANNING = "planning"
    READY = "ready"
    QUEUED = "queued"
    INPROGRESS = "inprogress"
    DONE = "done"
    BLOCKED = "blocked"

    @property
    def bucket(self) -> str:
        return "done" if self is State.DONE else "open"


class BlockerKind(ParseEnum):
    USER_INPUT = "USER_INPUT"
    EXTERNAL_SYSTEM = "EXTERNAL_SYSTEM"
    DEPENDENCY_CHANGE = "DEPENDENCY_CHANGE"
    DESIGN_DECISION = "DESIGN_DECISION"
    ENVIRONMENT_ACCESS = "ENVIRONMENT_ACCESS"


class EventType(ParseEnum):
    TICKET_READY = "TICKET_READY"


class EventReason(ParseEnum):
    EXECUTED = "EXECUTED"
    MISSING_TICKET = "MISSING_TICKET"
    NON_EXECUTABLE_STATUS = "NON_EXECUTABLE_STATUS"
    BLOCKED = "BLOCKED"


class RunnerStatus(ParseEnum):
    COMPLETED = "COMPLETED"
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
    PATCH_APPLY_FAILED = "PATCH_APPLY_FAILED"
    RUNNER_ERROR = "RUNNER_ERROR"


class PauseReason(ParseEnum):
    RUN_COMPLETE = "RUN_COMPLETE"
    GATE_FAILED = "GATE_FAILED"
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
    BLOCKED = "BLOCKED"
    RUNNER_ERROR = "RUNNER_ERROR"


class CommentKind(ParseEnum):
    COMMENT = "comment"
    DECISION = "decision"
    PLAN = "plan"
    REVIEW = "review"


class PlanKind(ParseEnum):
    BEFORE = "before"
    AFTER = "after"
    DEPENDS_ON = "depends_on"
    BLOCKS = "blocks"
    CONFLICTS_WITH = "conflicts_with"
    WAITING = "waiting"
    PLANNED = "planned"
    ACCEPTED_PLAN = "accepted_plan"


@dataclass(frozen=True, slots=True)
class BlockerRef:
    blocker_id: str
    kind: BlockerKind
    description: str
    resolved: bool

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BlockerRef:
        return cls(
            blocker_id=str(d["blocker_id"]),
            kind=_KINDS.get(d["kind"]) or BlockerKind.parse(str(d["kind"])),
            description=str(d["description"]),
            resolved=bool(d["resolved"]),
        )


_STATES: dict[str, State] = {s.value: s for s in State}
_KINDS: dict[str, BlockerKind] = {k.value: k for k in BlockerKind}


@dataclass(frozen=True, slots=True)
class Ticket:
    """A validated ticket (``path`` is its directory)."""

    slug: str
    path: Path
    title: str
    state: State
    created_at: str
    updated_at: str
    acceptance_criteria: tuple[str, ...] = ()
    importance: int = 2
    urgency: int = 2
    labels: tuple[str, ...] = ()
    assignee: str | None = None
    base_ref: str | None = None
    runner: str | None = None
    budget_ms: int | None = None
    context_paths: tuple[str, ...] = ()
    patch_file: str | None = None
    blocked_on: tuple[BlockerRef, ...] = ()
    blocked_reason: str | None = None
    planning_reason: str | None = None
    queued_by: str | None = None
    queued_at: str | None = None
    branch: str | None = None
    last_run: str | None = None
    body: str = ""

    @classmethod
    def from_front(cls, slug: str, path: Path, front: Mapping[str, Any], body: str) -> Ticket:
        """The ticket of a front matter that passed ``ticket.schema.json`` (so every
        value already has its type; 10,000 tickets are built per listing from cold)."""
        get = front.get
        blockers = get("blocked_on")
        try:
            state = _STATES[front["state"]]
        except KeyError:
            state = State.parse(str(front["state"]), what="state")
        return cls(
            slug,
            path,
            front["title"],
            state,
            front["created_at"],
            front["updated_at"],
            tuple(get("acceptance_criteria") or ()),
            get("importance", 2),
            get("urgency", 2),
            tuple(get("labels") or ()),
            get("assignee"),
            get("base_ref"),
            get("runner"),
            get("budget_ms"),
            tuple(get("context_paths") or ()),
            get("patch_file"),
            tuple(BlockerRef.from_dict(b) for b in blockers) if blockers else (),
            get("blocked_reason"),
            get("planning_reason"),
            get("queued_by"),
            get("queued_at"),
            get("branch"),
            get("last_run"),
            body,
        )

    @property
    def unresolved_blockers(self) -> tuple[BlockerRef, ...]:
        return tuple(b for b in self.blocked_on if not b.resolved)
