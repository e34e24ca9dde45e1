"""The commands `build`, `init`, `export-onnx`, `bench` and `inspect`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.cli.console import gate_failures, native_logs_captured, run_with_progress
from pipeline.cli.options import (
    build_defaults,
    build_options,
    config_from_args,
    device_config_from_args,
)
from pipeline.config import (
    BenchConfig,
    ExportConfig,
)


def run_build(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from pipeline.release import gates, mlflow_log

    options = build_options(argv)
    config = config_from_args(options)
    if config.gates.baseline is not None:
        gates.load_baseline(config.gates.baseline)  # a bad baseline fails before TensorFlow
    mlflow_log.preflight(config.release)  # a server that cannot take the run: before any work

    from rich.console import Console

    from pipeline.release.build import build

    report = run_with_progress(
        options.quiet, args.debug, lambda progress: build(config, progress=progress)
    )
    console = Console(stderr=options.json, width=max(Console().width, 120))  # intervals
    if options.json:
        print(json.dumps(report.to_json(), indent=2))
    elif not options.quiet:
        from pipeline.release.report import print_summary

        print_summary(report, console)
        console.print(f"artifacts in {config.out}/ (report.md, manifest.json)")
    code = gate_failures(report.gates.to_json() if report.gates is not None else {})
    if config.release.mlflow_uri is not None:
        from pipeline.config.jobfile import job_from_config

        job = job_from_config(config)
        published = mlflow_log.publish(config.release, report, config.out, job)
        print(f"mlflow: {published.note}", file=sys.stderr)
    return code


def run_init(args: argparse.Namespace) -> int:
    """`init`: writes a commented job file holding every option with its default."""
    from pipeline.config.jobfile import template
    from pipeline.errors import OutputError

    if args.path.exists() and not args.overwrite:
        raise OutputError(
            f"'{args.path}' exists. Pass --overwrite to replace it, or choose another path."
        )
    args.path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{args.path.name}.", dir=args.path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(template(build_defaults()))
    os.replace(tmp, args.path)
    print(f"wrote {args.path}; edit it, then run: bedside-lite build --config {args.path}")
    return 0


def run_export_onnx(args: argparse.Namespace) -> int:
    """`export-onnx`: writes the .onnx file(s) and onnx.json; exit 1 when parity fails."""
    from pipeline.errors import ModelError
    from pipeline.release import artifacts

    export_config = ExportConfig(onnx=True, opset=args.opset)
    if args.tflite is not None and not args.tflite.is_file():
        raise ModelError(
            f"--tflite '{args.tflite}' is not a file; expected the int8 .tflite "
            "written by `bedside-lite build` (model_int8.tflite)."
        )
    from converters import onnx_export

    onnx_export.require_extra()
    artifacts.check_output_dir(args.out, args.overwrite)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pipeline import models
    from pipeline.quantize.ptq import postprocess_kind
    from pipeline.release import onnx_parity

    with native_logs_captured(enabled=not args.debug):
        model = models.load_model(args.model)
        kind = models.output_kind(model)
        postprocess = "none"  # the build records in preprocessing.json if the host applies it
        if args.tflite is not None and (args.tflite.parent / "preprocessing.json").is_file():
            meta = json.loads((args.tflite.parent / "preprocessing.json").read_text())
            postprocess = meta.get("postprocess", "none")
        probes = onnx_export.probe_inputs(model, args.tflite)
        exported = onnx_parity.export(
            model,
            args.tflite,
            probes,
            kind,
            postprocess_kind(postprocess, kind),
            opset=export_config.opset,
        )
        with artifacts.Staging(args.out) as stage:
            files = {
                "onnx_pruned_float32": stage.write_bytes(
                    onnx_export.FLOAT_FILENAME, exported.float_onnx
                )
            }
            if exported.int8_onnx is not None:
                files["onnx_int8"] = stage.write_bytes(
                    onnx_export.INT8_FILENAME, exported.int8_onnx
                )
            doc = {
                "model": str(args.model),
                "tflite": args.tflite and str(args.tflite),
                "parity_inputs": f"{len(probes)} seeded random samples",
                "artifacts": {k: artifacts.describe(p, args.out) for k, p in files.items()},
                "parity": exported.parity,
                "warnings": exported.warnings(),
            }
            (stage.dir / "onnx.json").write_text(json.dumps(doc, indent=2) + "\n")
            stage.commit()
    print(
        json.dumps(doc, indent=2)
        if args.json
        else f"wrote {', '.join(p.name for p in files.values())} to {args.out}/; parity "
        f"{'ok' if exported.ok else 'FAILED'}"
    )
    for warning in doc["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0 if exported.ok else 1


def bench_report(args: argparse.Namespace) -> dict[str, Any]:
    """device_bench's JSON report of `bench` options (`args`), measured here or on the one
    `--device`.

    Raises:
        ConfigError: contradictory options or a missing --json folder.
        ModelError: a model path is not a file.
    """
    from pipeline.device import client
    from pipeline.errors import ConfigError, ModelError

    for model in args.models:
        if not model.is_file():
            raise ModelError(f"'{model}' is not a file; expected a .tflite model.")
    config = BenchConfig(
        runs=args.runs,
        warmup=args.warmup,
        min_seconds=args.min_seconds,
        threads=args.threads,
        profile=args.profile,
    )
    devices = device_config_from_args(args).devices
    if len(devices) > 1:
        raise ConfigError(
            f"bench measures one device at a time; received {len(devices)} --device. Run "
            "bench once per device, or use build, which measures every --device."
        )
    if devices and args.runtime_python is not None:
        raise ConfigError(
            "--runtime-python picks a Python on this machine, --device-python one on the "
            "device; received both with --device. Drop --runtime-python."
        )
    if args.json not in (None, "-"):
        folder = Path(args.json).parent
        if not folder.is_dir():
            raise ConfigError(
                f"--json '{args.json}': folder '{folder}' does not exist; create it first."
            )
    if devices:
        from pipeline.device.remote import bench_on_device

        return bench_on_device(devices[0], list(args.models), config)
    python = str(args.runtime_python) if args.runtime_python else None
    return client.bench(list(args.models), config, python)


def run_bench(args: argparse.Namespace) -> int:
    """The same device_bench interface the build's bench stage uses, here or on a device."""
    from pipeline.device import client
    from pipeline.device.local import summarize

    doc = bench_report(args)
    devices = device_config_from_args(args).devices
    if args.json == "-":
        print(json.dumps(doc, indent=2))
    else:
        if args.json is not None:
            folder = Path(args.json).parent
            fd, tmp = tempfile.mkstemp(prefix=f".{Path(args.json).name}.", dir=folder)
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(doc, indent=2) + "\n")
            os.replace(tmp, args.json)
        where = f" on {devices[0].label}" if devices else ""
        for model, entry in zip(args.models, doc["models"], strict=True):
            s = summarize(entry)
            if s["status"] != "ok":
                print(f"{model}{where}: {s['status']}: {s['reason']}")
                continue
            lat, ratio = s["latency_ms"], s.get("ratio_to_float32") or {}
            print(
                f"{model}{where}: {s['runtime']} {s['runtime_version']} {s['threads']} "
                f"thread(s) p50 {lat['p50']:.4f} ms p99 {lat['p99']:.4f} ms peak RSS "
                f"{s['peak_rss_mb']:.1f} MB ratio to first {ratio.get('p50', 1.0):.2f}"
                + (f" ({s['note']})" if s.get("note") else "")
            )
            if s.get("profile"):
                print("\n".join(client.profile_lines(f"{model}{where}", s["profile"])))
    return 0 if all(m.get("status") == "ok" for m in doc["models"]) else 1


