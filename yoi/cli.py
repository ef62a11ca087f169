"""The click shell: parse options, call ``yoi.commands.<verb>`` with typed arguments,
print the returned ``Output``. The only module that imports click."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from yoi import __version__
from yoi.errors import ExitCode, YoiError
from yoi.output import Output

F = TypeVar("F", bound=Callable[..., Any])

STATES = ["planning", "ready", "queued", "inprogress", "done", "blocked", "all"]
BLOCKER_KINDS = [
    "USER_INPUT",
    "EXTERNAL_SYSTEM",
    "DEPENDENCY_CHANGE",
    "DESIGN_DECISION",
    "ENVIRONMENT_ACCESS",
]
PLAN_KINDS = [
    "before",
    "after",
    "depends_on",
    "blocks",
    "conflicts_with",
    "waiting",
    "planned",
    "accepted_plan",
]


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(f)


def emit(out: Output, as_json: bool) -> int:
    for warning in out.warnings:
        click.echo(f"yoi: warning: {warning}", err=True)
    if as_json:
        sys.stdout.write(out.json() + "\n")  # not click.echo: no ANSI scan of megabytes
        sys.stdout.flush()
    elif out.raw is not None:
        sys.stdout.flush()
        sys.stdout.buffer.write(out.raw)
        sys.stdout.buffer.flush()
    elif out.text:
        click.echo(out.text)
    return int(out.code)


def _store() -> Any:
    from yoi.store import Store

    return Store.discover()


def _read_text_arg(text: str | None, file: str | None, what: str) -> str | None:
    if text is not None and file is not None:
        raise click.UsageError(f"give --{what} or --{what}-file, not both")
    if file is None:
        return text
    if file == "-":
        return sys.stdin.read()
    try:
        return Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read {file}: {exc}") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="yoi")
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Run as if started in DIRECTORY.",
)
def cli(directory: str | None) -> None:
    """yoi: tickets that live in your git repository, and an engine that runs them."""
    if directory:
        os.chdir(directory)


@cli.command()
@json_option
def init(as_json: bool) -> int:
    """Create .yoi/ (config, tickets/open, tickets/done) and the .gitattributes entry."""
    from yoi.commands.init import init as run

    return emit(run(), as_json)


# ---- tickets -------------------------------------------------------------------------
def run_options(f: F) -> F:
    """The options that shape a ticket's runs (``ticket create`` and ``ticket edit``)."""
    for option in reversed(
        [
            click.option("--base-ref", default=None, help="The ref runs start from."),
            click.option("--runner", default=None, help="A runner name from config.yaml."),
            click.option(
                "--budget-ms",
                type=click.IntRange(1),
                default=None,
                help="Milliseconds a run may take (default: the runner's).",
            ),
            click.option(
                "--context-path",
                "context_paths",
                multiple=True,
                help="A repo path whose content goes into the run's context (repeatable).",
            ),
            click.option("--patch-file", default=None, help="For the patch-file runner."),
        ]
    ):
        f = option(f)
    return f


@cli.group()
def ticket() -> None:
    """Create, inspect and move tickets through their lifecycle."""


@ticket.command("create")
@click.argument("title")
@click.option("--ac", "ac", multiple=True, help="An acceptance criterion (repeatable).")
@click.option("--body", default=None, help="Markdown body.")
@click.option("--body-file", default=None, help="Read the body from a file ('-' = stdin).")
@click.option("--importance", type=click.IntRange(0, 4), default=2, show_default=True)
@click.option("--urgency", type=click.IntRange(0, 4), default=2, show_default=True)
@click.option("--label", "labels", multiple=True, help="A label (repeatable).")
@run_options
@json_option
def ticket_create(
    title: str,
    ac: tuple[str, ...],
    body: str | None,
    body_file: str | None,
    importance: int,
    urgency: int,
    labels: tuple[str, ...],
    base_ref: str | None,
    runner: str | None,
    budget_ms: int | None,
    context_paths: tuple[str, ...],
    patch_file: str | None,
    as_json: bool,
) -> int:
    """Create a ticket in planning."""
    from yoi.commands import ticket as cmd
    from yoi.tickets import NewTicket

    spec = NewTicket(
        title=title,
        acceptance_criteria=ac,
        body=_read_text_arg(body, body_file, "body") or "",
        importance=importance,
        urgency=urgency,
        labels=labels,
        base_ref=base_ref,
        runner=runner,
        budget_ms=budget_ms,
        context_paths=context_paths,
        patch_file=patch_file,
    )
    return emit(cmd.create(_store(), spec), as_json)


