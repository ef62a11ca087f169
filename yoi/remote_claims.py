"""Claims on a shared git remote, so engines on several machines run each ticket once.

Protocol (``docs/distributed.md``): the claim on ticket ``<slug>`` is the remote ref
``refs/yoi/claims/<slug>``, pointing at a claim commit that is unique per claimant
(owner id + nonce in the message) and holds a claim_record (``yoi.remote_state``).
Every change of the ref is a compare-and-swap push (``yoi.remote_git.push_cas``):

- ``acquire``: absent -> create with ``--force-with-lease=<ref>:``; expired or released
  (and the event not in the ref's done list) -> replace with the lease on that oid,
  ``claim_version + 1``. Someone else's live claim, or an event already done elsewhere
  -> ``None`` (skip the ticket, write nothing).
- ``renew``: CAS from our oid to a new commit with a later lease (version + 1).
- ``check``: the fence. ``FencedError`` when our lease has passed (local clock, minus
  ``margin``) or the remote ref no longer points at our commit.
- ``release``: CAS to a released tombstone that remembers the done events (``done=True``
  adds ours), or a CAS delete when there is nothing to remember.

Clock skew: a holder stops ``margin`` seconds before its lease ends, a taker waits
until ``margin`` seconds after it, so any skew below ``margin`` is safe. The lease must
be much longer than the skew and than one push.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import claims
from yoi import remote_git as rg
from yoi.errors import FencedError, GitError, UsageError
from yoi.remote_git import RemoteError
from yoi.remote_state import CLAIMS_PREFIX, MAX_DONE, RemoteState, Status

if TYPE_CHECKING:
    from yoi.git import Repo
    from yoi.store import Store

__all__ = ["RemoteClaim", "RemoteClaimer", "RemoteError", "RemoteState", "Status"]

Clock = Callable[[], float]
AUTHOR = ("yoi engine", "yoi-engine@localhost")
_FILES = ("claim.yaml", "done.yaml")


def default_margin(lease_seconds: float) -> float:
    """Skew margin: a tenth of the lease, at least half a second, at most 30 s."""
    return min(30.0, max(0.5, lease_seconds / 10))


@dataclass(frozen=True, slots=True)
class RemoteClaim:
    """A claim as its holder knows it; ``oid`` (our unique commit) is the fencing token."""

    remote: str
    slug: str
    event_id: str
    owner_id: str
    oid: str
    claim_version: int
    lease_expires_at: float
    acquired_at: str
    done: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return CLAIMS_PREFIX + self.slug


class RemoteClaimer:
    """Claim operations of one owner (an engine instance) on one remote."""

    def __init__(
        self,
        root: Path,
        remote: str,
        *,
        owner: str | None = None,
        lease_seconds: float = 60.0,
        clock: Clock | None = None,
        margin: float | None = None,
    ):
        self.root = root
        self.remote = rg.check_remote(remote)
        self.owner = owner or claims.new_owner_id()
        self.lease_seconds = float(lease_seconds)
        self.clock: Clock = clock or time.time
        self.margin = default_margin(self.lease_seconds) if margin is None else float(margin)
        if self.lease_seconds <= 2 * self.margin:
            raise UsageError(
                f"lease of {self.lease_seconds:g}s is too short for a skew margin of "
                f"{self.margin:g}s",
                hint="raise engine.lease_seconds in .yoi/config.yaml",
            )
        self._repo: Repo | None = None
        self._mutex = threading.RLock()  # pygit2 objects and pushes, one at a time
        self._done_seen: set[str] = set()
        self._branch_seen: dict[str, str | None] = {}
        self.last_state: RemoteState | None = None  # what the last acquire found

    @classmethod
    def for_store(
        cls, store: Store, remote: str, *, owner: str | None = None, clock: Clock | None = None
    ) -> RemoteClaimer:
        lease = float(store.config()["engine"]["lease_seconds"])
        return cls(store.root, remote, owner=owner, lease_seconds=lease, clock=clock)

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
        return self.state_of(slug, rg.ref_oid(self.root, self.remote, _ref(slug)))

    def list_states(self) -> list[RemoteState]:
        """Every claim ref on the remote, mirrored under ``refs/yoi/remote-claims/``."""
        found = rg.ls_remote(self.root, self.remote, CLAIMS_PREFIX + "*")
        if found:
            mirror = f"refs/yoi/remote-claims/{rg.remote_key(self.remote)}/"
            rg.fetch_tracking(self.root, self.remote, CLAIMS_PREFIX, mirror)
        return [self.state_of(ref[len(CLAIMS_PREFIX) :], oid) for ref, oid in sorted(found.items())]

    # ---- building and pushing claim commits -------------------------------------------------
    def _record(self, claim: RemoteClaim, now: float, *, released: bool = False) -> dict[str, Any]:
        return {
            "resource_type": "EVENT",
            "resource_id": claim.event_id,
            "owner_id": claim.owner_id,
            "lease_expires_at": claims.format_time(claim.lease_expires_at),
            "heartbeat_at": claims.format_time(now),
            "claim_version": claim.claim_version,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": claim.acquired_at,
            "released": released,
        }

    def _commit(
        self, record: dict[str, Any], done: tuple[str, ...], parent: str | None, what: str
    ) -> str:
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

    def _push(self, ref: str, new: str | None, expected: str | None) -> bool:
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
            hint="a server-side hook or permission rejects pushes to refs/yoi/claims/*; "
            "allow them for the engine",
        )

    # ---- operations -------------------------------------------------------------------------
    def acquire(self, slug: str, event_id: str) -> RemoteClaim | None:
        """Claim ``slug`` for ``event_id``; ``None`` if someone else holds it or the event
        already ran elsewhere (see ``last_state``)."""
        ref = _ref(slug)
        with self._mutex:
            if event_id in self._done_seen:
                return None
            found = rg.ls_remote(self.root, self.remote, ref)
            state = self.state_of(slug, found.get(ref))
            self.last_state = state
            if not state.free_for(event_id):
                if event_id in state.done:
                    self._done_seen.add(event_id)
                return None
            now = self.clock()
            claim = RemoteClaim(
                self.remote,
                slug,
                event_id,
                self.owner,
                "",
                state.version + 1,
                now + self.lease_seconds,
                claims.format_time(now),
                state.done,
            )
            oid = self._commit(self._record(claim, now), claim.done, state.oid, "claim")
            if not self._push(ref, oid, state.oid):
                return None
            return dataclasses.replace(claim, oid=oid)

    def renew(self, claim: RemoteClaim) -> RemoteClaim:
        """Extend the lease by CAS from our commit; ``FencedError`` if it was taken."""
        with self._mutex:
            now = self.clock()
            new = dataclasses.replace(
                claim,
                claim_version=claim.claim_version + 1,
                lease_expires_at=now + self.lease_seconds,
            )
            oid = self._commit(self._record(new, now), new.done, claim.oid, "renew")
            if not self._push(claim.ref, oid, claim.oid):
                raise self._fenced(claim, "while renewing")
            return dataclasses.replace(new, oid=oid)

    def check(self, claim: RemoteClaim) -> None:
        """The fence: raise ``FencedError`` unless the claim is still ours and unexpired.
        An unreachable remote does not fence by itself: until the lease (minus the skew
        margin) passes, nobody else may take the claim."""
        if self.clock() >= claim.lease_expires_at - self.margin:
            raise FencedError(
                f"the lease on remote claim {claim.ref} expired at "
                f"{claims.format_time(claim.lease_expires_at)} (skew margin {self.margin:g}s)",
                hint="the run stops writing; another engine may take the ticket over",
            )
        with self._mutex:
            try:
                current = rg.ref_oid(self.root, self.remote, claim.ref)
            except RemoteError:
                return
        if current != claim.oid:
            raise self._fenced(claim, "", current)

    def _fenced(self, claim: RemoteClaim, when: str, current: str | None = None) -> FencedError:
        if current is None:
            try:
                current = rg.ref_oid(self.root, self.remote, claim.ref)
            except RemoteError:
                current = None
        what = (
            "was released or deleted"
            if current is None
            else f"now belongs to {self.state_of(claim.slug, current).holder()}"
        )
        return FencedError(
            f"remote claim {claim.ref} {what}{' ' + when if when else ''}",
            hint="this engine stops writing for that ticket",
        )

    def release(self, claim: RemoteClaim, *, done: bool) -> bool:
        """Let go of a claim we hold. ``done``: the event's run finished (its records are
        written), so remember it in the tombstone. False when it was no longer ours."""
        with self._mutex:
            remembered = claim.done
            if done and claim.event_id not in remembered:
                remembered = (*remembered, claim.event_id)[-MAX_DONE:]
            ok = self._release_to(claim, remembered)
            if ok and done:
                self._done_seen.add(claim.event_id)
            return ok

    def _release_to(self, claim: RemoteClaim, done: tuple[str, ...]) -> bool:
        if not done:
            return self._push(claim.ref, None, claim.oid)
        now = self.clock()
        ended = dataclasses.replace(claim, lease_expires_at=min(now, claim.lease_expires_at))
        oid = self._commit(self._record(ended, now, released=True), done, claim.oid, "release")
        return self._push(claim.ref, oid, claim.oid)

    def force_release(self, state: RemoteState) -> bool:
        """Release the claim found in ``state`` whoever holds it (``yoi claims release``):
        CAS on the oid that was read, so a claim that moved meanwhile is left alone."""
        if state.oid is None or state.status is Status.RELEASED:
            return False
        with self._mutex:
            if state.record is None:  # invalid: nothing to keep
                return self._push(state.ref, None, state.oid)
            r = state.record
            claim = RemoteClaim(
                self.remote,
                state.slug,
                str(r["resource_id"]),
                str(r["owner_id"]),
                state.oid,
                int(r["claim_version"]),
                claims.parse_time(str(r["lease_expires_at"])),
                str(r.get("acquired_at") or claims.format_time(self.clock())),
                state.done,
            )
            return self._release_to(claim, state.done)

    # ---- the work branch ----------------------------------------------------------------------
    def note_branch(self, slug: str, branch: str) -> None:
        """Remember where the remote work branch is now (the lease of ``push_branch``)."""
        ref = f"refs/heads/{branch}"
        self._branch_seen[slug] = rg.ref_oid(self.root, self.remote, ref)

    def push_branch(self, slug: str, branch: str) -> str:
        """Push the local ``branch`` to the remote by CAS from what ``note_branch`` saw
        (or what is there now). Returns the pushed oid; ``RemoteError`` when the remote
        branch moved meanwhile or the remote refused."""
        ref = f"refs/heads/{branch}"
        local = self.repo().ref_target(ref)
        if local is None:
            raise GitError(f"there is no local branch '{branch}' to push")
        with self._mutex:
            expected = (
                self._branch_seen[slug]
                if slug in self._branch_seen
                else rg.ref_oid(self.root, self.remote, ref)
            )
            if expected == local:
                return local
            if not self._push(ref, local, expected):
                raise RemoteError(
                    f"did not push {branch}: it moved on remote '{self.remote}' during the run",
                    hint=f"fetch it and compare with the local branch, then push {branch} yourself",
                )
            self._branch_seen[slug] = local
            return local


def _ref(slug: str) -> str:
    from yoi.git import check_ref_name

    return check_ref_name(CLAIMS_PREFIX + slug)
