"""What `--subgroup` adds to the evaluate stage (issue 29: at most 25% with two subgroups).

The default build's data and model: the WDBC cases (scikit-learn's copy) written as an x/y
.npz, standardised, with two SYNTHETIC attributes made up here: `site` (A, or B for about
35% of the cases) and `age` (uniform 20-89, banded 0-50-70-120). One build
(`--no-bench`) makes the three .tflite files; then the evaluate stage
(`pipeline.evaluate.stage.evaluate_variants`: running the three files on the test split,
metrics, calibration, flips, the 2000-replicate bootstrap, and with subgroups the
per-group metrics and intervals) is timed on those files with and without the two
subgroups, interleaved, `--repeats` times each; the medians are compared.

    PYTHONPATH=. python bench/subgroups.py [--repeats 9] [--bootstrap 2000] [--json out.json]
    PYTHONPATH=. python bench/subgroups.py --first-calls 10 [--json out.json]
    PYTHONPATH=. python bench/subgroups.py --builds 15 [--json out.json]

The first takes about 20 s on two shared cores (most of it the one build). The second times
the stage as a build runs it, once per process: each of N fresh processes (per case,
interleaved) evaluates once without subgroups (imports, interpreters), then once more,
without or with them, and that call is timed (about 1 minute for 10). The third is the
issue's own measure: whole default builds, each in its own process, without and with the
subgroups, interleaved, the build's evaluate stage timed to the microsecond around the
build's own call (the report's `timings_s.evaluate` is rounded to the millisecond: too
coarse here); about 17 s per build on two cores, so 15 a side take 9 minutes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def write_data(path: Path, seed: int = 0) -> None:
    """WDBC, standardised, with the synthetic `site` and `age` of every case."""
    from sklearn.datasets import load_breast_cancer

    ds = load_breast_cancer()
    x = ds.data.astype(np.float32)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    rng = np.random.default_rng(seed)
    site = np.where(rng.random(len(x)) < 0.35, "B", "A")
    age = rng.integers(20, 90, len(x))
    np.savez(path, x=x, y=ds.target.astype(np.int64), site=site, age=age)


def prepare(tmp: str, bootstrap: int) -> tuple[Any, ...]:
    """One default build of the bench's data in `tmp`: the evaluate stage's inputs."""
    from pipeline.cli import build_config
    from pipeline.config import Variant
    from pipeline.data.dataset import load
    from pipeline.data.fit import fit_to_model
    from pipeline.evaluate.stage import OperatingPoint
    from pipeline.models import OutputKind
    from pipeline.quantize.ptq import postprocess_kind
    from pipeline.release.build import build

    npz, out = Path(tmp, "wdbc_site.npz"), Path(tmp, "build")
    write_data(npz)
    config = build_config(
        ["build", "--data", str(npz), "--subgroup", "site", "--subgroup", "age",
         "--subgroup-bands", "age=0,50,70,120", "--bootstrap", str(bootstrap),
         "--no-bench", "--out", str(out)]
    )  # fmt: skip
    report = build(config)
    kind = OutputKind(report.model.output_kind)
    int8_kind = postprocess_kind(report.quantization.postprocess, kind)
    splits = fit_to_model(load(config.data), tuple(report.model.input_shape), str(npz))
    paths = {v: out / v.filename for v in Variant if (out / v.filename).is_file()}
    point = OperatingPoint(report.operating_point.threshold, {})
    return paths, splits, kind, int8_kind, config, point


def measure(repeats: int, bootstrap: int) -> dict[str, Any]:
    from pipeline.evaluate.stage import evaluate_variants

    with tempfile.TemporaryDirectory(prefix="bedside-subgroups-bench-") as tmp:
        paths, splits, kind, int8_kind, config, point = prepare(tmp, bootstrap)
        timed: dict[str, list[float]] = {"without": [], "with": []}
        cases = {"without": replace(splits, subgroups=None), "with": splits}
        for _ in range(repeats):
            for name, chosen in cases.items():
                start = time.perf_counter()
                evaluate_variants(paths, chosen, "test", kind, int8_kind, config, point)
                timed[name].append(time.perf_counter() - start)
    without, with_ = statistics.median(timed["without"]), statistics.median(timed["with"])
    return {
        "test_cases": int(len(splits.y_test)),
        "groups": {n: sorted(set(v.tolist())) for n, v in splits.subgroups.test.items()},
        "bootstrap": bootstrap,
        "repeats": repeats,
        "evaluate_s_median": {"without": round(without, 4), "with": round(with_, 4)},
        "added_pct": round((with_ - without) / without * 100, 1),
        "all_s": {k: [round(t, 4) for t in v] for k, v in timed.items()},
    }


def first_call(state: Path, case: str) -> float:
    """In this fresh process: one evaluate stage without subgroups, then the timed one."""
    import pickle

    from pipeline.evaluate.stage import evaluate_variants

    paths, splits, kind, int8_kind, config, point = pickle.loads(state.read_bytes())
    without = replace(splits, subgroups=None)
    evaluate_variants(paths, without, "test", kind, int8_kind, config, point)
    start = time.perf_counter()
    chosen = splits if case == "with" else without
    evaluate_variants(paths, chosen, "test", kind, int8_kind, config, point)
    return time.perf_counter() - start


def measure_first_calls(processes: int, bootstrap: int) -> dict[str, Any]:
    """The stage as a build runs it: its first call with (or without) subgroups in each of
    `processes` fresh processes per case, interleaved (`first_call`)."""
    import pickle
    import subprocess

    root = Path(__file__).resolve().parent.parent
    env = {"PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    timed: dict[str, list[float]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory(prefix="bedside-subgroups-first-") as tmp:
        state = Path(tmp, "state.pickle")
        state.write_bytes(pickle.dumps(prepare(tmp, bootstrap)))
        for _ in range(processes):
            for name in timed:
                argv = [sys.executable, __file__, "--first-call", name, "--state", str(state)]
                done = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
                timed[name].append(float(done.stdout.split()[-1]))
    without, with_ = statistics.median(timed["without"]), statistics.median(timed["with"])
    return {
        "processes": processes,
        "first_call_s_median": {"without": round(without, 4), "with": round(with_, 4)},
        "added_pct": round((with_ - without) / without * 100, 1),
        "all_s": {k: [round(t, 4) for t in v] for k, v in timed.items()},
    }


SUBGROUP_FLAGS = ["--subgroup", "site", "--subgroup", "age", "--subgroup-bands", "age=0,50,70,120"]


def one_build(npz: Path, out: Path, case: str) -> str:
    """A whole default build in this process (as `pipeline build --no-bench` runs it), its
    evaluate stage timed to the microsecond around the build's own call; JSON of that and
    of `timings_s.evaluate` (the report's, rounded to the millisecond)."""
    import pipeline.release.build as release
    from pipeline.cli import build_config

    timed: list[float] = []
    evaluate = release.evaluate_variants

    def timed_evaluate(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return evaluate(*args, **kwargs)
        finally:
            timed.append(time.perf_counter() - start)

    release.evaluate_variants = timed_evaluate
    argv = ["build", "--data", str(npz), "--no-bench", "--quiet", "--out", str(out)]
    report = release.build(build_config(argv + (SUBGROUP_FLAGS if case == "with" else [])))
    return json.dumps({"evaluate_s": timed[0], "timings_s": report.timings_s["evaluate"]})


def measure_builds(builds: int) -> dict[str, Any]:
    """The evaluate stage as a build runs it: whole default builds (`--no-bench`) of the
    same data, without and with the two subgroups, interleaved, each in its own process
    (`one_build`), the stage timed to the microsecond inside it."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    env = {"PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    timed: dict[str, list[float]] = {"without": [], "with": []}
    rounded: dict[str, list[float]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory(prefix="bedside-subgroups-builds-") as tmp:
        npz = Path(tmp, "wdbc_site.npz")
        write_data(npz)
        for i in range(builds):
            for name in timed:
                out = Path(tmp, f"{name}-{i}")
                argv = [sys.executable, __file__, "--one-build", name, "--state", str(npz)]
                argv += ["--json", str(out)]
                done = subprocess.run(argv, env=env, check=True, capture_output=True, text=True)
                found = json.loads(done.stdout.splitlines()[-1])
                timed[name].append(found["evaluate_s"])
                rounded[name].append(found["timings_s"])
    without, with_ = statistics.median(timed["without"]), statistics.median(timed["with"])
    pairs = [w / o - 1 for w, o in zip(timed["with"], timed["without"], strict=True)]
    return {
        "builds": builds,
        "evaluate_stage_s_median": {"without": round(without, 5), "with": round(with_, 5)},
        "added_pct": round((with_ - without) / without * 100, 1),
        "pairs_added_pct_median": round(statistics.median(pairs) * 100, 1),
        "all_s": {k: [round(t, 5) for t in v] for k, v in timed.items()},
        "timings_s_evaluate": rounded,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument(
        "--builds",
        type=int,
        default=0,
        help="instead: N whole default builds each way, timing the build's evaluate stage",
    )
    parser.add_argument(
        "--first-calls",
        type=int,
        default=0,
        help="instead: the first evaluate stage with/without subgroups in N fresh processes each",
    )
    parser.add_argument("--first-call", choices=("without", "with"), help=argparse.SUPPRESS)
    parser.add_argument("--one-build", choices=("without", "with"), help=argparse.SUPPRESS)
    parser.add_argument("--state", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.first_call:  # a child of --first-calls
        print(first_call(args.state, args.first_call))
        return
    if args.one_build:  # a child of --builds: --state is the data, --json the output folder
        print(one_build(args.state, args.json, args.one_build))
        return
    if args.builds:
        result = measure_builds(args.builds)
    elif args.first_calls:
        result = measure_first_calls(args.first_calls, args.bootstrap)
    else:
        result = measure(args.repeats, args.bootstrap)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
