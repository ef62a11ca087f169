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
