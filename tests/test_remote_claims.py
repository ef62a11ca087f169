"""Remote claims against a real bare repository: create-if-absent, CAS renew and
release, fencing, expired takeover, done tombstones, rejecting and unreachable remotes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers import commit_all, git, write_tree
from tests.test_remote_claims_support import (
    SLUG,
    claim_yaml,
    claimer,
    later,
    machines,
    reject_all,
    reject_deletes,
    remote_ref,
)
from yoi import remote_git
from yoi.errors import FencedError, GitError
from yoi.remote_claims import RemoteError
from yoi.remote_lease import RemoteLease
from yoi.remote_state import Status
from yoi.yamlio import load_plain


def test_first_claim_creates_the_ref_and_the_second_claimer_loses(tmp_path: Path) -> None:
    remote, (a, b) = machines(tmp_path, 2)
    won = claimer(a, owner="engine-a").acquire(SLUG, "ev-1")
    assert won is not None and won.claim_version == 1
    assert remote_ref(remote) == won.oid
    record = load_plain(claim_yaml(remote), path="claim.yaml")
    assert record["owner_id"] == "engine-a"
    assert record["resource_type"] == "EVENT" and record["resource_id"] == "ev-1"
    assert record["claim_version"] == 1 and record["released"] is False
    other = claimer(b, owner="engine-b")
    assert other.acquire(SLUG, "ev-1") is None
    assert other.last_state is not None and other.last_state.status is Status.HELD
    assert "engine-a" in other.last_state.holder()
    assert remote_ref(remote) == won.oid


def test_claim_commits_are_unique_per_claimant(tmp_path: Path) -> None:
    remote, (a,) = machines(tmp_path, 1)
    one = claimer(a, owner="same")
    first = one.acquire(SLUG, "ev-1")
    assert first is not None and one.release(first, done=False)
    again = one.acquire(SLUG, "ev-1")
    assert again is not None and again.oid != first.oid
    message = git(remote, "log", "-1", "--format=%B", again.oid)
    assert "owner: same" in message and "nonce: " in message


def test_renew_moves_the_ref_by_cas_and_bumps_the_version(tmp_path: Path) -> None:
    remote, (a,) = machines(tmp_path, 1)
    c = claimer(a)
    held = c.acquire(SLUG, "ev-1")
    assert held is not None
    renewed = c.renew(held)
    assert renewed.claim_version == 2 and renewed.oid != held.oid
    assert renewed.lease_expires_at >= held.lease_expires_at
    assert remote_ref(remote) == renewed.oid
    assert git(remote, "rev-parse", f"{renewed.oid}^").strip() == held.oid
    c.check(renewed)
    with pytest.raises(FencedError, match="now belongs to"):
        c.check(held)  # the old token no longer matches the ref


def test_expired_claim_is_taken_over_and_the_old_holder_is_fenced(tmp_path: Path) -> None:
    remote, (a, b) = machines(tmp_path, 2)
    old = claimer(a, owner="old")
    held = old.acquire(SLUG, "ev-1")
    assert held is not None
    assert claimer(b, clock=later(3)).acquire(SLUG, "ev-1") is None  # within lease + margin
    taker = claimer(b, owner="new", clock=later(60))
    taken = taker.acquire(SLUG, "ev-1")
    assert taken is not None and taken.claim_version == held.claim_version + 1
    assert remote_ref(remote) == taken.oid
    with pytest.raises(FencedError, match="owner new"):
        old.check(held)
    with pytest.raises(FencedError):
        old.renew(held)
    assert old.release(held, done=True) is False
    assert remote_ref(remote) == taken.oid  # the fenced holder changed nothing


def test_holder_fences_itself_a_margin_before_its_lease_ends(tmp_path: Path) -> None:
    _remote, (a,) = machines(tmp_path, 1)
    held = claimer(a, lease=6).acquire(SLUG, "ev-1")
    assert held is not None
    claimer(a, lease=6).check(held)
    late = claimer(a, lease=6, clock=later(6 - 0.3))  # margin is 0.6 s for a 6 s lease
    with pytest.raises(FencedError, match="expired"):
        late.check(held)


def test_done_release_keeps_a_tombstone_so_the_event_never_runs_twice(tmp_path: Path) -> None:
    remote, (a, b) = machines(tmp_path, 2)
    held = claimer(a).acquire(SLUG, "ev-1")
    assert held is not None and claimer(a).release(held, done=True)
    record = load_plain(claim_yaml(remote), path="claim.yaml")
    assert record["released"] is True
    late = claimer(b, clock=later(3600))
    assert late.acquire(SLUG, "ev-1") is None
    assert late.last_state is not None and late.last_state.done == ("ev-1",)
    requeued = late.acquire(SLUG, "ev-2")  # a new event of the same ticket may run
    assert requeued is not None and requeued.claim_version == held.claim_version + 1
    assert requeued.done == ("ev-1",)
    assert late.release(requeued, done=False)  # not done: the history is kept anyway
    assert git(remote, "show", f"refs/yoi/claims/{SLUG}:done.yaml").split() == [
        "events:",
        "-",
        "ev-1",
    ]
    assert claimer(b).acquire(SLUG, "ev-2") is not None


def test_release_without_history_deletes_the_ref_by_cas(tmp_path: Path) -> None:
    remote, (a,) = machines(tmp_path, 1)
    c = claimer(a)
    held = c.acquire(SLUG, "ev-1")
    assert held is not None
    assert c.release(held, done=False) is True
    assert remote_ref(remote) is None
    assert c.release(held, done=False) is False  # no longer ours: nothing happens


def test_a_remote_that_rejects_every_push_is_never_mistaken_for_success(tmp_path: Path) -> None:
    remote, (a,) = machines(tmp_path, 1)
    reject_all(remote)
    with pytest.raises(RemoteError, match=r"refused.*pushes are closed"):
        claimer(a).acquire(SLUG, "ev-1")
    assert remote_ref(remote) is None
    outcome = remote_git.push_cas(a, "origin", f"refs/yoi/claims/{SLUG}", _head(a), None)
    assert not outcome.ok and outcome.status is not None and outcome.status.flag == "!"


def test_a_remote_that_rejects_deletes_reports_the_release_as_failed(tmp_path: Path) -> None:
    remote, (a,) = machines(tmp_path, 1)
    c = claimer(a)
    held = c.acquire(SLUG, "ev-1")
    assert held is not None
    reject_deletes(remote)
    with pytest.raises(RemoteError, match="no deletes"):
        c.release(held, done=False)
    warnings: list[str] = []
    lease = RemoteLease(c, held, warn=warnings.append)
    assert lease.release(done=False) is False
    assert warnings and "could not release" in warnings[0]
    assert remote_ref(remote) == held.oid


def test_unreachable_remote_raises_but_a_live_lease_still_passes_the_fence(
    tmp_path: Path,
) -> None:
    remote, (a,) = machines(tmp_path, 1)
    c = claimer(a)
    held = c.acquire(SLUG, "ev-1")
    assert held is not None
    remote.rename(tmp_path / "gone.git")
    with pytest.raises(RemoteError, match="origin"):
        claimer(a).acquire(SLUG, "ev-2")
    with pytest.raises(RemoteError):
        c.renew(held)
    c.check(held)  # nobody may take it before the lease ends
    with pytest.raises(FencedError, match="expired"):
        claimer(a, clock=later(10)).check(held)


def test_file_url_and_plain_path_remotes_work(tmp_path: Path) -> None:
    remote, (a, b) = machines(tmp_path, 2)
    by_url = claimer(a, remote=remote.as_uri())
    held = by_url.acquire(SLUG, "ev-1")
    assert held is not None and remote_ref(remote) == held.oid
    assert claimer(b, remote=str(remote)).acquire(SLUG, "ev-1") is None
    assert by_url.release(held, done=False)
    states = claimer(b, remote=str(remote)).list_states()
    assert states == []


def test_remote_that_looks_like_an_option_is_refused(tmp_path: Path) -> None:
    _remote, (a,) = machines(tmp_path, 1)
    with pytest.raises(GitError, match="invalid remote"):
        claimer(a, remote="--upload-pack=touch /tmp/x")


def test_garbage_on_a_claim_ref_is_invalid_never_free(tmp_path: Path) -> None:
    remote, (a,) = machines(tmp_path, 1)
    git(a, "push", "-q", "origin", f"HEAD:refs/yoi/claims/{SLUG}")  # a commit without claim.yaml
    c = claimer(a)
    assert c.acquire(SLUG, "ev-1") is None
    state = c.last_state
    assert state is not None and state.status is Status.INVALID
    assert "claim.yaml" in (state.problem or "")
    assert c.force_release(state) is True
    assert remote_ref(remote) is None


def test_list_states_mirrors_the_claims_under_a_private_namespace(tmp_path: Path) -> None:
    _remote, (a, b) = machines(tmp_path, 2)
    held = claimer(a).acquire(SLUG, "ev-1")
    other = claimer(a).acquire("20260101-000000-other", "ev-9")
    assert held is not None and other is not None
    states = {s.slug: s for s in claimer(b).list_states()}
    assert set(states) == {SLUG, "20260101-000000-other"}
    assert states[SLUG].status is Status.HELD and states[SLUG].oid == held.oid
    mirrored = git(
        b, "for-each-ref", "--format=%(refname) %(objectname)", "refs/yoi/remote-claims/"
    )
    assert f"refs/yoi/remote-claims/origin/{SLUG} {held.oid}" in mirrored


def test_pre_push_hooks_of_the_user_never_run(tmp_path: Path) -> None:
    _remote, (a,) = machines(tmp_path, 1)
    sentinel = tmp_path / "hook-ran"
    hook = a / ".git" / "hooks" / "pre-push"
    hook.write_text(f"#!/bin/sh\ntouch {sentinel}\nexit 1\n")
    hook.chmod(0o755)
    assert claimer(a).acquire(SLUG, "ev-1") is not None
    assert not sentinel.exists()


def test_heartbeat_renews_past_the_first_lease(tmp_path: Path) -> None:
    remote, (a,) = machines(tmp_path, 1)
    c = claimer(a, lease=3)
    held = c.acquire(SLUG, "ev-1")
    assert held is not None
    lease = RemoteLease(c, held, warn=lambda _line: None).start(interval=0.3)
    try:
        time.sleep(held.lease_expires_at - time.time() + 0.2)
        lease.check()  # still ours, well past the first lease
        assert lease.claim.claim_version > held.claim_version
        assert remote_ref(remote) == lease.claim.oid
    finally:
        assert lease.release(done=True)
    assert load_plain(claim_yaml(remote), path="claim.yaml")["released"] is True


def test_heartbeat_that_finds_the_claim_taken_marks_the_lease_lost(tmp_path: Path) -> None:
    _remote, (a, b) = machines(tmp_path, 2)
    c = claimer(a, lease=3)
    held = c.acquire(SLUG, "ev-1")
    assert held is not None
    assert claimer(b, clock=later(60)).acquire(SLUG, "ev-1") is not None
    lease = RemoteLease(c, held, warn=lambda _line: None).start(interval=0.1)
    deadline = time.time() + 5
    while lease.lost is None and time.time() < deadline:
        time.sleep(0.05)
    assert lease.lost is not None
    with pytest.raises(FencedError):
        lease.check()
    assert lease.release(done=True) is False


def test_push_branch_is_cas_from_what_was_seen(tmp_path: Path) -> None:
    remote, (a, b) = machines(tmp_path, 2)
    branch = f"yoi/{SLUG}"
    git(a, "branch", branch)
    c = claimer(a)
    c.note_branch(SLUG, branch)
    pushed = c.push_branch(SLUG, branch)
    assert git(remote, "rev-parse", f"refs/heads/{branch}").strip() == pushed
    git(b, "fetch", "-q", "origin", branch)
    git(b, "checkout", "-q", "-b", branch, "FETCH_HEAD")
    write_tree(b, {"other.txt": "someone else\n"})
    moved = commit_all(b, "someone pushed meanwhile")
    git(b, "push", "-q", "origin", branch)
    write_tree(a, {"mine.txt": "mine\n"})
    git(a, "checkout", "-q", branch)
    commit_all(a, "the engine's result")
    with pytest.raises(RemoteError, match="moved"):
        c.push_branch(SLUG, branch)
    assert git(remote, "rev-parse", f"refs/heads/{branch}").strip() == moved


def test_porcelain_parsing_reads_each_ref_line() -> None:
    text = (
        "To ../remote.git\n"
        "*\t6aec:refs/yoi/claims/t\t[new reference]\n"
        "!\t835e:refs/yoi/claims/u\t[rejected] (stale info)\n"
        "-\t:refs/yoi/claims/v\t[deleted]\n"
        "Done\n"
    )
    lines = remote_git.parse_porcelain(text)
    assert [(s.flag, s.ref, s.ok) for s in lines] == [
        ("*", "refs/yoi/claims/t", True),
        ("!", "refs/yoi/claims/u", False),
        ("-", "refs/yoi/claims/v", True),
    ]
    assert lines[1].summary == "[rejected] (stale info)"


def _head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()
