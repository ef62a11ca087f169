"""Candidate patches as BYTES: header parsing, the path policy, preimage checks, notes.

Nothing here decodes a whole patch as text: CRLF inside hunks and binary payloads are
skipped over as bytes, and only header paths are decoded (UTF-8, undecodable bytes kept
as surrogates so the policy can name them). No pygit2 here; ``yoi.git`` produces the
``NormalizedDiff`` that ``change_notes`` summarizes.

Protected-path patterns (``protected_paths`` in config) are matched case-insensitively
against the path and each of its parent directories, anchored at the repository root:
``**`` matches any number of directories, ``*``/``?``/``[...]`` match within one
component. ``.github/**`` covers everything under ``.github/``; a bare name such as
``.gitattributes`` matches that file at the root only (use ``**/.gitattributes`` for
every directory) -- unlike gitignore, where a bare name matches at any depth.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from yoi.errors import PatchError

MAX_PATCH_BYTES = 8 * 1024 * 1024
MAX_PATCH_FILES = 2000
DEFAULT_PROTECTED: tuple[str, ...] = (
    ".yoi/**",
    ".github/**",
    ".gitlab-ci.yml",
    ".gitattributes",
    ".gitmodules",
    ".pre-commit-config.yaml",
    ".husky/**",
)
LINK_MODE = 0o120000
GITLINK_MODE = 0o160000
_KNOWN_MODES = frozenset({0o100644, 0o100755, LINK_MODE, GITLINK_MODE})
_IGNORABLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")
_SHORT_NAME = re.compile(r"(git|yoi|gitmod)~\d+")
_GIT_CONTROL_FILES = frozenset({".gitmodules", ".gitattributes", ".gitignore", ".mailmap"})
_HUNK = re.compile(rb"@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
_INDEX = re.compile(rb"index ([0-9a-fA-F]{4,64})\.\.([0-9a-fA-F]{4,64})(?: ([0-7]{6}))?")
_ESCAPES = {b"a": 7, b"b": 8, b"t": 9, b"n": 10, b"v": 11, b"f": 12, b"r": 13}


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file of a normalized diff. ``old_path`` is None for 'A', ``new_path`` for 'D'."""

    status: str  # 'A' | 'M' | 'D' | 'R' | 'T'
    old_path: str | None
    new_path: str | None
    additions: int
    deletions: int
    binary: bool
    old_mode: int | None
    new_mode: int | None

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""


@dataclass(frozen=True, slots=True)
class NormalizedDiff:
    """Base tree -> new tree, rendered independently of any user config.

    ``identity`` is a sha256 over both tree ids and the text diff without binary payloads
    (compressed payloads differ between git implementations; the tree ids cover them).
    """

    base_tree: str
    new_tree: str
    patch: bytes
    files: tuple[FileChange, ...]
    identity: str

    @property
    def additions(self) -> int:
        return sum(f.additions for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deletions for f in self.files)


@dataclass(frozen=True, slots=True)
class PatchFile:
    """The headers of one file in a raw patch. Paths have their a/ b/ prefix removed;
    ``raw_paths`` holds every header path as written (unquoted, prefix kept)."""

    status: str  # 'A' | 'D' | 'M' | 'R' | 'C'
    old_path: str | None
    new_path: str | None
    raw_paths: tuple[str, ...]
    old_mode: int | None = None
    new_mode: int | None = None
    old_id: str | None = None
    new_id: str | None = None
    binary: bool = False

    @property
    def paths(self) -> tuple[str, ...]:
        both = (self.old_path, self.new_path)
        return tuple(dict.fromkeys(p for p in both if p is not None))


# -- parsing -------------------------------------------------------------------------------


@dataclass
class _Section:
    git_old: str | None = None
    git_new: str | None = None
    minus: str | None = None
    plus: str | None = None
    minus_null: bool = False
    plus_null: bool = False
    rename: tuple[str | None, str | None] = (None, None)
    copy: tuple[str | None, str | None] = (None, None)
    old_mode: int | None = None
    new_mode: int | None = None
    created: bool = False
    deleted: bool = False
    old_id: str | None = None
    new_id: str | None = None
    binary: bool = False
    raw: list[str] = field(default_factory=list)


