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
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoi import clock as yclock
from yoi import fsio, schema, yamlio
from yoi.errors import FencedError, UsageError

if TYPE_CHECKING:
    from yoi.store import Store

Clock = Callable[[], float]  # seconds since the epoch

RESOURCE_TYPES = ("EVENT", "WORKORDER")
CLAIMS_DIR = "claims"
MAX_CLAIM_BYTES = 64 * 1024
_ID_RE = re.compile(r"^[a-z]+-[0-9a-z-]{1,95}$")


def new_owner_id() -> str:
    """``<hostname>:<pid>:<random>``: unique per engine instance."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def format_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    return yclock.parse_ts(text).timestamp()


def pid_alive(pid: int) -> bool:
    """True unless ``pid`` is certainly gone (no such process, or a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return False
    return True


@dataclass(frozen=True, slots=True)
class Claim:
    """A claim as its holder knows it: the fencing token is ``claim_version``."""

    resource_type: str
    resource_id: str
    owner_id: str
    claim_version: int
    lease_expires_at: float

    @property
    def name(self) -> str:
        return f"{self.resource_type}-{self.resource_id}"


@dataclass(frozen=True, slots=True)
class ClaimInfo:
    """A claim record as found on disk, with its status at ``now``."""

    path: Path
    record: dict[str, Any]
    status: str  # held | expired | dead-owner | released

    def as_dict(self) -> dict[str, Any]:
        return {**self.record, "status": self.status, "path": str(self.path)}


def status_of(record: dict[str, Any], now: float | None = None) -> str:
    """held | expired | dead-owner | released, at ``now`` (default: the current time)."""
    return _status(record, time.time() if now is None else now)


def _status(record: dict[str, Any], now: float) -> str:
    if record.get("released"):
        return "released"
    if _owner_dead_here(record):
        return "dead-owner"
    if parse_time(str(record["lease_expires_at"])) <= now:
        return "expired"
    return "held"


def _owner_dead_here(record: dict[str, Any]) -> bool:
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    return pid != os.getpid() and not pid_alive(pid)


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

    # ---- records -----------------------------------------------------------------
    def path(self, resource_type: str, resource_id: str) -> Path:
        if resource_type not in RESOURCE_TYPES:
            raise UsageError(f"unknown claim type '{resource_type}'; valid: EVENT, WORKORDER")
        if not _ID_RE.match(resource_id):
            raise UsageError(f"'{resource_id}' is not a valid record id to claim")
        return self.store.runtime(CLAIMS_DIR) / f"{resource_type}-{resource_id}.yaml"

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        return read_record(self.path(resource_type, resource_id))

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
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": acquired or format_time(now),
            "released": released,
        }
        path = self.path(claim.resource_type, claim.resource_id)
        schema.check("claim_record", record, str(path))
        fsio.atomic_write(path, _dump(record))

    # ---- operations (each under the store lock) ------------------------------------
    def acquire(self, resource_type: str, resource_id: str) -> Claim | None:
        """Take the claim if it is free; ``None`` if someone else holds it."""
        with self.store.locked():
            record = self.read(resource_type, resource_id)
            now = self.clock()
            if record is not None and _status(record, now) == "held":
                return None
            version = 1 if record is None else int(record["claim_version"]) + 1
            claim = Claim(resource_type, resource_id, self.owner, version, now + self.lease_seconds)
            self._write(claim, now, acquired=None)
            return claim

    def _verify(self, claim: Claim, now: float) -> dict[str, Any]:
        record = self.read(claim.resource_type, claim.resource_id)
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


def _dump(record: dict[str, Any]) -> bytes:
    """Claim records are written as JSON (which is YAML): they are read and written
    under the store lock on every fenced write, so parsing must be fast."""
    return (json.dumps(record, indent=2) + "\n").encode("utf-8")


def read_record(path: Path) -> dict[str, Any] | None:
    """A validated claim record, or ``None`` when the file does not exist."""
    try:
        data = fsio.read_bytes(path, limit=MAX_CLAIM_BYTES)
    except FileNotFoundError:
        return None
    text = data.decode("utf-8", errors="replace")
    try:
        record = json.loads(text)
    except ValueError:
        record = yamlio.load_plain(text, path=str(path))
    schema.check("claim_record", record, str(path))
    assert isinstance(record, dict)
    return record


class Lease:
    """A held claim kept alive by a heartbeat thread (every third of the lease).

    ``check`` is the fence to pass to ``store.transaction(fence=...)``; it reads the
    current (possibly renewed) claim under the store lock. When a heartbeat finds the
    claim lost, the thread stops and every later ``check`` raises ``FencedError``.
    """

    def __init__(self, claims: Claims, claim: Claim):
        self.claims = claims
        self._claim = claim
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def claim(self) -> Claim:
        return self._claim

    @property
    def lost(self) -> str | None:
        return self._lost

    def check(self) -> None:
        with self.claims.store.locked():
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
        """Stop the heartbeat and release the claim if it is still ours."""
        self.stop()
        if self._lost is not None:
            return False
        return self.claims.release(self._claim)


def _all_records(store: Store) -> list[tuple[Path, dict[str, Any]]]:
    base = store.runtime_dir / CLAIMS_DIR
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        if name.startswith(".") or not name.endswith(".yaml"):
            continue
        with contextlib.suppress(Exception):
            record = read_record(base / name)
            if record is not None:
                out.append((base / name, record))
    return out


def list_claims(store: Store, *, now: float | None = None) -> list[ClaimInfo]:
    """Every readable claim record with its status (held, expired, dead-owner, released)."""
    at = time.time() if now is None else now
    return [ClaimInfo(p, r, _status(r, at)) for p, r in _all_records(store)]


def stale_claims(store: Store, *, now: float | None = None) -> list[ClaimInfo]:
    """Claims that are not released but may be taken over now (expired or dead owner)."""
    return [c for c in list_claims(store, now=now) if c.status in ("expired", "dead-owner")]


def held(store: Store, resource_type: str, resource_id: str, *, now: float | None = None) -> bool:
    """True when a live, unexpired owner holds the claim."""
    path = store.runtime_dir / CLAIMS_DIR / f"{resource_type}-{resource_id}.yaml"
    try:
        record = read_record(path)
    except Exception:
        return False
    at = time.time() if now is None else now
    return record is not None and _status(record, at) == "held"


def release_by_name(
    store: Store, name: str, *, force: bool = False, clock: Clock | None = None
) -> ClaimInfo:
    """Release a claim by file stem (``EVENT-ev-...``) or resource id, for
    ``yoi claims release``. A held claim needs ``force``. The version is kept."""
    matches = [(p, r) for p, r in _all_records(store) if name in (p.stem, str(r["resource_id"]))]
    if not matches:
        raise UsageError(f"no claim '{name}'", hint="`yoi claims list` shows them")
    path, record = matches[0]
    with store.locked():
        record = read_record(path) or record
        now = (clock or time.time)()
        status = _status(record, now)
        if status == "held" and not force:
            raise UsageError(
                f"claim '{path.stem}' is held by {record['owner_id']}",
                hint="wait for its lease to expire, or pass --force",
            )
        if status != "released":
            record = {
                **record,
                "released": True,
                "heartbeat_at": format_time(now),
                "lease_expires_at": format_time(
                    min(now, parse_time(str(record["lease_expires_at"])))
                ),
            }
            schema.check("claim_record", record, str(path))
            fsio.atomic_write(path, _dump(record))
        return ClaimInfo(path, record, "released")