def run_inspect(args: argparse.Namespace) -> int:
    from converters.inspection import inspect_tflite
    from pipeline.errors import ModelError

    if not args.file.is_file():
        raise ModelError(f"'{args.file}' is not a file; expected a .tflite model.")
    if args.compare is not None:
        return _run_compare(args)
    info = inspect_tflite(args.file)
    doc = info.to_json()
    from pipeline.release.manifest import read_embedded

    doc["manifest"] = read_embedded(args.file)
    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    print(f"{args.file}: full_integer={doc['full_integer']}")
    print(f"  input  {doc['input']}")
    print(f"  output {doc['output']}")
    for op in doc["ops"]:
        print(
            f"  #{op['index']:<3} {op['op']:<24} v{op['version']:<2} "
            f"in={','.join(op['inputs'])} out={','.join(op['outputs'])}  {op['output_name']}"
        )
    if doc["float_tensors"]:
        print(f"  float tensors: {', '.join(doc['float_tensors'])}")
    if doc["manifest"] is not None:
        text = json.dumps(doc["manifest"], indent=2).replace("\n", "\n    ")
        print(f"  manifest (metadata 'bedside_lite_manifest'):\n    {text}")
    return 0


def _compare_samples(path: Path | None, count: int) -> Any:
    """`inspect --data`: the first `count` samples of an .npy, or of an .npz's `x`,
    `test_images` or only array."""
    import numpy as np

    from pipeline.errors import ConfigError

    if path is None or not path.is_file():
        raise ConfigError(
            f"inspect --compare needs --data FILE (.npy/.npz samples); received {path}."
        )
    if count < 1:
        raise ConfigError(f"--samples {count}: expected at least 1.")
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.ndarray):
        return loaded[:count]
    names = [n for n in ("x", "test_images") if n in loaded.files] or loaded.files
    if len(names) != 1 and names[0] not in ("x", "test_images"):
        raise ConfigError(
            f"--data '{path}' holds arrays {loaded.files}; expected one array, or one named "
            "'x' or 'test_images'. Save the samples alone with numpy.save."
        )
    return loaded[names[0]][:count]


def _run_compare(args: argparse.Namespace) -> int:
    """`inspect F --compare A B --data D`: each op's error of B against A along the graph."""
    from pipeline.device import client

    runtime_a, runtime_b = args.compare
    x = _compare_samples(args.data, args.samples)
    errors, first = client.compare_runtimes(args.file, x, runtime_a, runtime_b)
    if args.json:
        print(json.dumps({"a": runtime_a, "b": runtime_b, "ops": errors, "divergence": first}))
        return 0
    print(
        f"{args.file}: {runtime_b} against {runtime_a} on {len(x)} sample(s); steps of each "
        "op's output quantization (alone: the op fed the same inputs on both)"
    )
    print(f"  {'#':<4} {'op':<24} {'dtype':<8} {'max steps':>9} {'alone':>6} {'SNR dB':>7}")
    for e in errors:
        snr = "inf" if e["snr_db"] is None else f"{e['snr_db']:.1f}"
        mark = "  <- first > 2 steps" if first is not None and e["index"] == first["index"] else ""
        print(
            f"  {e['index']:<4} {e['op']:<24} {e['dtype']:<8} {_cell(e['max_steps']):>9} "
            f"{_cell(e['local_max_steps']):>6} {snr:>7}{mark}"
        )
    if first is None:
        print("  no op differs by more than 2 steps")
    else:
        print(
            f"  first divergence: op #{first['index']} {first['op']} ({_cell(first['max_steps'])} "
            f"steps along the graph, {_cell(first['local_max_steps'])} alone)"
        )
    return 0


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
