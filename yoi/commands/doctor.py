"""`yoi doctor [--staged] [--against REF] [--fix]`."""

from __future__ import annotations

from yoi import doctor as checks
from yoi import doctor_history
from yoi.doctor_git import index_file_from_env
from yoi.errors import ExitCode, UsageError
from yoi.output import Output, problems_text
from yoi.store import Store


def doctor(*, staged: bool, against: str | None, fix: bool) -> Output:
    if fix and staged:
        raise UsageError("--fix repairs the working tree; it cannot be combined with --staged")
    store = Store.discover()
    index_file = index_file_from_env() if staged else None
    fixed = checks.fix(store) if fix else []
    report = checks.check(store, staged=staged, index_file=index_file)
    problems = list(report.problems)
    if against is not None:
        problems.extend(
            doctor_history.against(store, against, staged=staged, index_file=index_file)
        )
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    data = {"ok": errors == 0, "problems": [p.as_dict() for p in problems], "fixed": fixed}
    lines = [f"fixed: {line}" for line in fixed]
    if problems:
        lines.append(problems_text(problems))
    where = "staged files" if staged else f"{report.tickets} tickets"
    summary = (
        f"{errors} error{'s' if errors != 1 else ''}, "
        f"{warnings} warning{'s' if warnings != 1 else ''}"
        if problems
        else "no problems"
    )
    suffix = f" (history checked against {against})" if against else ""
    lines.append(f"yoi doctor: {summary} in {where}{suffix}")
    return Output(data, "\n".join(lines), code=ExitCode.FAILED if errors else ExitCode.OK)
