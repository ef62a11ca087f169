"""The plumbing under ``RemoteClaimer``: read claim refs of one remote, build claim
commits, and move refs by compare-and-swap push (see ``yoi.remote_git``)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import remote_git as rg
from yoi.errors import GitError
from yoi.remote_git import RemoteError
from yoi.remote_state import CLAIMS_PREFIX, RemoteState, Status

if TYPE_CHECKING:
    from yoi.git import Repo

Clock = Callable[[], float]
AUTHOR = ("yoi engine", "yoi-engine@localhost")
_FILES = ("claim.yaml", "done.yaml")


def default_margin(lease_seconds: float) -> float:
    """Skew margin: a tenth of the lease, at least half a second, at most 30 s."""
    return min(30.0, max(0.5, lease_seconds / 10))


def claim_ref(slug: str) -> str:
    from yoi.git import check_ref_name

    return check_ref_name(CLAIMS_PREFIX + slug)


class ClaimRefs:
    """Claim refs on one remote, read and written from the clone at ``root``."""

    def __init__(self, root: Path, remote: str, *, clock: Clock | None, margin: float):
        self.root = root
        self.remote = rg.check_remote(remote)
        self.clock: Clock = clock or time.time
        self.margin = margin
        self._repo: Repo | None = None
        self._mutex = threading.RLock()  # pygit2 objects and pushes, one at a time

    # ---- reading -------------------------------------------------------------------------
    def repo(self) -> Repo:
        if self._repo is None:
            from yoi.git import Repo

            self._repo = Repo.open(self.root)
        return self._repo

    def _files(self, oid: str) -> dict[str, bytes | None]:
        try:
            return {n: self.repo().read_blob(oid, n) for n in _FILES}
        except GitError:
            rg.fetch_objects(self.root, self.remote, [oid])
            return {n: self.repo().read_blob(oid, n) for n in _FILES}

    def state_of(self, slug: str, oid: str | None) -> RemoteState:
        if oid is None:
            return RemoteState(slug, None, Status.ABSENT)
        from yoi.remote_state import parse_state

        with self._mutex:
            try:
                files = self._files(oid)
            except GitError as exc:
                return RemoteState(slug, oid, Status.INVALID, problem=exc.render())
        return parse_state(slug, oid, files, self.clock(), self.margin)

    def read(self, slug: str) -> RemoteState:
        """The claim on ``slug`` as the remote holds it now."""
        return self.state_of(slug, rg.ref_oid(self.root, self.remote, claim_ref(slug)))

    def list_states(self) -> list[RemoteState]:
        """Every claim ref on the remote, mirrored under ``refs/yoi/remote-claims/``."""
        found = rg.ls_remote(self.root, self.remote, CLAIMS_PREFIX + "*")
        if found:
            mirror = f"refs/yoi/remote-claims/{rg.remote_key(self.remote)}/"
            rg.fetch_tracking(self.root, self.remote, CLAIMS_PREFIX, mirror)
        return [self.state_of(ref[len(CLAIMS_PREFIX) :], oid) for ref, oid in sorted(found.items())]

    # ---- building and pushing claim commits -------------------------------------------------
    def commit(
        self, record: dict[str, Any], done: tuple[str, ...], parent: str | None, what: str
    ) -> str:
        """A new claim commit (unique: owner and a nonce in the message) on ``parent``."""
        from yoi.remote_state import claim_files

        tree = rg.write_tree(self.root, claim_files(record, done))
        message = (
            f"yoi claim: {what} {record['resource_id']} v{record['claim_version']}\n\n"
            f"owner: {record['owner_id']}\nnonce: {secrets.token_hex(8)}\n"
        )
        return self.repo().commit_tree(
            tree,
            [parent] if parent else [],
            message,
            author_name=AUTHOR[0],
            author_email=AUTHOR[1],
        )

    def push(self, ref: str, new: str | None, expected: str | None) -> bool:
        """CAS ``ref`` from ``expected`` to ``new``. True: done (ours now). False: the ref
        is no longer ``expected`` (someone else won). ``RemoteError``: the remote refused
        or could not be reached, and the ref is unchanged or unknown."""
        try:
            outcome = rg.push_cas(self.root, self.remote, ref, new, expected)
        except RemoteError:
            if rg.ref_oid(self.root, self.remote, ref) == new:
                return True  # the push landed, only its report got lost
            raise
        if outcome.ok:
            return True
        current = rg.ref_oid(self.root, self.remote, ref)
        if new is not None and current == new:
            return True  # unique commits: only our push can have put it there
        if current != expected:
            return False
        raise RemoteError(
            f"the remote '{self.remote}' refused to update {ref}: {outcome.reason()}",
            hint="a server-side hook or permission refuses it; allow the engine to push "
            "refs/yoi/claims/* (and the work branches, with --push-branch)",
        )
