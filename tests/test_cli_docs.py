"""docs/cli.md's command reference is generated from the CLI itself, so it cannot drift.

Regenerate with:  REGEN_DOCS=1 python -m pytest tests/test_cli_docs.py
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from yoi.cli import cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
BEGIN = "<!-- generated: command reference -->"
END = "<!-- end generated -->"


def _walk(cmd: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    out = [] if getattr(cmd, "hidden", False) else [(path, cmd)]
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            out.extend(_walk(cmd.commands[name], [*path, name]))
    return out


def reference() -> str:
    parts = []
    for path, cmd in _walk(cli, ["yoi"]):
        if isinstance(cmd, click.Group) and len(path) > 1:
            continue
        ctx = click.Context(
            cmd,
            info_name=" ".join(path),
            terminal_width=100,
            max_content_width=100,
            help_option_names=["-h", "--help"],  # as cli's context_settings say
        )
        help_text = cmd.get_help(ctx)
        help_text = re.sub(r"^Usage: ", "", help_text)
        parts.append(f"### `{' '.join(path)}`\n\n```\n{help_text}\n```\n")
    return "\n".join(parts)


def test_cli_reference_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    expected = f"{head}{BEGIN}\n\n{reference()}\n{END}{tail}"
    if os.environ.get("REGEN_DOCS"):
        DOC.write_text(expected, encoding="utf-8")
    assert text == expected, "docs/cli.md is stale: run REGEN_DOCS=1 pytest tests/test_cli_docs.py"


def test_every_spec_command_exists() -> None:
    names = {" ".join(p) for p, _ in _walk(cli, ["yoi"])}
    for cmd in [
        "init",
        "ticket create",
        "ticket list",
        "ticket show",
        "ticket edit",
        "ticket comment",
        "ticket ready",
        "ticket queue",
        "ticket return",
        "ticket requeue",
        "ticket block",
        "ticket resolve",
        "plan add",
        "plan list",
        "plan rm",
        "orchestrate status",
        "orchestrate kick",
        "engine tick",
        "engine run",
        "engine watch",
        "events list",
        "runs list",
        "runs show",
        "hooks install",
        "hooks uninstall",
        "hooks status",
        "doctor",
        "thread decisions",
        "claims list",
        "claims stale",
        "claims release",
        "demo",
    ]:
        assert f"yoi {cmd}" in names, cmd
