"""A child process speaking device_bench's JSON-lines protocol, seen from the parent.

The child (``worker.py``) replies one JSON object per line; the parent waits
for each reply within a time budget, and when none comes tells a crash (exit
status, signal, the child's last stderr lines) from a timeout.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_bench.status import Status

STDERR_TAIL_LINES = 20
_CLOSE_GRACE_S = 10.0
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)


def child_environment() -> dict[str, str]:
    """Returns the environment for a child that must import this device_bench.

    The directory holding the package goes first on ``PYTHONPATH``, so that a
    different Python (another venv) imports this very copy.
    """
    env = dict(os.environ)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _PACKAGE_PARENT + (os.pathsep + existing if existing else "")
    return env


def run_child(command: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[bytes]:
    """Runs a ``python -m device_bench ...`` child that imports this copy of the package:
    no stdin, output captured, its exit status left to the caller.

    Raises:
        subprocess.TimeoutExpired: it ran past ``timeout_s`` (it is killed).
        OSError: its Python could not be started.
    """
    return subprocess.run(
        list(command),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=child_environment(),
        timeout=timeout_s,
        check=False,
    )


def signal_name(returncode: int) -> str | None:
    """Returns e.g. ``"SIGSEGV"`` for a return code of -11, ``None`` for an exit."""
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def telling_line(lines: Sequence[str]) -> str:
    """Picks the stderr line that best says why a process died."""
    # faulthandler ends with "Extension modules: ..."; its headline says more.
    for line in lines:
        if line.startswith("Fatal Python error"):
            return line
    return lines[-1]


@dataclass(frozen=True)
class ChildFailure:
    """Why a child gave no answer.

    Attributes:
        status: ``crashed`` or ``timeout``.
        reason: Human explanation, with the last stderr line.
        exit_status: Return code (negative: killed by a signal), if it ended.
        signal: Signal name, e.g. ``"SIGSEGV"``, if a signal ended it.
        stderr_tail: Last lines the child wrote to stderr.
    """

    status: Status
    reason: str
    exit_status: int | None
    signal: str | None
    stderr_tail: tuple[str, ...]


class Child:
    """A worker process and its JSON-lines channel, with a time budget."""

    def __init__(self, python: str, args: list[str], budget_s: float) -> None:
        self._stderr = tempfile.TemporaryFile()
        self.budget_s = budget_s
        self.timed_out = False
        self.garbled: bytes | None = None
        self._buffer = b""
        self.process = subprocess.Popen(
            [python, "-m", "device_bench", "_worker", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # A file, not a pipe: a chatty child can never block on a full pipe.
            stderr=self._stderr,
            env=child_environment(),
        )

    def send(self, message: dict[str, Any]) -> bool:
        """Sends a request; returns False when the child is gone."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def receive(self) -> dict[str, Any] | None:
        """Waits for one reply within the remaining budget.

        Returns:
            The reply, or ``None`` when the child died or ran out of time
            (then ``timed_out`` is set and the child is killed).
        """
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer:
                start = time.monotonic()
                ready = selector.select(timeout=max(self.budget_s, 0.0))
                self.budget_s -= time.monotonic() - start
                if not ready:
                    self.timed_out = True
                    self.kill()
                    return None
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return None
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            message: dict[str, Any] = json.loads(line)
        except ValueError:
            # Only a broken child writes non-JSON here; it cannot be trusted on.
            self.garbled = line[:200]
            self.kill()
            return None
        return message

    def kill(self) -> None:
        """Kills the child (if still running) and reaps it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def close(self) -> None:
        """Lets the child finish by closing its stdin; kills it if it lingers."""
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=_CLOSE_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()

    def stderr_tail(self) -> tuple[str, ...]:
        """Returns the last lines the child wrote to stderr."""
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").splitlines()
        return tuple(line for line in lines if line.strip())[-STDERR_TAIL_LINES:]

    def failure(self, phase: str, timeout_s: float) -> ChildFailure:
        """Describes why no reply came (call after ``receive`` returned None)."""
        if self.timed_out:
            return ChildFailure(
                status=Status.TIMEOUT,
                reason=f"no answer within the {timeout_s:g} s limit while {phase}; "
                "process killed. Raise --timeout for slow models.",
                exit_status=self.process.returncode,
                signal=None,
                stderr_tail=self.stderr_tail(),
            )
        try:
            returncode = self.process.wait(timeout=_CLOSE_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()
            returncode = self.process.returncode
        name = signal_name(returncode)
        how = f"was killed by {name}" if name else f"exited with status {returncode}"
        if self.garbled is not None:
            how = f"sent an unreadable reply ({self.garbled!r}) and was killed"
        tail = self.stderr_tail()
        last = f"; stderr: {telling_line(tail)}" if tail else ""
        return ChildFailure(
            status=Status.CRASHED,
            reason=f"the measuring process {how} while {phase}{last}",
            exit_status=returncode,
            signal=name,
            stderr_tail=tail,
        )