@ticket.command("list")
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(STATES),
    help="Only these states (repeatable; default: every state but done).",
)
@click.option("--label", default=None)
@click.option("--limit", type=click.IntRange(1), default=None)
@json_option
def ticket_list(
    states: tuple[str, ...], label: str | None, limit: int | None, as_json: bool
) -> int:
    """List tickets; invalid ticket files are listed separately."""
    from yoi.commands import ticket_list as cmd

    return emit(cmd.list_(_store(), states=states, label=label, limit=limit), as_json)


@ticket.command("show")
@click.argument("name")
@json_option
def ticket_show(name: str, as_json: bool) -> int:
    """Show a ticket with its thread, events, runs and latest pause state."""
    from yoi.commands import ticket as cmd

    return emit(cmd.show(_store(), name), as_json)


@ticket.command("edit")
@click.argument("name")
@click.option("--title", default=None)
@click.option("--ac-add", multiple=True, help="Add an acceptance criterion (repeatable).")
@click.option(
    "--ac-remove",
    multiple=True,
    type=click.IntRange(1),
    help="Remove criterion number N, counting from 1 (repeatable).",
)
@click.option("--body", default=None)
@click.option("--body-file", default=None)
@click.option("--importance", type=click.IntRange(0, 4), default=None)
@click.option("--urgency", type=click.IntRange(0, 4), default=None)
@click.option("--label-add", multiple=True)
@click.option("--label-remove", multiple=True)
@click.option("--assignee", default=None)
@run_options
@json_option
def ticket_edit(
    name: str,
    title: str | None,
    ac_add: tuple[str, ...],
    ac_remove: tuple[int, ...],
    body: str | None,
    body_file: str | None,
    importance: int | None,
    urgency: int | None,
    label_add: tuple[str, ...],
    label_remove: tuple[str, ...],
    assignee: str | None,
    base_ref: str | None,
    runner: str | None,
    budget_ms: int | None,
    context_paths: tuple[str, ...],
    patch_file: str | None,
    as_json: bool,
) -> int:
    """Edit a ticket's fields (the state changes only through lifecycle verbs)."""
    from yoi.commands import ticket as cmd
    from yoi.tickets import TicketEdit

    change = TicketEdit(
        title=title,
        ac_add=ac_add,
        ac_remove=ac_remove,
        body=_read_text_arg(body, body_file, "body"),
        importance=importance,
        urgency=urgency,
        labels_add=label_add,
        labels_remove=label_remove,
        assignee=assignee,
        base_ref=base_ref,
        runner=runner,
        budget_ms=budget_ms,
        context_paths_add=context_paths,
        patch_file=patch_file,
    )
    return emit(cmd.edit(_store(), name, change), as_json)


@ticket.command("comment")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(["comment", "decision", "plan", "review"]),
    default="comment",
    show_default=True,
)
@click.option("--message", "-m", default=None)
@click.option("--file", "file", default=None, help="Read the message from a file ('-' = stdin).")
@json_option
def ticket_comment(
    name: str, kind: str, message: str | None, file: str | None, as_json: bool
) -> int:
    """Append a comment, decision, plan or review to the ticket's thread."""
    from yoi.commands import ticket as cmd

    text = _read_text_arg(message, file, "message")
    if text is None:
        raise click.UsageError("give --message TEXT or --file F")
    return emit(cmd.comment(_store(), name, kind=kind, message=text), as_json)


