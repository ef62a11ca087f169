"""What a diazotroph run hands back: the PR description draft, the commit message, and
the output bundle record.

Pure functions over plain values (no I/O, no git), so they are easy to read and to test:

- ``pr_description`` -- a Markdown draft: title, a one-paragraph summary of the change,
  the acceptance criteria as a ``- [ ]`` checklist, the change notes, and a footer naming
  the ticket, run, branch and base commit.
- ``commit_message`` -- the ticket title, the summary, the criteria and the change notes,
  then the trailers ``Yoi-Ticket: <slug>`` and ``Yoi-Run: <run_id>``.
- ``bundle`` -- the ``output_bundle`` record. ``content`` is the patch as UTF-8 text when
  it decodes and survives a YAML round trip exactly, else base64 with
  ``metadata.content_encoding: base64``. An attempted (rejected) patch larger than
  ``MAX_ATTEMPT_BYTES`` is not kept; its size and sha256 are in the notes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from yoi.errors import YoiError
from yoi.model import RunnerStatus
from yoi.patching import NormalizedDiff, change_notes
from yoi.runner.base import bound_notes

MAX_ATTEMPT_BYTES = 256 * 1024  # a rejected patch larger than this is not kept

_VERBS = {"A": "adds", "M": "modifies", "D": "deletes", "R": "renames", "T": "changes the type of"}


@dataclass(frozen=True, slots=True)
class Change:
    """What the draft and the commit message describe."""

    title: str
    slug: str
    run_id: str
    branch: str
    base_commit: str
    criteria: tuple[str, ...]
    notes: tuple[str, ...]  # patching.change_notes(diff)
    summary: str  # summarize(diff)


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def summarize(diff: NormalizedDiff) -> str:
    """One sentence: what kinds of change, to how many files, with the line counts."""
    count = len(diff.files)
    if count == 0:
        return "This change makes no file changes."
    kinds: dict[str, list[str]] = {}
    for change in diff.files:
        kinds.setdefault(change.status, []).append(change.path)
    parts = []
    for status, paths in kinds.items():
        shown = ", ".join(f"`{p}`" for p in paths[:3])
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        parts.append(f"{_VERBS.get(status, 'changes')} {shown}{more}")
    files = f"{count} file{'' if count == 1 else 's'}"
    return f"This change {'; '.join(parts)} ({files}, +{diff.additions} -{diff.deletions} lines)."


def _checklist(criteria: Sequence[str]) -> list[str]:
    if not criteria:
        return ["- [ ] (the ticket lists no acceptance criteria)"]
    return [f"- [ ] {one_line(c, 500)}" for c in criteria]


def pr_description(change: Change) -> str:
    """The PR description draft (Markdown)."""
    lines = [
        f"# {one_line(change.title)}",
        "",
        change.summary,
        "",
        "## Acceptance criteria",
        "",
        *_checklist(change.criteria),
        "",
        "## Changes",
        "",
        *(f"- {note}" for note in change.notes),
        "",
        "---",
        f"Ticket `{change.slug}` · run `{change.run_id}` · branch `{change.branch}` · "
        f"base `{change.base_commit[:12]}`",
    ]
    return "\n".join(lines) + "\n"


def commit_message(change: Change) -> str:
    """The result commit's message; the trailers form the last paragraph."""
    lines = [
        one_line(change.title, 100),
        "",
        change.summary,
        "",
        "Acceptance criteria:",
        *_checklist(change.criteria),
        "",
        "Changes:",
        *(f"- {note}" for note in change.notes),
        "",
        f"Yoi-Ticket: {change.slug}",
        f"Yoi-Run: {change.run_id}",
    ]
    return "\n".join(lines) + "\n"


# -- the output bundle ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the bundle records about one run."""

    status: RunnerStatus
    notes: str
    origin: str
    runner: str
    base_commit: str | None
    commit_sha: str | None
    result_tree: str | None
    backup_ref: str | None
    violations: tuple[str, ...]
    diff: NormalizedDiff | None  # the normalized diff of a COMPLETED run
    draft: str
    elapsed_ms: int
    duration_ms: int
    budget_ms: int


def encode_content(patch: bytes) -> tuple[str, str]:
    """(content, encoding): UTF-8 text when it round-trips through YAML, else base64."""
    try:
        text = patch.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(patch).decode("ascii"), "base64"
    from yoi import fastdump, fastyaml

    fast = fastdump.dump({"c": text})  # the writer's and the reader's fast paths agree:
    back = fastyaml.load(fast) if fast is not None else None  # (None: not sure, ask ruamel)
    if isinstance(back, dict) and back.get("c") == text:
        return text, "utf-8"
    from yoi import yamlio

    dumped = yamlio.dump({"c": text})
    try:
        back = yamlio.load_plain(dumped, path="<bundle>", max_bytes=len(dumped) * 4 + 1024)
    except YoiError:
        back = None
    if isinstance(back, dict) and back.get("c") == text:
        return text, "utf-8"
    return base64.b64encode(patch).decode("ascii"), "base64"


def _file_dicts(diff: NormalizedDiff) -> list[dict[str, Any]]:
    return [
        {
            "status": f.status,
            "path": f.path,
            "old_path": f.old_path,
            "additions": f.additions,
            "deletions": f.deletions,
            "binary": f.binary,
        }
        for f in diff.files
    ]


def _kept_patch(facts: Facts, patch: bytes) -> tuple[bytes, str]:
    """The patch the bundle keeps, and a note when a rejected one is dropped."""
    if facts.status is RunnerStatus.PATCH_APPLY_FAILED and len(patch) > MAX_ATTEMPT_BYTES:
        digest = hashlib.sha256(patch).hexdigest()
        return b"", (
            f"\n\nThe attempted patch ({len(patch)} bytes, sha256 {digest}) is larger "
            f"than {MAX_ATTEMPT_BYTES} bytes and is not kept."
        )
    return patch, ""


def bundle(
    workorder: Mapping[str, Any], title: str, facts: Facts, patch: bytes, *, now: str
) -> tuple[dict[str, Any], bytes]:
    """The output_bundle record and the patch bytes it carries (see the module docstring)."""
    kept, dropped = _kept_patch(facts, patch)
    content, encoding = encode_content(kept)
    run_id = str(workorder["run_id"])
    meta: dict[str, Any] = {
        "branch_name": str(workorder["branch_name"]),
        "pr_description_draft": facts.draft,
        "commit_sha": facts.commit_sha,
        "base_commit": facts.base_commit,
        "content_encoding": encoding,
        "run_id": run_id,
        "runner": facts.runner,
        "origin": facts.origin,
        "result_tree": facts.result_tree,
        "backup_ref": facts.backup_ref,
        "violations": list(facts.violations),
        "elapsed_ms": facts.elapsed_ms,
        "duration_ms": facts.duration_ms,
        "budget_ms": facts.budget_ms,
    }
    if facts.diff is not None:
        meta.update(
            change_notes=change_notes(facts.diff),
            files=_file_dicts(facts.diff),
            additions=facts.diff.additions,
            deletions=facts.diff.deletions,
            patch_identity=facts.diff.identity,
        )
    record = {
        "output_id": "out-" + run_id.removeprefix("run-"),
        "ticket": str(workorder["ticket"]),
        "work_order_id": str(workorder["work_order_id"]),
        "runner_status": facts.status.value,
        "title": title,
        "metadata": meta,
        "content": content,
        "notes": bound_notes(facts.notes + dropped),
        "created_at": now,
    }
    return record, kept
