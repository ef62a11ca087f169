"""The stop handler of ``engine run``/``watch`` (``commands.engine._Stop``) under signals
that land anywhere: inside the main thread's own write to stderr, inside the handler
itself, inside the loop's wait. It must never block, raise or lose the stop."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import cast

import pytest

from tests.engine_helpers import PY, config, make_store, yoi_env
from yoi.commands import engine as engine_cmd


class _RawCallingHandler(io.RawIOBase):
    """A stderr whose low-level write is where a signal arrives: it runs the handler
    there, while ``io.BufferedWriter`` holds its lock for the main thread's write."""

    def __init__(self, handler: engine_cmd._Stop, signum: int) -> None:
        self.handler, self.signum, self.fired, self.data = handler, signum, False, b""

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        if not self.fired:
            self.fired = True
            self.handler(self.signum, None)
        self.data += bytes(b)
        return len(b)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_write_to_stderr_stops_cleanly(
    signum: int, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler that wrote through ``sys.stderr`` raised "reentrant call inside
    <_io.BufferedWriter>" here, out of the engine loop, as a traceback."""
    stop = engine_cmd._Stop()
    try:
        raw = _RawCallingHandler(stop, signum)
        monkeypatch.setattr(
            sys, "stderr", io.TextIOWrapper(io.BufferedWriter(cast(io.RawIOBase, raw)))
        )
        sys.stderr.write("yoi: engine: a tick's line\n")
        sys.stderr.flush()
        assert raw.fired and stop.is_set()
        assert raw.data == b"yoi: engine: a tick's line\n"  # the main thread's line, whole
        name = signal.Signals(signum).name
        assert f"yoi: engine: {name}: finishing the current step" in capfd.readouterr().err
    finally:
        stop.close()


def test_a_second_signal_while_the_handler_runs(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A terminal's Ctrl-C reaches a ``--jobs`` worker as SIGINT and, from its parent,
    as SIGTERM, one right after the other: the second may land inside the handler of the
    first (it used to wait there forever for the lock of a ``threading.Event``)."""
    stop = engine_cmd._Stop()
    said: list[str] = []
    real_say = engine_cmd._say

    def say(line: str) -> None:
        if not said:
            said.append(line)
            stop(signal.SIGTERM, None)  # lands in the SIGINT's handler
        real_say(line)

    monkeypatch.setattr(engine_cmd, "_say", say)
    try:
        stop(signal.SIGINT, None)
        assert stop.is_set() and stop.interrupted
        assert stop.wait(0) is True
        with pytest.raises(KeyboardInterrupt):  # Ctrl-C again: stop now
            stop(signal.SIGINT, None)
    finally:
        stop.close()
    err = capfd.readouterr().err
    assert err.count("finishing the current step") == 1
    assert "SIGINT again: stopping now" in err


def test_a_real_signal_wakes_the_wait(capfd: pytest.CaptureFixture[str]) -> None:
    with engine_cmd._stop_on_signals() as stop:
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
        started = time.monotonic()
        timer.start()
        try:
            assert stop.wait(30) is True
        finally:
            timer.cancel()
        assert time.monotonic() - started < 10
        assert stop.wait(30) is True  # at once once set
    assert signal.getsignal(signal.SIGTERM) is not stop  # the previous handler is back
    assert "SIGTERM: finishing the current step" in capfd.readouterr().err


def test_watch_stops_cleanly_on_signals_back_to_back(repo: Path) -> None:
    """SIGINT and SIGTERM together, in both orders, as a terminal and a ``--jobs``
    parent send them: ``engine watch`` ends at once, exit 0, no traceback."""
    make_store(repo, config())
    for first, second in [(signal.SIGINT, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT)] * 3:
        watcher = subprocess.Popen(
            [PY, "-m", "yoi", "engine", "watch", "--interval", "0.1"],
            cwd=repo,
            env=yoi_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert watcher.stderr is not None
        line = watcher.stderr.readline()
        assert b"watching" in line, line
        watcher.send_signal(first)
        watcher.send_signal(second)
        _out, err = watcher.communicate(timeout=60)
        assert watcher.returncode == 0, err.decode()
        assert b"Traceback" not in err
        assert b"stopped; 0 event(s) processed" in err
