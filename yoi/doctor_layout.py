"""What each path under ``.yoi/`` is (SPEC §1), without reading any file.

``classify`` turns a listing of repository-relative paths into a ``StoreView``: the
config file, every ticket directory with its files grouped by role, temp files and
files yoi does not know. Pure: the same function serves the working tree, the index and
any commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from yoi.fsio import is_temp_name

STORE = ".yoi"
BUCKETS = ("open", "done")
TICKET_FILE = "ticket.md"
THREAD_FILE = "thread.md"
PATCH_FILE = "patch.diff"
CONFIG_PATH = f"{STORE}/config.yaml"
KEEP_FILE = ".gitkeep"

# record directory inside a ticket -> schema kind
RECORD_DIRS = {"events": "event", "pause_states": "pause_state", "plan": "plan_record"}
# file inside runs/<run_id>/ -> schema kind
RUN_FILES = {
    "workorder.yaml": "workorder",
    "context_snapshot.yaml": "context_snapshot",
    "output_bundle.yaml": "output_bundle",
    "run_record.yaml": "run_record",
}


@dataclass(frozen=True, slots=True)
class TicketFiles:
    """The files of one ticket directory, by role. Values are repository-relative paths."""

    bucket: str
    slug: str
    top: dict[str, str] = field(default_factory=dict)  # "ticket.md"/"thread.md" -> path
    records: dict[str, dict[str, str]] = field(default_factory=dict)  # dir -> {stem: path}
    runs: dict[str, dict[str, str]] = field(default_factory=dict)  # run_id -> {name: path}

    @property
    def dir(self) -> str:
        return f"{STORE}/tickets/{self.bucket}/{self.slug}"

    @property
    def key(self) -> str:
        return f"{self.bucket}/{self.slug}"

    def file(self, sub: str) -> str:
        return f"{self.dir}/{sub}"

    def record_paths(self) -> list[tuple[str, str]]:
        """(path, schema kind) of every YAML record of the ticket."""
        out = [(p, RECORD_DIRS[d]) for d, stems in self.records.items() for p in stems.values()]
        for files in self.runs.values():
            out.extend((p, RUN_FILES[n]) for n, p in files.items() if n in RUN_FILES)
        return sorted(out)

    def all_paths(self) -> list[str]:
        paths = [*self.top.values(), *(p for s in self.records.values() for p in s.values())]
        paths.extend(p for files in self.runs.values() for p in files.values())
        return sorted(paths)


@dataclass(frozen=True, slots=True)
class StoreView:
    config: str | None
    tickets: dict[str, TicketFiles]  # "open/<slug>" -> files
    temps: list[str]
    unknown: list[str]

    def by_slug(self) -> dict[str, list[TicketFiles]]:
        out: dict[str, list[TicketFiles]] = {}
        for files in self.tickets.values():
            out.setdefault(files.slug, []).append(files)
        return out

    def ticket_of(self, path: str) -> TicketFiles | None:
        parts = path.split("/")
        if len(parts) < 4 or parts[:2] != [STORE, "tickets"]:
            return None
        return self.tickets.get(f"{parts[2]}/{parts[3]}")


def ticket_key(path: str) -> tuple[str, str] | None:
    """(bucket, slug) of a path inside a ticket directory."""
    parts = path.split("/")
    if len(parts) >= 5 and parts[:2] == [STORE, "tickets"] and parts[2] in BUCKETS:
        return parts[2], parts[3]
    return None


def classify(paths: Iterable[str]) -> StoreView:
    config: str | None = None
    tickets: dict[str, TicketFiles] = {}
    temps: list[str] = []
    unknown: list[str] = []
    for path in sorted(paths):
        parts = path.split("/")
        if is_temp_name(parts[-1]):
            temps.append(path)
        elif path == CONFIG_PATH:
            config = path
        elif _is_keep(parts):
            continue
        elif not _place(tickets, parts, path):
            unknown.append(path)
    return StoreView(config, tickets, temps, unknown)


def _is_keep(parts: list[str]) -> bool:
    return parts[-1] == KEEP_FILE and len(parts) == 4 and parts[2] in BUCKETS


def _place(tickets: dict[str, TicketFiles], parts: list[str], path: str) -> bool:
    """File ``path`` into its ticket; False when it is not a file yoi knows."""
    key = ticket_key(path)
    if key is None:
        return False
    bucket, slug = key
    files = tickets.setdefault(f"{bucket}/{slug}", TicketFiles(bucket, slug))
    rest = parts[4:]
    if len(rest) == 1 and rest[0] in (TICKET_FILE, THREAD_FILE):
        files.top[rest[0]] = path
        return True
    if len(rest) == 2 and rest[0] in RECORD_DIRS and rest[1].endswith(".yaml"):
        files.records.setdefault(rest[0], {})[rest[1][: -len(".yaml")]] = path
        return True
    if len(rest) == 3 and rest[0] == "runs" and (rest[2] in RUN_FILES or rest[2] == PATCH_FILE):
        files.runs.setdefault(rest[1], {})[rest[2]] = path
        return True
    return False
