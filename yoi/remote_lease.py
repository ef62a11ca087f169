"""Keeping a remote claim alive during a run, and tying it to the engine's local lease.

``RemoteLease`` renews a ``RemoteClaim`` by CAS push every third of the lease on a
heartbeat thread; once a renewal finds the claim taken (or ``check`` does), the lease is
*lost* and every later ``check`` raises ``FencedError``. An unreachable remote is retried
sooner; if it stays unreachable the lease runs out and ``check`` fences the holder
before any other machine may take over (see the skew margin in ``yoi.remote_claims``).

``DistributedLease`` is a local ``claims.Lease`` whose fence also checks the remote
claim: the engine passes it wherever it passes a lease (``store.transaction(fence=
lease.check)``), and its ``release`` releases the remote claim first, remembering the
event as done when the event is processed in the local store.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from yoi.claims import Claim, Claims, Lease
from yoi.errors import FencedError, YoiError
from yoi.remote_claims import RemoteClaim, RemoteClaimer

if TYPE_CHECKING:
    from yoi.store import Store


Warn = Callable[[str], None]


def stderr_warn(line: str) -> None:
    sys.stderr.write(f"yoi: remote: {line}\n")
    sys.stderr.flush()


class RemoteLease:
    """A held remote claim with a heartbeat thread."""

    def __init__(self, claimer: RemoteClaimer, claim: RemoteClaim, *, warn: Warn = stderr_warn):
        self.claimer = claimer
        self._claim = claim
        self._warn = warn
        self._lost: str | None = None
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def claim(self) -> RemoteClaim:
        return self._claim

    @property
    def lost(self) -> str | None:
        return self._lost

    def check(self) -> None:
        with self._mutex:
            if self._lost is not None:
                raise FencedError(self._lost)
            try:
                self.claimer.check(self._claim)
            except FencedError as exc:
                self._lost = exc.message
                raise

    def start(self, interval: float | None = None) -> RemoteLease:
        every = interval if interval is not None else self.claimer.lease_seconds / 3
        self._thread = threading.Thread(
            target=self._beat,
            args=(every,),
            daemon=True,
            name=f"yoi-remote-heartbeat-{self._claim.slug}",
        )
        self._thread.start()
        return self

    def _beat(self, every: float) -> None:
        wait = every
        while not self._stop.wait(wait):
            with self._mutex:
                if self._stop.is_set() or self._lost is not None:
                    return
                try:
                    self._claim = self.claimer.renew(self._claim)
                    wait = every
                except FencedError as exc:
                    self._lost = exc.message
                    self._warn(exc.message)
                    return
                except YoiError as exc:  # unreachable or refused: retry sooner
                    self._warn(f"renewing {self._claim.ref} failed, retrying: {exc.message}")
                    wait = max(every / 3, 0.05)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

    def release(self, *, done: bool) -> bool:
        """Stop renewing and release the claim if it is still ours. Never raises: a
        failed release is reported through ``warn`` (the lease then simply expires)."""
        self.stop()
        if self._lost is not None:
            return False
        try:
            return self.claimer.release(self._claim, done=done)
        except YoiError as exc:
            self._warn(
                f"could not release {self._claim.ref}: {exc.message}; it expires with its lease"
            )
            return False


def event_processed(store: Store, slug: str, event_id: str) -> bool:
    """Whether ``event_id`` is processed in the local store (False when unreadable)."""
    from yoi import events

    try:
        path = events.event_path(store.ticket_dir(slug), event_id)
        return bool(store.read_record(path, "event")["processed"])
    except (YoiError, OSError):
        return False


class DistributedLease(Lease):
    """A local event lease plus the ticket's remote claim (fence and heartbeat both)."""

    releases_under_lock = False  # its release pushes to the remote

    def __init__(self, claims: Claims, claim: Claim, remote: RemoteLease, *, slug: str):
        super().__init__(claims, claim)
        self.remote = remote
        self.slug = slug

    def check(self) -> None:
        super().check()
        self.remote.check()

    def start(self, interval: float | None = None) -> DistributedLease:
        self.remote.start()
        super().start(interval)
        return self

    def release(self) -> bool:
        if self.released:
            return super().release()
        claim = self.remote.claim
        done = event_processed(self.claims.store, self.slug, claim.event_id)
        self.remote.release(done=done)
        return super().release()


def lease_for(
    claims: Claims,
    claim: Claim,
    remote: RemoteClaimer | None,
    *,
    slug: str,
    warn: Warn = stderr_warn,
) -> Lease | None:
    """The engine's lease for a locally claimed event (not started).

    Without a remote: the local lease. With one: the ticket is claimed on the remote
    too; ``None`` when someone else holds it there or the event already ran elsewhere
    (the local claim is released; nothing was written). ``RemoteError`` (after
    releasing the local claim) when the remote cannot be reached or refuses.
    """
    if remote is None:
        return Lease(claims, claim)
    try:
        remote_claim = remote.acquire(slug, claim.resource_id)
    except BaseException:
        claims.release(claim)
        raise
    if remote_claim is None:
        claims.release(claim)
        return None
    return DistributedLease(claims, claim, RemoteLease(remote, remote_claim, warn=warn), slug=slug)


def push_work_branch(
    claimer: RemoteClaimer, store: Store, slug: str, *, warn: Warn = stderr_warn
) -> str | None:
    """After a run of ``slug`` (``--push-branch``): push its work branch by CAS from what
    the remote had when the ticket was claimed. The pushed oid, or None (with a warning)
    when there is no branch to push or the remote refused or moved."""
    branch = f"{store.config()['engine'].get('branch_prefix') or 'yoi/'}{slug}"
    try:
        return claimer.push_branch(slug, branch)
    except YoiError as exc:
        warn(exc.message)
        return None
