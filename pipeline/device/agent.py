"""The agent shipped to a device: device_bench packed as one zipapp, built fresh per run.

The archive holds `device_bench/*.py` and a `__main__.py` that first checks what the
package cannot check for itself (Python 3.10+, numpy importable) and says so as JSON with
exit status 3, then runs device_bench's command line. device_bench's measuring children
(`python -m device_bench _worker`) find the package through PYTHONPATH = the archive.
"""

from __future__ import annotations

import shutil
import tempfile
import zipapp
from pathlib import Path

import device_bench

AGENT_NAME = "agent.pyz"
MISSING_EXIT = 3

# Kept to Python 3.6 syntax so that an old device Python reaches the version check.
BOOTSTRAP = '''"""bedside-lite's device agent: device_bench as a zipapp."""
import json
import platform
import sys


def _missing(what, reason):
    print(json.dumps({"status": "error", "missing": what, "reason": reason,
                      "python": platform.python_version(), "python_executable": sys.executable}))
    raise SystemExit(@EXIT@)


if sys.version_info < (3, 10):
    _missing("python", "device_bench needs Python 3.10 or newer")
try:
    import numpy  # noqa: F401
except ImportError as error:
    _missing("numpy", "%s: %s" % (type(error).__name__, error))

from device_bench.cli import main  # noqa: E402

raise SystemExit(main(sys.argv[1:]))
'''.replace("@EXIT@", str(MISSING_EXIT))


def build_agent(target: Path) -> Path:
    """Writes the agent zipapp to `target` (a `.pyz`) and returns it."""
    package = Path(device_bench.__file__).resolve().parent
    with tempfile.TemporaryDirectory(prefix="bedside-agent-") as tmp:
        source = Path(tmp, "agent")
        (source / "device_bench").mkdir(parents=True)
        for module in sorted(package.glob("*.py")):
            shutil.copy2(module, source / "device_bench" / module.name)
        (source / "__main__.py").write_text(BOOTSTRAP)
        zipapp.create_archive(source, target, compressed=True)
    return target
