"""`yoi claims list|stale|release`: local claims and (``--remote NAME``) the claims on a
shared git remote (SPEC §5, §7; protocol in docs/distributed.md).

``list`` and ``stale`` only read. ``release`` refuses a live claim unless ``force`` is
given, and says whose it is; it changes a remote claim only by compare-and-swap on the
commit it read, so a claim that moved meanwhile is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from yoi import claims as local
from yoi.errors import YoiError
from yoi.output import Output, table

if TYPE_CHECKING:
    from yoi.remote_claims import RemoteClaimer
    from yoi.remote_state import RemoteState
    from yoi.store import Store


class ClaimHeldError(YoiError):
    """``claims release`` of a live claim without ``--force`` (exit 1: refused)."""

    def __init__(self, what: str, record: dict[str, Any]):
        self.record = record
        super().__init__(
            f"{what} is held by {record.get('owner_id')} on host {record.get('host', '?')} "
            f"(pid {record.get('pid', '?')}) until {record.get('lease_expires_at')}",
            hint="wait for the lease to expire (`yoi claims stale`), or pass --force if that "
            "engine is gone",
        )


def _claimer(store: Store, remote: str) -> RemoteClaimer:
    from yoi.remote_claims import RemoteClaimer

    return RemoteClaimer.for_store(store, remote)


def _local_row(info: local.ClaimInfo) -> list[str]:
    r = info.record
    return [
        info.path.stem,
        info.status,
        str(r["owner_id"]),
        f"{r.get('host', '?')}:{r.get('pid', '?')}",
        f"v{r['claim_version']}",
        f"until {r['lease_expires_at']}",
    ]


def _remote_row(state: RemoteState) -> list[str]:
    r = state.record
    if r is None:
        return [state.slug, state.status.value, "-", "-", "-", state.problem or ""]
    return [
        state.slug,
        state.status.value,
        str(r["owner_id"]),
        f"{r.get('host', '?')}:{r.get('pid', '?')}",
        f"v{r['claim_version']} {r['resource_id']}",
        f"until {r['lease_expires_at']}",
    ]


def _render(
    heading: str,
    infos: Sequence[local.ClaimInfo],
    remote: str | None,
    states: Sequence[RemoteState],
) -> Output:
    lines = [f"{heading} (local):"]
    lines.append(table([_local_row(i) for i in infos]) if infos else "  none")
    data: dict[str, Any] = {"claims": [i.as_dict() for i in infos], "remote": None}
    if remote is not None:
        lines.append(f"{heading} on remote '{remote}':")
        lines.append(table([_remote_row(s) for s in states]) if states else "  none")
        data["remote"] = {"name": remote, "claims": [s.as_dict() for s in states]}
    return Output(data, "\n".join(lines))


def list_(store: Store, *, remote: str | None = None) -> Output:
    """Every local claim record and (with ``remote``) every claim ref on the remote."""
    infos = local.list_claims(store)
    states = _claimer(store, remote).list_states() if remote is not None else []
    return _render("claims", infos, remote, states)


def stale(store: Store, *, remote: str | None = None) -> Output:
    """Claims whose lease has passed (read-only): another engine may take them over."""
    from yoi.remote_state import Status

    infos = local.stale_claims(store)
    states: list[RemoteState] = []
    if remote is not None:
        states = [s for s in _claimer(store, remote).list_states() if s.status is Status.EXPIRED]
    return _render("stale claims", infos, remote, states)


def release(store: Store, name: str, *, force: bool = False, remote: str | None = None) -> Output:
    """Release one claim: a local one by record name or resource id, a remote one by
    ticket (slug, unique prefix or word suffix)."""
    if remote is not None:
        return _release_remote(store, name, force=force, remote=remote)
    for info in local.list_claims(store):
        if name in (info.path.stem, str(info.record["resource_id"])):
            if info.status == "held" and not force:
                raise ClaimHeldError(f"claim '{info.path.stem}'", info.record)
            break
    info = local.release_by_name(store, name, force=force)
    return Output(
        {"released": info.as_dict(), "remote": None},
        f"released {info.path.stem} (version {info.record['claim_version']})",
    )


def _remote_slug(store: Store, claimer: RemoteClaimer, name: str) -> str:
    """``name`` as a claimed slug: an exact claim on the remote, else a local ticket name."""
    from yoi.remote_git import ref_oid
    from yoi.remote_state import CLAIMS_PREFIX

    if ref_oid(claimer.root, claimer.remote, CLAIMS_PREFIX + name) is not None:
        return name
    return store.resolve(name)


def _release_remote(store: Store, name: str, *, force: bool, remote: str) -> Output:
    from yoi.remote_state import Status

    claimer = _claimer(store, remote)
    slug = _remote_slug(store, claimer, name)
    state = claimer.read(slug)
    if state.status is Status.ABSENT:
        raise YoiError(
            f"there is no claim on '{slug}' on remote '{remote}'",
            hint=f"`yoi claims list --remote {remote}` shows them",
        )
    if state.status is Status.RELEASED:
        return Output(
            {"released": state.as_dict(), "remote": remote},
            f"the claim on {slug} is already released",
        )
    if state.status is Status.HELD and not force:
        assert state.record is not None
        raise ClaimHeldError(f"the claim on '{slug}' (remote '{remote}')", state.record)
    if not claimer.force_release(state):
        raise YoiError(
            f"the claim on '{slug}' changed on remote '{remote}' while releasing it",
            hint=f"look again: `yoi claims list --remote {remote}`",
        )
    after = claimer.read(slug)
    return Output(
        {"released": state.as_dict(), "now": after.as_dict(), "remote": remote},
        f"released the claim on {slug} ({state.holder()})",
    )