def _lifecycle(action_name: str, help_text: str, *, by: bool = False, reason: bool = False) -> None:
    def callback(
        name: str, as_json: bool, by_name: str | None = None, reason_text: str | None = None
    ) -> int:
        from yoi.commands import ticket as cmd
        from yoi.lifecycle import Action

        return emit(
            cmd.act(_store(), name, Action(action_name), by=by_name, reason=reason_text or ""),
            as_json,
        )

    params: list[click.Parameter] = [click.Argument(["name"])]
    if by:
        params.append(
            click.Option(
                ["--by", "by_name"],
                default=None,
                help="Who queues (default: $YOI_AUTHOR or your login).",
            )
        )
    if reason:
        params.append(
            click.Option(
                ["--reason", "reason_text"], required=True, help="Why it goes back to planning."
            )
        )
    params.append(
        click.Option(["--json", "as_json"], is_flag=True, help="Print one JSON document.")
    )
    ticket.add_command(click.Command(action_name, callback=callback, params=params, help=help_text))


_lifecycle("ready", "planning -> ready (needs at least one acceptance criterion).")
_lifecycle("queue", "ready -> queued: the human Queue gate; emits TICKET_READY.", by=True)
_lifecycle("return", "ready, queued or blocked -> planning, with a reason.", reason=True)
_lifecycle("requeue", "blocked -> queued once blockers are resolved; emits TICKET_READY.", by=True)


@ticket.command("block")
@click.argument("name")
@click.option("--kind", type=click.Choice(BLOCKER_KINDS), required=True)
@click.option("--description", required=True)
@json_option
def ticket_block(name: str, kind: str, description: str, as_json: bool) -> int:
    """Add an unresolved blocker_ref."""
    from yoi.commands import ticket as cmd

    return emit(cmd.block(_store(), name, kind=kind, description=description), as_json)


@ticket.command("resolve")
@click.argument("name")
@click.argument("blocker_id")
@json_option
def ticket_resolve(name: str, blocker_id: str, as_json: bool) -> int:
    """Mark a blocker resolved."""
    from yoi.commands import ticket as cmd

    return emit(cmd.resolve(_store(), name, blocker_id), as_json)


# ---- plan and orchestration -------------------------------------------------------------
@cli.group()
def plan() -> None:
    """Orchestration plan records: ordering, dependencies, conflicts, waits."""


@plan.command("add")
@click.argument("name")
@click.option("--kind", type=click.Choice(PLAN_KINDS), required=True)
@click.option("--related", default=None, help="The other ticket.")
@click.option("--note", default=None)
@click.option("--summary", default=None, help="For accepted_plan.")
@click.option("--branch", default=None, help="For accepted_plan.")
@json_option
def plan_add(
    name: str,
    kind: str,
    related: str | None,
    note: str | None,
    summary: str | None,
    branch: str | None,
    as_json: bool,
) -> int:
    """Add a plan record to ticket NAME."""
    from yoi.commands import plan as cmd

    return emit(
        cmd.add(
            _store(), name, kind=kind, related=related, note=note, summary=summary, branch=branch
        ),
        as_json,
    )


@plan.command("list")
@click.argument("name", required=False)
@click.option("--kind", type=click.Choice(PLAN_KINDS), default=None)
@json_option
def plan_list(name: str | None, kind: str | None, as_json: bool) -> int:
    """List plan records, of one ticket (outgoing and incoming) or all."""
    from yoi.commands import plan as cmd

    return emit(cmd.list_(_store(), name=name, kind=kind), as_json)


@plan.command("rm")
@click.argument("record_id")
@json_option
def plan_rm(record_id: str, as_json: bool) -> int:
    """Remove a plan record."""
    from yoi.commands import plan as cmd

    return emit(cmd.rm(_store(), record_id), as_json)


@cli.group()
def orchestrate() -> None:
    """The work set and the kick rules."""


@orchestrate.command("status")
@json_option
def orchestrate_status(as_json: bool) -> int:
    """Work set, wait reasons, and whether a kick is due and why."""
    from yoi.commands import orchestrate as cmd

    return emit(cmd.status(_store()), as_json)


