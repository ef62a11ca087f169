"""The ``patch-file`` runner: the candidate patch is a file in the user's checkout.

The file is the ticket's ``patch_file`` if set, else the runner's ``path``. It is
resolved against the repository root (symlinks followed) and must stay inside it; it is
read as bytes, exactly (CRLF and binary payloads survive).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from yoi.runner.base import (
    MAX_PATCH_BYTES,
    ORIGIN_FILE,
    Candidate,
    RunRequest,
    budget_exhausted,
    completed,
    runner_error,
)


class _Refused(Exception):
    pass


@dataclass(frozen=True)
class PatchFileRunner:
    needs_checkout: ClassVar[bool] = False  # reads no file of the worktree
    name: str
    path: str | None = None
    budget_ms: int | None = None

    def produce(self, request: RunRequest) -> Candidate:
        if request.remaining_s() <= 0:
            return budget_exhausted("the budget was exhausted before the patch file was read")
        chosen = request.patch_file or self.path
        if not chosen:
            return runner_error(
                f"runner {self.name!r}: no patch file: set the ticket's patch_file or the "
                "runner's path"
            )
        source = "the ticket's patch_file" if request.patch_file else f"runner {self.name!r} path"
        try:
            resolved = resolve_inside(request.repo_root, chosen)
            patch = read_patch(resolved)
        except _Refused as exc:
            return runner_error(f"{source} {chosen!r}: {exc}")
        if not patch:
            return completed(b"", f"{source} {chosen!r} is empty", ORIGIN_FILE)
        return completed(patch, f"read {len(patch)} bytes from {source} {chosen!r}", ORIGIN_FILE)


def resolve_inside(root: Path, name: str) -> Path:
    """``name`` resolved against ``root`` (symlinks followed); refused unless the result
    is inside ``root``."""
    if not name or "\0" in name:
        raise _Refused("not a valid path")
    base = root.resolve()
    target = (base / name).resolve()  # an absolute name replaces the base
    if not target.is_relative_to(base):
        raise _Refused(f"resolves outside the repository root ({base})")
    return target


def read_patch(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise _Refused("file not found") from None
    except OSError as exc:
        raise _Refused(f"cannot be read ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Refused("not a regular file")
        with open(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_PATCH_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_PATCH_BYTES:
        raise _Refused(f"larger than {MAX_PATCH_BYTES} bytes")
    return data
