"""The patch-file runner on real files: exact bytes, containment in the repo root."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers import git
from yoi.errors import ConfigError
from yoi.runner.base import CandidateStatus, RunRequest
from yoi.runner.patchfile import PatchFileRunner
from yoi.runner.registry import make_runner

CRLF_DIFF = (
    b"diff --git a/README.md b/README.md\n"
    b"--- a/README.md\n"
    b"+++ b/README.md\n"
    b"@@ -1 +1 @@\n"
    b"-hello\n"
    b"+hello\r\n"
)


def _request(repo: Path, patch_file: str | None = None, budget_ms: int = 10_000) -> RunRequest:
    return RunRequest(
        run_id="run-1",
        ticket_slug="20261120-100000-crlf",
        ticket_title="CRLF",
        acceptance_criteria=("crlf kept",),
        prompt_text="",
        workorder_path=repo / "wo.yaml",
        snapshot_path=repo / "snap.yaml",
        worktree=repo,
        base_commit="0" * 40,
        budget_ms=budget_ms,
        deadline=time.monotonic() + budget_ms / 1000,
        scratch=repo.parent / "scratch",
        repo_root=repo,
        patch_file=patch_file,
        worktree_diff=lambda: b"",
    )


def test_ticket_patch_file_is_read_exactly(repo: Path) -> None:
    (repo / "patches").mkdir()
    (repo / "patches" / "fix.diff").write_bytes(CRLF_DIFF)
    cand = PatchFileRunner(name="replay").produce(_request(repo, "patches/fix.diff"))
    assert cand.status is CandidateStatus.COMPLETED, cand.notes
    assert cand.patch == CRLF_DIFF
    assert cand.origin == "file"
    git(repo, "apply", "--check", "patches/fix.diff")


def test_ticket_patch_file_wins_over_config_path(repo: Path) -> None:
    (repo / "a.diff").write_bytes(b"from ticket\n")
    (repo / "b.diff").write_bytes(b"from config\n")
    cand = PatchFileRunner(name="replay", path="b.diff").produce(_request(repo, "a.diff"))
    assert cand.patch == b"from ticket\n"
    cand = PatchFileRunner(name="replay", path="b.diff").produce(_request(repo))
    assert cand.patch == b"from config\n"


def test_absolute_path_inside_the_repo_is_allowed(repo: Path) -> None:
    (repo / "p.diff").write_bytes(CRLF_DIFF)
    cand = PatchFileRunner(name="replay").produce(_request(repo, str(repo / "p.diff")))
    assert cand.patch == CRLF_DIFF


def test_missing_file_is_a_runner_error(repo: Path) -> None:
    cand = PatchFileRunner(name="replay").produce(_request(repo, "nope.diff"))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "nope.diff" in cand.notes and "not found" in cand.notes


def test_no_path_anywhere_is_a_runner_error(repo: Path) -> None:
    cand = PatchFileRunner(name="replay").produce(_request(repo))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "patch_file" in cand.notes


@pytest.mark.parametrize("name", ["../outside.diff", "sub/../../outside.diff", "ABS"])
def test_paths_escaping_the_repo_are_refused(repo: Path, name: str) -> None:
    outside = repo.parent / "outside.diff"
    outside.write_bytes(CRLF_DIFF)
    (repo / "sub").mkdir()
    chosen = str(outside) if name == "ABS" else name
    cand = PatchFileRunner(name="replay").produce(_request(repo, chosen))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "outside the repository root" in cand.notes
    assert cand.patch == b""


def test_symlink_pointing_outside_is_refused(repo: Path) -> None:
    outside = repo.parent / "secret.diff"
    outside.write_bytes(b"secret\n")
    (repo / "link.diff").symlink_to(outside)
    (repo / "dirlink").symlink_to(repo.parent)
    for name in ("link.diff", "dirlink/secret.diff"):
        cand = PatchFileRunner(name="replay").produce(_request(repo, name))
        assert cand.status is CandidateStatus.RUNNER_ERROR, name
        assert "outside the repository root" in cand.notes


def test_symlink_inside_the_repo_is_followed(repo: Path) -> None:
    (repo / "real.diff").write_bytes(CRLF_DIFF)
    (repo / "alias.diff").symlink_to("real.diff")
    cand = PatchFileRunner(name="replay").produce(_request(repo, "alias.diff"))
    assert cand.patch == CRLF_DIFF


def test_directory_is_not_a_patch(repo: Path) -> None:
    cand = PatchFileRunner(name="replay").produce(_request(repo, "src"))
    assert cand.status is CandidateStatus.RUNNER_ERROR
    assert "not a regular file" in cand.notes


def test_exhausted_budget_reads_nothing(repo: Path) -> None:
    (repo / "p.diff").write_bytes(CRLF_DIFF)
    cand = PatchFileRunner(name="replay").produce(_request(repo, "p.diff", budget_ms=0))
    assert cand.status is CandidateStatus.BUDGET_EXHAUSTED
    assert cand.patch == b""


def test_empty_file_is_an_empty_completed_candidate(repo: Path) -> None:
    (repo / "empty.diff").write_bytes(b"")
    cand = PatchFileRunner(name="replay").produce(_request(repo, "empty.diff"))
    assert cand.status is CandidateStatus.COMPLETED
    assert cand.patch == b"" and "empty" in cand.notes


def test_registry_builds_a_patch_file_runner() -> None:
    runner = make_runner("replay", {"type": "patch-file", "path": "patches/fix.diff"})
    assert isinstance(runner, PatchFileRunner)
    assert runner.path == "patches/fix.diff" and runner.budget_ms is None
    with pytest.raises(ConfigError, match="path"):
        make_runner("replay", {"type": "patch-file", "path": 3})
