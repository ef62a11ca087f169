"""The git CLI side of shared-remote claims: ls-remote, fetch, CAS push, claim trees.

Facts this module relies on (``notes/reliability.md`` §3, measured):

* ``git push --force-with-lease=<ref>:`` creates a ref only if it is absent on the remote,
  and ``--force-with-lease=<ref>:<full oid>`` moves or deletes it only if it still points
  there. Both hold across machines because receive-pack compares the old id under its ref
  lock. A ``+`` refspec or ``--force`` defeats the lease, so neither is ever used here.
* The exit code alone says nothing about *which* ref failed: ``--porcelain`` prints one
  status line per ref (``*`` new, `` `` fast-forward, ``+`` forced, ``-`` deleted, ``=``
  up to date, ``!`` rejected) and only that line decides the outcome for the ref.

Every command runs through ``yoi.proc.run_git``: ``GIT_SAFE_ARGS`` (no hooks, no
fsmonitor) and ``git_env()`` (no inherited ``GIT_*``, never prompts). yoi stores no
credentials: ssh and http remotes use git's own transport and the user's agent/helpers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from yoi import proc
from yoi.errors import GitError

PUSH_TIMEOUT_S = 60.0
READ_TIMEOUT_S = 30.0
ZERO_OID = "0" * 40
_HEX40 = re.compile(r"[0-9a-f]{40}")
_SAFE_COMPONENT = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
OK_FLAGS = frozenset(" +-*=")
# Quiet, hook-free, maintenance-free git; pushes never sign, follow tags or recurse.
_QUIET = (
    "-c",
    "gc.auto=0",
    "-c",
    "maintenance.auto=false",
    "-c",
    "push.gpgSign=false",
    "-c",
    "push.useForceIfIncludes=false",
)


class RemoteError(GitError):
    """The remote could not be reached, or it refused an update for a reason other than
    a lost compare-and-swap."""


@dataclass(frozen=True, slots=True)
class RefStatus:
    """One ``git push --porcelain`` status line."""

    flag: str  # one of " +-*=!"
    source: str
    ref: str
    summary: str

    @property
    def ok(self) -> bool:
        return self.flag in OK_FLAGS


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """The result for the one ref a push updated. ``status`` is None when git printed no
    line for it (it never got that far); that is a failure, like ``!``."""

    ref: str
    status: RefStatus | None
    detail: str  # stderr tail, for messages

    @property
    def ok(self) -> bool:
        return self.status is not None and self.status.ok

    def reason(self) -> str:
        """The ref's status, plus what the server said (hook output, ``remote:`` lines)."""
        raw = [
            ln[len("remote:") :].strip()
            for ln in self.detail.splitlines()
            if ln.startswith("remote:")
        ]
        said = [ln for ln in raw if ln]
        if self.status is not None:
            head = self.status.summary
        else:
            lines = self.detail.strip().splitlines()
            head = lines[-1] if lines else "no status line for the ref"
        return "; ".join([head, *said[-3:]])


def check_remote(remote: str) -> str:
    """A remote name, path or URL that git will not take for an option."""
    if not remote or remote.startswith("-") or any(c in remote for c in "\n\r\0"):
        raise RemoteError(
            f"invalid remote {remote!r}",
            hint="pass a configured remote name (e.g. origin), a path or a URL",
        )
    return remote


def remote_key(remote: str) -> str:
    """A ref-safe name for ``remote`` (used under ``refs/yoi/remote-claims/``)."""
    if _SAFE_COMPONENT.fullmatch(remote) and not remote.endswith(".lock"):
        return remote
    return "url-" + hashlib.sha256(remote.encode("utf-8")).hexdigest()[:12]


def _git(
    root: Path, args: Sequence[str], *, timeout_s: float, stdin: bytes | None = None
) -> proc.Completed:
    return proc.run_git([*_QUIET, *args], cwd=root, timeout_s=timeout_s, stdin=stdin)


def _failure(action: str, remote: str, done: proc.Completed) -> RemoteError:
    if done.timed_out:
        why = "timed out"
    else:
        why = proc.tail_text(done.stderr, 600).strip() or f"git exited with {done.returncode}"
    return RemoteError(
        f"{action} on remote '{remote}' failed: {why}",
        hint="check that the remote is reachable (`git ls-remote <remote>`) and retry",
    )


def ls_remote(root: Path, remote: str, *patterns: str) -> dict[str, str]:
    """``{ref: oid}`` for the remote refs matching any of ``patterns`` (full refs, or
    prefixes ending in ``/*``), in one round trip. Refs that merely end with a pattern
    are filtered out."""
    done = _git(
        root, ["ls-remote", "--refs", check_remote(remote), *patterns], timeout_s=READ_TIMEOUT_S
    )
    if not done.ok:
        raise _failure("ls-remote", remote, done)
    exact = {p for p in patterns if not p.endswith("/*")}
    prefixes = tuple(p[:-1] for p in patterns if p.endswith("/*"))
    found: dict[str, str] = {}
    for line in done.stdout.decode("utf-8", errors="replace").splitlines():
        oid, _, ref = line.partition("\t")
        if _HEX40.fullmatch(oid) and (ref in exact or (prefixes and ref.startswith(prefixes))):
            found[ref] = oid
    return found


