"""Local claims: leases with fencing under ``<git-common-dir>/yoi/claims/`` (SPEC §5).

A claim record ``<RESOURCE_TYPE>-<resource_id>.yaml`` (schema claim_record) says who
holds a resource (a TICKET_READY event, a workorder) until when. Records change only
under the store lock, so "read, check, write" is a compare-and-swap:

- ``acquire``: free (absent, released, expired, or owned by a dead process on this host)
  -> write ourselves as owner with ``claim_version + 1``; else ``None``.
- ``heartbeat``: still ours (owner and version match, lease unexpired) -> extend the lease
  and bump the version; else ``FencedError``.
- ``check``: the fence. Raises ``FencedError`` unless the record still names this owner
  and version and the lease has not expired. Engine writes call it under the same lock
  as the write (``store.transaction(fence=lease.check)``), so a holder that lost its
  lease writes nothing more.
- ``release``: marks the record released, keeping its version (versions never reset).

``Lease`` wraps a held claim with a heartbeat thread that renews it at a third of the
lease and stops when the claim is lost.

Claim records are replaced atomically but not fsynced (``fsio.atomic_write(sync=False)``):
a claim is a lease held by a live process on this host, and the only event that can
undo an unsynced write, an operating-system crash, ends every such process, so its
claims are free either way. A crash may leave a record empty or cut short; ``acquire``
takes an unreadable record for a free claim (docs/reliability.md). Two durable writes
per run cost more than a fifth of the engine's time per ticket (docs/performance.md).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import bounded, fsio, schema
from yoi.claims_admin import ClaimInfo, held, list_claims, release_by_name, stale_claims
from yoi.claims_records import (
    CLAIMS_DIR,
    RESOURCE_TYPES,
    Claim,
    Clock,
    dump_record,
    format_time,
    hostname,
    new_owner_id,
    parse_time,
    pid_alive,
    read_record,
    status_of,
)
from yoi.errors import FencedError, InvalidRecordError, UsageError, YoiError
from yoi.lease import Lease

if TYPE_CHECKING:
    from yoi.store import Store

__all__ = [
    "CLAIMS_DIR",
    "RESOURCE_TYPES",
    "Claim",
    "ClaimInfo",
    "Claims",
    "Clock",
    "Lease",
    "format_time",
    "held",
    "list_claims",
    "new_owner_id",
    "parse_time",
    "pid_alive",
    "read_record",
    "release_by_name",
    "stale_claims",
    "status_of",
]

_ID_RE = re.compile(r"^[a-z]+-[0-9a-z-]{1,95}$")


class Claims:
    """Claim operations for one owner (an engine instance) on one store."""

    def __init__(
        self,
        store: Store,
        *,
        owner: str | None = None,
        clock: Clock | None = None,
        lease_seconds: float | None = None,
    ):
        self.store = store
        self.owner = owner or new_owner_id()
        self.clock: Clock = clock or time.time
        if lease_seconds is None:
            lease_seconds = float(store.config()["engine"]["lease_seconds"])
        self.lease_seconds = float(lease_seconds)
        self._paths: dict[tuple[str, str], Path] = {}

    # ---- records -----------------------------------------------------------------
    def path(self, resource_type: str, resource_id: str) -> Path:
        key = (resource_type, resource_id)
        known = self._paths.get(key)
        if known is not None:  # (a run asks for its claim's path several times)
            return known
        if resource_type not in RESOURCE_TYPES:
            raise UsageError(f"unknown claim type '{resource_type}'; valid: EVENT, WORKORDER")
        if not _ID_RE.match(resource_id):
            raise UsageError(f"'{resource_id}' is not a valid record id to claim")
        path = self.store.runtime(CLAIMS_DIR) / f"{resource_type}-{resource_id}.yaml"
        return bounded.put(self._paths, key, path, 1024)

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        return read_record(self.path(resource_type, resource_id))

    def _read_to_take(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """``read``, with an unreadable record taken for no record: all an operating-system
        crash can leave of an unsynced claim, whose holder it ended (module docstring)."""
        try:
            return self.read(resource_type, resource_id)
        except InvalidRecordError:
            return None

    def _write(
        self, claim: Claim, now: float, *, acquired: str | None, released: bool = False
    ) -> None:
        record: dict[str, Any] = {
            "resource_type": claim.resource_type,
            "resource_id": claim.resource_id,
            "owner_id": claim.owner_id,
            "lease_expires_at": format_time(claim.lease_expires_at),
            "heartbeat_at": format_time(now),
            "claim_version": claim.claim_version,
            "host": hostname(),
            "pid": os.getpid(),
            "acquired_at": acquired or format_time(now),
            "released": released,
        }
        path = self.path(claim.resource_type, claim.resource_id)
        schema.check("claim_record", record, str(path))
        fsio.atomic_write(path, dump_record(record), sync=False)  # see the module docstring

    # ---- operations (each under the store lock) ------------------------------------
    def acquire(self, resource_type: str, resource_id: str) -> Claim | None:
        """Take the claim if it is free; ``None`` if someone else holds it.

        A claim another owner holds is answered from a read without the lock (a claim file
        is replaced atomically, so it is whole): engines sharing a store walk the same
        pending events, and each would otherwise wait for the lock, which the holder is
        busy committing under, just to learn that (a caller already holding the lock
        skips it: the read under the lock follows at once). Whether it is free is decided
        under the lock, on a fresh read."""
        if not self.store.lock().is_locked and self.held_by_another(resource_type, resource_id):
            return None
        with self.store.locked():
            record = self._read_to_take(resource_type, resource_id)
            if self._held_by_another(record):
                return None
            now = self.clock()
            # Free, expired, released, or ours already (an acquire whose write raised
            # after the rename): take it with the next version, fencing older handles.
            version = 1 if record is None else int(record["claim_version"]) + 1
            claim = Claim(resource_type, resource_id, self.owner, version, now + self.lease_seconds)
            self._write(claim, now, acquired=None)
            return claim

    def held_by_another(self, resource_type: str, resource_id: str) -> bool:
        """True when another owner holds the claim now, from a read without the lock (a
        claim file is replaced atomically, so it is whole). False is no verdict."""
        return self._held_by_another(self._read_to_take(resource_type, resource_id))

    def _held_by_another(self, record: dict[str, Any] | None) -> bool:
        return (
            record is not None
            and record["owner_id"] != self.owner
            and status_of(record, self.clock()) == "held"
        )

    def _verify(self, claim: Claim, now: float) -> dict[str, Any]:
        record = self._read_to_take(claim.resource_type, claim.resource_id)
        if record is None:
            raise FencedError(f"claim {claim.name} vanished", hint="another process removed it")
        if record["owner_id"] != claim.owner_id or record["claim_version"] != claim.claim_version:
            raise FencedError(
                f"claim {claim.name} was taken over by {record['owner_id']} "
                f"(version {record['claim_version']}, ours {claim.claim_version})"
            )
        if record.get("released"):
            raise FencedError(f"claim {claim.name} was released")
        if parse_time(str(record["lease_expires_at"])) <= now:
            raise FencedError(f"the lease on {claim.name} expired at {record['lease_expires_at']}")
        return record

    def check(self, claim: Claim) -> None:
        """The fence: raise ``FencedError`` unless ``claim`` is still ours and unexpired."""
        with self.store.locked():
            self._verify(claim, self.clock())

    def holds(self, claim: Claim) -> bool:
        """``check`` from a read without the lock: True when the claim file shows ``claim``
        ours and unexpired now (a claim file is replaced atomically, so the read sees a
        whole one). While it does, no one else may change it (a takeover needs it expired
        or its owner dead); False is no verdict: ask ``check``."""
        try:
            self._verify(claim, self.clock())
        except (YoiError, OSError):
            return False
        return True

    def heartbeat(self, claim: Claim) -> Claim:
        """Extend the lease of a claim we still hold; the version grows by one."""
        with self.store.locked():
            now = self.clock()
            record = self._verify(claim, now)
            renewed = Claim(
                claim.resource_type,
                claim.resource_id,
                claim.owner_id,
                claim.claim_version + 1,
                now + self.lease_seconds,
            )
            self._write(renewed, now, acquired=str(record.get("acquired_at") or ""))
            return renewed

    def release(self, claim: Claim) -> bool:
        """Release a claim we still own (version kept). False if it was no longer ours."""
        with self.store.locked():
            record = self.read(claim.resource_type, claim.resource_id)
            if (
                record is None
                or record["owner_id"] != claim.owner_id
                or record["claim_version"] != claim.claim_version
                or record.get("released")
            ):
                return False
            now = self.clock()
            ended = Claim(
                claim.resource_type,
                claim.resource_id,
                claim.owner_id,
                claim.claim_version,
                min(now, claim.lease_expires_at),
            )
            self._write(ended, now, acquired=str(record.get("acquired_at") or ""), released=True)
            return True
