"""Generate yoi stores of any size in the documented format, fast.

yoi itself first makes one *template* ticket per state in a scratch repository: the real
ticket operations (create, comment, ready, queue, block) and real engine ticks with the
patch-file runner (a full run for `done`, a BLOCKED pause for `blocked`, a run killed
right after acceptance for `inprogress`), with the clock pinned by ``YOI_TEST_NOW``.
Every generated ticket is a copy of one template with its slug, title, timestamps and
the ids derived from them (event, run, workorder, snapshot, output, pause and plan ids)
rewritten. So every file is what yoi writes, byte for byte, and 50,000 tickets take
seconds instead of the hours yoi's fsync-per-file writers would need.

    python bench/gen_store.py DIR --tickets 10000 [--idle] [--queued 200]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import GIT_ENV, PY, run

T0 = datetime(2026, 1, 1, tzinfo=UTC)
START = datetime(2024, 1, 1, tzinfo=UTC)
STATES = ("planning", "ready", "queued", "inprogress", "blocked", "done")
# Share of each state in a generated store (the rest of the mix is `done`).
MIX = {"planning": 0.10, "ready": 0.08, "queued": 0.03, "inprogress": 0.02, "blocked": 0.05}
IDLE_MIX = {"planning": 0.13, "ready": 0.10, "blocked": 0.05}
NOUNS = ("gizmo", "widget", "parser", "cache", "index", "router", "loader", "report")
CONFIG = """\
version: 1
engine:
  capacity: 1000
  base_ref: HEAD
  branch_prefix: yoi/
  lease_seconds: 60
runners:
  default:
    type: patch-file