def ref_oid(root: Path, remote: str, ref: str) -> str | None:
    """The oid ``ref`` has on the remote now, or None when it is absent."""
    return ls_remote(root, remote, ref).get(ref)


def fetch_objects(root: Path, remote: str, oids: Sequence[str]) -> None:
    """Fetch the commits ``oids`` (current tips of remote refs) without touching any
    ref or FETCH_HEAD, so concurrent engines in one clone never fight over a ref lock."""
    if not oids:
        return
    args = [
        "fetch",
        "--quiet",
        "--no-write-fetch-head",
        "--no-tags",
        "--no-recurse-submodules",
        check_remote(remote),
        *oids,
    ]
    done = _git(root, args, timeout_s=PUSH_TIMEOUT_S)
    if not done.ok:
        raise _failure("fetch", remote, done)


def fetch_tracking(root: Path, remote: str, src_prefix: str, dst_prefix: str) -> None:
    """Mirror ``<src_prefix>*`` into our private ``<dst_prefix>*`` (pruned). The ``+``
    is on a *fetch* refspec: it lets our own mirror refs follow the remote; it never
    touches the remote."""
    args = [
        "fetch",
        "--quiet",
        "--prune",
        "--no-write-fetch-head",
        "--no-tags",
        "--no-recurse-submodules",
        check_remote(remote),
        f"+{src_prefix}*:{dst_prefix}*",
    ]
    done = _git(root, args, timeout_s=PUSH_TIMEOUT_S)
    if not done.ok:
        raise _failure("fetch", remote, done)


def parse_porcelain(text: str) -> list[RefStatus]:
    """The per-ref lines of ``git push --porcelain`` output."""
    out: list[RefStatus] = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or len(parts[0]) != 1 or ":" not in parts[1]:
            continue
        source, _, ref = parts[1].rpartition(":")
        out.append(RefStatus(parts[0], source, ref, "\t".join(parts[2:]).strip()))
    return out


def push_cas(
    root: Path,
    remote: str,
    ref: str,
    new: str | None,
    expected: str | None,
) -> PushOutcome:
    """Set (``new`` = oid) or delete (``new`` = None) ``ref`` on the remote only if it
    currently is ``expected`` (None: must be absent). Never forced. Raises
    ``RemoteError`` when git could not run the push at all (unreachable, timeout)."""
    if new is not None and not _HEX40.fullmatch(new):
        raise GitError(f"push source must be a full object id, got {new!r}")
    if expected is not None and not _HEX40.fullmatch(expected):
        raise GitError(f"lease must be a full object id, got {expected!r}")
    spec = f"{new}:{ref}" if new is not None else f":{ref}"
    args = [
        "push",
        "--porcelain",
        "--no-verify",
        "--no-follow-tags",
        "--no-recurse-submodules",
        f"--force-with-lease={ref}:{expected or ''}",
        check_remote(remote),
        spec,
    ]
    done = _git(root, args, timeout_s=PUSH_TIMEOUT_S)
    lines = [
        s for s in parse_porcelain(done.stdout.decode("utf-8", errors="replace")) if s.ref == ref
    ]
    detail = proc.tail_text(done.stderr, 600)
    if not lines and (done.timed_out or done.returncode not in (0, 1)):
        raise _failure("push", remote, done)  # never got to the ref (or cannot tell)
    return PushOutcome(ref, lines[-1] if lines else None, detail)


def write_tree(root: Path, files: dict[str, bytes]) -> str:
    """Write blobs and a flat tree holding ``files`` into the local object store."""
    entries = []
    for name in sorted(files):
        if "/" in name or not name or name.startswith("."):
            raise GitError(f"invalid claim tree entry name {name!r}")
        done = _git(
            root,
            ["hash-object", "-w", "--no-filters", "--stdin"],
            timeout_s=READ_TIMEOUT_S,
            stdin=files[name],
        )
        oid = done.stdout.decode("ascii", errors="replace").strip()
        if not done.ok or not _HEX40.fullmatch(oid):
            raise GitError(f"cannot write a blob: {proc.tail_text(done.stderr, 300)}")
        entries.append(f"100644 blob {oid}\t{name}\n")
    done = _git(root, ["mktree"], timeout_s=READ_TIMEOUT_S, stdin="".join(entries).encode("utf-8"))
    tree = done.stdout.decode("ascii", errors="replace").strip()
    if not done.ok or not _HEX40.fullmatch(tree):
        raise GitError(f"cannot write a tree: {proc.tail_text(done.stderr, 300)}")
    return tree