@orchestrate.command("kick")
@json_option
def orchestrate_kick(as_json: bool) -> int:
    """Apply the kick rules once."""
    from yoi.commands import orchestrate as cmd

    return emit(cmd.kick(_store()), as_json)


# ---- engine --------------------------------------------------------------------------
def remote_options(f: F) -> F:
    f = click.option(
        "--remote", default=None, metavar="NAME", help="Claim tickets on this shared git remote."
    )(f)
    f = click.option(
        "--push-branch", is_flag=True, help="With --remote: push the work branch after a run."
    )(f)
    return f


jobs_option = click.option(
    "--jobs",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Engine processes at once (at most engine.capacity).",
)


@cli.group()
def engine() -> None:
    """The control plane: turn TICKET_READY events into evaluated runs."""


@engine.command("tick")
@remote_options
@json_option
def engine_tick(remote: str | None, push_branch: bool, as_json: bool) -> int:
    """Process at most one event; prints the run_id or "idle"."""
    from yoi.commands import engine as cmd

    return emit(cmd.tick(_store(), remote=remote, push_branch=push_branch), as_json)


@engine.command("run")
@click.option(
    "--max", "max_ticks", type=click.IntRange(1), default=None, help="Stop after N ticks."
)
@click.option("--kick", is_flag=True, help="Apply the kick rules when idle.")
@jobs_option
@remote_options
@json_option
def engine_run(
    max_ticks: int | None,
    kick: bool,
    jobs: int,
    remote: str | None,
    push_branch: bool,
    as_json: bool,
) -> int:
    """Tick until idle."""
    from yoi.commands import engine as cmd

    out = cmd.run(
        _store(),
        max_ticks=max_ticks,
        kick=kick,
        remote=remote,
        push_branch=push_branch,
        jobs=jobs,
    )
    return emit(out, as_json)


@engine.command("watch")
@click.option("--interval", type=click.FloatRange(0.05), default=2.0, show_default=True)
@click.option("--kick/--no-kick", default=True, show_default=True)
@jobs_option
@remote_options
@json_option
def engine_watch(
    interval: float, kick: bool, jobs: int, remote: str | None, push_branch: bool, as_json: bool
) -> int:
    """Poll forever; SIGINT/SIGTERM finish the current step and release claims (a
    second Ctrl-C stops at once)."""
    from yoi.commands import engine as cmd

    out = cmd.watch(
        _store(), interval=interval, kick=kick, remote=remote, push_branch=push_branch, jobs=jobs
    )
    return emit(out, as_json)


@cli.group()
def events() -> None:
    """TICKET_READY events."""


@events.command("list")
@click.option("--pending", is_flag=True, help="Only unprocessed events.")
@json_option
def events_list(pending: bool, as_json: bool) -> int:
    """List events, oldest first."""
    from yoi.commands import events as cmd

    return emit(cmd.list_(_store(), pending=pending), as_json)


@cli.group()
def runs() -> None:
    """Run records."""


@runs.command("list")
@click.argument("name", required=False)
@json_option
def runs_list(name: str | None, as_json: bool) -> int:
    """List run records (of one ticket, or all)."""
    from yoi.commands import runs as cmd

    return emit(cmd.list_(_store(), name=name), as_json)


@runs.command("show")
@click.argument("run_id")
@click.option("--patch", is_flag=True, help="Print the normalized patch.")
@json_option
def runs_show(run_id: str, patch: bool, as_json: bool) -> int:
    """Show a run: record, gates, branch and commit, and optionally the patch."""
    from yoi.commands import runs as cmd

    return emit(cmd.show(_store(), run_id, patch=patch), as_json)


# ---- git integration -----------------------------------------------------------------
@cli.group()
def hooks() -> None:
    """Git hooks that emit TICKET_READY and validate commits."""


@hooks.command("install")
@json_option
def hooks_install(as_json: bool) -> int:
    """Install yoi's hooks (foreign hooks are kept and still run)."""
    from yoi.commands import hooks as cmd

    return emit(cmd.install(), as_json)


