"""The built-in gates of a run (SPEC §5), evaluated from the ``Execution`` and the repo.

Each gate is ``{name, result, detail, kind: "builtin"}``. They re-derive what they can
from git instead of trusting the bundle alone: ``applied-cleanly`` checks that the result
commit exists, has the recorded tree and descends from the base; ``path-policy``
re-checks the result tree against the base with the current config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from yoi import fastdump, fastschema, schema, yamlrules
from yoi.diazotroph import Execution
from yoi.diazotroph_git import Policy
from yoi.errors import YoiError
from yoi.model import RunnerStatus

if TYPE_CHECKING:
    from yoi.git import Repo

_COMPLETED = RunnerStatus.COMPLETED
_Check = Callable[["_Run"], tuple[str, str]]


class _Run:
    def __init__(
        self,
        repo: Repo,
        workorder: Mapping[str, Any],
        execution: Execution,
        config: Mapping[str, Any],
    ):
        self.repo = repo
        self.workorder = workorder
        self.ex = execution
        self.config = config
        self.meta: Mapping[str, Any] = execution.bundle.get("metadata") or {}

    def cause(self) -> str:
        """The first violation, else the first line of the bundle notes."""
        if self.ex.violations:
            return self.ex.violations[0]
        notes = str(self.ex.bundle.get("notes") or "").strip().splitlines()
        return notes[0] if notes else "no notes"


def _more(items: tuple[str, ...] | list[str]) -> str:
    return f"{items[0]} (+{len(items) - 1} more)" if len(items) > 1 else items[0]


def _bundle_schema(run: _Run) -> tuple[str, str]:
    bundle = run.ex.bundle
    problems: list[str] = []
    if fastschema.is_valid("output_bundle", bundle) is not True:  # jsonschema words it
        problems = [p.render() for p in schema.validate("output_bundle", bundle, "output_bundle")]
    if not problems:
        size = len(fastdump.text(bundle)[0].encode("utf-8"))
        if size > yamlrules.MAX_BYTES:
            problems.append(
                f"the bundle is {size} bytes; records are read up to {yamlrules.MAX_BYTES} bytes"
            )
        if bundle.get("runner_status") != run.ex.status.value:
            problems.append(f"runner_status {bundle.get('runner_status')} != {run.ex.status}")
        if bundle.get("work_order_id") != run.workorder.get("work_order_id"):
            problems.append("the bundle answers another workorder")
    if problems:
        return "FAIL", f"invalid output bundle: {_more(problems)}"
    return "PASS", "valid output_bundle"


def _runner_status(run: _Run) -> tuple[str, str]:
    if run.ex.status is _COMPLETED:
        return "PASS", "COMPLETED"
    return "FAIL", f"{run.ex.status.value}: {run.cause()}"


def _non_empty(run: _Run) -> tuple[str, str]:
    if run.ex.status is not _COMPLETED:
        return "FAIL", f"no normalized patch (the run ended {run.ex.status.value})"
    if not run.ex.patch:
        return "FAIL", "the normalized patch is empty: the runner changed nothing"
    files = len(run.meta.get("files") or ())
    return "PASS", (
        f"{len(run.ex.patch)} bytes, {files} file(s), "
        f"+{run.meta.get('additions', 0)} -{run.meta.get('deletions', 0)}"
    )


def _applied(run: _Run) -> tuple[str, str]:
    ex = run.ex
    if ex.status is RunnerStatus.PATCH_APPLY_FAILED:
        return "FAIL", f"the patch was not applied: {run.cause()}"
    if ex.commit_sha is None or ex.result_tree is None:
        return "FAIL", f"no result commit (the run ended {ex.status.value})"
    try:
        tree = run.repo.tree_of(ex.commit_sha)
        descends = run.repo.is_ancestor(ex.base_commit, ex.commit_sha)
    except YoiError as exc:
        return "FAIL", f"result commit {ex.commit_sha[:12]} cannot be read: {exc.render()}"
    if tree != ex.result_tree or not descends:
        return "FAIL", f"result commit {ex.commit_sha[:12]} does not match the recorded result"
    return "PASS", f"applied to {ex.base_commit[:12]} -> commit {ex.commit_sha[:12]}"


def _path_policy(run: _Run) -> tuple[str, str]:
    ex = run.ex
    if ex.violations:
        return "FAIL", _more(list(ex.violations))
    if ex.result_tree is None:
        return "SKIP", "no result tree to check"
    try:
        found = Policy.from_config(run.config).check_tree(run.repo, ex.base_commit, ex.result_tree)
    except YoiError as exc:
        return "FAIL", f"cannot check the result tree: {exc.render()}"
    if found:
        return "FAIL", _more(found)
    return "PASS", "no protected, .git, .yoi, symlink or submodule paths touched"


def _branch_and_draft(run: _Run) -> tuple[str, str]:
    branch = str(run.workorder.get("branch_name") or "")
    draft = str(run.meta.get("pr_description_draft") or "")
    if not branch.strip():
        return "FAIL", "the work branch name is empty"
    if not draft.strip():
        return "FAIL", f"no PR description draft (the run ended {run.ex.status.value})"
    return "PASS", f"branch {branch}, PR draft of {len(draft.splitlines())} lines"


def _within_budget(run: _Run) -> tuple[str, str]:
    budget = int(run.workorder.get("budget_ms") or 0)
    used = run.ex.elapsed_ms or run.ex.duration_ms
    if run.ex.status is RunnerStatus.BUDGET_EXHAUSTED or used > budget:
        return "FAIL", f"the runner used {used} ms of the {budget} ms budget"
    return "PASS", f"{used} ms of the {budget} ms budget"


BUILTIN: tuple[tuple[str, _Check], ...] = (
    ("bundle-schema", _bundle_schema),
    ("runner-status", _runner_status),
    ("non-empty-patch", _non_empty),
    ("applied-cleanly", _applied),
    ("path-policy", _path_policy),
    ("branch-and-pr-draft", _branch_and_draft),
    ("within-budget", _within_budget),
)


def builtin_gates(
    repo: Repo, workorder: Mapping[str, Any], execution: Execution, config: Mapping[str, Any]
) -> list[dict[str, Any]]:
    run = _Run(repo, workorder, execution, config)
    gates = []
    for name, check in BUILTIN:
        result, detail = check(run)
        gates.append({"name": name, "result": result, "detail": detail, "kind": "builtin"})
    return gates
