"""Checks of one run directory: which files it must hold once its workorder is
CREATED or EXECUTED, that its records name each other, and that patch.diff matches the
output bundle's content and the run record's ``patch_sha256``."""

from __future__ import annotations

from typing import Any

from yoi.doctor_layout import PATCH_FILE, TicketFiles
from yoi.doctor_records import PATCH_DIGEST, PATCH_EMPTY, Loaded
from yoi.errors import Problem


def mismatch(path: str, key: str, what: str, actual: object, expected: object) -> Problem:
    return Problem(path, f"/{key}", f"{what} '{actual}' does not match '{expected}'")


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
            mismatch(
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
        out.append(mismatch(path, "run_id", "run_id", wo["run_id"], run_id))
    if wo["ticket"] != files.slug:
        out.append(mismatch(path, "ticket", "ticket", wo["ticket"], files.slug))
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
            mismatch(
                path, "work_order_id", "work_order_id", bundle["work_order_id"], wo["work_order_id"]
            )
        )
    if bundle["ticket"] != files.slug:
        out.append(mismatch(path, "ticket", "ticket", bundle["ticket"], files.slug))
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
        out.append(mismatch(path, "run_id", "run_id", record["run_id"], run_id))
    if record["work_order_id"] != wo["work_order_id"]:
        out.append(
            mismatch(
                path, "work_order_id", "work_order_id", record["work_order_id"], wo["work_order_id"]
            )
        )
    if record["ticket"] != wo["ticket"]:
        out.append(mismatch(path, "ticket", "ticket", record["ticket"], wo["ticket"]))
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
            mismatch(path, "output_id", "output_id", record["output_id"], bundle["output_id"])
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
