"""`yoi hooks install|uninstall|status` and the hidden `yoi hook-impl` git runs."""

from __future__ import annotations

import sys

from yoi import hooks
from yoi.errors import ExitCode, Problem
from yoi.output import Output


def install() -> Output:
    layout = hooks.layout_here()
    done = hooks.install(layout)
    directory = hooks.hooks_dir(layout)
    text = "\n".join(done) if done else f"yoi hooks are up to date in {directory}"
    return Output({"hooks_dir": str(directory), "changes": done}, text)


def uninstall() -> Output:
    layout = hooks.layout_here()
    done = hooks.uninstall(layout)
    directory = hooks.hooks_dir(layout)
    text = "\n".join(done) if done else f"no yoi hooks in {directory}"
    return Output({"hooks_dir": str(directory), "changes": done}, text)


def status() -> Output:
    directory, infos, hooks_path = hooks.status(hooks.layout_here())
    lines = [f"hooks dir: {directory}"]
    lines.extend(
        f"  {i.hook_type:<14} {i.state.value}"
        + ("  (chains the previous hook, kept as .legacy)" if i.legacy else "")
        for i in infos
    )
    warnings = []
    if hooks_path is not None:
        warnings.append(
            f"core.hooksPath is set to '{hooks_path}': git does not run the hooks in this directory"
        )
    data = {
        "hooks_dir": str(directory),
        "hooks_path": hooks_path,
        "hooks": [i.as_dict() for i in infos],
        "installed": all(i.state is hooks.HookState.INSTALLED for i in infos),
    }
    return Output(data, "\n".join(lines), warnings=warnings)


def _warn(message: str) -> None:
    print(f"yoi: warning: {message}", file=sys.stderr)


def _pre_commit() -> int:
    from yoi import doctor
    from yoi.doctor_git import index_file_from_env
    from yoi.output import problems_text
    from yoi.store import Store

    try:
        store = Store.discover()
    except Exception:  # no store here (or not discoverable): nothing to check
        return int(ExitCode.OK)
    report = doctor.check(store, staged=True, index_file=index_file_from_env())
    if not report.problems:
        return int(ExitCode.OK)
    errors = [p for p in report.problems if p.severity == "error"]
    print(problems_text(report.problems), file=sys.stderr)
    if not errors:
        return int(ExitCode.OK)
    print(
        f"yoi: commit blocked: {_count(errors)} in the staged files under .yoi/\n"
        "hint: fix the files and `git add` them again (`yoi doctor --staged` re-checks; "
        "`git commit --no-verify` skips the check)",
        file=sys.stderr,
    )
    return int(ExitCode.FAILED)


def _count(errors: list[Problem]) -> str:
    return f"{len(errors)} error{'s' if len(errors) != 1 else ''}"


def run_hook(hook_type: str, args: list[str]) -> int:
    """What an installed hook runs. Never fails a git operation because of yoi: only a
    pre-commit that finds invalid staged files returns 1."""
    try:
        if hook_type == "pre-commit":
            return _pre_commit()
        if hook_type not in hooks.POST_HOOKS:
            _warn(f"unknown hook type '{hook_type}'; nothing to do")
            return int(ExitCode.OK)
        stdin = sys.stdin.read() if hook_type == "post-rewrite" else ""
        for slug in hooks.post_hook(hook_type, args, stdin):
            print(f"yoi: TICKET_READY emitted for {slug} ({hook_type})", file=sys.stderr)
    except Exception as exc:  # a hook must never break git
        _warn(f"the {hook_type} hook failed and was skipped: {exc}")
    return int(ExitCode.OK)
