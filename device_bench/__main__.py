"""Entry point of ``python -m device_bench``."""

import sys

from device_bench.cli import main

raise SystemExit(main(sys.argv[1:]))