def parse_headers(patch: bytes) -> list[PatchFile]:
    """Per-file headers of a git-style (or plain unified) patch. Raises ``PatchError``."""
    lines = patch.split(b"\n")
    files: list[PatchFile] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        plain = line.startswith(b"--- ") and i + 1 < len(lines) and lines[i + 1][:4] == b"+++ "
        if line.startswith(b"diff --git ") or plain:
            section = _Section()
            if not plain:
                _git_line(section, line, i)
                i += 1
            i = _read_headers(section, lines, i)
            i = _skip_body(section, lines, i)
            files.append(_to_file(section, i))
        else:
            i += 1
    return files


def _read_headers(sec: _Section, lines: list[bytes], i: int) -> int:
    while i < len(lines):
        line = lines[i]
        if line.startswith((b"@@ ", b"diff --git ")) or line == b"GIT binary patch":
            return i
        if line.startswith(b"--- ") and sec.minus is None and not sec.minus_null:
            sec.minus, sec.minus_null = _side_path(sec, line[4:], i)
        elif line.startswith(b"+++ ") and sec.plus is None and not sec.plus_null:
            sec.plus, sec.plus_null = _side_path(sec, line[4:], i)
        elif not _extended_header(sec, line, i):
            return i
        i += 1
    return i


def _extended_header(sec: _Section, line: bytes, i: int) -> bool:
    if line.startswith((b"rename from ", b"copy from ", b"rename to ", b"copy to ")):
        kind, side, rest = line.split(b" ", 2)
        path = _record(sec, _token(rest, i, tab_ends=False))
        pair = sec.rename if kind == b"rename" else sec.copy
        pair = (path, pair[1]) if side == b"from" else (pair[0], path)
        if kind == b"rename":
            sec.rename = pair
        else:
            sec.copy = pair
    elif line.startswith((b"old mode ", b"deleted file mode ")):
        sec.old_mode = _mode(line.rsplit(b" ", 1)[1], i)
        sec.deleted = sec.deleted or line.startswith(b"deleted")
    elif line.startswith((b"new mode ", b"new file mode ")):
        sec.new_mode = _mode(line.rsplit(b" ", 1)[1], i)
        sec.created = sec.created or line.startswith(b"new file")
    elif line.startswith(b"index "):
        _index_line(sec, line, i)
    elif line.startswith(b"Binary files "):
        sec.binary = True
    else:
        return line.startswith((b"similarity index ", b"dissimilarity index "))
    return True


def _index_line(sec: _Section, line: bytes, i: int) -> None:
    match = _INDEX.fullmatch(line)
    if not match:
        raise PatchError(f"patch line {i + 1}: malformed index line {_show_bytes(line)}")
    sec.old_id, sec.new_id = match[1].decode().lower(), match[2].decode().lower()
    if match[3] is not None:
        mode = _mode(match[3], i)
        sec.old_mode = sec.old_mode if sec.old_mode is not None else mode
        sec.new_mode = sec.new_mode if sec.new_mode is not None else mode


def _skip_body(sec: _Section, lines: list[bytes], i: int) -> int:
    if i < len(lines) and lines[i] == b"GIT binary patch":
        sec.binary = True
        while i < len(lines) and not lines[i].startswith(b"diff --git "):
            i += 1
        return i
    while i < len(lines) and lines[i].startswith(b"@@ "):
        i = _skip_hunk(lines, i)
    return i


