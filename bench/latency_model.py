"""Does the latency model of structured pruning predict the int8 file it ships (within 15%)?

The model is fixed beforehand: MobileNetV2 alpha 0.35 at 96x96x3 (keras.applications,
weights=None, 2 classes; its timing does not depend on training). The latency model
(`pipeline.prune.structured.latency`) measures its layers as one-layer int8 files on this
machine's LiteRT (`pipeline.prune.structured.probe.LocalProfiler`, 1 thread) into a fresh
cache, and the whole unpruned int8 file. Then, for each cut D:R (drop the D residual
branches adding least per measured ms, remove the fraction R of channels ranked by
importance per ms saved, channel multiple 8; no fine-tuning: the time does not depend on
it), the pipeline's step rebuilds the model, the latency model predicts its int8 time, and
its int8 file is measured whole (device_bench p50, 100 runs, at least 0.5 s). Prints a
markdown table with predicted / measured; `--json` keeps the numbers.

    PYTHONPATH=. nice -n 10 python bench/latency_model.py [--size 96] [--json out.json]

A benchmark, not a test; timings move with the machine's load (2 shared cores here).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

CUTS = ((0, 0.25), (0, 0.5), (0, 0.75), (4, 0.5), (8, 0.65))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import keras

    from pipeline.config import StructuredConfig
    from pipeline.data.preprocessing import Preprocessing
    from pipeline.data.splits import Splits
    from pipeline.models import output_kind
    from pipeline.models.flatten import flatten
    from pipeline.prune.structured import prune_structured
    from pipeline.prune.structured.latency import LatencyModel, LayerTimes
    from pipeline.prune.structured.probe import LocalProfiler

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(
        alpha=0.35, input_shape=(args.size, args.size, 3), weights=None, classes=2
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (96, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 2, 96)
    splits = Splits(
        x[:32], y[:32], x[32:64], y[32:64], x[64:], y[64:],
        source="random", preprocessing=Preprocessing.identity(),
    )  # fmt: skip
    profiler = LocalProfiler(x[:32])
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        latency = LatencyModel(flatten(model).model, LayerTimes(profiler, Path(cache)))
        build_s = time.perf_counter() - started
        print(
            f"latency model: {latency.times.measured} one-layer files in {build_s:.0f} s; "
            f"unpruned int8 {latency.unpruned_ms:.3f} ms, layers {latency.layers_ms:.3f} ms"
        )
        for drop, sparsity in CUTS:
            config = StructuredConfig(
                sparsity=sparsity, drop_blocks=drop, channel_multiple=8, min_channels=8
            )
            outcome = prune_structured(
                model, splits, output_kind(model), config, score=lambda m: None, latency=latency
            )
            predicted = latency.predict_model(outcome.model)
            measured = profiler.models_ms([outcome.model])[0]
            rows.append({
                "cut": f"{drop}:{sparsity:g}", "predicted_ms": predicted, "measured_ms": measured,
                "ratio": predicted / measured,
                "mac_reduction": outcome.macs_before / outcome.macs_after,
                "measured_speedup": latency.unpruned_ms / measured,
            })  # fmt: skip
            print(rows[-1], flush=True)
    print("\n| cut D:R | MACs x | predicted ms | measured ms | predicted/measured | speedup |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['cut']} | {1 / r['mac_reduction']:.2f} | {r['predicted_ms']:.3f} | "
            f"{r['measured_ms']:.3f} | {r['ratio']:.2f} | {r['measured_speedup']:.2f}x |"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"unpruned_ms": latency.unpruned_ms, "latency_model_s": build_s, "rows": rows},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
