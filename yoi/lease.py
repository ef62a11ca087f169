"""A held claim kept alive by a heartbeat thread (SPEC §5: "heartbeat during long
runs"); its ``check`` is the fence every engine write passes to
``store.transaction(fence=...)``."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from yoi.claims_records import Claim
from yoi.errors import FencedError

if TYPE_CHECKING:
    from yoi.claims import Claims


class Lease:
    """A held claim kept alive by a heartbeat thread (every third of the lease).

    ``check`` is the fence to pass to ``store.transaction(fence=...)``; it reads the
    current (possibly renewed) claim under the store lock. When a heartbeat finds the
    claim lost, the thread stops and every later ``check`` raises ``FencedError``.
    """

    # A local lease may be released inside a hold of the store lock (the engine releases
    # it in the same hold as the outcome's commit); a distributed one talks to the remote.
    releases_under_lock = True

    def __init__(self, claims: Claims, claim: Claim):
        self.claims = claims
        self._claim = claim
        self._lost: str | None = None
        self._released: bool | None = None  # release()'s answer, once it was called
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def claim(self) -> Claim:
        return self._claim

    @property
    def lost(self) -> str | None:
        return self._lost

    def check(self) -> None:
        """The fence. Inside a transaction (the store lock held) the claim is verified under
        it, so no one changes it until the transaction's writes are done. Outside one
        (before a ref move) a read without the lock that shows the claim ours and
        unexpired is enough: taking the lock would order nothing more, as the move itself
        happens after the lock is released, and it made engines sharing a store wait for
        each other's commits. Anything else is decided under the lock."""
        if self._lost is not None:
            raise FencedError(self._lost)
        store = self.claims.store
        if not store.lock().is_locked and self.claims.holds(self._claim):
            return
        with store.locked():
            if self._lost is not None:
                raise FencedError(self._lost)
            try:
                self.claims.check(self._claim)
            except FencedError as exc:
                self._lost = exc.message
                raise

    def start(self, interval: float | None = None) -> Lease:
        every = interval if interval is not None else self.claims.lease_seconds / 3
        self._thread = threading.Thread(
            target=self._beat,
            args=(every,),
            daemon=True,
            name=f"yoi-heartbeat-{self._claim.resource_id}",
        )
        self._thread.start()
        return self

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                with self.claims.store.locked():
                    if self._stop.is_set():
                        return
                    self._claim = self.claims.heartbeat(self._claim)
            except FencedError as exc:
                self._lost = exc.message
                return
            except Exception:  # a busy lock or a transient I/O error: retry next beat
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

    def release(self) -> bool:
        """Stop the heartbeat and release the claim if it is still ours (once: a second
        call answers as the first did)."""
        if self._released is None:
            self.stop()
            self._released = self._lost is None and self.claims.release(self._claim)
        return self._released

    @property
    def released(self) -> bool:
        return self._released is not None
