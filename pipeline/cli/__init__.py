"""The `bedside-lite` command line (see `main`)."""

from pipeline.cli.main import main, run
from pipeline.cli.options import build_config, job_config

__all__ = ["build_config", "job_config", "main", "run"]
