"""Shared set-up for the diazotroph, gates and hostile-patch tests: a real repository with
a yoi store, a ticket, and hand-built workorder/snapshot records (no engine needed)."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tests.helpers import commit_all, git, init_repo
from yoi import clock, diazotroph, gates, schema
from yoi.git import Repo
from yoi.model import Ticket
from yoi.runner.base import Candidate, RunRequest, completed
from yoi.store import Store

_RUN_NUMBERS = itertools.count(1)
CRITERIA = ("the greeting is friendlier", "nothing else changes")


def no_fence() -> None:
    return None


@dataclass(frozen=True)
class FixedRunner:
    """A runner that hands back fixed bytes (a stand-in for an untrusted model)."""

    patch: bytes
    name: str = "fixed"
    budget_ms: int | None = None

    def produce(self, request: RunRequest) -> Candidate:
        return completed(self.patch, f"fixed patch of {len(self.patch)} bytes", "file")


@dataclass(frozen=True)
class IndexOnlyRunner(FixedRunner):
    """FixedRunner that declares it needs no checkout: its run applies the patch in an
    index-only private repository (``git.IndexOnly``) instead of a linked worktree."""

    needs_checkout: ClassVar[bool] = False


@dataclass
class Rig:
    root: Path
    store: Store
    repo: Repo
    ticket: Ticket

    @property
    def branch(self) -> str:
        return f"yoi/{self.ticket.slug}"

    def records(self, budget_ms: int = 60_000) -> tuple[dict[str, Any], dict[str, Any]]:
        """A fresh (workorder, snapshot) pair at the current HEAD, schema-valid."""
        suffix = f"20261120100000-{next(_RUN_NUMBERS):010x}"
        now = clock.format_ts(clock.now())
        base = self.repo.resolve_commit("HEAD")
        workorder = {
            "work_order_id": f"wo-{suffix}",
            "ticket": self.ticket.slug,
            "event_id": f"ev-{suffix}",
            "run_id": f"run-{suffix}",
            "diazotroph_type": "PATCH_DIAZOTROPH",
            "context_snapshot_id": f"snap-{suffix}",
            "branch_name": self.branch,
            "budget_ms": budget_ms,
            "runner": "default",
            "status": "CREATED",
            "created_at": now,
            "executed_at": None,
        }
        snapshot = {
            "snapshot_id": f"snap-{suffix}",
            "ticket": self.ticket.slug,
            "metadata": {"commit_sha": base, "base_ref": "HEAD"},
            "related_yield_refs": [],
            "full_prompt_text": f"# {self.ticket.title}\n",
            "created_at": now,
        }
        schema.check("workorder", workorder, "workorder")
        schema.check("context_snapshot", snapshot, "snapshot")
        return workorder, snapshot

    def execute(
        self, runner: Any, *, budget_ms: int = 60_000, fence: Any = no_fence
    ) -> tuple[dict[str, Any], diazotroph.Execution]:
        workorder, snapshot = self.records(budget_ms)
        execution = diazotroph.execute(
            self.store,
            self.repo,
            ticket=self.ticket,
            workorder=workorder,
            snapshot=snapshot,
            runner=runner,
            fence=fence,
        )
        return workorder, execution

    def evaluate(
        self,
        workorder: Mapping[str, Any],
        execution: diazotroph.Execution,
        config: Mapping[str, Any] | None = None,
    ) -> gates.GateOutcome:
        return gates.evaluate(
            self.store,
            self.repo,
            ticket=self.ticket,
            workorder=workorder,
            execution=execution,
            config=config if config is not None else self.store.config(),
        )

    def refs(self, prefix: str) -> list[str]:
        out = git(self.root, "for-each-ref", "--format=%(refname) %(objectname)", prefix)
        return out.splitlines()

    def worktree_leftovers(self) -> list[str]:
        base = self.store.runtime_dir / diazotroph.WORKTREES_DIR
        names = sorted(p.name for p in base.iterdir()) if base.exists() else []
        listed = git(self.root, "worktree", "list", "--porcelain").count("worktree ")
        return names + ([f"{listed} git worktrees"] if listed != 1 else [])


def make_rig(root: Path, files: dict[str, str | bytes] | None = None) -> Rig:
    """A repository with ``files`` (default: README.md, src/app.py), ``yoi init`` done
    and committed, and one ticket in planning with two acceptance criteria."""
    from yoi import tickets
    from yoi.commands.init import init

    init_repo(root, files)
    init(path=root)
    commit_all(root, "yoi init")
    store = Store.discover(root)
    ticket = tickets.create(
        store, tickets.NewTicket(title="Make the greeting friendlier", acceptance_criteria=CRITERIA)
    )
    return Rig(root, store, Repo.open(root), ticket)


def git_bytes(cwd: Path, *args: str) -> bytes:
    """The real git CLI's stdout as BYTES (text mode would turn CRLF into LF)."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout
