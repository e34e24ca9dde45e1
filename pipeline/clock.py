"""Wall time of each stage of a build, reported in `timings_s`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class StageClock:
    """Wall time of each stage, for the report."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.seconds: dict[str, float] = {}
        self._progress = progress

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        self._progress(name)
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)