@hooks.command("uninstall")
@json_option
def hooks_uninstall(as_json: bool) -> int:
    """Remove yoi's hooks and restore foreign ones."""
    from yoi.commands import hooks as cmd

    return emit(cmd.uninstall(), as_json)


@hooks.command("status")
@json_option
def hooks_status(as_json: bool) -> int:
    """Show which hooks are installed."""
    from yoi.commands import hooks as cmd

    return emit(cmd.status(), as_json)


@cli.command("hook-impl", hidden=True)
@click.argument("hook_type")
@click.argument("args", nargs=-1)
def hook_impl(hook_type: str, args: tuple[str, ...]) -> int:
    """Run from the installed git hook scripts."""
    from yoi.commands import hooks as cmd

    return cmd.run_hook(hook_type, list(args))


@cli.command()
@click.option("--staged", is_flag=True, help="Check the staged versions of ticket files.")
@click.option(
    "--against",
    default=None,
    metavar="REF",
    help="Fail if history present at REF was edited or removed.",
)
@click.option("--fix", is_flag=True, help="Repair what is safely repairable.")
@json_option
def doctor(staged: bool, against: str | None, fix: bool, as_json: bool) -> int:
    """Check the store: schemas, buckets, duplicates, references, threads."""
    from yoi.commands import doctor as cmd

    return emit(cmd.doctor(staged=staged, against=against, fix=fix), as_json)


@cli.group()
def thread() -> None:
    """Thread entries for reviewers."""


@thread.command("decisions")
@click.argument("name", required=False)
@click.option("--since", default=None, metavar="REF", help="Only entries added since REF.")
@json_option
def thread_decisions(name: str | None, since: str | None, as_json: bool) -> int:
    """Decision entries (all, or those added since REF)."""
    from yoi.commands import thread as cmd

    return emit(cmd.decisions(_store(), name=name, since=since), as_json)


@cli.group()
def claims() -> None:
    """Local and shared-remote claims."""


@claims.command("list")
@click.option("--remote", default=None, metavar="NAME")
@json_option
def claims_list(remote: str | None, as_json: bool) -> int:
    """List claims."""
    from yoi.commands import claims as cmd

    return emit(cmd.list_(_store(), remote=remote), as_json)


@claims.command("stale")
@click.option("--remote", default=None, metavar="NAME")
@json_option
def claims_stale(remote: str | None, as_json: bool) -> int:
    """List expired claims (read-only)."""
    from yoi.commands import claims as cmd

    return emit(cmd.stale(_store(), remote=remote), as_json)


@claims.command("release")
@click.argument("name")
@click.option("--force", is_flag=True, help="Release a live claim.")
@click.option("--remote", default=None, metavar="NAME")
@json_option
def claims_release(name: str, force: bool, remote: str | None, as_json: bool) -> int:
    """Release a claim (a live one only with --force)."""
    from yoi.commands import claims as cmd

    return emit(cmd.release(_store(), name, force=force, remote=remote), as_json)


@cli.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to create the scratch repository (default: a new temp dir).",
)
@json_option
def demo(directory: str | None, as_json: bool) -> int:
    """A full lifecycle in a scratch repository."""
    from yoi.commands import demo as cmd

    return emit(cmd.demo(directory=Path(directory) if directory else None), as_json)


# ---- boundary ------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    try:
        rv = cli.main(
            args=list(argv) if argv is not None else None, prog_name="yoi", standalone_mode=False
        )
    except YoiError as exc:
        click.echo(f"yoi: error: {exc.render()}", err=True)
        if exc.hint:
            click.echo(f"hint: {exc.hint}", err=True)
        return int(exc.exit_code)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return int(ExitCode.USAGE if exc.exit_code == 2 else exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("yoi: interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception:
        import traceback

        traceback.print_exc()
        click.echo(
            "yoi: internal error (a bug in yoi; please report it with the traceback above)",
            err=True,
        )
        return int(ExitCode.INTERNAL)
    return int(rv) if isinstance(rv, int) else int(ExitCode.OK)
