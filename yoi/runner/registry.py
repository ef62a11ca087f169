"""Build a runner from one ``runners:`` entry of ``.yoi/config.yaml``.

The entry has normally been validated against the config schema already; the checks here
are repeated so a bad entry is a ``ConfigError`` naming the key, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from yoi.errors import ConfigError

if TYPE_CHECKING:
    from yoi.runner.base import Runner
    from yoi.runner.command import CommandRunner
    from yoi.runner.openai import OpenAIRunner

# Each runner's module is imported when a runner of its type is made: the OpenAI one
# brings urllib, http.client and email (~15 ms), which a patch-file or command run
# never needs.

RUNNER_TYPES = ("command", "openai", "patch-file")
_KEYS = {
    "command": {"type", "command", "budget_ms", "env", "pass_env", "max_output_bytes"},
    "openai": {
        "type",
        "base_url",
        "model",
        "api_key_env",
        "timeout_s",
        "budget_ms",
        "max_retries",
        "temperature",
        "system_prompt",
    },
    "patch-file": {"type", "path", "budget_ms"},
}


class _Entry:
    """Typed access to one runner entry; every problem is a ConfigError naming the key."""

    def __init__(self, name: str, config: Mapping[str, Any]):
        self.name = name
        self.config = config

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(
            f"runner {self.name!r}: {key} {message}",
            where=f".yoi/config.yaml: runners.{self.name}.{key}",
            hint=f"runner types and their keys are: {', '.join(RUNNER_TYPES)} "
            "(see docs/runners.md)",
        )

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self.config.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(key, "must be a non-empty string")
        return value

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        value = self.config.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (low <= value <= high)
        ):
            raise self.fail(key, f"must be a number from {low:g} to {high:g}")
        return float(value)

    def integer(self, key: str, default: int | None, *, low: int, high: int = 2**62) -> int | None:
        value = self.config.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"must be an integer from {low} to {high}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.config.get(key, [])
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "must be a list of strings")
        return tuple(value)

    def string_map(self, key: str) -> dict[str, str]:
        value = self.config.get(key, {})
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.fail(key, "must be a mapping of strings to strings")
        return dict(value)


def make_runner(name: str, config: Mapping[str, Any]) -> Runner:
    """The runner described by ``config`` (one ``runners:`` entry) under ``name``."""
    entry = _Entry(name, config)
    kind = config.get("type")
    if kind not in _KEYS:
        raise entry.fail("type", f"must be one of {', '.join(RUNNER_TYPES)} (got {kind!r})")
    unknown = sorted(str(k) for k in config if k not in _KEYS[kind])
    if unknown:
        raise entry.fail(
            unknown[0], f"is not a {kind} runner key (allowed: {', '.join(sorted(_KEYS[kind]))})"
        )
    if kind == "command":
        return _command(entry)
    if kind == "openai":
        return _openai(entry)
    from yoi.runner.patchfile import PatchFileRunner

    return PatchFileRunner(name=name, path=entry.text("path"), budget_ms=_budget(entry))


def _budget(entry: _Entry) -> int | None:
    return entry.integer("budget_ms", None, low=1)


def _command(entry: _Entry) -> CommandRunner:
    from yoi.runner.command import DEFAULT_MAX_OUTPUT, CommandRunner

    command = entry.strings("command")
    if not command or not command[0]:
        raise entry.fail("command", "must be a non-empty list of strings (argv, no shell)")
    return CommandRunner(
        name=entry.name,
        command=command,
        env=entry.string_map("env"),
        pass_env=entry.strings("pass_env"),
        max_output_bytes=entry.integer("max_output_bytes", DEFAULT_MAX_OUTPUT, low=1024)
        or DEFAULT_MAX_OUTPUT,
        budget_ms=_budget(entry),
    )


def _openai(entry: _Entry) -> OpenAIRunner:
    from urllib.parse import urlsplit

    from yoi.runner.openai import DEFAULT_SYSTEM_PROMPT, OpenAIRunner

    base_url = entry.text("base_url", required=True) or ""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise entry.fail("base_url", "must be an http:// or https:// URL")
    return OpenAIRunner(
        name=entry.name,
        base_url=base_url,
        model=entry.text("model", required=True) or "",
        api_key_env=entry.text("api_key_env"),
        timeout_s=entry.number("timeout_s", 120.0, low=0.001, high=86400.0),
        budget_ms=_budget(entry),
        max_retries=entry.integer("max_retries", 3, low=0, high=10) or 0,
        temperature=entry.number("temperature", 0.0, low=0.0, high=2.0),
        system_prompt=entry.text("system_prompt") or DEFAULT_SYSTEM_PROMPT,
    )
