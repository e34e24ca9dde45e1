"""Resident memory of this process, in MiB.

Linux's ``/proc/self/status`` gives the current RSS (``VmRSS``) and its peak
(``VmHWM``). Where ``/proc`` is absent, ``resource.getrusage`` gives only the
peak (``ru_maxrss``), which then stands in for the current value as well.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")
_KIB_PER_MIB = 1024.0


@dataclass(frozen=True)
class RssSample:
    """One reading of resident memory.

    Attributes:
        rss_mb: Current resident set size in MiB.
        peak_mb: Peak resident set size so far in MiB.
        source: ``"proc"`` or ``"getrusage"`` (peak only; ``rss_mb`` = peak).
    """

    rss_mb: float
    peak_mb: float
    source: str


def _from_proc() -> RssSample | None:
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = float(value.split()[0]) / _KIB_PER_MIB  # the kernel reports kB
    if len(fields) != 2:
        return None
    return RssSample(fields["VmRSS"], fields["VmHWM"], "proc")


def _from_getrusage() -> RssSample | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    maxrss = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    # ru_maxrss is in bytes on macOS and in kilobytes elsewhere.
    peak = maxrss / (1024.0 * 1024.0) if sys.platform == "darwin" else maxrss / _KIB_PER_MIB
    return RssSample(peak, peak, "getrusage")


def sample_rss() -> RssSample | None:
    """Reads this process's resident memory.

    Returns:
        The reading, or ``None`` when the platform offers neither source.
    """
    return _from_proc() or _from_getrusage()