def _skip_hunk(lines: list[bytes], i: int) -> int:
    match = _HUNK.match(lines[i])
    if not match:
        raise PatchError(f"patch line {i + 1}: malformed hunk header {_show_bytes(lines[i])}")
    old = 1 if match[1] is None else int(match[1])
    new = 1 if match[2] is None else int(match[2])
    i += 1
    while old > 0 or new > 0:
        if i >= len(lines) or (i == len(lines) - 1 and not lines[i]):
            raise PatchError(f"patch line {i}: hunk is truncated")
        kind = lines[i][:1]
        if kind in (b" ", b""):
            old, new = old - 1, new - 1
        elif kind == b"-":
            old -= 1
        elif kind == b"+":
            new -= 1
        elif kind != b"\\":
            raise PatchError(f"patch line {i + 1}: unexpected line inside a hunk")
        if old < 0 or new < 0:
            raise PatchError(f"patch line {i + 1}: hunk has more lines than its header says")
        i += 1
    while i < len(lines) and lines[i].startswith(b"\\"):
        i += 1
    return i


def _git_line(sec: _Section, line: bytes, i: int) -> None:
    rest = line[len(b"diff --git ") :]
    if rest.startswith(b'"'):
        first, end = _quoted(rest, 0, i)
        second = _token(rest[end:].lstrip(b" "), i, tab_ends=False)
    elif b' "' in rest:
        cut = rest.index(b' "')
        first, second = _decode(rest[:cut]), _token(rest[cut + 1 :], i, tab_ends=False)
    else:
        split = _same_name_split(rest)
        if split is None:
            return  # ambiguous unquoted names: the ---/+++ or rename lines name the file
        first, second = split
    sec.git_old, sec.git_new = (
        _strip_prefix(_record(sec, first)),
        _strip_prefix(_record(sec, second)),
    )


def _same_name_split(rest: bytes) -> tuple[str, str] | None:
    """git's rule for unquoted ``diff --git A B``: split where both sides name one path."""
    spaces = [m.start() for m in re.finditer(rb" ", rest)]
    for pos in spaces:
        left, right = _decode(rest[:pos]), _decode(rest[pos + 1 :])
        if _strip_prefix(left) == _strip_prefix(right):
            return left, right
    if len(spaces) == 1:  # a rename or copy without spaces in the names
        return _decode(rest[: spaces[0]]), _decode(rest[spaces[0] + 1 :])
    return None


def quote_spaced_names(patch: bytes) -> bytes:
    """Rewrite unquoted ``diff --git a/x y b/x y`` lines in git's quoted form.

    libgit2 1.9 loses the name of a NEW file whose unquoted name contains a space (it
    then fails with "invalid argument: 'filename'"); git and libgit2 both accept quoted
    names, so this changes nothing else. Every other byte is kept.
    """
    if b"diff --git " not in patch:
        return patch
    lines = patch.split(b"\n")
    for n, line in enumerate(lines):
        rest = line[len(b"diff --git ") :]
        if line.startswith(b"diff --git ") and rest.count(b" ") > 1 and b'"' not in rest:
            split = _same_name_split(rest)
            if split is not None:
                lines[n] = b"diff --git " + _c_quote(split[0]) + b" " + _c_quote(split[1])
    return b"\n".join(lines)


def _c_quote(name: str) -> bytes:
    raw = name.encode("utf-8", "surrogateescape")
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _side_path(sec: _Section, rest: bytes, i: int) -> tuple[str | None, bool]:
    raw = _token(rest, i, tab_ends=True)
    if raw == "/dev/null":
        return None, True
    return _strip_prefix(_record(sec, raw)), False


def _record(sec: _Section, raw: str) -> str:
    sec.raw.append(raw)
    return raw


def _strip_prefix(raw: str) -> str:
    return raw.split("/", 1)[1] if "/" in raw else raw


def _token(rest: bytes, i: int, *, tab_ends: bool) -> str:
    if rest.startswith(b'"'):
        return _quoted(rest, 0, i)[0]
    if tab_ends and b"\t" in rest:
        rest = rest.split(b"\t", 1)[0]
    return _decode(rest)


