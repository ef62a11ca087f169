"""One workorder -> candidate patch -> checked apply -> result commit -> one output bundle.

``execute`` follows ``seeds/diazotroph-runner-flow.md`` and SPEC §5:

1. A private, detached worktree at the base commit (the snapshot's ``commit_sha``) under
   ``<runtime>/worktrees/<run_id>``, plus a scratch dir ``<run_id>-scratch`` beside it;
   both are removed in ``finally``. A runner that needs no files on disk
   (``needs_checkout = False``: patch-file, openai) gets no checkout: only a private
   index over the user's objects at that path (``git.IndexOnly``), so a run's cost does
   not grow with the size of the repository. The budget timer starts when ``execute`` is
   called.
2. ``runner.produce``; a runner exception is ``RUNNER_ERROR`` (never propagated).
3. Past the budget when the runner returns -> ``BUDGET_EXHAUSTED``, empty patch.
4. The raw candidate bytes are checked before anything is applied (size, headers, path
   policy, preimage ids against the base blobs), applied to the private INDEX only
   (the worktree's, or the index-only repository's), and the result tree is checked
   again. Any violation or apply error ->
   ``PATCH_APPLY_FAILED`` with the attempted patch and the reasons.
5. The normalized diff (base tree -> result tree) becomes the bundle's content. A
   candidate that is empty, or that applies but changes nothing, stays ``COMPLETED`` with
   an empty patch and no commit (the ``non-empty-patch`` gate then fails the run).
6. The work branch ``<branch_prefix><slug>`` is created, or reset to the base by CAS (an
   old tip with commits outside the base is first kept under
   ``refs/yoi/backup/<slug>/<run_id>``), and the result commit lands on it by CAS.
   ``fence()`` is called right before every ref move; its ``FencedError`` propagates.
   A run without a result commit moves no ref at all. A ref that moves under us ends
   the run as ``RUNNER_ERROR`` (the backup ref, if made, is recorded).

The user's working tree, index and HEAD are never touched.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import clock, patching, prdraft
from yoi.diazotroph_git import Base, Policy, PublishError, check_and_apply, clear_worktree, publish
from yoi.errors import FencedError, YoiError
from yoi.model import RunnerStatus, Ticket
from yoi.runner.base import Candidate, CandidateStatus, Runner, RunRequest, runner_error

if TYPE_CHECKING:
    from yoi.git import IndexOnly, PrivateWorktree, Repo
    from yoi.store import Store

__all__ = ["Execution", "execute", "execution_from_bundle"]

WORKTREES_DIR = "worktrees"
MAX_VIOLATIONS = 50  # recorded per run; the rest are counted
Fence = Callable[[], None]
_APPLIED = (RunnerStatus.COMPLETED, RunnerStatus.PATCH_APPLY_FAILED)


@dataclass(frozen=True)
class Execution:
    status: RunnerStatus  # exactly one terminal status
    bundle: dict[str, Any]  # the output_bundle record (schema-valid, not yet written)
    patch: bytes  # normalized (COMPLETED), attempted (PATCH_APPLY_FAILED), else b""
    base_commit: str
    commit_sha: str | None  # result commit, already on the work branch
    result_tree: str | None
    backup_ref: str | None  # refs/yoi/backup/... when an old tip was kept
    violations: tuple[str, ...]  # policy / preimage / apply problems
    duration_ms: int
    elapsed_ms: int = 0  # time until the budget check (the runner phase)


@dataclass(frozen=True)
class _Job:
    store: Store
    repo: Repo
    ticket: Ticket
    workorder: Mapping[str, Any]
    snapshot: Mapping[str, Any]
    runner: str
    start: float

    @property
    def run_id(self) -> str:
        return str(self.workorder["run_id"])

    @property
    def budget_ms(self) -> int:
        return int(self.workorder["budget_ms"])

    @property
    def deadline(self) -> float:
        return self.start + self.budget_ms / 1000.0

    @property
    def base_commit(self) -> str:
        return str(self.snapshot["metadata"]["commit_sha"])

    def ms(self) -> int:
        return int((time.monotonic() - self.start) * 1000)


@dataclass(frozen=True)
class _Result:
    status: RunnerStatus
    notes: str
    elapsed_ms: int
    patch: bytes = b""
    origin: str = "none"
    violations: tuple[str, ...] = ()
    diff: patching.NormalizedDiff | None = None
    commit: str | None = None
    backup_ref: str | None = None
    draft: str = ""


def execute(
    store: Store,
    repo: Repo,
    *,
    ticket: Ticket,
    workorder: Mapping[str, Any],
    snapshot: Mapping[str, Any],
    runner: Runner,
    fence: Fence,
) -> Execution:
    """Run one workorder (see the module docstring). Only ``fence``'s ``FencedError``
    propagates; every runner, patch or repository problem is a terminal status."""
    job = _Job(store, repo, ticket, workorder, snapshot, runner.name, time.monotonic())
    root = store.runtime(WORKTREES_DIR)
    path, scratch = root / job.run_id, root / f"{job.run_id}-scratch"
    try:
        clear_worktree(repo, job.run_id, path)
        clear_worktree(repo, None, scratch)
        base = Base.load(repo, job.base_commit)
        if getattr(runner, "needs_checkout", True):
            worktree: PrivateWorktree | IndexOnly = repo.add_private_worktree(
                base.commit, path, job.run_id
            )
        else:
            worktree = repo.index_only(base.commit)  # nothing checked out; kept per process
        result = _run(job, base, worktree, scratch, runner, fence)
    except FencedError:
        raise
    except (YoiError, OSError) as exc:
        text = exc.render() if isinstance(exc, YoiError) else str(exc)
        notes = f"yoi could not run the workorder: {text}"
        result = _Result(RunnerStatus.RUNNER_ERROR, notes, job.ms())
    finally:
        with contextlib.suppress(YoiError, OSError):
            clear_worktree(repo, job.run_id, path)
        with contextlib.suppress(OSError):
            clear_worktree(repo, None, scratch)
    return _finish(job, result)


def _no_files() -> bytes:
    return b""


def _request(job: _Job, worktree: PrivateWorktree | IndexOnly, scratch: Path) -> RunRequest:
    from yoi.git import PrivateWorktree

    files = worktree if isinstance(worktree, PrivateWorktree) else None  # a checkout
    run_dir = job.ticket.path / "runs" / job.run_id
    return RunRequest(
        run_id=job.run_id,
        ticket_slug=job.ticket.slug,
        ticket_title=job.ticket.title,
        acceptance_criteria=tuple(job.ticket.acceptance_criteria),
        prompt_text=str(job.snapshot.get("full_prompt_text") or ""),
        workorder_path=run_dir / "workorder.yaml",
        snapshot_path=run_dir / "context_snapshot.yaml",
        worktree=None if files is None else files.path,
        base_commit=job.base_commit,
        budget_ms=job.budget_ms,
        deadline=job.deadline,
        scratch=scratch,
        repo_root=job.store.root,
        patch_file=job.ticket.patch_file,
        worktree_diff=_no_files if files is None else files.workdir_diff,
    )


def _produce(runner: Runner, request: RunRequest) -> Candidate:
    try:
        return runner.produce(request)
    except Exception as exc:  # the runner itself failed: RUNNER_ERROR, never propagated
        return runner_error(f"runner {runner.name!r} raised {type(exc).__name__}: {exc}")


def _run(
    job: _Job,
    base: Base,
    worktree: PrivateWorktree | IndexOnly,
    scratch: Path,
    runner: Runner,
    fence: Fence,
) -> _Result:
    candidate = _produce(runner, _request(job, worktree, scratch))  # a runner makes scratch
    elapsed = job.ms()
    said = f"runner {runner.name!r} ({candidate.origin}): {candidate.notes}"
    if candidate.status is CandidateStatus.RUNNER_ERROR:
        return _Result(RunnerStatus.RUNNER_ERROR, f"runner error: {said}", elapsed)
    if candidate.status is CandidateStatus.BUDGET_EXHAUSTED or time.monotonic() > job.deadline:
        why = f"budget exhausted: {elapsed} ms used of the {job.budget_ms} ms budget"
        return _Result(RunnerStatus.BUDGET_EXHAUSTED, f"{why}; no patch is kept\n\n{said}", elapsed)
    done = _Result(RunnerStatus.COMPLETED, said, elapsed, origin=candidate.origin)
    if not candidate.patch:
        return replace(done, notes=f"the runner produced no patch; nothing was committed\n\n{said}")
    policy = Policy.from_config(job.store.config())
    applied = check_and_apply(job.repo, base, worktree, candidate.patch, policy)
    if isinstance(applied, list):
        if len(applied) > MAX_VIOLATIONS:
            applied = [*applied[:MAX_VIOLATIONS], f"(+{len(applied) - MAX_VIOLATIONS} more)"]
        listed = "\n".join(f"- {v}" for v in applied)
        return replace(
            done,
            status=RunnerStatus.PATCH_APPLY_FAILED,
            notes=f"patch rejected: {applied[0]}\n\n{listed}\n\n{said}",
            patch=candidate.patch,
            violations=tuple(applied),
        )
    tree, diff = applied
    done = replace(done, patch=diff.patch, diff=diff)
    if not diff.files:
        return replace(done, notes=f"the patch changes nothing; nothing was committed\n\n{said}")
    return _commit(job, done, tree, fence)


def _commit(job: _Job, done: _Result, tree: str, fence: Fence) -> _Result:
    assert done.diff is not None
    change = prdraft.Change(
        title=job.ticket.title,
        slug=job.ticket.slug,
        run_id=job.run_id,
        branch=str(job.workorder["branch_name"]),
        base_commit=job.base_commit,
        criteria=tuple(job.ticket.acceptance_criteria),
        notes=tuple(patching.change_notes(done.diff)),
        summary=prdraft.summarize(done.diff),
    )
    try:
        published = publish(
            job.repo,
            branch=change.branch,
            base_commit=job.base_commit,
            tree=tree,
            message=prdraft.commit_message(change),
            backup_ref=f"refs/yoi/backup/{job.ticket.slug}/{job.run_id}",
            when=int(clock.now().timestamp()),
            fence=fence,
        )
    except PublishError as exc:
        notes = f"{exc.message}\n\n{done.notes}"
        return replace(
            done, status=RunnerStatus.RUNNER_ERROR, notes=notes, backup_ref=exc.backup_ref
        )
    return replace(
        done,
        commit=published.commit,
        backup_ref=published.backup_ref,
        draft=prdraft.pr_description(change),
        notes=f"committed {published.commit[:12]} on {change.branch}\n\n{done.notes}",
    )


def _finish(job: _Job, result: _Result) -> Execution:
    diff = result.diff if result.status is RunnerStatus.COMPLETED else None
    tree = diff.new_tree if diff is not None and result.commit else None
    facts = prdraft.Facts(
        status=result.status,
        notes=result.notes,
        origin=result.origin,
        runner=job.runner,
        base_commit=job.base_commit,
        commit_sha=result.commit,
        result_tree=tree,
        backup_ref=result.backup_ref,
        violations=result.violations,
        diff=diff,
        draft=result.draft,
        elapsed_ms=result.elapsed_ms,
        duration_ms=job.ms(),
        budget_ms=job.budget_ms,
    )
    patch = result.patch if result.status in _APPLIED else b""
    now = clock.format_ts(clock.now())
    record, kept = prdraft.bundle(job.workorder, job.ticket.title, facts, patch, now=now)
    return Execution(
        status=result.status,
        bundle=record,
        patch=kept,
        base_commit=job.base_commit,
        commit_sha=result.commit,
        result_tree=tree,
        backup_ref=result.backup_ref,
        violations=result.violations,
        duration_ms=facts.duration_ms,
        elapsed_ms=result.elapsed_ms,
    )


def execution_from_bundle(store: Store, bundle: Mapping[str, Any], patch: bytes) -> Execution:
    """The ``Execution`` a stored bundle describes (an engine resuming before the gates)."""
    del store  # everything needed is in the bundle
    meta = bundle.get("metadata") or {}
    duration = int(meta.get("duration_ms") or 0)
    return Execution(
        status=RunnerStatus.parse(str(bundle["runner_status"])),
        bundle=dict(bundle),
        patch=bytes(patch),
        base_commit=str(meta.get("base_commit") or ""),
        commit_sha=meta.get("commit_sha"),
        result_tree=meta.get("result_tree"),
        backup_ref=meta.get("backup_ref"),
        violations=tuple(str(v) for v in meta.get("violations") or ()),
        duration_ms=duration,
        elapsed_ms=int(meta.get("elapsed_ms") or duration),
    )
