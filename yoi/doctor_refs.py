"""Store-wide consistency checks on loaded records: buckets, duplicate slugs, and every
reference between records (events, pause states, ``last_run``; runs in ``doctor_runs``).

Each check reads only what ``doctor_records.load`` parsed and runs in time linear in the
number of files. Plan-record checks (related tickets, self-relations, duplicates,
cycles) belong to ``plan_check``; ``yoi.doctor`` calls them.
"""

from __future__ import annotations

from typing import Any

from yoi import clock, events
from yoi.doctor_layout import TICKET_FILE, TicketFiles
from yoi.doctor_records import Loaded
from yoi.doctor_runs import mismatch, run_checks
from yoi.errors import Problem
from yoi.model import State


def duplicate_slugs(loaded: Loaded, slugs: set[str] | None = None) -> list[Problem]:
    """A slug in both open/ and done/ (two branches moved or edited one ticket)."""
    out = []
    for slug, copies in sorted(loaded.view.by_slug().items()):
        if len(copies) < 2 or (slugs is not None and slug not in slugs):
            continue
        fronts = [(c, loaded.record(c.top.get(TICKET_FILE)) or {}) for c in copies]
        keep = max(fronts, key=lambda cf: str(cf[1].get("updated_at", "")))[0]
        other = next(c for c in copies if c is not keep)
        described = ", ".join(
            f"tickets/{c.bucket}/ (state {f.get('state', '?')}, updated {f.get('updated_at', '?')})"
            for c, f in fronts
        )
        out.append(
            Problem(
                other.dir,
                "",
                f"ticket '{slug}' exists twice: {described}, typically after a merge. Keep "
                f"{keep.dir} (updated last): copy any thread entries only the other copy has "
                f"into its thread.md, then `git rm -r {other.dir}`",
            )
        )
    return out


def ticket_checks(loaded: Loaded, files: TicketFiles) -> list[Problem]:
    """Every bucket and reference problem of one ticket directory."""
    out: list[Problem] = []
    front = loaded.record(files.top.get(TICKET_FILE))
    if front is not None:
        out.extend(_bucket(files, front))
        last_run = front.get("last_run")
        if last_run and last_run not in files.runs:
            out.append(
                Problem(
                    files.file(TICKET_FILE),
                    "/last_run",
                    f"last_run '{last_run}' names no run in {files.dir}/runs/",
                )
            )
    for stem, path in sorted(files.records.get("events", {}).items()):
        out.extend(_event(loaded, files, stem, path))
    for stem, path in sorted(files.records.get("pause_states", {}).items()):
        out.extend(_pause(loaded, files, stem, path))
    for run_id in sorted(files.runs):
        out.extend(run_checks(loaded, files, run_id))
    return out


def bucket_of(front: dict[str, Any]) -> str | None:
    """The bucket a ticket's state belongs in (None for an unknown state)."""
    states = {s.value: s for s in State}
    state = states.get(str(front.get("state")))
    return None if state is None else state.bucket


def _bucket(files: TicketFiles, front: dict[str, Any]) -> list[Problem]:
    want = bucket_of(front)
    if want is None or want == files.bucket:
        return []
    return [
        Problem(
            files.file(TICKET_FILE),
            "/state",
            f"ticket is in state {front['state']} but stored in tickets/{files.bucket}/; "
            f"it belongs in tickets/{want}/ (`yoi doctor --fix` moves it)",
        )
    ]


def _event(loaded: Loaded, files: TicketFiles, stem: str, path: str) -> list[Problem]:
    rec = loaded.record(path)
    if rec is None:
        return []
    out = []
    if rec["event_id"] != stem:
        out.append(mismatch(path, "event_id", "event_id", rec["event_id"], "the file name"))
    if rec["ticket"] != files.slug:
        out.append(mismatch(path, "ticket", "ticket", rec["ticket"], files.slug))
    expected = _event_id_for(str(rec["dedup_key"]), str(rec["ticket"]))
    if expected is None:
        out.append(
            Problem(
                path,
                "/dedup_key",
                f"dedup_key must be TICKET_READY:{rec['ticket']}:<queued_at timestamp>",
            )
        )
    elif expected != rec["event_id"]:
        out.append(
            mismatch(
                path,
                "event_id",
                "event_id",
                rec["event_id"],
                f"{expected}, the id derived from the dedup_key",
            )
        )
    run_id = rec.get("run_id")
    if run_id and run_id not in files.runs:
        out.append(Problem(path, "/run_id", f"run_id '{run_id}' names no run in {files.dir}/runs/"))
    return out


def _event_id_for(dedup_key: str, slug: str) -> str | None:
    prefix = f"TICKET_READY:{slug}:"
    if not dedup_key.startswith(prefix):
        return None
    queued_at = dedup_key[len(prefix) :]
    try:
        clock.parse_ts(queued_at)
    except ValueError:
        return None
    return events.event_id(slug, queued_at)


def _pause(loaded: Loaded, files: TicketFiles, stem: str, path: str) -> list[Problem]:
    rec = loaded.record(path)
    if rec is None:
        return []
    out = []
    if rec["pause_id"] != stem:
        out.append(mismatch(path, "pause_id", "pause_id", rec["pause_id"], "the file name"))
    if rec["ticket"] != files.slug:
        out.append(mismatch(path, "ticket", "ticket", rec["ticket"], files.slug))
    run_id = rec.get("run_id")
    if run_id and run_id not in files.runs:
        out.append(Problem(path, "/run_id", f"run_id '{run_id}' names no run in {files.dir}/runs/"))
    return out
