"""yoi.patching: header parsing on bytes, the path policy, preimages, change notes;
plus the hostile-patch table run against a real private worktree."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import commit_all, git, user_state, write_tree
from yoi.errors import PatchError
from yoi.git import Repo
from yoi.patching import (
    DEFAULT_PROTECTED,
    MAX_PATCH_BYTES,
    PatchFile,
    change_notes,
    check_patch,
    check_policy,
    check_tree_policy,
    parse_headers,
    path_problems,
    protected_match,
    quote_spaced_names,
    verify_preimages,
)

ZERO = "0" * 40


def git_bytes(cwd: Path, *args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=True).stdout


def new_file(path: str, body: bytes = b"x\n", mode: str = "100644", header: str = "") -> bytes:
    name = header or path
    lines = body.splitlines(keepends=True)
    hunk = b"".join(b"+" + line for line in lines)
    if not body.endswith(b"\n"):
        hunk += b"\n\\ No newline at end of file\n"
    return (
        f"diff --git a/{name} b/{name}\nnew file mode {mode}\n--- /dev/null\n+++ b/{name}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n"
    ).encode() + hunk


# -- parsing ---------------------------------------------------------------------------------


@pytest.fixture
def varied(repo: Path) -> tuple[Path, bytes]:
    """A real `git diff --binary -M` with every kind of header and awkward names."""
    write_tree(
        repo,
        {
            "keep.txt": "".join(f"line {i}\n" for i in range(20)),
            "gone.txt": "bye\n",
            "run.sh": "#!/bin/sh\n",
            "sig.txt": "-- sig\nbody\n",
            "img.bin": bytes(range(256)) * 4,
        },
    )
    commit_all(repo, "base")
    os.rename(repo / "keep.txt", repo / "kept.txt")
    (repo / "gone.txt").unlink()
    os.chmod(repo / "run.sh", 0o755)
    (repo / "sig.txt").write_bytes(b"++ plus\r\nbody\n")  # "-- " and "++ " lines in hunks
    (repo / "img.bin").write_bytes(bytes(range(256)) * 5)
    (repo / "ä.txt").write_text("umlaut\n")
    (repo / "with space.txt").write_text("space\n")
    (repo / "tab\tname.txt").write_text("tab\n")
    os.symlink("kept.txt", repo / "link")
    git(repo, "add", "-A")
    return repo, git_bytes(repo, "diff", "--cached", "--binary", "-M")


def test_parse_headers_matches_git_raw_output(varied: tuple[Path, bytes]) -> None:
    repo, patch = varied
    files = {f.new_path or f.old_path: f for f in parse_headers(patch)}
    raw = git_bytes(repo, "diff", "--cached", "-M", "--raw", "-z", "--abbrev=40").split(b"\0")
    expected = {}
    i = 0
    while i < len(raw) - 1:
        meta = raw[i].decode().lstrip(":").split()
        status = meta[4][0]
        paths = [raw[i + 1].decode()] + ([raw[i + 2].decode()] if status == "R" else [])
        i += 1 + len(paths)
        expected[paths[-1]] = (status, paths[0], int(meta[0], 8), int(meta[1], 8), meta[2])
    assert set(files) == set(expected)
    for path, (status, old, old_mode, new_mode, old_id) in expected.items():
        f = files[path]
        assert f.status == status, path
        assert (f.old_path if status != "A" else old) == old
        if f.status == "R" and f.old_id is None:  # 100% rename: no index/mode lines
            continue
        assert f.old_mode == (old_mode or None) and (f.new_mode or 0) == new_mode, path
        assert f.old_id is None or old_id.startswith(f.old_id), path
    assert files["img.bin"].binary and not files["sig.txt"].binary
    assert files["sig.txt"].old_id and files["img.bin"].old_id and files["gone.txt"].old_id
    assert files["ä.txt"].raw_paths[0] == "a/ä.txt"
    assert files["link"].new_mode == 0o120000
    assert files["kept.txt"].raw_paths == ("a/keep.txt", "b/kept.txt", "keep.txt", "kept.txt")


def test_parse_plain_unified_diff_and_crlf_patch() -> None:
    plain = b"--- a/x.txt\t2024-01-01\n+++ b/x.txt\t2024-01-02\n@@ -1 +1 @@\n-a\r\n+b\r\n"
    (f,) = parse_headers(b"some prose first\n---\n" + plain + b"trailing words\n")
    assert (f.status, f.old_path, f.new_path, f.raw_paths) == (
        "M",
        "x.txt",
        "x.txt",
        ("a/x.txt", "b/x.txt"),
    )
    whole_crlf = b"diff --git a/x b/x\r\n--- a/x\r\n+++ b/x\r\n@@ -1 +1 @@\r\n-a\r\n+b\r\n"
    (g,) = parse_headers(whole_crlf)
    violations = check_policy([g], base_entries=lambda p: None)
    assert any("control character" in v for v in violations)


def test_parse_unquoted_names_with_spaces_and_renames() -> None:
    patch = (
        b"diff --git a/my file.txt b/my file.txt\nold mode 100644\nnew mode 100755\n"
        b"diff --git a/old name b/new name\nsimilarity index 100%\n"
        b"rename from old name\nrename to new name\n"
        b'diff --git "a/\\303\\244\\tx" "b/\\303\\244\\tx"\ndeleted file mode 100644\n'
        b"index e69de29..0000000\n"
    )
    mode, rename, deleted = parse_headers(patch)
    assert (mode.status, mode.new_path, mode.old_mode, mode.new_mode) == (
        "M",
        "my file.txt",
        0o100644,
        0o100755,
    )
    assert (rename.status, rename.old_path, rename.new_path) == ("R", "old name", "new name")
    assert (deleted.status, deleted.old_path, deleted.new_path) == ("D", "ä\tx", None)
    assert deleted.old_id == "e69de29"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (b"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n", "truncated"),
        (b"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n-b\n+c\n", "more lines"),
        (b"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n?b\n", "unexpected"),
        (b"diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ bogus @@\n", "malformed hunk"),
        (b'diff --git "a/x\\q" "b/x"\n', "bad escape"),
        (b'diff --git "a/x b/x\n', "unterminated"),
        (b"diff --git a/x b/x\nnew file mode 100abc\n", "bad file mode"),
        (b"diff --git a/x b/x\nindex zzz..yyy\n", "malformed index"),
    ],
)
def test_malformed_headers_raise_patch_error(patch: bytes, message: str) -> None:
    with pytest.raises(PatchError, match=message):
        parse_headers(patch)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=400))
def test_parser_and_policy_only_raise_patch_error(noise: bytes, cut: int) -> None:
    seed = new_file("a/b.txt") + b"diff --git a/c b/c\nindex 1234567..89abcde 100644\n"
    patch = seed[:cut] + noise + seed[cut:]
    try:
        files = parse_headers(patch)
    except PatchError:
        return
    check_policy(files, base_entries=lambda p: None)
    verify_preimages(files, lambda p: None)


def test_quote_spaced_names_only_touches_ambiguous_git_lines() -> None:
    patch = new_file("new space.txt") + new_file("plain.txt") + b"+diff --git a/x y b/x y\n"
    quoted = quote_spaced_names(patch)
    assert b'diff --git "a/new space.txt" "b/new space.txt"\n' in quoted
    assert (
        quoted.replace(b'"a/new space.txt" "b/new space.txt"', b"a/new space.txt b/new space.txt")
        == patch
    )
    assert [f.new_path for f in parse_headers(quoted)] == ["new space.txt", "plain.txt"]
    assert quote_spaced_names(b"no diff here") == b"no diff here"


# -- policy units ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("src/ok.py", None),
        (".gitignore", None),
        ("docs/.yoi/example.md", None),
        ("a/.github.txt", None),
        ("../x", "'..'"),
        ("a/./b", "'.'"),
        ("/etc/passwd", "absolute"),
        ("a//b", "empty component"),
        ("a\\b", "backslash"),
        ("a\x00b", "control"),
        ("a\x1bb", "control"),
        ("bad\udcff", "UTF-8"),
        (".git/config", ".git component"),
        ("sub/.GIT/config", ".git component"),
        (".git./config", ".git component"),
        (".git /config", ".git component"),
        ("GIT~1/config", ".git component"),
        (".git::$INDEX_ALLOCATION/x", ".git component"),
        (".g\u200cit/config", ".git component"),
        (".yoi/tickets/x.md", ".yoi/"),
        (".YOI./x", ".yoi/"),
    ],
)
def test_path_problems(path: str, problem: str | None) -> None:
    found = path_problems(path)
    if problem is None:
        assert found == []
    else:
        assert any(problem in f for f in found), found


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        (".github/**", ".github/workflows/ci.yml", True),
        (".github/**", ".GitHub/workflows/ci.yml", True),
        (".github/**", "sub/.github/x", False),
        (".gitattributes", ".gitattributes", True),
        (".gitattributes", "src/.gitattributes", False),
        ("**/.gitattributes", "src/.gitattributes", True),
        ("**/.gitattributes", ".gitattributes", True),
        ("docs/*.md", "docs/a.md", True),
        ("docs/*.md", "docs/sub/a.md", False),
        ("docs/**/*.md", "docs/sub/deeper/a.md", True),
        ("vendor/", "vendor/lib/x.c", True),
        (".husky", ".husky/pre-commit", True),
        (".gitlab-ci.yml", ".gitlab-ci.yml.bak", False),
    ],
)
def test_protected_match(pattern: str, path: str, hit: bool) -> None:
    assert protected_match(pattern, path) is hit


def _pf(status: str, old: str | None, new: str | None, **kw: object) -> PatchFile:
    raw = tuple(p for p in (old, new) if p)
    return PatchFile(status, old, new, raw, **kw)  # type: ignore[arg-type]


def test_symlink_rules() -> None:
    base = {"link": 0o120000, "a.txt": 0o100644}.get
    edit_link = [_pf("M", "link", "link")]  # mode only in the base: still a symlink change
    assert any("symlink" in v for v in check_policy(edit_link, base_entries=base))
    assert check_policy(edit_link, base_entries=base, allow_symlinks=True) == []
    replace = [
        _pf("D", "link", None, old_mode=0o120000),
        _pf("A", None, "link/x", new_mode=0o100644),
    ]
    assert check_policy(replace, base_entries=base) == []
    through = [_pf("A", None, "link/x", new_mode=0o100644)]
    assert any(
        "existing symlink 'link'" in v
        for v in check_policy(through, base_entries=base, allow_symlinks=True)
    )
    control = [_pf("A", None, "sub/.GITATTRIBUTES", new_mode=0o120000)]
    assert any(
        "git control file" in v
        for v in check_policy(control, base_entries=base, allow_symlinks=True)
    )


def test_rename_away_from_a_protected_path_and_file_limit() -> None:
    moved = [_pf("R", ".github/workflows/ci.yml", "ci.yml")]
    assert any("protected" in v for v in check_policy(moved, base_entries=lambda p: None))
    many = [_pf("A", None, f"f{i}", new_mode=0o100644) for i in range(2001)]
    assert any("limit is 2000" in v for v in check_policy(many, base_entries=lambda p: None))


def test_verify_preimages() -> None:
    blobs = {"a.txt": "1234567" + "f" * 33, "b.txt": "abcdef0" + "0" * 33}.get
    ok = [_pf("M", "a.txt", "a.txt", old_id="1234567"), _pf("A", None, "new.txt", old_id="0000000")]
    assert verify_preimages(ok, blobs) == []
    bad = [
        _pf("M", "a.txt", "a.txt", old_id="7654321"),
        _pf("A", None, "b.txt"),
        _pf("D", "missing.txt", None),
        _pf("M", "b.txt", "b.txt", old_id="0000000"),
    ]
    found = verify_preimages(bad, blobs)
    assert len(found) == 4
    assert "expects 7654321, the base has 1234567" in found[0]
    assert "already exists" in found[1] and "not in the base" in found[2] and "is new" in found[3]


def test_check_tree_policy_looks_only_at_changes() -> None:
    base = [
        (".github/ci.yml", 0o100644, "1" * 40),
        ("a", 0o100644, "2" * 40),
        ("old", 0o120000, "3" * 40),
    ]
    same = check_tree_policy(base, base)
    assert same == []  # an unchanged protected file and symlink are fine
    result = [
        ("a", 0o100644, "2" * 40),
        ("old", 0o120000, "3" * 40),
        ("evil", 0o120000, "4" * 40),
        ("subm", 0o160000, "5" * 40),
        (".yoi/x", 0o100644, "6" * 40),
    ]
    found = check_tree_policy(result, base)
    assert any("'evil' would be a symlink" in v for v in found)
    assert any("submodule" in v for v in found)
    assert any(".yoi/" in v for v in found)
    assert any("'.github/ci.yml' is protected" in v for v in found)  # deleted
    assert check_tree_policy(result[:2], base, protected=()) == []


# -- hostile patches against a real worktree -------------------------------------------------


@pytest.fixture
def hostile(repo: Path, tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    write_tree(repo, {"a.txt": "one\ntwo\n", "sub/keep.txt": "k\n"})
    os.symlink(str(outside), repo / "outlink")
    os.symlink("../../outside", repo / "sub" / "rel")
    commit_all(repo, "base with links")
    return repo, outside


WRONG_PREIMAGE = (
    b"diff --git a/a.txt b/a.txt\nindex 1234567..89abcde 100644\n--- a/a.txt\n+++ b/a.txt\n"
    b"@@ -1,2 +1,2 @@\n one\n-two\n+2\n"
)
GITLINK = (
    f"diff --git a/subm b/subm\nnew file mode 160000\nindex 0000000..{'ab' * 20}\n"
    f"--- /dev/null\n+++ b/subm\n@@ -0,0 +1 @@\n+Subproject commit {'ab' * 20}\n"
).encode()
HOSTILE = {
    "dotdot": (new_file("../../escape"), "'..' or '.' component"),
    "sub_dotdot": (new_file("sub/../../x"), "'..' or '.' component"),
    "absolute": (
        b"diff --git /abs/escape /abs/escape\nnew file mode 100644\n--- /dev/null\n"
        b"+++ /abs/escape\n@@ -0,0 +1 @@\n+x\n",
        "absolute path '/abs/escape'",
    ),
    "abs_in_git_header": (new_file("/abs/escape"), "absolute path"),
    "hooks": (
        new_file(".git/hooks/post-commit", b"#!/bin/sh\ntouch /tmp/pwn\n", "100755"),
        ".git component",
    ),
    "upper_git": (new_file(".GIT/config"), ".git component"),
    "dot_git_dot": (new_file(".git./config"), ".git component"),
    "short_name": (new_file("git~1/config"), ".git component"),
    "store": (new_file(".yoi/tickets/open/x/ticket.md"), "inside .yoi/"),
    "workflow": (new_file(".github/workflows/x.yml"), "matches '.github/**'"),
    "gitlab": (new_file(".gitlab-ci.yml"), "matches '.gitlab-ci.yml'"),
    "gitmodules_link": (new_file(".gitmodules", b"/outside", "120000"), "git control file"),
    "symlink_out": (new_file("evil", b"/outside", "120000"), "would be a symlink"),
    "link_and_file": (
        new_file("evil", b"/outside", "120000") + new_file("evil/x"),
        "symlink created by the same patch",
    ),
    "through_abs_link": (new_file("outlink/x"), "existing symlink 'outlink'"),
    "through_rel_link": (new_file("sub/rel/x"), "existing symlink 'sub/rel'"),
    "gitlink": (GITLINK, "submodule"),
    "wrong_preimage": (WRONG_PREIMAGE, "preimage of 'a.txt' does not match"),
    "backslash": (new_file("a\\b"), "backslash"),
    "control": (
        b'diff --git "a/a\\tb" "b/a\\tb"\nnew file mode 100644\n--- /dev/null\n'
        b'+++ "b/a\\tb"\n@@ -0,0 +1 @@\n+x\n',
        "control character",
    ),
    "huge": (new_file("big.txt", b"x\n" * (MAX_PATCH_BYTES // 2 + 1)), "the limit is"),
}
TREE_FLAGGED = {"store", "workflow", "gitlab", "gitmodules_link", "symlink_out", "gitlink"}


def _hooks(repo: Path) -> str:
    digest = hashlib.sha256()
    for p in sorted((repo / ".git" / "hooks").iterdir()):
        digest.update(p.name.encode() + p.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_patch_is_refused_and_writes_nothing_outside(
    hostile: tuple[Path, Path], tmp_path: Path, case: str
) -> None:
    repo_path, outside = hostile
    patch, expected = HOSTILE[case]
    repo = Repo.open(repo_path)
    base = repo.resolve_commit("HEAD")
    modes = {p: m for p, m, _ in repo.tree_entries(base)}
    _, violations = check_patch(
        patch, base_entries=modes.get, base_blob=lambda p: repo.blob_id_for(base, p)
    )
    assert any(expected in v for v in violations), violations
    if case == "huge":
        return  # refused before parsing; never handed to libgit2
    before, hooks = user_state(repo_path), _hooks(repo_path)
    with repo.private_worktree(base, tmp_path / "wt", "yoi-hostile") as wt:
        try:
            tree = wt.apply_to_index(patch)
        except PatchError:
            tree = None
        if tree is not None and case in TREE_FLAGGED:
            result = repo.tree_entries(tree)
            assert check_tree_policy(result, repo.tree_entries(repo.tree_of(base))) != []
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "escape").exists() and not Path("/abs").exists()
    assert user_state(repo_path) == before and _hooks(repo_path) == hooks


# -- notes -------------------------------------------------------------------------------------


def test_change_notes_from_a_real_diff(varied: tuple[Path, bytes], tmp_path: Path) -> None:
    repo_path, patch = varied
    repo = Repo.open(repo_path)
    base = repo.resolve_commit("HEAD")
    with repo.private_worktree(base, tmp_path / "wt", "yoi-notes") as wt:
        tree = wt.apply_to_index(patch)
    notes = change_notes(repo.diff_trees(repo.tree_of(base), tree))
    assert notes == [
        "deleted gone.txt (-1)",
        "binary img.bin",
        "renamed keep.txt -> kept.txt",
        "added link (+1)",
        "mode 100644 -> 100755 run.sh",
        "modified sig.txt (+1 -1)",
        "added tab\tname.txt (+1)",
        "added with space.txt (+1)",
        "added ä.txt (+1)",
        "9 files changed, +5 -2",
    ]
    assert DEFAULT_PROTECTED[0] == ".yoi/**"
