"""How a sweep runs (not what each point builds): its folder, workers and Ray settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config.enums import SweepPreference
from pipeline.errors import ConfigError


@dataclass(frozen=True)
class SweepOptions:
    """How the sweep runs (not what each point builds)."""

    out: Path = Path("sweep")
    workers: int = 1
    prefer: str = SweepPreference.SIZE.value
    ray: str | None = None  # a Ray cluster's address (or `auto`): points run as Ray tasks
    point_cpus: float = 1.0  # CPUs Ray reserves per point
    ray_retries: int = 2  # Ray's max_retries: reruns of a point whose worker or node died

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers must be >= 1; received {self.workers}.")
        if not self.point_cpus > 0:
            raise ConfigError(
                f"--point-cpus must be > 0 (CPUs per point on the Ray cluster); "
                f"received {self.point_cpus}."
            )
        if self.ray_retries < 0:
            raise ConfigError(f"--ray-retries must be >= 0; received {self.ray_retries}.")
        choices = [p.value for p in SweepPreference]
        if self.prefer not in choices:
            raise ConfigError(f"--prefer must be {' or '.join(choices)}; received '{self.prefer}'.")