def _quoted(data: bytes, start: int, i: int) -> tuple[str, int]:
    """Decode git's C-style quoted name starting at ``data[start] == '"'``."""
    out = bytearray()
    pos = start + 1
    while pos < len(data):
        char = data[pos : pos + 1]
        if char == b'"':
            return _decode(bytes(out)), pos + 1
        if char == b"\\":
            esc = data[pos + 1 : pos + 2]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                pos += 2
            elif re.fullmatch(rb"[0-3][0-7][0-7]", data[pos + 1 : pos + 4]):
                out.append(int(data[pos + 1 : pos + 4], 8))
                pos += 4
            elif esc in (b'"', b"\\"):
                out += esc
                pos += 2
            else:
                raise PatchError(f"patch line {i + 1}: bad escape in quoted file name")
        else:
            out += char
            pos += 1
    raise PatchError(f"patch line {i + 1}: unterminated quoted file name")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _mode(raw: bytes, i: int) -> int:
    if not re.fullmatch(rb"[0-7]{6}", raw):
        raise PatchError(f"patch line {i + 1}: bad file mode {_show_bytes(raw)}")
    return int(raw, 8)


def _to_file(sec: _Section, i: int) -> PatchFile:
    old = sec.rename[0] or sec.copy[0] or sec.minus or sec.git_old
    new = sec.rename[1] or sec.copy[1] or sec.plus or sec.git_new
    if sec.rename[0] or sec.rename[1]:
        status = "R"
    elif sec.copy[0] or sec.copy[1]:
        status = "C"
    elif sec.created or sec.minus_null:
        status, old = "A", None
    elif sec.deleted or sec.plus_null:
        status, new = "D", None
    else:
        status = "M"
    if old is None and new is None:
        raise PatchError(f"patch line {i}: cannot tell which file a section changes")
    return PatchFile(
        status=status,
        old_path=old,
        new_path=new,
        raw_paths=tuple(sec.raw),
        old_mode=sec.old_mode,
        new_mode=None if status == "D" else sec.new_mode,
        old_id=sec.old_id,
        new_id=sec.new_id,
        binary=sec.binary,
    )


def _show_bytes(raw: bytes) -> str:
    return repr(raw[:80])[1:]


# -- policy --------------------------------------------------------------------------------


def check_size(patch: bytes) -> list[str]:
    if len(patch) > MAX_PATCH_BYTES:
        return [f"patch is {len(patch)} bytes; the limit is {MAX_PATCH_BYTES} bytes (8 MiB)"]
    return []


def check_policy(
    files: Sequence[PatchFile],
    *,
    base_entries: Callable[[str], int | None],
    protected: Sequence[str] = DEFAULT_PROTECTED,
    allow_symlinks: bool = False,
    allow_submodules: bool = False,
) -> list[str]:
    """Path-policy violations of a parsed patch (empty list: allowed).

    ``base_entries(path)`` gives the mode of ``path`` in the base tree, or None.
    """
    found: list[str] = []
    if len(files) > MAX_PATCH_FILES:
        found.append(f"patch changes {len(files)} files; the limit is {MAX_PATCH_FILES}")
    new_links = {f.new_path for f in files if f.new_path and f.new_mode == LINK_MODE}
    removed = {f.old_path for f in files if f.old_path and f.status in ("D", "R")}
    for f in files:
        found += [f"absolute path {_show(raw)}" for raw in f.raw_paths if raw.startswith("/")]
        for path in f.paths:
            found += path_problems(path)
            found += _protected_problems(path, protected)
        if f.status != "D" and f.new_path is not None:
            mode = f.new_mode
            if mode is None and f.old_path is not None:
                mode = base_entries(f.old_path)
            found += _mode_problems(f.new_path, mode, allow_symlinks, allow_submodules)
            found += _through_symlink(f.new_path, base_entries, new_links, removed)
    return list(dict.fromkeys(found))


def check_tree_policy(
    entries: Iterable[tuple[str, int, str]],
    base_entries: Iterable[tuple[str, int, str]],
    *,
    protected: Sequence[str] = DEFAULT_PROTECTED,
    allow_symlinks: bool = False,
    allow_submodules: bool = False,
) -> list[str]:
    """The same policy on a RESULT tree: every entry added, changed or removed relative to
    the base (both given as ``(path, mode, id)``, e.g. from ``Repo.tree_entries``)."""
    base = {path: (mode, oid) for path, mode, oid in base_entries}
    found: list[str] = []
    seen: set[str] = set()
    for path, mode, oid in entries:
        seen.add(path)
        if base.get(path) == (mode, oid):
            continue
        found += path_problems(path)
        found += _protected_problems(path, protected)
        found += _mode_problems(path, mode, allow_symlinks, allow_submodules)
    for path in base.keys() - seen:
        found += path_problems(path)
        found += _protected_problems(path, protected)
    return list(dict.fromkeys(found))


