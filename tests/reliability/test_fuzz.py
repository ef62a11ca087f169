"""Fuzzing in the default suite (R23): hypothesis drives every target of
``tests/fuzz/targets.py`` (front matter loader, record loader, thread parser, name
resolution, slug making, patch header parser, path policy) with random bytes and with
mutations of the committed seed corpus (``tests/fuzz_corpus/``). A target may raise only
a ``YoiError``; its property assertions (round trips, "an accepted path stays inside
the root", "a name resolves only to a listed slug") must hold.

``--soak`` raises the example counts and also runs the atheris (libFuzzer) harness on
each target for a fixed budget when atheris is installed. Every crash either finds
becomes a file under ``tests/fuzz_corpus/crashes/<target>/``, replayed here.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import targets
from tests.reliability import figures
from tests.reliability import support as s
from tests.reliability.plugin import Profile
from yoi.errors import YoiError

TOKENS = [
    b"---\n",
    b"\n",
    b"\r\n",
    b": ",
    b"- ",
    b"&a ",
    b"*a",
    b"!!python/object ",
    b"!x ",
    b"%YAML 1.1\n",
    b"%YAML 1.0\n",
    b"%YAML 1.3\n",
    b"%TAG ! x\n",
    b"[",
    b"]",
    b"{",
    b"}",
    b'"',
    b"'",
    b"#",
    b"\t",
    b"? ",
    b"<!-- yoi:entry kind=comment author=a at=2026-01-01T00:00:00Z -->\n",
    b"-->",
    b"=",
    b"diff --git a/x b/x\n",
    b"+++ b/",
    b"--- a/",
    b"@@ -1 +1 @@\n",
    b"new file mode 120000\n",
    b"rename from ",
    b"GIT binary patch\n",
    b"\\",
    b"..",
    b"/",
    b".git",
    b".yoi",
    b"\x00",
    b"\xff",
    b"\xe2\x80\x8c",
    b"~1",
    b"\\303\\251",
    b"2026-01-01T00:00:00Z",
    b"state: done\n",
]
CRASHES = targets.CORPUS / "crashes"
# Crashes found and not fixed yet: replayed as strict xfails (remove once fixed).
OPEN_CRASHES: dict[str, str] = {}


def _apply(seed: bytes, edits: list[tuple[int, int, bytes]], other: bytes) -> bytes:
    data = bytearray(seed)
    for kind, pos, chunk in edits:
        at = pos % (len(data) + 1)
        if kind == 0:
            data[at:at] = chunk
        elif kind == 1:
            del data[at : at + len(chunk)]
        elif kind == 2:
            data[at : at + len(chunk)] = chunk
        elif kind == 3:
            data[at:at] = data[at : at + 1 + pos % 64]
        else:
            cut = pos % (len(other) + 1)
            data[at:] = other[cut:]
    return bytes(data)


def mutated(name: str) -> st.SearchStrategy[bytes]:
    seeds = [p.read_bytes() for p in targets.seeds(name)] or [b""]
    chunk = st.one_of(st.binary(min_size=1, max_size=8), st.sampled_from(TOKENS))
    edit = st.tuples(st.integers(0, 4), st.integers(0, 1 << 20), chunk)
    return st.builds(
        _apply, st.sampled_from(seeds), st.lists(edit, max_size=8), st.sampled_from(seeds)
    )


def _examples(profile: Profile) -> int:
    return 3000 if profile.soak else 150


def fuzz(name: str, strategy: st.SearchStrategy[bytes], profile: Profile, label: str) -> None:
    started = time.monotonic()
    runs = 0

    @settings(
        max_examples=_examples(profile),
        deadline=None,
        database=None,
        derandomize=not profile.soak,  # the default suite sees the same inputs every run
        suppress_health_check=list(HealthCheck),
    )
    @given(data=strategy)
    def one(data: bytes) -> None:
        nonlocal runs
        runs += 1
        targets.run_one(name, data)

    one()
    figures.record(
        f"fuzz (hypothesis, {label})",
        trials=runs,
        operations=runs,
        seconds=time.monotonic() - started,
    )


@pytest.mark.parametrize("name", list(targets.TARGETS))
def test_mutated_corpus_raises_only_documented_errors(name: str, profile: Profile) -> None:
    fuzz(name, mutated(name), profile, "corpus mutations")


@pytest.mark.parametrize("name", list(targets.TARGETS))
def test_random_bytes_raise_only_documented_errors(name: str, profile: Profile) -> None:
    fuzz(name, st.binary(max_size=512), profile, "random bytes")


def test_random_text_names_and_titles(profile: Profile) -> None:
    text = st.text(max_size=80).map(lambda t: t.encode("utf-8", "surrogatepass"))
    for name in ("names", "titles", "policy"):
        fuzz(name, text, profile, "random text")


SEEDS = [(name, p) for name in targets.TARGETS for p in targets.seeds(name)]


@pytest.mark.parametrize(
    ("name", "seed"), SEEDS, ids=[f"{n}:{p.parent.name}/{p.name}" for n, p in SEEDS]
)
def test_seed_corpus_replays(name: str, seed: Path) -> None:
    """Every seed runs clean; in the corpora of this harness (frontmatter, patch, policy)
    ``ok_`` seeds are accepted and ``bad_`` seeds refused."""
    data = seed.read_bytes()
    fn = targets.TARGETS[name][0]
    own = seed.parent.name in ("frontmatter", "patch", "policy")
    if not own or not seed.name.startswith(("ok_", "bad_")):
        targets.run_one(name, data)
        return
    if name == "policy":
        from yoi import patching

        problems = patching.path_problems(data.decode("utf-8", "surrogateescape"))
        assert bool(problems) == seed.name.startswith("bad_"), problems
        fn(data)
    elif name == "patch" and seed.name.startswith("bad_"):
        _patch_is_refused(data)
    elif seed.name.startswith("ok_"):
        fn(data)
    else:
        with pytest.raises(YoiError):
            fn(data)


def _patch_is_refused(data: bytes) -> None:
    from yoi import patching

    try:
        files = patching.parse_headers(data)
    except YoiError:
        return
    if files:  # an empty patch is refused by the engine's built-in gates
        assert patching.check_policy(files, base_entries=lambda _p: None), "a bad patch passed"


def _crash_files() -> list[object]:
    out: list[object] = []
    for d in sorted(CRASHES.iterdir()) if CRASHES.is_dir() else []:
        for p in sorted(d.iterdir()) if d.is_dir() else []:
            reason = OPEN_CRASHES.get(p.name)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(d.name, p, marks=marks, id=f"{d.name}/{p.name}"))
    return out or [pytest.param("", Path(), marks=pytest.mark.skip(reason="no crash found"))]


@pytest.mark.parametrize(("name", "crash"), _crash_files())
def test_found_crashes_stay_fixed(name: str, crash: Path) -> None:
    targets.run_one(name, crash.read_bytes())


# ---- atheris (soak only) ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", list(targets.TARGETS))
def test_atheris_finds_no_crash(name: str, tmp_path: Path, profile: Profile) -> None:
    if importlib.util.find_spec("atheris") is None:
        pytest.skip("atheris is not installed (pip install atheris)")
    budget = max(10, int(min(120.0, profile.seconds / len(targets.TARGETS))))
    work = tmp_path / "corpus"
    work.mkdir()
    dirs = [str(targets.CORPUS / sub) for sub in targets.TARGETS[name][1]]
    started = time.monotonic()
    proc = subprocess.run(
        [
            s.PY,
            "-m",
            "tests.fuzz.run_atheris",
            name,
            f"-max_total_time={budget}",
            "-rss_limit_mb=2048",
            "-timeout=20",
            f"-artifact_prefix={tmp_path}/",
            str(work),
            *dirs,
        ],
        cwd=s.ROOT,
        env={"PYTHONPATH": str(s.ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=budget + 300,
    )
    runs = _executions(proc.stderr)
    crashes = sorted(tmp_path.glob("crash-*")) + sorted(tmp_path.glob("timeout-*"))
    for crash in crashes:  # keep it as a regression input
        keep = CRASHES / name
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(crash, keep / crash.name)
    figures.record(
        "fuzz (atheris)",
        trials=1,
        operations=runs,
        failures=len(crashes),
        seconds=time.monotonic() - started,
    )
    assert proc.returncode == 0 and not crashes, proc.stderr[-3000:]


def _executions(log: str) -> int:
    """The last ``#<n>`` execution count libFuzzer printed."""
    count = 0
    for line in log.splitlines():
        if line.startswith("#") and line[1:].split("\t", 1)[0].split(" ", 1)[0].isdigit():
            count = int(line[1:].split("\t", 1)[0].split(" ", 1)[0])
    return count
