"""pytest options of the reliability harness: ``--soak`` and ``--soak-seconds N``.

Options must be registered by a plugin or the root conftest, so ``tests/conftest.py``
loads this module (``pytest_plugins = ["tests.reliability.plugin"]``). Without it the
environment works too: ``YOI_SOAK=1`` and ``YOI_SOAK_SECONDS=N``.

Tests marked ``slow`` are skipped unless the soak profile is on; in it, every test's hang
limit grows by four soak budgets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

DEFAULT_SOAK_SECONDS = 600.0
_ENV_SOAK = os.environ.get("YOI_SOAK", "") not in ("", "0")
_ENV_SECONDS = os.environ.get("YOI_SOAK_SECONDS", "")


@dataclass(frozen=True)
class Profile:
    soak: bool
    seconds: float  # the soak budget (the quick profile ignores it)

    @property
    def name(self) -> str:
        return "soak" if self.soak else "quick"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("yoi reliability harness")
    group.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="run the soak profile: slow tests, longer concurrency and fuzzing runs",
    )
    group.addoption(
        "--soak-seconds",
        type=float,
        default=None,
        help=f"time budget of each soak run (default {DEFAULT_SOAK_SECONDS:.0f})",
    )


def profile(config: pytest.Config) -> Profile:
    soak = bool(config.getoption("--soak", default=False)) or _ENV_SOAK
    seconds = config.getoption("--soak-seconds", default=None)
    if seconds is None:
        seconds = float(_ENV_SECONDS) if _ENV_SECONDS else DEFAULT_SOAK_SECONDS
    return Profile(soak, float(seconds))


def skip_slow(config: pytest.Config, items: list[pytest.Item]) -> None:
    found = profile(config)
    if found.soak:
        _soak_timeouts(config, items, found.seconds)
        return
    skip = pytest.mark.skip(reason="slow: run with --soak (or YOI_SOAK=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _soak_timeouts(config: pytest.Config, items: list[pytest.Item], seconds: float) -> None:
    """In the soak profile a test may run for several soak budgets: its hang limit
    (pytest-timeout's ``timeout``, see pyproject.toml) grows by four of them."""
    if not config.pluginmanager.hasplugin("timeout"):
        return
    limit = float(config.getini("timeout") or 0)
    if limit > 0:
        for item in items:
            item.add_marker(pytest.mark.timeout(limit + 4 * seconds))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow(config, items)