def path_problems(path: str) -> list[str]:
    """Why ``path`` (relative, '/'-separated) may not be written; empty list if it may."""
    shown = _show(path)
    problems = []
    if not path:
        return ["empty path"]
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        problems.append(f"path {shown} contains a control character")
    if "\\" in path:
        problems.append(f"path {shown} contains a backslash")
    if any("\udc80" <= c <= "\udcff" for c in path):
        problems.append(f"path {shown} is not valid UTF-8")
    if path.startswith("/"):
        problems.append(f"absolute path {shown}")
    parts = path.split("/")
    if "" in parts[1:]:
        problems.append(f"path {shown} has an empty component")
    if ".." in parts or "." in parts:
        problems.append(f"path {shown} contains a '..' or '.' component")
    if any(_is_dot_name(part, "git") for part in parts):
        problems.append(f"path {shown} contains a .git component")
    if _is_dot_name(parts[0], "yoi"):
        problems.append(f"path {shown} is inside .yoi/ (the ticket store)")
    return problems


def _is_dot_name(part: str, name: str) -> bool:
    """``.git`` in every spelling a filesystem may fold to it: case, trailing dots and
    spaces, NTFS streams (``.git::$INDEX_ALLOCATION``), 8.3 names (``GIT~1``), and
    HFS+ ignorable code points."""
    folded = _IGNORABLE.sub("", part).casefold().split(":", 1)[0].rstrip(". ")
    return folded == f".{name}" or bool(re.fullmatch(f"{name}~[0-9]+", folded))


def _mode_problems(path: str, mode: int | None, links: bool, gitlinks: bool) -> list[str]:
    shown = _show(path)
    if mode is None:
        return []
    if mode not in _KNOWN_MODES:
        return [f"path {shown} has unsupported mode {mode:o}"]
    if mode == GITLINK_MODE and not gitlinks:
        return [f"path {shown} would be a submodule (gitlink 160000); submodules are not allowed"]
    if mode != LINK_MODE:
        return []
    base = _IGNORABLE.sub("", path.rsplit("/", 1)[-1]).casefold().rstrip(". ")
    if base in _GIT_CONTROL_FILES or _SHORT_NAME.fullmatch(base):
        return [f"path {shown} would be a symlink in place of a git control file"]
    if not links:
        return [f"path {shown} would be a symlink (120000); symlinks are not allowed"]
    return []


def _through_symlink(
    path: str, base_entries: Callable[[str], int | None], new_links: set[str], removed: set[str]
) -> list[str]:
    parts = path.split("/")
    for depth in range(1, len(parts)):
        parent = "/".join(parts[:depth])
        if parent in new_links:
            return [
                f"path {_show(path)} is written through {_show(parent)}, a symlink "
                "created by the same patch"
            ]
        if parent not in removed and base_entries(parent) == LINK_MODE:
            return [f"path {_show(path)} is written through the existing symlink {_show(parent)}"]
    return []


def _protected_problems(path: str, patterns: Sequence[str]) -> list[str]:
    for pattern in patterns:
        if protected_match(pattern, path):
            return [f"path {_show(path)} is protected (matches '{pattern}')"]
    return []


def protected_match(pattern: str, path: str) -> bool:
    """True if the root-anchored glob ``pattern`` matches ``path`` or a parent directory."""
    pat = pattern.strip().strip("/")
    if pattern.strip().endswith("/"):
        pat += "/**"
    pat_parts = pat.casefold().split("/")
    parts = path.casefold().split("/")
    return any(_glob(pat_parts, parts[:depth]) for depth in range(1, len(parts) + 1))


