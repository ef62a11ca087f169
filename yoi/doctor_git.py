"""The git CLI queries ``yoi doctor``, ``--against`` and the hooks use.

Every call goes through ``yoi.proc`` with hooks and fsmonitor disabled and a minimal
environment (``GIT_INDEX_FILE`` is passed on when git runs us from a commit hook, so the
staged files are read from the index git is committing). Failures raise ``GitError``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from yoi import proc
from yoi.errors import GitError, UsageError

GIT_TIMEOUT_S = 300.0
MAX_BATCH_OUTPUT = 1 << 34  # cat-file output is checked for truncation, never capped
NULL_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def git(
    root: Path,
    *args: str,
    stdin: bytes | None = None,
    index_file: str | None = None,
    max_output: int = proc.DEFAULT_MAX_OUTPUT,
) -> proc.Completed:
    """Run the git CLI (no hooks, no fsmonitor) in ``root``; raise ``GitError`` on failure."""
    done = proc.run_git(
        args,
        cwd=root,
        timeout_s=GIT_TIMEOUT_S,
        extra_env={"GIT_INDEX_FILE": index_file} if index_file else None,
        max_output=max_output,
        stdin=stdin,
    )
    if not done.ok:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = detail[-1] if detail else f"exit {done.returncode}"
        raise GitError(f"git {args[0]} failed: {reason}", where=str(root))
    return done


def index_file_from_env() -> str | None:
    """The index git is committing from, when run inside a hook (``git commit -a``,
    ``git commit <paths>`` use a temporary index named by ``GIT_INDEX_FILE``)."""
    value = os.environ.get("GIT_INDEX_FILE")
    return str(Path(value).resolve()) if value else None


def resolve_tree(root: Path, ref: str) -> str:
    """The tree id of ``ref``; a clear usage error when it does not name a commit."""
    if ref.startswith("-"):
        raise UsageError(f"'{ref}' is not a git revision")
    try:
        return (
            git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{tree}}")
            .stdout.decode("ascii")
            .strip()
        )
    except GitError:
        raise UsageError(
            f"unknown git revision '{ref}'",
            where=str(root),
            hint="give a branch, tag or commit (e.g. origin/main); `git fetch` may be needed",
        ) from None


def resolve_commit(root: Path, ref: str) -> str | None:
    try:
        out = git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").stdout
    except GitError:
        return None
    return out.decode("ascii").strip() or None


def merge_base(root: Path, ref: str) -> str:
    """The commit ``--against REF`` compares with: the merge base of REF and HEAD (REF
    itself once REF is merged), or REF when there is no common history or no HEAD."""
    commit = resolve_commit(root, ref)
    if commit is None:
        return resolve_tree(root, ref)
    try:
        out = git(root, "merge-base", commit, "HEAD").stdout.decode("ascii").strip()
    except GitError:
        return commit
    return out or commit


def changed_paths(
    root: Path, base: str, *, staged: bool, index_file: str | None, to: str | None = None
) -> set[str]:
    """Paths under .yoi/ that differ between ``base`` and the working tree (or index), or,
    with ``to``, the commit ``to`` (two trees: only the subtrees that differ are read,
    where the working tree needs a ``stat`` of every file under .yoi/)."""
    args = ["diff", "--name-only", "-z", "--no-renames", "--no-ext-diff", "--no-textconv"]
    if staged:
        args.append("--cached")
    revs = [base] if to is None else [base, to]
    out = git(
        root, *args, *revs, "--", ".yoi", index_file=index_file, max_output=MAX_BATCH_OUTPUT
    ).stdout
    return {p for p in out.decode("utf-8", "surrogateescape").split("\0") if p}


def head_tree(root: Path) -> str:
    """HEAD's tree, or the empty tree in a repository without commits."""
    try:
        return resolve_tree(root, "HEAD")
    except UsageError:
        return NULL_TREE


def cat_blobs(root: Path, oids: Iterable[str]) -> dict[str, bytes]:
    """The contents of many blobs, read by one ``git cat-file --batch``."""
    wanted = list(dict.fromkeys(oids))
    if not wanted:
        return {}
    done = git(
        root,
        "cat-file",
        "--batch",
        stdin="".join(f"{o}\n" for o in wanted).encode(),
        max_output=MAX_BATCH_OUTPUT,
    )
    if done.truncated:
        raise GitError("git cat-file output was truncated", where=str(root))
    out: dict[str, bytes] = {}
    data, pos = done.stdout, 0
    for oid in wanted:
        end = data.index(b"\n", pos)
        header = data[pos:end].split()
        pos = end + 1
        if len(header) != 3:  # "<oid> missing"
            continue
        size = int(header[2])
        out[oid] = data[pos : pos + size]
        pos += size + 1
    return out
