"""Fixtures of the reliability harness. The options live in ``plugin.py`` (a conftest
below the root cannot register them); when the root conftest does not load the plugin,
the slow-test skipping is done here for the whole session."""

from __future__ import annotations

import pytest

from tests.reliability import plugin


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("tests.reliability.plugin"):
        plugin.skip_slow(config, items)


@pytest.fixture(scope="session")
def profile(pytestconfig: pytest.Config) -> plugin.Profile:
    return plugin.profile(pytestconfig)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.reliability.figures import summary_lines

    lines = summary_lines()
    if lines:
        terminalreporter.section("yoi reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
