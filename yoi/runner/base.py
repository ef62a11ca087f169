"""The runner (diazotroph) interface: a request in, exactly one candidate out.

A runner never raises for an expected failure (missing tool, timeout, HTTP error, bad
reply): it returns a ``Candidate`` whose status says what happened and whose notes say
why. Only a ``COMPLETED`` candidate carries a patch; the engine applies it, gates it and
records everything.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

NOTES_LIMIT = 8 * 1024  # bytes of UTF-8, the bound on Candidate.notes
MAX_PATCH_BYTES = 32 * 1024 * 1024  # a candidate patch larger than this is refused

# Where a candidate patch came from (Candidate.origin).
ORIGIN_PATCH_OUT = "patch-out"  # command runner: the file at YOI_PATCH_OUT
ORIGIN_STDOUT = "stdout"  # command runner: a diff printed on stdout
ORIGIN_WORKTREE = "worktree"  # command runner: edits made in the private worktree
ORIGIN_REPLY = "reply"  # openai runner: the diff in the model's reply
ORIGIN_FILE = "file"  # patch-file runner
ORIGIN_NONE = "none"  # no candidate (budget exhausted, runner error)


class CandidateStatus(StrEnum):
    COMPLETED = "COMPLETED"
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
    RUNNER_ERROR = "RUNNER_ERROR"


@dataclass(frozen=True)
class RunRequest:
    run_id: str
    ticket_slug: str
    ticket_title: str
    acceptance_criteria: tuple[str, ...]
    prompt_text: str  # the context snapshot's full_prompt_text
    workorder_path: Path
    snapshot_path: Path
    # Private detached worktree at the base commit (the runner may edit it); None for a
    # runner that declares ``needs_checkout = False`` (it gets no files on disk).
    worktree: Path | None
    base_commit: str
    budget_ms: int
    deadline: float  # time.monotonic() deadline
    scratch: Path  # private dir for prompt/patch files (made by the runner that uses it)
    repo_root: Path  # the user's checkout (read-only for runners)
    patch_file: str | None  # the ticket's patch_file
    worktree_diff: Callable[[], bytes]  # binary patch of the worktree vs base_commit

    def remaining_s(self) -> float:
        """Seconds left before the deadline (never negative)."""
        return max(0.0, self.deadline - time.monotonic())

    def remaining_ms(self) -> int:
        return int(self.remaining_s() * 1000)


def bound_notes(text: str, limit: int = NOTES_LIMIT) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, keeping its head and its tail
    (the end of a log is usually the interesting part)."""
    raw = text.encode("utf-8", errors="replace")
    if len(raw) <= limit:
        return text
    marker = "\n[... notes truncated ...]\n"
    keep = max(limit - len(marker), 0)
    head = raw[: keep // 4].decode("utf-8", errors="ignore")
    tail = raw[len(raw) - (keep - keep // 4) :].decode("utf-8", errors="ignore")
    return head + marker + tail


@dataclass(frozen=True)
class Candidate:
    """One runner outcome. Notes are bounded on construction; only a COMPLETED
    candidate may carry a patch (a failed runner's partial output is never applied)."""

    status: CandidateStatus
    patch: bytes
    notes: str
    origin: str

    def __post_init__(self) -> None:
        if self.patch and self.status is not CandidateStatus.COMPLETED:
            raise ValueError(f"a {self.status.value} candidate cannot carry a patch")
        object.__setattr__(self, "notes", bound_notes(self.notes))


def completed(patch: bytes, notes: str, origin: str) -> Candidate:
    return Candidate(CandidateStatus.COMPLETED, patch, notes, origin)


def budget_exhausted(notes: str) -> Candidate:
    return Candidate(CandidateStatus.BUDGET_EXHAUSTED, b"", notes, ORIGIN_NONE)


def runner_error(notes: str) -> Candidate:
    return Candidate(CandidateStatus.RUNNER_ERROR, b"", notes, ORIGIN_NONE)


class Runner(Protocol):
    """A runner. One may also declare ``needs_checkout = False`` when it reads and edits
    no file of the private worktree: its run then checks nothing out (absent: True)."""

    @property
    def name(self) -> str: ...

    @property
    def budget_ms(self) -> int | None:
        """The configured budget; None means the engine's default."""
        ...

    def produce(self, request: RunRequest) -> Candidate: ...
