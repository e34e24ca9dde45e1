"""Fixtures of the pipeline's tests shared across stages: a bedside device over SSH (a real
sshd on 127.0.0.1, see tests/sshd.py), for the device stage and the latency model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sshd import Sshd, device_python, start_sshd


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    if isinstance(server, str):
        pytest.skip(server)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def device_py() -> str:
    try:
        return device_python()
    except RuntimeError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def remote_tmp(sshd: Sshd) -> Iterator[Path]:
    """The device's temp area: empty before the test, and checked empty after it."""
    assert not list(sshd.remote_tmp.iterdir())
    yield sshd.remote_tmp
    assert not list(sshd.remote_tmp.iterdir()), "the run left files on the device"
