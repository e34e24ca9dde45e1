"""The wall around converters/: it converts and inspects, and imports nothing of pipeline/.

pipeline/ may import converters (its errors and functions); never the other way round, or
a change of evaluation policy could silently change what a converter produces.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.imports import ROOT, imported_modules, importers_of

CONVERTERS = ROOT / "converters"


def test_no_converter_module_imports_pipeline() -> None:
    assert importers_of("pipeline", CONVERTERS) == {}


def test_importing_every_converter_loads_no_pipeline_module() -> None:
    names = sorted(f"converters.{p.stem}" for p in CONVERTERS.glob("*.py"))
    program = (
        "import importlib, json, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'pipeline')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_the_scan_sees_imports_anywhere_in_a_file() -> None:
    """The scan itself can fail: imports in functions, relative and by name all count."""
    source = (
        "import numpy\n"
        "def f():\n"
        "    from pipeline.errors import ModelError\n"
        "def g():\n"
        "    import pipeline.models as m\n"
        "from . import tflite\n"
        "from .errors import ConverterError\n"
        "importlib.import_module('pipeline.evaluate.metrics')\n"
    )
    found = imported_modules(source, CONVERTERS / "example.py")
    assert sorted(found) == [
        ("converters.errors", 7),
        ("converters.tflite", 6),
        ("numpy", 1),
        ("pipeline.errors", 3),
        ("pipeline.evaluate.metrics", 8),
        ("pipeline.models", 5),
    ]
