"""Fixtures for the device_bench tests: checked-in models and quick settings.

The models come from ``make_models.py``; the tests themselves need only numpy
and a LiteRT interpreter, like the device.
"""

from __future__ import annotations

import os
import sys

import pytest

from device_bench import BenchSettings

LEGACY_PYTHON_ENV = "BEDSIDE_LEGACY_PYTHON"


@pytest.fixture
def quick_settings() -> BenchSettings:
    """Settings that measure in a fraction of a second (numbers are not judged)."""
    return BenchSettings(runs=20, warmup=2, min_seconds=0.05, timeout_s=60.0)


@pytest.fixture
def legacy_python() -> str:
    """The Python of a legacy runtime venv (tflite-runtime + numpy<2), if given."""
    python = os.environ.get(LEGACY_PYTHON_ENV)
    if not python:
        pytest.skip(f"set {LEGACY_PYTHON_ENV} to a Python with tflite-runtime to run this")
    if not os.access(python, os.X_OK):
        pytest.fail(f"{LEGACY_PYTHON_ENV}={python!r} is not an executable Python")
    return python


@pytest.fixture
def python() -> str:
    """This interpreter, for tests that start child processes."""
    return sys.executable
