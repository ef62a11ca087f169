"""A working tick reads the open tickets and only the done tickets a relation names: the
waiting and blocking rules do not load the done bucket (counted with an audit hook in a
fresh process, not timed), and the rules decide as they did when they read every ticket:
a prerequisite in done/ is satisfied, one whose ticket.md no longer loads does not
exist."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine_helpers import config, make_store, queue_with_patch, write_patch
from tests.helpers import commit_all
from yoi import tickets
from yoi.commands import engine as engine_cmd
from yoi.lifecycle import Action
from yoi.model import PlanKind, State
from yoi.plan_ops import NewRecord, add
from yoi.store import Store

PROBE = """
import json, sys
touched = []
def hook(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and "/tickets/done" in str(args[0]):
        touched.append((event, str(args[0])))
from yoi import cache
cache.RACY_NS = cache.RACY_COARSE_NS = -10**18  # files just written count as settled
from yoi.store import Store
from yoi.commands import engine
store = Store.discover()
from yoi import engine_view
engine_view.pending_events(store)  # the pending-event index, as any earlier command left it
sys.addaudithook(hook)
out = engine.tick(store)
print(json.dumps({"ticks": out.data, "touched": touched}))
"""


def finished(store: Store, repo: Path, title: str) -> str:
    """A ticket the engine ran to done."""
    slug = queue_with_patch(store, repo, title)
    assert engine_cmd.run(store).data["ticks"][0]["ticket"] == slug
    assert store.ticket_dir(slug).parent.name == "done"
    return slug


def planned(store: Store, repo: Path, title: str, depends_on: str) -> str:
    """A ticket that depends on ``depends_on``, queued with a patch."""
    spec = tickets.NewTicket(
        title=title, acceptance_criteria=["ok"], patch_file=write_patch(repo, "planned")
    )
    slug = tickets.create(store, spec, by="ada").slug
    add(store, slug, NewRecord(PlanKind.DEPENDS_ON, related=depends_on), by="ada")
    tickets.transition(store, slug, Action.READY, by="ada")
    tickets.transition(store, slug, Action.QUEUE, by="ada")
    return slug


def test_a_working_tick_reads_only_the_done_tickets_a_relation_names(repo: Path) -> None:
    store = make_store(repo, config(capacity=5))
    named = finished(store, repo, "Named prerequisite")
    others = [finished(store, repo, f"Other done {i}") for i in range(3)]
    slug = planned(store, repo, "Depends on done", named)
    commit_all(repo, "tickets")
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=repo, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["ticks"]["outcome"] == "processed" and found["ticks"]["ticket"] == slug
    done = store.tickets_dir / "done"
    listed = [p for event, p in found["touched"] if Path(p) == done and event != "open"]
    assert listed == []  # the bucket is not listed (opened only to sync the move into it)
    touched = {Path(p).relative_to(done).parts[0] for _e, p in found["touched"] if Path(p) != done}
    assert touched == {named, slug}, found["touched"]  # the tick's own, once it moved there
    assert not touched & set(others)
    assert store.read_ticket(slug).state is State.DONE


def test_a_done_prerequisite_that_does_not_load_blocks_as_a_missing_one(repo: Path) -> None:
    store = make_store(repo, config(capacity=5))
    broken = finished(store, repo, "Broken prerequisite")
    slug = planned(store, repo, "Depends on broken", broken)
    (store.ticket_dir(broken) / "ticket.md").write_text("---\nstate: [not valid\n---\n")
    out = engine_cmd.tick(store)
    assert (out.data["outcome"], out.data["reason"]) == ("processed", "BLOCKED")
    ticket = store.read_ticket(slug)
    assert ticket.state is State.BLOCKED
    assert f"depends on '{broken}', which does not exist" in (ticket.blocked_reason or "")


STATES = ("planning", "ready", "queued", "inprogress", "blocked", "done")
KINDS = ("depends_on", "blocks", "before", "after", "conflicts_with")


def in_state(store: Store, title: str, state: str) -> str:
    from tests.test_plan_support import drop_events, engine_move, new

    slug = new(store, title)
    steps: dict[str, list[Action | str]] = {
        "planning": [],
        "ready": [Action.READY],
        "queued": [Action.READY, Action.QUEUE],
        "inprogress": [Action.READY, Action.QUEUE, "accept"],
        "blocked": [Action.READY, Action.QUEUE, "accept", Action.FINISH_BLOCKED],
        "done": [Action.READY, Action.QUEUE, "accept", Action.FINISH_DONE],
    }
    for step in steps[state]:
        if step == "accept":
            drop_events(store, slug)
            engine_move(store, slug, Action.ACCEPT)
        elif step in (Action.FINISH_BLOCKED, Action.FINISH_DONE):
            assert isinstance(step, Action)
            engine_move(store, slug, step)
        else:
            assert isinstance(step, Action)
            tickets.transition(store, slug, step, by="ada")
    return slug


@pytest.mark.parametrize("seed", range(8))
def test_open_rules_decide_as_the_rules_over_every_ticket(repo: Path, seed: int) -> None:
    """Random stores (every state, every relation kind, relations held by open and by
    done tickets, some naming a ticket that does not exist): for every open ticket, the
    waiting and blocking rules over the open tickets give what they give over all."""
    import random

    from tests.test_plan_support import hand_record
    from yoi import engine_view, plan

    rng = random.Random(seed)
    store = make_store(repo, config(capacity=rng.choice([1, 2, 5])))
    slugs = [in_state(store, f"T{seed} {i}", rng.choice(STATES)) for i in range(9)]
    for n in range(18):
        owner = rng.choice(slugs)
        other = rng.choice([s for s in slugs if s != owner] + ["20990101-000000-gone"])
        record = {"record_id": f"plan-20260301100000-rel-{n:06d}", "kind": rng.choice(KINDS)}
        hand_record(store, owner, {**record, "related_ticket": other})
    every = store.list_tickets()[0]
    records = plan.relation_records(store)
    known = plan.standing(every)
    open_ = engine_view.open_tickets(store)
    open_records = plan.open_relation_records(store)
    lazy = plan.open_standing(store, open_)
    capacity = int(store.config()["engine"]["capacity"])
    assert {t.slug for t in open_} == {t.slug for t in every if t.state is not State.DONE}
    assert dict(plan.open_standing(store, open_).states) == {t.slug: t.state for t in every}
    for ticket in open_:
        full = (
            plan.wait_reason(records, ticket, every, capacity, known=known),
            plan.blocking_prerequisites(store, ticket, tickets=every, records=records),
        )
        fast = (
            plan.wait_reason(open_records, ticket, open_, capacity, known=lazy),
            plan.blocking_prerequisites(
                store, ticket, tickets=open_, records=open_records, known=lazy
            ),
        )
        assert fast == full, ticket.slug
    assert dict(lazy.states) == {t.slug: t.state for t in every}  # after lookups, too
