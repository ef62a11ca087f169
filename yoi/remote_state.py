"""What a claim ref on a shared remote holds, and what that means at a given time.

A claim ref ``refs/yoi/claims/<slug>`` points at a *claim commit* whose tree holds:

- ``claim.yaml``: a claim_record (resource_type EVENT, resource_id = the event id,
  owner_id, lease_expires_at, heartbeat_at, claim_version, host, pid, acquired_at,
  released);
- ``done.yaml`` (optional): ``events: [event ids]``, the events of this ticket whose
  run finished under a claim on this ref. It is carried forward by every later claim
  commit, so a machine whose store has not received those records yet still knows
  the events ran and never runs them again.

Status at local time ``now`` (``margin`` covers clock skew between machines):
``held`` until ``lease_expires_at + margin``, then ``expired``; ``released`` once the
holder let go (a tombstone that keeps ``done.yaml``); ``invalid`` when the commit does
not hold a valid record; ``absent`` when there is no ref.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from yoi import claims, schema, yamlio
from yoi.errors import YoiError

CLAIMS_PREFIX = "refs/yoi/claims/"
MIRROR_PREFIX = "refs/yoi/remote-claims/"
CLAIM_FILE = "claim.yaml"
DONE_FILE = "done.yaml"
MAX_DONE = 200  # event ids remembered per ticket
MAX_FILE_BYTES = 64 * 1024


class Status(Enum):
    ABSENT = "absent"
    HELD = "held"
    EXPIRED = "expired"
    RELEASED = "released"
    INVALID = "invalid"


@dataclass(frozen=True, slots=True)
class RemoteState:
    """One claim ref as read from the remote."""

    slug: str
    oid: str | None
    status: Status
    record: dict[str, Any] | None = None
    done: tuple[str, ...] = ()
    problem: str | None = None

    @property
    def ref(self) -> str:
        return CLAIMS_PREFIX + self.slug

    @property
    def version(self) -> int:
        return int(self.record["claim_version"]) if self.record else 0

    def free_for(self, event_id: str) -> bool:
        """May a new claim for ``event_id`` replace this state (by CAS)?"""
        if event_id in self.done:
            return False
        return self.status in (Status.ABSENT, Status.EXPIRED, Status.RELEASED)

    def holder(self) -> str:
        """``owner X on host H (pid P), lease until T`` for messages."""
        r = self.record
        if r is None:
            return self.problem or self.status.value
        return (
            f"owner {r['owner_id']} on host {r.get('host', '?')} (pid {r.get('pid', '?')}), "
            f"event {r['resource_id']}, version {r['claim_version']}, "
            f"lease until {r['lease_expires_at']}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "ticket": self.slug,
            "ref": self.ref,
            "oid": self.oid,
            "status": self.status.value,
            "record": self.record,
            "done_events": list(self.done),
            "problem": self.problem,
        }


def status_at(record: dict[str, Any], now: float, margin: float) -> Status:
    if record.get("released"):
        return Status.RELEASED
    if claims.parse_time(str(record["lease_expires_at"])) + margin <= now:
        return Status.EXPIRED
    return Status.HELD


def parse_state(
    slug: str, oid: str, files: dict[str, bytes | None], now: float, margin: float
) -> RemoteState:
    """The state of a claim commit from its ``claim.yaml`` and ``done.yaml`` bytes."""
    where = f"{CLAIMS_PREFIX}{slug}@{oid[:12]}"
    try:
        raw = files.get(CLAIM_FILE)
        if raw is None:
            raise YoiError(f"{where} has no {CLAIM_FILE}")
        record = _load(raw, f"{where}:{CLAIM_FILE}")
        schema.check("claim_record", record, f"{where}:{CLAIM_FILE}")
        done = _done_events(files.get(DONE_FILE), f"{where}:{DONE_FILE}")
        status = status_at(record, now, margin)
    except (YoiError, ValueError) as exc:
        text = exc.render() if isinstance(exc, YoiError) else str(exc)
        return RemoteState(slug, oid, Status.INVALID, problem=text)
    return RemoteState(slug, oid, status, record, done)


def _load(raw: bytes, where: str) -> Any:
    if len(raw) > MAX_FILE_BYTES:
        raise YoiError(f"{where} is larger than {MAX_FILE_BYTES} bytes")
    return yamlio.load_plain(raw.decode("utf-8", errors="replace"), path=where)


def _done_events(raw: bytes | None, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    data = _load(raw, where)
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
        raise YoiError(f"{where}: `events` must be a list of event ids")
    return tuple(events)


def claim_files(record: dict[str, Any], done: tuple[str, ...]) -> dict[str, bytes]:
    """The tree of a claim commit (the record is validated first)."""
    schema.check("claim_record", record, CLAIM_FILE)
    files = {CLAIM_FILE: yamlio.dump(record).encode("utf-8")}
    if done:
        files[DONE_FILE] = yamlio.dump({"events": list(done[-MAX_DONE:])}).encode("utf-8")
    return files