gates: []
"""


def ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def compact(dt: datetime) -> str:
    return dt.strftime("%Y%m%d%H%M%S")


def slug_stamp(dt: datetime) -> str:
    c = compact(dt)
    return f"{c[:8]}-{c[8:]}"


def event_suffix(slug: str, queued_at: str) -> str:
    key = f"TICKET_READY:{slug}:{queued_at}"
    return (
        f"{compact(datetime.strptime(queued_at, '%Y-%m-%dT%H:%M:%SZ'))}-"
        + hashlib.sha256(key.encode()).hexdigest()[:10]
    )


def note_patch(name: str) -> bytes:
    text = f"note {name}\n".encode()
    blob = hashlib.sha1(b"blob %d\0" % len(text) + text).hexdigest()
    return (
        f"diff --git a/notes/{name}.txt b/notes/{name}.txt\nnew file mode 100644\n"
        f"index 0000000..{blob[:7]}\n--- /dev/null\n+++ b/notes/{name}.txt\n@@ -0,0 +1 @@\n"
        f"+note {name}\n"
    ).encode()


@dataclass(frozen=True)
class Template:
    state: str
    slug: str
    title: str
    files: dict[str, bytes]  # path relative to the ticket dir -> content

    @property
    def bucket(self) -> str:
        return "done" if self.state == "done" else "open"


def init_repo(repo: Path) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "-q", "-b", "main"], repo)
    (repo / "README.md").write_text("bench repository\n")
    (repo / "src").mkdir(exist_ok=True)
    (repo / "src" / "app.py").write_text("print('hi')\n")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "initial"], repo)


def init_store(repo: Path) -> None:
    """`yoi init` (the real command) with a config for the patch-file runner, committed."""
    run([PY, "-m", "yoi", "init"], repo)
    (repo / ".yoi" / "config.yaml").write_text(CONFIG)
    (repo / ".gitignore").write_text("patches/\n")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "yoi init"], repo)


def _ops(repo: Path, states: tuple[str, ...]) -> None:
    """Template tickets, made by yoi's own operations (in this process). Each pending
    event is processed before the next ticket is queued, so a tick takes the right one."""
    from yoi import engine, tickets
    from yoi.lifecycle import Action
    from yoi.model import BlockerKind, CommentKind
    from yoi.store import Store

    store = Store.discover(repo)
    (repo / "patches").mkdir(exist_ok=True)
    for state in states:
        patch = f"patches/template-{state}.diff"
        (repo / patch).write_bytes(note_patch(f"template-{state}"))
        spec = tickets.NewTicket(
            title=f"Template {state}",
            acceptance_criteria=["the note exists", "the tests pass"],
            body=f"Objective: make the {state} template.\n\nBackground: generated.\n",
            labels=("bench", state),
            patch_file=patch,
        )
        slug = tickets.create(store, spec, by="bench").slug
        tickets.comment(
            store, slug, kind=CommentKind.COMMENT, message="A first comment.", by="bench"
        )
        if state == "planning":
            tickets.comment(
                store, slug, kind=CommentKind.DECISION, message="Keep it small.", by="bench"
            )
            continue
        tickets.transition(store, slug, Action.READY, by="bench")
        if state == "ready":
            continue
        tickets.transition(store, slug, Action.QUEUE, by="bench")
        if state == "blocked":
            tickets.add_blocker(
                store, slug, kind=BlockerKind.USER_INPUT, description="which database?", by="bench"
            )
        if state in ("blocked", "done"):
            result = engine.tick(store)
            assert result.outcome == "processed", result


def build_templates(work: Path) -> dict[str, Template]:
    """Run yoi in a scratch repository and capture one ticket directory per state."""
    repo = work / "templates"
    init_repo(repo)
    init_store(repo)
    with mock.patch.dict(os.environ, {**GIT_ENV, "YOI_TEST_NOW": ts(T0)}):
        _ops(repo, ("planning", "ready", "blocked", "done", "inprogress"))
        # inprogress: an engine killed right after acceptance (workorder, snapshot, state)
        proc_env = {"YOI_TEST_NOW": ts(T0), "YOI_TEST_CRASH_AT": "engine.accepted"}
        try:
            run([PY, "-m", "yoi", "engine", "tick"], repo, extra_env=proc_env)
        except RuntimeError as exc:
            if "(137)" not in str(exc):
                raise
        _ops(repo, ("queued",))
    return {state: _capture(repo, state) for state in STATES}


def _capture(repo: Path, state: str) -> Template:
    title = f"Template {state}"
    slug = f"{slug_stamp(T0)}-template-{state}"
    bucket = "done" if state == "done" else "open"
    tdir = repo / ".yoi" / "tickets" / bucket / slug
    files = {
        str(p.relative_to(tdir)): p.read_bytes() for p in sorted(tdir.rglob("*")) if p.is_file()
    }
    assert f"state: {state}".encode() in files["ticket.md"], (state, files["ticket.md"][:200])
    return Template(state, slug, title, files)


@dataclass(frozen=True)
class Clone:
    state: str
    slug: str
    title: str
    patch_name: str


def clone_files(t: Template, i: int) -> tuple[Clone, dict[str, bytes]]:
    """The files of ticket number ``i``, copied from template ``t``."""
    when = START + timedelta(seconds=7 * i)
    noun = NOUNS[i % len(NOUNS)]
    title = f"Task {i} {noun}"
    slug = f"{slug_stamp(when)}-task-{i}-{noun}"
    old_ts, new_ts = ts(T0), ts(when)
    pairs = [
        (event_suffix(t.slug, old_ts), event_suffix(slug, new_ts)),
        (f"patches/template-{t.state}.diff", f"patches/t{i}.diff"),
        (t.slug, slug),
        (t.title, title),
        (old_ts, new_ts),
        (compact(T0), compact(when)),
        (T0.strftime("%Y-%m-%d %H:%M UTC"), when.strftime("%Y-%m-%d %H:%M UTC")),
    ]
    out = {}
    for rel, data in t.files.items():
        for old, new in pairs:
            data = data.replace(old.encode(), new.encode())
            rel = rel.replace(old, new)
        out[rel] = data
    return Clone(t.state, slug, title, f"t{i}"), out


def _plan(n: int, idle: bool, queued: int) -> list[str]:
    """The state of each generated ticket, spread evenly (deterministic)."""
    mix = IDLE_MIX if idle else MIX
    counts = {s: int(n * share) for s, share in mix.items()}
    if queued:
        counts = {"queued": queued}
    counts["done"] = n - sum(counts.values())
    states: list[str] = []
    for state, count in counts.items():
        states.extend([state] * count)
    # interleave so that every state is spread over the whole slug range
    return [states[(k * 7919) % n] for k in range(n)] if n and _coprime(n) else states


def _coprime(n: int) -> bool:
    a, b = n, 7919
    while b:
        a, b = b, a % b
    return a == 1


def generate(
    repo: Path,
    n: int,
    templates: dict[str, Template],
    *,
    idle: bool = False,
    queued: int = 0,
    commit: bool = True,
) -> list[Clone]:
    """A git repository at ``repo`` with a yoi store of ``n`` tickets.

    ``idle``: no queued or inprogress tickets (nothing for the engine to do).
    ``queued``: exactly that many queued tickets with patch files, the rest done.
    """
    init_repo(repo)
    init_store(repo)
    tickets = repo / ".yoi" / "tickets"
    (repo / "patches").mkdir(exist_ok=True)
    made = []
    for i, state in enumerate(_plan(n, idle, queued)):
        t = templates[state]
        clone, files = clone_files(t, i)
        base = tickets / t.bucket / clone.slug
        for rel, data in files.items():
            path = base / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if state in ("queued", "inprogress"):
            (repo / "patches" / f"{clone.patch_name}.diff").write_bytes(
                note_patch(clone.patch_name)
            )
        made.append(clone)
    if commit:
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-q", "-m", f"{n} tickets"], repo)
    settle()
    return made


def settle(timeout_s: float = 180.0) -> None:
    """Write the new store out to disk, then wait (at most ``timeout_s``) until the CPUs
    are idle, before anything is timed. Creating tens of thousands of files leaves the
    kernel busy for a minute or more (write-back, journal, memory scanning) on one core:
    that slows a measurement that uses two cores and not its one-core floor, so the
    ratio would describe the kernel's backlog, not yoi."""
    if hasattr(os, "sync"):
        os.sync()
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        idle = _idle_fraction(1.0)
        if idle is None:
            return  # no /proc/stat: nothing to wait for
        quiet = quiet + 1 if idle >= 0.9 else 0


