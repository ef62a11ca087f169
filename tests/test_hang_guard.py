"""The suite's hang limit (pytest-timeout, configured in pyproject.toml): a test that
hangs fails with the traceback of where it waited, instead of keeping CI busy until it
is killed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import ROOT


def test_a_hanging_test_fails_with_where_it_waited(tmp_path: Path) -> None:
    (tmp_path / "test_hangs.py").write_text(
        "import time\n\ndef test_hangs_here():\n    time.sleep(120)\n"
    )
    argv = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml")]
    argv += ["--rootdir", str(tmp_path), "-o", "timeout=2", str(tmp_path / "test_hangs.py")]
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=100)
    assert time.monotonic() - started < 60
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "Timeout" in out and "test_hangs_here" in out, out