def _glob(pattern: list[str], parts: list[str]) -> bool:
    if not pattern:
        return not parts
    if pattern[0] == "**":
        return any(_glob(pattern[1:], parts[skip:]) for skip in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], pattern[0]) and _glob(pattern[1:], parts[1:])


def verify_preimages(
    files: Sequence[PatchFile], base_blob: Callable[[str], str | None]
) -> list[str]:
    """libgit2 ignores ``index <old>..`` ids: check them against the base blobs here.

    ``base_blob(path)`` gives the full blob id of ``path`` in the base, or None.
    """
    found = []
    for f in files:
        if f.status == "A":
            if f.new_path is not None and base_blob(f.new_path) is not None:
                found.append(f"new file {_show(f.new_path)} already exists in the base")
            continue
        path = f.old_path
        actual = None if path is None else base_blob(path)
        if path is None or actual is None:
            found.append(f"patch changes {_show(path or '')}, which is not in the base")
        elif f.old_id is not None and f.old_id.strip("0") == "":
            found.append(f"patch says {_show(path)} is new (index {f.old_id}), but it exists")
        elif f.old_id is not None and not actual.startswith(f.old_id):
            found.append(
                f"preimage of {_show(path)} does not match the base: the patch expects "
                f"{f.old_id}, the base has {actual[: len(f.old_id)]}"
            )
    return found


def check_patch(
    patch: bytes,
    *,
    base_entries: Callable[[str], int | None],
    base_blob: Callable[[str], str | None],
    protected: Sequence[str] = DEFAULT_PROTECTED,
    allow_symlinks: bool = False,
    allow_submodules: bool = False,
) -> tuple[list[PatchFile], list[str]]:
    """Size limit, header parse, path policy and preimages in one call.

    Returns the parsed files and every violation. Raises ``PatchError`` if the headers do
    not parse. Always re-check the applied result with ``check_tree_policy`` as well.
    """
    too_big = check_size(patch)
    if too_big:
        return [], too_big
    files = parse_headers(patch)
    found = check_policy(
        files,
        base_entries=base_entries,
        protected=protected,
        allow_symlinks=allow_symlinks,
        allow_submodules=allow_submodules,
    )
    return files, found + verify_preimages(files, base_blob)


def _show(path: str) -> str:
    text = "".join(
        c if c.isprintable() and not "\udc80" <= c <= "\udcff" else _esc(c) for c in path
    )
    return f"'{text}'"


def _esc(char: str) -> str:
    code = ord(char)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\x{code:02x}"


# -- notes ---------------------------------------------------------------------------------


def change_notes(diff: NormalizedDiff) -> list[str]:
    """Concise per-file lines plus a summary line, e.g. ``modified a.py (+3 -1)``."""
    notes: list[str] = []
    for change in diff.files:
        notes += _notes_for(change)
    count = len(diff.files)
    notes.append(
        f"{count} file{'' if count == 1 else 's'} changed, +{diff.additions} -{diff.deletions}"
    )
    return notes


def _notes_for(c: FileChange) -> list[str]:
    counts = f"+{c.additions} -{c.deletions}"
    if c.status == "A":
        return [f"added {c.path} ({'binary' if c.binary else f'+{c.additions}'})"]
    if c.status == "D":
        return [f"deleted {c.path} ({'binary' if c.binary else f'-{c.deletions}'})"]
    if c.status == "T":
        return [f"type changed {c.path} ({c.old_mode or 0:o} -> {c.new_mode or 0:o})"]
    notes = []
    if c.status == "R":
        extra = "" if c.binary or not (c.additions or c.deletions) else f" ({counts})"
        notes.append(f"renamed {c.old_path} -> {c.new_path}{extra}")
    elif c.binary:
        notes.append(f"binary {c.path}")
    elif c.additions or c.deletions:
        notes.append(f"modified {c.path} ({counts})")
    if c.old_mode and c.new_mode and c.old_mode != c.new_mode:
        notes.append(f"mode {c.old_mode:o} -> {c.new_mode:o} {c.path}")
    return notes
