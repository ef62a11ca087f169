"""Hermetic test environment and real-repository fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import git, init_repo

pytest_plugins = ["tests.reliability.plugin"]

ROOT = Path(__file__).resolve().parents[1]

_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Ada Tester",
    "GIT_AUTHOR_EMAIL": "ada@example.invalid",
    "GIT_COMMITTER_NAME": "Ada Tester",
    "GIT_COMMITTER_EMAIL": "ada@example.invalid",
    "GIT_EDITOR": "false",
    "GIT_TERMINAL_PROMPT": "0",
    "YOI_AUTHOR": "ada",
}


@pytest.fixture(autouse=True)
def hermetic(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for key, value in _ENV.items():
        monkeypatch.setenv(key, value)
    # Subprocesses (`python -m yoi`, hooks, engines) import this checkout.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    for key in list(os.environ):
        if key.startswith("GIT_") and key not in _ENV:
            monkeypatch.delenv(key)
        if key.startswith("YOI_") and key not in _ENV:
            monkeypatch.delenv(key)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository (branch main) with one commit and no .yoi/ store."""
    return init_repo(tmp_path / "repo")


@pytest.fixture
def store_repo(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real repository with `yoi init` done and committed; cwd is its root."""
    monkeypatch.chdir(repo)
    from yoi.commands.init import init

    init(path=repo)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "yoi init")
    yield repo


def run_yoi(
    *args: str, cwd: Path, env: dict[str, str] | None = None, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (`python -m yoi ...`)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "yoi", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"yoi {args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc
