"""Baselines ("floors") that the benchmarks divide by, each run as its own process.

    python bench/floors.py front-matter <.yoi/tickets>   read every ticket.md's front matter
    python bench/floors.py all-files <.yoi>              read every file under the store

``front-matter`` is the least any tool that lists tickets from files must do: open,
read and split every ``ticket.md`` at its closing ``---`` line (no YAML parsing).
``all-files`` is the least a full store check must do: read every file once.
"""

from __future__ import annotations

import os
import sys


def front_matter(tickets: str) -> int:
    count = 0
    for bucket in ("open", "done"):
        base = os.path.join(tickets, bucket)
        for name in os.listdir(base):
            if name.startswith("."):
                continue
            with open(os.path.join(base, name, "ticket.md"), encoding="utf-8") as f:
                text = f.read()
            front, _sep, _body = text[4:].partition("\n---\n")
            count += bool(front)
    return count


def all_files(store: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(store):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                total += len(f.read())
    return total


if __name__ == "__main__":
    what, where = sys.argv[1], sys.argv[2]
    print(front_matter(where) if what == "front-matter" else all_files(where))
