"""Store-wide consistency checks on loaded records: buckets, duplicate slugs, and every
reference between records (events, runs, pause states, ``last_run``).

Each check reads only what ``doctor_records.load`` parsed and runs in time linear in the
number of files. Plan-record checks (related tickets, self-relations, duplicates,
cycles) belong to ``plan_check``; ``yoi.doctor`` calls them.
"""

from __future__ import annotations

from typing import Any

from yoi import clock, events
from yoi.doctor_layout import PATCH_FILE, TICKET_FILE, TicketFiles
from yoi.doctor_records import PATCH_DIGEST, PATCH_EMPTY, Loaded
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


def _mismatch(path: str, key: str, what: str, actual: object, expected: object) -> Problem:
    return Problem(path, f"/{key}", f"{what} '{actual}' does not match '{expected}'")


def _event(loaded: Loaded, files: TicketFiles, stem: str, path: str) -> list[Problem]:
    rec = loaded.record(path)
    if rec is None:
        return []
    out = []
    if rec["event_id"] != stem:
        out.append(_mismatch(path, "event_id", "event_id", rec["event_id"], "the file name"))
    if rec["ticket"] != files.slug:
        out.append(_mismatch(path, "ticket", "ticket", rec["ticket"], files.slug))
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
            _mismatch(
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
        out.append(_mismatch(path, "pause_id", "pause_id", rec["pause_id"], "the file name"))
    if rec["ticket"] != files.slug:
        out.append(_mismatch(path, "ticket", "ticket", rec["ticket"], files.slug))
    run_id = rec.get("run_id")
    if run_id and run_id not in files.runs:
        out.append(Problem(path, "/run_id", f"run_id '{run_id}' names no run in {files.dir}/runs/"))
    return out


# ----------------------------------------------------------------------------- runs


def run_checks(loaded: Loaded, files: TicketFiles, run_id: str) -> list[Problem]:
    """A run directory: which files it must hold, and that its records agree."""
    rfiles = files.runs[run_id]
    run_dir = f"{files.dir}/runs/{run_id}"
    if "workorder.yaml" not in rfiles:
        return [Problem(run_dir, "", "run has no workorder.yaml (every run starts from one)")]
    wo = loaded.record(rfiles["workorder.yaml"])
    if wo is None:
        return []
    out = _workorder(files, rfiles, run_id, wo)
    required = ["context_snapshot.yaml"]
    if wo["status"] == "EXECUTED":
        required += ["output_bundle.yaml", "run_record.yaml"]
    for name in required:
        if name not in rfiles:
            out.append(
                Problem(
                    f"{run_dir}/{name}",
                    "",
                    f"missing: the workorder is {wo['status']}, so the run must have {name}",
                )
            )
    snap = loaded.record(rfiles.get("context_snapshot.yaml"))
    if snap is not None and snap["snapshot_id"] != wo["context_snapshot_id"]:
        out.append(
            _mismatch(
                rfiles["context_snapshot.yaml"],
                "snapshot_id",
                "snapshot_id",
                snap["snapshot_id"],
                wo["context_snapshot_id"],
            )
        )
    bundle = loaded.record(rfiles.get("output_bundle.yaml"))
    if bundle is not None:
        out.extend(_bundle(files, rfiles, wo, bundle))
    record = loaded.record(rfiles.get("run_record.yaml"))
    if record is not None:
        out.extend(_run_record(rfiles, run_id, wo, bundle, record))
    out.extend(_patch(loaded, rfiles, run_dir, bundle, record))
    return out


def _workorder(
    files: TicketFiles, rfiles: dict[str, str], run_id: str, wo: dict[str, Any]
) -> list[Problem]:
    path = rfiles["workorder.yaml"]
    out = []
    if wo["run_id"] != run_id:
        out.append(_mismatch(path, "run_id", "run_id", wo["run_id"], run_id))
    if wo["ticket"] != files.slug:
        out.append(_mismatch(path, "ticket", "ticket", wo["ticket"], files.slug))
    if wo["event_id"] not in files.records.get("events", {}):
        out.append(
            Problem(
                path, "/event_id", f"event '{wo['event_id']}' does not exist in {files.dir}/events/"
            )
        )
    return out


def _bundle(
    files: TicketFiles, rfiles: dict[str, str], wo: dict[str, Any], bundle: dict[str, Any]
) -> list[Problem]:
    path = rfiles["output_bundle.yaml"]
    out = []
    if bundle["work_order_id"] != wo["work_order_id"]:
        out.append(
            _mismatch(
                path, "work_order_id", "work_order_id", bundle["work_order_id"], wo["work_order_id"]
            )
        )
    if bundle["ticket"] != files.slug:
        out.append(_mismatch(path, "ticket", "ticket", bundle["ticket"], files.slug))
    return out


def _run_record(
    rfiles: dict[str, str],
    run_id: str,
    wo: dict[str, Any],
    bundle: dict[str, Any] | None,
    record: dict[str, Any],
) -> list[Problem]:
    path = rfiles["run_record.yaml"]
    out = []
    if record["run_id"] != run_id:
        out.append(_mismatch(path, "run_id", "run_id", record["run_id"], run_id))
    if record["work_order_id"] != wo["work_order_id"]:
        out.append(
            _mismatch(
                path, "work_order_id", "work_order_id", record["work_order_id"], wo["work_order_id"]
            )
        )
    if record["ticket"] != wo["ticket"]:
        out.append(_mismatch(path, "ticket", "ticket", record["ticket"], wo["ticket"]))
    if bundle is None and "output_bundle.yaml" not in rfiles:
        out.append(
            Problem(
                path,
                "/output_id",
                f"output '{record['output_id']}' does not exist: the run has no output_bundle.yaml",
            )
        )
    elif bundle is not None and record["output_id"] != bundle["output_id"]:
        out.append(
            _mismatch(path, "output_id", "output_id", record["output_id"], bundle["output_id"])
        )
    return out


def _patch(
    loaded: Loaded,
    rfiles: dict[str, str],
    run_dir: str,
    bundle: dict[str, Any] | None,
    record: dict[str, Any] | None,
) -> list[Problem]:
    """patch.diff exists exactly when the bundle holds a patch, and matches it and the
    run record's patch_sha256."""
    path = rfiles.get(PATCH_FILE, f"{run_dir}/{PATCH_FILE}")
    if path in loaded.unreadable:
        return []
    digest = loaded.patches.get(path)
    expected = None if bundle is None else bundle[PATCH_DIGEST]
    out = []
    if bundle is not None and expected is None:
        out.append(
            Problem(
                rfiles["output_bundle.yaml"],
                "/content",
                "content is not valid base64 (metadata.content_encoding)",
            )
        )
    if digest is None:
        if bundle is not None and not bundle[PATCH_EMPTY]:
            out.append(
                Problem(
                    path,
                    "",
                    "missing: the output bundle holds a patch, so the run must have patch.diff",
                )
            )
        elif record is not None and record.get("patch_sha256"):
            out.append(Problem(path, "", "missing: run_record.patch_sha256 names a patch"))
        return out
    if expected is not None and digest != expected:
        out.append(Problem(path, "", "patch.diff differs from the output bundle's content"))
    if record is not None and record.get("patch_sha256") not in (None, digest):
        out.append(
            Problem(
                rfiles["run_record.yaml"],
                "/patch_sha256",
                f"patch_sha256 does not match patch.diff (sha256 {digest})",
            )
        )
    return out
