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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import claims
from yoi import remote_git as rg
from yoi.claims_records import hostname
from yoi.errors import FencedError, GitError, UsageError
from yoi.remote_git import RemoteError
from yoi.remote_refs import ClaimRefs, Clock, claim_ref, default_margin
from yoi.remote_state import CLAIMS_PREFIX, MAX_DONE, RemoteState, Status

if TYPE_CHECKING:
    from yoi.store import Store

__all__ = ["RemoteClaim", "RemoteClaimer", "RemoteError", "RemoteState", "Status"]


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


class RemoteClaimer(ClaimRefs):
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
        branch_prefix: str | None = None,
    ):
        lease = float(lease_seconds)
        super().__init__(
            root, remote, clock=clock, margin=default_margin(lease) if margin is None else margin
        )
        self.owner = owner or claims.new_owner_id()
        self.lease_seconds = lease
        if self.lease_seconds <= 2 * self.margin:
            raise UsageError(
                f"lease of {self.lease_seconds:g}s is too short for a skew margin of "
                f"{self.margin:g}s",
                hint="raise engine.lease_seconds in .yoi/config.yaml",
            )
        self._done_seen: set[str] = set()
        self._branch_seen: dict[str, str | None] = {}
        self.branch_prefix = branch_prefix  # set: acquire notes the work branch too
        self.last_state: RemoteState | None = None  # what the last acquire found

    @classmethod
    def for_store(
        cls,
        store: Store,
        remote: str,
        *,
        owner: str | None = None,
        clock: Clock | None = None,
        push_branch: bool = False,
    ) -> RemoteClaimer:
        """A claimer with the store's lease; ``push_branch``: note the work branch
        (``engine.branch_prefix`` + slug) at every acquire, as the lease of its push."""
        engine = store.config()["engine"]
        return cls(
            store.root,
            remote,
            owner=owner,
            lease_seconds=float(engine["lease_seconds"]),
            clock=clock,
            branch_prefix=str(engine.get("branch_prefix") or "yoi/") if push_branch else None,
        )

    def _record(self, claim: RemoteClaim, now: float, *, released: bool = False) -> dict[str, Any]:
        return {
            "resource_type": "EVENT",
            "resource_id": claim.event_id,
            "owner_id": claim.owner_id,
            "lease_expires_at": claims.format_time(claim.lease_expires_at),
            "heartbeat_at": claims.format_time(now),
            "claim_version": claim.claim_version,
            "host": hostname(),
            "pid": os.getpid(),
            "acquired_at": claim.acquired_at,
            "released": released,
        }

    # ---- operations -------------------------------------------------------------------------
    def acquire(self, slug: str, event_id: str) -> RemoteClaim | None:
        """Claim ``slug`` for ``event_id``; ``None`` if someone else holds it or the event
        already ran elsewhere (see ``last_state``)."""
        ref = claim_ref(slug)
        with self._mutex:
            if event_id in self._done_seen:
                return None
            branch = f"refs/heads/{self.branch_prefix}{slug}" if self.branch_prefix else None
            found = rg.ls_remote(self.root, self.remote, ref, *([branch] if branch else []))
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
            oid = self.commit(self._record(claim, now), claim.done, state.oid, "claim")
            if not self.push(ref, oid, state.oid):
                return None
            if branch is not None:
                self._branch_seen[slug] = found.get(branch)
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
            oid = self.commit(self._record(new, now), new.done, claim.oid, "renew")
            if not self.push(claim.ref, oid, claim.oid):
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
            return self.push(claim.ref, None, claim.oid)
        now = self.clock()
        ended = dataclasses.replace(claim, lease_expires_at=min(now, claim.lease_expires_at))
        oid = self.commit(self._record(ended, now, released=True), done, claim.oid, "release")
        return self.push(claim.ref, oid, claim.oid)

    def force_release(self, state: RemoteState) -> bool:
        """Release the claim found in ``state`` whoever holds it (``yoi claims release``):
        CAS on the oid that was read, so a claim that moved meanwhile is left alone."""
        if state.oid is None or state.status is Status.RELEASED:
            return False
        with self._mutex:
            if state.record is None:  # invalid: nothing to keep
                return self.push(state.ref, None, state.oid)
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
        with self._mutex:
            local = self.repo().ref_target(ref)
            if local is None:
                raise GitError(
                    f"there is no local branch '{branch}' to push (the run made no commit)"
                )
            expected = (
                self._branch_seen[slug]
                if slug in self._branch_seen
                else rg.ref_oid(self.root, self.remote, ref)
            )
            if expected == local:
                return local
            if not self.push(ref, local, expected):
                raise RemoteError(
                    f"did not push {branch}: it moved on remote '{self.remote}' during the run",
                    hint=f"fetch it and compare with the local branch, then push {branch} yourself",
                )
            self._branch_seen[slug] = local
            return local
