"""The pure state machine: every edge of SPEC §4 and every refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from yoi import lifecycle
from yoi.errors import GuardError, TransitionError, UsageError
from yoi.lifecycle import Action
from yoi.model import BlockerKind, BlockerRef, State, Ticket

NOW = "2026-11-20T10:00:00Z"


def make(state: State, **kw: Any) -> Ticket:
    base: dict[str, Any] = {
        "slug": "20261120-100000-x",
        "path": Path("/nonexistent"),
        "title": "x",
        "state": state,
        "created_at": NOW,
        "updated_at": NOW,
    }
    base.update(kw)
    return Ticket(**base)


EXPECTED = {
    Action.READY: ({State.PLANNING}, State.READY),
    Action.QUEUE: ({State.READY}, State.QUEUED),
    Action.RETURN: ({State.READY, State.QUEUED, State.BLOCKED}, State.PLANNING),
    Action.REQUEUE: ({State.BLOCKED}, State.QUEUED),
    Action.ACCEPT: ({State.QUEUED}, State.INPROGRESS),
    Action.BLOCK: ({State.QUEUED}, State.BLOCKED),
    Action.FINISH_DONE: ({State.INPROGRESS}, State.DONE),
    Action.FINISH_BLOCKED: ({State.INPROGRESS}, State.BLOCKED),
}


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("state", list(State))
def test_every_action_from_every_state(action: Action, state: State) -> None:
    sources, target = EXPECTED[action]
    ticket = make(state, acceptance_criteria=("works",))
    if state in sources:
        change = lifecycle.plan(ticket, action, now=NOW, by="ada", reason="why")
        assert change.from_state is state
        assert change.to_state is target
        assert change.set["state"] == target.value
        assert change.set["updated_at"] == NOW
    else:
        with pytest.raises(TransitionError) as info:
            lifecycle.plan(ticket, action, now=NOW, by="ada", reason="why")
        assert f"is in state {state.value}" in str(info.value)
        assert action.value in str(info.value)


def test_ready_needs_an_acceptance_criterion() -> None:
    with pytest.raises(GuardError, match="no acceptance criteria") as info:
        lifecycle.plan(make(State.PLANNING), Action.READY, now=NOW)
    assert info.value.hint and "--ac-add" in info.value.hint


def test_queue_refused_with_unresolved_blocker_names_it() -> None:
    blocker = BlockerRef("b1", BlockerKind.USER_INPUT, "need the API key", False)
    with pytest.raises(GuardError, match=r"b1 \(USER_INPUT\): need the API key"):
        lifecycle.plan(make(State.READY, blocked_on=(blocker,)), Action.QUEUE, now=NOW)


def test_resolved_blockers_do_not_block() -> None:
    blocker = BlockerRef("b1", BlockerKind.USER_INPUT, "done already", True)
    change = lifecycle.plan(
        make(State.READY, blocked_on=(blocker,)), Action.QUEUE, now=NOW, by="bob"
    )
    assert change.set["queued_by"] == "bob"
    assert change.set["queued_at"] == NOW


def test_requeue_checks_blockers_and_dependencies() -> None:
    blocker = BlockerRef("b2", BlockerKind.DESIGN_DECISION, "pick one", False)
    with pytest.raises(GuardError):
        lifecycle.plan(make(State.BLOCKED, blocked_on=(blocker,)), Action.REQUEUE, now=NOW)
    with pytest.raises(GuardError, match="depends on 'y', which is planning"):
        lifecycle.plan(
            make(State.BLOCKED),
            Action.REQUEUE,
            now=NOW,
            dependency_problems=["it depends on 'y', which is planning"],
        )


def test_return_requires_a_reason_and_clears_queue_fields() -> None:
    with pytest.raises(UsageError, match="reason"):
        lifecycle.plan(make(State.QUEUED), Action.RETURN, now=NOW, reason="  ")
    change = lifecycle.plan(make(State.QUEUED), Action.RETURN, now=NOW, reason="unclear scope")
    assert change.set["planning_reason"] == "unclear scope"
    assert set(change.clear) >= {"queued_by", "queued_at"}


def test_apply_sets_and_clears_in_place() -> None:
    front: dict[str, Any] = {"state": "queued", "queued_by": "x", "queued_at": NOW}
    change = lifecycle.plan(make(State.QUEUED), Action.RETURN, now=NOW, reason="r")
    lifecycle.apply(front, change)
    assert front == {"state": "planning", "updated_at": NOW, "planning_reason": "r"}


def test_engine_only_actions_are_marked() -> None:
    assert {Action.ACCEPT, Action.BLOCK, Action.FINISH_DONE, Action.FINISH_BLOCKED} == set(
        lifecycle.ENGINE_ONLY
    )


def test_state_parse_lists_valid_values() -> None:
    with pytest.raises(UsageError, match="valid values: planning, ready, queued"):
        State.parse("quened")