def _idle_fraction(seconds: float) -> float | None:
    """The share of CPU time spent idle (or waiting for I/O) over ``seconds``."""

    def sample() -> tuple[int, int] | None:
        try:
            with open("/proc/stat", encoding="ascii") as f:
                fields = [int(x) for x in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)

    first = sample()
    time.sleep(seconds)
    second = sample()
    if first is None or second is None or second[0] == first[0]:
        return None
    return (second[1] - first[1]) / (second[0] - first[0])


def add_done(repo: Path, templates: dict[str, Template], start: int, count: int) -> None:
    """Add ``count`` done tickets (numbers ``start``...) to an existing store."""
    base = repo / ".yoi" / "tickets" / "done"
    for i in range(start, start + count):
        clone, files = clone_files(templates["done"], i)
        for rel, data in files.items():
            path = base / clone.slug / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--tickets", type=int, default=1000)
    p.add_argument("--idle", action="store_true", help="no queued/inprogress tickets")
    p.add_argument("--queued", type=int, default=0, help="this many queued, the rest done")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="yoi-templates-") as work:
        templates = build_templates(Path(work))
        if args.dir.exists():
            shutil.rmtree(args.dir)
        made = generate(args.dir, args.tickets, templates, idle=args.idle, queued=args.queued)
    print(f"{len(made)} tickets in {args.dir}")


if __name__ == "__main__":
    main()
