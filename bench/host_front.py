"""What `--host-preprocessing` costs the host: the numpy front per image.

`--host-preprocessing` cuts a model's leading Rescaling/Resizing off and the host runs them
in numpy (`pipeline.data.host_front`). The device saves the resize's time; the host pays
this. On a device that is also the host (one CPU) the move only gains if the front costs
less than the device saved: compare this with the two files' p50 in one device_bench run
(bench/nested.py's "resize on the host" rows).

    PYTHONPATH=. python bench/host_front.py [--size 28 --out 96 --channels 1 --batch 1]

Imports numpy and the pipeline's host front only (no TensorFlow), as a device would.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.data.host_front import HostFront, Rescale, Resize  # noqa: E402


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Median and p90 milliseconds of one `HostFront.apply` call over `--calls` calls."""
    front = HostFront(
        (
            Rescale(np.float32(1 / 127.5), np.float32(-1.0), "scale"),
            Resize(args.out, args.out, args.interpolation, "resize"),
        ),
        (None, args.size, args.size, args.channels),
        (None, args.out, args.out, args.channels),
    )
    rng = np.random.default_rng(0)
    shape = (args.batch, args.size, args.size, args.channels)
    x = rng.integers(0, 256, shape).astype(np.float32)
    for _ in range(args.warmup):
        front.apply(x)
    times = []
    for _ in range(args.calls):
        start = time.perf_counter()
        front.apply(x)
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    return {
        "input": list(shape),
        "output": [args.batch, args.out, args.out, args.channels],
        "interpolation": args.interpolation,
        "calls": args.calls,
        "p50_ms": float(np.median(ms)),
        "p90_ms": float(np.percentile(ms, 90)),
        "numpy": np.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=28, help="input height and width")
    parser.add_argument("--out", type=int, default=96, help="resized height and width")
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--interpolation", choices=("bilinear", "nearest"), default="bilinear")
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the result as JSON")
    args = parser.parse_args(argv)
    result = measure(args)
    print(
        f"host front Rescaling + Resizing {args.interpolation} {result['input']} -> "
        f"{result['output']}: p50 {result['p50_ms']:.4f} ms, p90 {result['p90_ms']:.4f} ms "
        f"({args.calls} calls, numpy {result['numpy']})"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
