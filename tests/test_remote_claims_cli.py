"""`yoi claims list|stale|release`, local and --remote, called directly and through the
real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_yoi
from tests.helpers import commit_all, git
from tests.test_remote_claims_support import SLUG, bare_remote, claimer, clone, later, remote_ref
from yoi.claims import Claims
from yoi.commands import claims as cmd
from yoi.commands.claims import ClaimHeldError
from yoi.errors import ExitCode
from yoi.remote_claims import RemoteClaimer
from yoi.remote_lease import push_work_branch
from yoi.store import Store


@pytest.fixture
def team(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    """A bare remote whose main has a yoi store, and two clones (cwd: the first)."""
    from yoi.commands.init import init

    remote = bare_remote(tmp_path)
    seed = clone(remote, tmp_path / "seed")
    init(path=seed)
    commit_all(seed, "yoi init")
    git(seed, "push", "-q", "origin", "HEAD:main")
    a, b = clone(remote, tmp_path / "a"), clone(remote, tmp_path / "b")
    monkeypatch.chdir(a)
    return remote, a, b


def test_list_shows_remote_claims_with_their_holder(team: tuple[Path, Path, Path]) -> None:
    _remote, a, b = team
    held = claimer(b, owner="engine-on-b").acquire(SLUG, "ev-1")
    assert held is not None
    out = cmd.list_(Store.discover(a), remote="origin")
    remote_claims = out.data["remote"]["claims"]
    assert [c["ticket"] for c in remote_claims] == [SLUG]
    assert remote_claims[0]["status"] == "held" and remote_claims[0]["oid"] == held.oid
    assert remote_claims[0]["record"]["owner_id"] == "engine-on-b"
    assert "engine-on-b" in out.text and SLUG in out.text
    assert cmd.list_(Store.discover(a)).data["remote"] is None


def test_stale_lists_only_expired_remote_claims(team: tuple[Path, Path, Path]) -> None:
    _remote, a, b = team
    assert claimer(b).acquire(SLUG, "ev-1") is not None
    assert claimer(b, clock=later(-3600)).acquire("20260101-000000-old", "ev-2") is not None
    out = cmd.stale(Store.discover(a), remote="origin")
    assert [c["ticket"] for c in out.data["remote"]["claims"]] == ["20260101-000000-old"]
    assert out.data["remote"]["claims"][0]["status"] == "expired"


def test_release_refuses_a_live_remote_claim_and_says_whose_it_is(
    team: tuple[Path, Path, Path],
) -> None:
    remote, a, b = team
    held = claimer(b, owner="engine-on-b").acquire(SLUG, "ev-1")
    assert held is not None
    with pytest.raises(ClaimHeldError) as caught:
        cmd.release(Store.discover(a), SLUG, remote="origin")
    message = caught.value.render()
    for part in ("engine-on-b", "host", "pid", "until"):
        assert part in message
    assert caught.value.exit_code == ExitCode.FAILED
    assert remote_ref(remote) == held.oid
    out = cmd.release(Store.discover(a), SLUG, force=True, remote="origin")
    assert "released" in out.text and remote_ref(remote) is None


def test_release_of_an_expired_remote_claim_needs_no_force(team: tuple[Path, Path, Path]) -> None:
    remote, a, b = team
    assert claimer(b, clock=later(-3600)).acquire(SLUG, "ev-1") is not None
    cmd.release(Store.discover(a), SLUG, remote="origin")
    assert remote_ref(remote) is None


def test_release_refuses_a_live_local_claim_unless_forced(team: tuple[Path, Path, Path]) -> None:
    _remote, a, _b = team
    store = Store.discover(a)
    claim = Claims(store, owner="local-engine").acquire("EVENT", "ev-20260101000000-abc")
    assert claim is not None
    with pytest.raises(ClaimHeldError, match=r"local-engine.*pid"):
        cmd.release(store, claim.name)
    out = cmd.release(store, claim.name, force=True)
    assert out.data["released"]["released"] is True


def test_cli_lists_remote_claims_as_json(team: tuple[Path, Path, Path]) -> None:
    _remote, a, b = team
    assert claimer(b, owner="engine-on-b").acquire(SLUG, "ev-1") is not None
    done = run_yoi("claims", "list", "--remote", "origin", "--json", cwd=a, check=True)
    data = json.loads(done.stdout)
    assert data["schema_version"] == 1
    assert data["remote"]["claims"][0]["record"]["owner_id"] == "engine-on-b"
    refused = run_yoi("claims", "release", SLUG, "--remote", "origin", cwd=a)
    assert refused.returncode == 1
    assert "engine-on-b" in refused.stderr and "hint:" in refused.stderr


def test_cli_reports_an_unreachable_remote_without_a_traceback(
    team: tuple[Path, Path, Path],
) -> None:
    _remote, a, _b = team
    done = run_yoi("claims", "list", "--remote", str(a.parent / "nowhere.git"), cwd=a)
    assert done.returncode == 1
    assert "yoi: error:" in done.stderr and "Traceback" not in done.stderr


def test_push_work_branch_creates_it_when_it_was_absent_at_claim_time(
    team: tuple[Path, Path, Path],
) -> None:
    remote, a, _b = team
    store = Store.discover(a)
    claimer_a = RemoteClaimer.for_store(store, "origin", push_branch=True)
    assert claimer_a.acquire(SLUG, "ev-1") is not None
    git(a, "branch", f"yoi/{SLUG}")
    warnings: list[str] = []
    pushed = push_work_branch(claimer_a, store, SLUG, warn=warnings.append)
    assert warnings == []
    assert pushed == git(remote, "rev-parse", f"refs/heads/yoi/{SLUG}").strip()


def test_push_work_branch_never_overwrites_a_branch_that_moved_during_the_run(
    team: tuple[Path, Path, Path],
) -> None:
    remote, a, b = team
    store = Store.discover(a)
    claimer_a = RemoteClaimer.for_store(store, "origin", push_branch=True)
    assert claimer_a.acquire(SLUG, "ev-1") is not None
    git(b, "commit", "-q", "--allow-empty", "-m", "a teammate's work")
    git(b, "push", "-q", "origin", f"HEAD:refs/heads/yoi/{SLUG}")  # pushed during our run
    theirs = git(remote, "rev-parse", f"refs/heads/yoi/{SLUG}").strip()
    git(a, "branch", f"yoi/{SLUG}")
    warnings: list[str] = []
    assert push_work_branch(claimer_a, store, SLUG, warn=warnings.append) is None
    assert len(warnings) == 1 and "moved" in warnings[0]
    assert git(remote, "rev-parse", f"refs/heads/yoi/{SLUG}").strip() == theirs
