"""One error base, named exit codes.

Every expected failure is a ``YoiError`` subclass that builds its own message; only
``yoi.cli.main`` catches them and turns them into ``yoi: error: ...`` plus ``hint:``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # refused or failed: invalid transition, doctor errors, gate failure
    USAGE = 2  # usage or invalid input: unknown ticket, bad flag, invalid file
    INTERNAL = 3  # unexpected internal error
    INTERRUPTED = 130


@dataclass(frozen=True, slots=True)
class Problem:
    """One validation problem: which file, where in it (JSON pointer), what is wrong."""

    path: str
    pointer: str
    message: str
    severity: str = "error"  # "error" | "warning"

    def render(self) -> str:
        where = f"{self.path}: {self.pointer}" if self.pointer else self.path
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {
            "path": self.path,
            "pointer": self.pointer,
            "message": self.message,
            "severity": self.severity,
        }


class YoiError(Exception):
    """Base of every expected error. ``where`` names the file or object, ``hint`` the fix."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        return f"{self.message} ({self.where})" if self.where else self.message


class UsageError(YoiError):
    """Usage or invalid input (exit 2)."""

    exit_code = ExitCode.USAGE


class NotFoundError(UsageError):
    pass


class AmbiguousNameError(UsageError):
    def __init__(self, name: str, candidates: Sequence[str]):
        self.name = name
        self.candidates = list(candidates)
        shown = ", ".join(self.candidates[:10])
        more = f" and {len(self.candidates) - 10} more" if len(self.candidates) > 10 else ""
        super().__init__(
            f"ticket name '{name}' is ambiguous: it matches {shown}{more}",
            hint="use the full slug or a longer prefix",
        )


class InvalidRecordError(UsageError):
    """A file that does not parse or does not match its schema. Lists every problem."""

    def __init__(self, path: str, problems: Iterable[Problem], *, hint: str | None = None):
        self.path = path
        self.problems = list(problems)
        first = self.problems[0].message if self.problems else "invalid"
        extra = f" (+{len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        pointer = self.problems[0].pointer if self.problems else ""
        where = f"{path}{' at ' + pointer if pointer else ''}"
        super().__init__(
            f"invalid record: {first}{extra}",
            where=where,
            hint=hint or "fix the file (see `yoi doctor` for every problem) and retry",
        )


class TransitionError(YoiError):
    """A lifecycle action refused because the ticket is not in a state that allows it."""

    def __init__(
        self,
        slug: str,
        state: str,
        action: str,
        allowed: Sequence[str],
        *,
        where: str | None = None,
        hint: str | None = None,
    ):
        self.slug = slug
        self.state = state
        self.action = action
        self.allowed = list(allowed)
        need = " or ".join(self.allowed)
        super().__init__(
            f"ticket '{slug}' is in state {state}; {action} needs {need}",
            where=where,
            hint=hint,
        )


class GuardError(YoiError):
    """A lifecycle action refused by a guard (missing criteria, unresolved blockers...)."""


class ConflictError(YoiError):
    """A compare-and-swap lost: the record changed under the caller."""


class LockTimeoutError(YoiError):
    pass


class FencedError(YoiError):
    """A claim holder lost its lease; it must write nothing more."""


class GitError(YoiError):
    pass


class PatchError(YoiError):
    """A candidate patch that cannot be parsed or applied."""


class PatchPolicyError(PatchError):
    def __init__(self, violations: Sequence[str]):
        self.violations = list(violations)
        shown = "; ".join(self.violations[:5])
        more = f" (+{len(self.violations) - 5} more)" if len(self.violations) > 5 else ""
        super().__init__(f"patch violates the path policy: {shown}{more}")


class ConfigError(UsageError):
    pass


class RunnerError(YoiError):
    """The runner itself failed (not the patch)."""
