"""Shared set-up for the remote-claim tests: a bare repository as the shared remote,
clones of it as "machines", and hooks that make the remote reject pushes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.helpers import git, init_repo
from yoi.remote_claims import RemoteClaimer

SLUG = "20260101-000000-shared-ticket"


def bare_remote(tmp: Path, name: str = "remote.git") -> Path:
    """A bare repository with one commit on main (pushed from a seed clone)."""
    remote = tmp / name
    git(tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = init_repo(tmp / f"seed-{name}")
    git(seed, "push", "-q", str(remote), "main")
    return remote


def clone(remote: Path, path: Path) -> Path:
    git(remote.parent, "clone", "-q", str(remote), str(path))
    return path


def machines(tmp: Path, count: int) -> tuple[Path, list[Path]]:
    remote = bare_remote(tmp)
    return remote, [clone(remote, tmp / f"m{i}") for i in range(count)]


def reject_all(remote: Path) -> None:
    """A pre-receive hook that refuses every push."""
    _hook(remote, "#!/bin/sh\necho 'yoi-test: pushes are closed' >&2\nexit 1\n")


def reject_deletes(remote: Path) -> None:
    """A pre-receive hook that refuses ref deletions only."""
    _hook(
        remote,
        "#!/bin/sh\nwhile read old new ref; do\n"
        '  case "$new" in 0000000000000000000000000000000000000000) '
        "echo 'yoi-test: no deletes' >&2; exit 1;; esac\ndone\nexit 0\n",
    )


def _hook(remote: Path, text: str) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(text)
    hook.chmod(0o755)


def later(seconds: float) -> Callable[[], float]:
    """A clock running ``seconds`` ahead of the real one."""
    return lambda: time.time() + seconds


def claimer(
    root: Path,
    remote: str = "origin",
    *,
    lease: float = 6.0,
    clock: Callable[[], float] | None = None,
    owner: str | None = None,
) -> RemoteClaimer:
    return RemoteClaimer(root, remote, lease_seconds=lease, clock=clock, owner=owner)


def remote_ref(remote: Path, slug: str = SLUG) -> str | None:
    out = git(remote, "for-each-ref", "--format=%(objectname)", f"refs/yoi/claims/{slug}")
    return out.strip() or None


def claim_yaml(remote: Path, slug: str = SLUG) -> str:
    return git(remote, "show", f"refs/yoi/claims/{slug}:claim.yaml")
