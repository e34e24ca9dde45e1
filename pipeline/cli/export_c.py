"""`bedside-lite export-c F --out DIR`: a .tflite file as C source for a TFLM firmware.

The arena size, tensors and ops come from running the file on TensorFlow Lite Micro
(`pipeline.device.client.micro_footprint`, the `[micro]` extra); the C text from
`converters.c_source`. A model TFLM refuses (an op it lacks) is an error, exit 2: a
firmware built from it would not run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pipeline.errors import MissingExtraError, ModelError, OutputError


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The `export-c` subcommand's arguments."""
    c = sub.add_parser(
        "export-c",
        help="a .tflite file as C source for a TensorFlow Lite Micro firmware: aligned const "
        "array, header with arena size, tensors, quantization and op resolver (needs "
        "bedside-lite[micro])",
    )
    c.add_argument("file", type=Path, metavar="FILE", help="the .tflite file (model_int8.tflite)")
    c.add_argument("--out", type=Path, required=True, help="output dir (created if missing)")
    c.add_argument("--name", help="C name of the array and files (default: from FILE)")
    c.add_argument("--overwrite", action="store_true", help="replace existing .c/.h files")
    c.add_argument("--json", action="store_true", help="print what was written as JSON")


def _tensor(doc: dict[str, Any]) -> Any:
    from converters.c_source import CTensor

    return CTensor(tuple(doc["shape"]), doc["dtype"], doc.get("scale"), doc.get("zero_point"))


def run(args: argparse.Namespace) -> int:
    """Writes NAME.c and NAME.h into --out; exit 2 on a bad file or a model TFLM refuses."""
    from converters.c_source import CModel, c_identifier, write_c_source
    from pipeline.device.client import micro_available, micro_footprint

    if not args.file.is_file():
        raise ModelError(
            f"export-c FILE '{args.file}' is not a file; expected a .tflite file, e.g. the "
            "model_int8.tflite written by `bedside-lite build`."
        )
    if not micro_available():
        raise MissingExtraError("tflite-micro", "micro", "export-c")
    name = c_identifier(args.name or args.file.stem)
    targets = [args.out / f"{name}.c", args.out / f"{name}.h"]
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise OutputError(
            f"export-c would replace {', '.join(existing)}; pass --overwrite or another --out."
        )
    micro = micro_footprint(args.file, extra=("input", "output"))
    if micro["status"] != "ok":
        raise ModelError(
            f"TFLM cannot run '{args.file}' ({micro['status']}: {micro['reason']}); a firmware "
            "built from it would not run. Replace the op(s) named, or quantize every op."
        )
    model = CModel(
        name=name,
        model_bytes=args.file.read_bytes(),
        arena_bytes=micro["arena_bytes"],
        arena_note=(
            f"the smallest that allocated and ran on TFLM {micro['runtime_version']} (the "
            f"recording allocator's estimate: {micro['arena_estimate_bytes']} bytes); kernels "
            "other than the reference ones (CMSIS-NN) may need a little more scratch: keep a "
            "margin"
        ),
        inputs=(_tensor(micro["input"]),),
        outputs=(_tensor(micro["output"]),),
        ops=tuple(micro["ops"]),
        source=args.file.name,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    source, header = write_c_source(model, args.out)
    written = {
        "source": str(source),
        "header": str(header),
        "model_bytes": len(model.model_bytes),
        "arena_bytes": model.arena_bytes,
        "arena_estimate_bytes": micro["arena_estimate_bytes"],
        "ops": list(model.ops),
    }
    if args.json:
        print(json.dumps(written, indent=2))
    else:
        print(
            f"wrote {source} and {header}: {len(model.model_bytes)} bytes of flash, arena "
            f"{model.arena_bytes} bytes, ops {', '.join(model.ops)}"
        )
    return 0
