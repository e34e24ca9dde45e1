"""A real MLflow tracking server on 127.0.0.1 for the tests: sqlite backend, artifacts in a
temporary folder, started as a subprocess in a session of its own and stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_S = 180.0


def unavailable() -> str | None:
    """Why the server cannot run here, or None."""
    import importlib.util

    try:  # the full `mlflow` package has the server; mlflow-skinny does not
        found = importlib.util.find_spec("mlflow.server") is not None
    except ImportError:
        found = False
    return None if found else "the MLflow server is not installed (pip install '.[dev]')"


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def server(root: Path) -> Iterator[str]:
    """`mlflow server` with its store and artifacts under `root`; yields its URI."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("wb")
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, cwd=root, env=env, start_new_session=True
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"mlflow server did not start on {url}:\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)  # its session: the server and its workers
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        log.close()
