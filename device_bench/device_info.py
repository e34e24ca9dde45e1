"""What this device is: machine, OS, Python, numpy, LiteRT runtime, CPUs.

``python -m device_bench info`` prints it as JSON; the host reads it before it
measures anything, so a device without a runtime is named as such.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from device_bench.errors import RuntimeUnavailableError
from device_bench.runtime import load_runtime
from device_bench.version import __version__


def device_info() -> dict[str, Any]:
    """Describes this machine and the runtime device_bench would use on it."""
    import numpy

    doc: dict[str, Any] = {
        "machine": platform.machine(),
        "system": platform.system(),
        "release": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "numpy": numpy.__version__,
        "cpu_count": os.cpu_count(),
        "device_bench": __version__,
        "runtime": None,
        "runtime_version": None,
        "runtime_error": None,
    }
    try:
        runtime = load_runtime()
    except RuntimeUnavailableError as error:
        doc["runtime_error"] = str(error)
    else:
        doc["runtime"], doc["runtime_version"] = runtime.name, runtime.version
    return doc
