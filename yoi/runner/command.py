"""The ``command`` runner: run a configured argument list in the private worktree.

The candidate patch is, in this order of precedence:
1. the file at ``YOI_PATCH_OUT`` if the command created it (an empty file is an explicit
   "no change": stdout and worktree edits are then ignored);
2. else stdout, when it contains a unified diff (chatter before it is skipped);
3. else the changes the command made in the worktree (``request.worktree_diff()``).

A non-zero exit is ``RUNNER_ERROR`` and whatever patch the command produced is discarded;
running past the budget kills the process group and is ``BUDGET_EXHAUSTED``.
"""

from __future__ import annotations

import os
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from yoi import proc
from yoi.errors import YoiError
from yoi.runner import diffextract
from yoi.runner.base import (
    MAX_PATCH_BYTES,
    ORIGIN_PATCH_OUT,
    ORIGIN_STDOUT,
    ORIGIN_WORKTREE,
    Candidate,
    RunRequest,
    budget_exhausted,
    completed,
    runner_error,
)

DEFAULT_MAX_OUTPUT = 4 * proc.MiB
PROMPT_FILE = "prompt.md"
PATCH_OUT_FILE = "patch-out.diff"
_TAIL = 2500  # characters of stdout/stderr kept in the notes


class _Refused(Exception):
    """Internal: a reason to end the run with RUNNER_ERROR."""


@dataclass(frozen=True)
class CommandRunner:
    name: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = ()  # names copied from yoi's own environment
    max_output_bytes: int = DEFAULT_MAX_OUTPUT
    budget_ms: int | None = None

    def produce(self, request: RunRequest) -> Candidate:
        if request.remaining_s() <= 0:
            return budget_exhausted("the budget was exhausted before the command started")
        worktree = request.worktree
        if worktree is None:  # needs_checkout is True: the engine always makes one
            return runner_error(f"runner {self.name!r}: no private worktree to run in")
        try:
            argv = resolve_argv(self.command, worktree)
            patch_out = _prepare_scratch(request)
        except (_Refused, OSError) as exc:
            return runner_error(f"runner {self.name!r}: {exc}")
        env = self.environment(request, patch_out)
        try:
            result = proc.run(
                argv,
                cwd=worktree,
                env=env,
                timeout_s=request.remaining_s(),
                max_output=self.max_output_bytes,
            )
        except proc.ProcError as exc:
            return runner_error(f"runner {self.name!r}: {exc.message}")
        return self._judge(request, result, patch_out)

    def environment(self, request: RunRequest, patch_out: Path) -> dict[str, str]:
        """Clean base env + pass_env + config env + the YOI_* contract (which wins)."""
        env = proc.base_env(extra=self.pass_env)
        env.update(self.env)
        env["GIT_TERMINAL_PROMPT"] = "0"
        env.update(
            {
                "YOI_TICKET": request.ticket_slug,
                "YOI_RUN_ID": request.run_id,
                "YOI_WORKORDER": str(request.workorder_path),
                "YOI_SNAPSHOT": str(request.snapshot_path),
                "YOI_PROMPT_FILE": str(request.scratch / PROMPT_FILE),
                "YOI_BUDGET_MS": str(request.remaining_ms()),
                "YOI_PATCH_OUT": str(patch_out),
                "YOI_BASE_COMMIT": request.base_commit,
            }
        )
        return env

    def _judge(self, request: RunRequest, result: proc.Completed, patch_out: Path) -> Candidate:
        shown = shlex.join(result.argv)
        logs = _log_tails(result)
        if result.timed_out:
            return budget_exhausted(
                f"command `{shown}` ran past the budget of {request.budget_ms} ms; its process "
                f"group was killed after {result.duration_ms} ms and no patch is kept{logs}"
            )
        if result.returncode != 0:
            return runner_error(
                f"command `{shown}` failed with {_describe_exit(result.returncode)} after "
                f"{result.duration_ms} ms; any patch it produced is discarded{logs}"
            )
        try:
            patch, origin = self._pick_patch(request, result, patch_out)
        except _Refused as exc:
            return runner_error(f"command `{shown}` exited 0 but {exc}{logs}")
        if not patch:
            what = (
                "wrote an empty YOI_PATCH_OUT"
                if origin == ORIGIN_PATCH_OUT
                else (
                    "produced no patch (no YOI_PATCH_OUT file, no diff on stdout, no change in "
                    "the worktree)"
                )
            )
            return completed(b"", f"command `{shown}` exited 0 and {what}{logs}", origin)
        return completed(
            patch,
            f"command `{shown}` exited 0 after {result.duration_ms} ms; candidate patch from "
            f"{origin} ({len(patch)} bytes){logs}",
            origin,
        )

    def _pick_patch(
        self, request: RunRequest, result: proc.Completed, patch_out: Path
    ) -> tuple[bytes, str]:
        written = _read_patch_out(patch_out)
        if written is not None:
            return written, ORIGIN_PATCH_OUT
        if diffextract.looks_like_diff(result.stdout):
            if len(result.stdout) > self.max_output_bytes:
                raise _Refused(
                    f"its stdout diff was cut at max_output_bytes={self.max_output_bytes}; "
                    "write large patches to YOI_PATCH_OUT"
                )
            return diffextract.extract_diff(result.stdout), ORIGIN_STDOUT
        try:
            diff = request.worktree_diff()
        except (YoiError, OSError) as exc:
            raise _Refused(f"reading the worktree changes failed: {exc}") from None
        if len(diff) > MAX_PATCH_BYTES:
            raise _Refused(f"its worktree changes exceed {MAX_PATCH_BYTES} bytes")
        return diff, ORIGIN_WORKTREE


def resolve_argv(command: tuple[str, ...], worktree: Path) -> list[str]:
    """``argv[0]`` with a slash but not absolute (``./tools/agent.sh``) is the repo's own
    tool: it resolves against the worktree and must stay inside it."""
    if not command:
        raise _Refused("the command is empty")
    program = command[0]
    if "/" in program and not os.path.isabs(program):
        root = os.path.normpath(worktree)
        path = os.path.normpath(os.path.join(root, program))
        if os.path.commonpath([root, path]) != root:
            raise _Refused(f"command {program!r} points outside the worktree")
        program = path
    return [program, *command[1:]]


def _prepare_scratch(request: RunRequest) -> Path:
    worktree = request.worktree
    if worktree is not None and request.scratch.resolve().is_relative_to(worktree.resolve()):
        raise _Refused("the scratch directory must be outside the worktree")
    request.scratch.mkdir(parents=True, exist_ok=True)
    (request.scratch / PROMPT_FILE).write_text(request.prompt_text, encoding="utf-8")
    patch_out = request.scratch / PATCH_OUT_FILE
    patch_out.unlink(missing_ok=True)
    return patch_out


def _read_patch_out(path: Path) -> bytes | None:
    """The bytes at YOI_PATCH_OUT, None if the command did not create it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _Refused(
            f"YOI_PATCH_OUT could not be read ({exc.strerror}); it must be a "
            "regular file, not a symlink"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Refused("YOI_PATCH_OUT is not a regular file")
        with open(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_PATCH_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_PATCH_BYTES:
        raise _Refused(f"YOI_PATCH_OUT is larger than {MAX_PATCH_BYTES} bytes")
    return data


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"signal {-code}"
    return f"exit code {code}"


def _log_tails(result: proc.Completed) -> str:
    parts = []
    for label, data in (("stderr", result.stderr), ("stdout", result.stdout)):
        if data.strip():
            parts.append(f"\n--- {label} (tail) ---\n{proc.tail_text(data, _TAIL)}")
    return "".join(parts)
