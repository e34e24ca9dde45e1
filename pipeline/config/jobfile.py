"""The TOML job file: `bedside-lite build --config job.toml`.

A job file holds every `build` option in flat sections ([model], [data], [prune],
[quantize], [bench], [export], [gates], [device]; `sweep` also reads [sweep]). Values resolve as
command-line flag the user actually passed > job file > the flag's default. Unknown
sections or keys and values of the wrong type are a `ConfigError` naming the file and the
key, raised before TensorFlow is imported. The resolved job is written beside the
artifacts as `job.resolved.toml`; re-running it reproduces the build.

Paths in a job file are taken relative to the working directory, as on the command line
(CI runs from the repository root).
"""

from __future__ import annotations

import argparse
import difflib
import enum
import json
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import (
    AUTO_SPARSITY,
    FINETUNE_AUGMENTATIONS,
    GATE_LIMITS,
    BuildConfig,
    LrSchedule,
)
from pipeline.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SECTIONS = ("model", "data", "prune", "quantize", "bench", "export", "gates", "device")
SWEEP = "sweep"
# Flags of `build` that say how this run prints, not what it builds: no job key.
PRESENTATION_DESTS = frozenset({"config", "json", "quiet", "debug", "gate", "command", "help"})
# Flags that exclude each other: passing one on the command line clears the file's others.
EXCLUSIVE_DESTS = (
    ("sparsity", "threshold"),
    ("structured_sparsity", "structured_threshold"),
    ("decision_threshold", "operating_point"),
)
RUNTIMES = ("litert", "litert-no-delegates", "tflite-runtime")


@dataclass(frozen=True)
class Key:
    """One job-file key: where it lives, which `build` flag it mirrors, its type.

    `kind` is one of int, float, bool, str, path, strs, floats, size, class_ref, sparsity,
    choice, choices, targets (choices or device names, checked against the devices later).
    `attr` is the dotted attribute of `BuildConfig` it ends up in; `invert` marks a key
    whose true value is the flag's absence (`[bench] enabled` vs `--no-bench`).
    """

    section: str
    name: str
    dest: str
    kind: str
    attr: str
    help: str
    flag: str
    choices: tuple[str, ...] = ()
    invert: bool = False
    example: str = ""

    @property
    def label(self) -> str:
        return f"[{self.section}] {self.name}"


def _k(
    section: str,
    name: str,
    kind: str,
    help: str,
    *,
    dest: str = "",
    attr: str = "",
    flag: str = "",
    **kw: Any,
) -> Key:
    """A key; `dest` defaults to its name, `attr` to section.name, `flag` to --dest."""
    dest = dest or name
    return Key(
        section,
        name,
        dest,
        kind,
        attr or f"{section}.{name}",
        help,
        flag or "--" + dest.replace("_", "-"),
        **kw,
    )


_GATE_HELP = {
    "max_auroc_drop": ("float32 AUROC - int8 AUROC (and baseline int8 - int8)", "0.02"),
    "max_sensitivity_drop": ("the same for sensitivity", "0.03"),
    "min_specificity": ("int8 specificity at the decision threshold", "0.9"),
    "max_int8_bytes": ("size of model_int8.tflite", "65536"),
    "max_int8_p50_ms": ("int8 median latency (needs the bench)", "2.0"),
    "min_speedup": ("float32 p50 / int8 p50 (needs the bench)", "1.0"),
    "max_latency_regression_pct": ("int8 p50 above the baseline's, in %", "20.0"),
    "max_size_growth_pct": ("int8 bytes above the baseline's, in %", "10.0"),
    "noninferiority_auroc": ("margin: upper 95% bound of float32 - int8 AUROC", "0.02"),
    "noninferiority_sensitivity": ("the same for sensitivity", "0.05"),
}
KEYS: tuple[Key, ...] = (
    _k(
        "model",
        "path",
        "path",
        "Keras 3 model (.keras, .h5) or SavedModel dir; unset: train "
        "the embedded reference classifier",
        dest="model",
        attr="model",
        example='"models/classifier.keras"',
    ),
    _k(
        "model",
        "positive_class",
        "class_ref",
        "clinically positive class (index or name); unset: the dataset's own",
        attr="evaluation.positive_class",
        example='"malignant"',
    ),
    _k(
        "model",
        "decision_threshold",
        "float",
        "P(positive) from which a case is positive",
        attr="evaluation.decision_threshold",
    ),
    _k(
        "model",
        "operating_point",
        "str",
        "threshold=T | sensitivity=S | specificity=S | youden, chosen on validation",
        attr="evaluation.operating_point",
        example='"sensitivity=0.95"',
    ),
    _k(
        "model",
        "bootstrap",
        "int",
        "stratified bootstrap resamples of the test split for 95% intervals (0: none)",
        attr="evaluation.bootstrap",
    ),
    _k(
        "model",
        "max_sensitivity_drop",
        "float",
        "validation sensitivity auto sparsity and the int8 remedies may lose",
        attr="evaluation.max_sensitivity_drop",
    ),
    _k(
        "model",
        "max_specificity_drop",
        "float",
        "the same for validation specificity",
        attr="evaluation.max_specificity_drop",
    ),
    _k(
        "model",
        "max_brier_increase",
        "float",
        "the validation Brier score (probability drift) they may add",
        attr="evaluation.max_brier_increase",
    ),
    _k("model", "seed", "int", "seed of splits, training, calibration", attr="seed"),
    _k(
        "model",
        "unsafe_load",
        "bool",
        "allow Lambda layers (runs code stored in the model)",
        attr="unsafe_load",
    ),
    _k(
        "data",
        "path",
        "path",
        ".npz, medmnist:NAME[@SIZE], image/DICOM folder or .csv; unset: embedded WDBC",
        dest="data",
        example='"medmnist:breastmnist"',
    ),
    _k(
        "data",
        "labels",
        "path",
        "filename,label CSV of an image/DICOM folder",
        example='"data/labels.csv"',
    ),
    _k("data", "label_column", "str", "label column of a tabular CSV or of labels"),
    _k(
        "data",
        "calibration",
        "path",
        "samples for int8 calibration instead of the train split",
        dest="calibration_data",
        example='"data/calibration"',
    ),
    _k("data", "scale", "float", "preprocessing x * scale + offset", example="0.00392156862745098"),
    _k("data", "offset", "float", "see scale", example="0.0"),
    _k(
        "data",
        "mean",
        "floats",
        "preprocessing (x - mean) / std, scalar or per channel",
        example="[0.485, 0.456, 0.406]",
    ),
    _k("data", "std", "floats", "see mean", example="[0.229, 0.224, 0.225]"),
    _k("data", "resize", "size", "resize images to [height, width]", example="[64, 64]"),
    _k("data", "window_center", "float", "DICOM window center (with window_width)", example="40.0"),
    _k("data", "window_width", "float", "DICOM window width, mapped onto 0..255", example="400.0"),
    _k("data", "window_from_file", "bool", "use each DICOM file's own window"),
    _k(
        "prune",
        "sparsity",
        "sparsity",
        f"target sparsity in [0, 1), 0 skips pruning, or '{AUTO_SPARSITY}' (default)",
        attr="prune.target_sparsity",
        example=f'"{AUTO_SPARSITY}"',
    ),
    _k(
        "prune",
        "threshold",
        "float",
        "absolute magnitude threshold tau (instead of sparsity)",
        example="0.01",
    ),
    _k(
        "prune",
        "scope",
        "choice",
        "global: one tau over all kernels; layer: one per kernel",
        dest="prune_scope",
        choices=("global", "layer"),
    ),
    _k(
        "prune",
        "biases",
        "bool",
        "also prune biases with tau",
        dest="prune_biases",
        attr="prune.prune_biases",
    ),
    _k(
        "prune",
        "include",
        "strs",
        "prune only layers matching these fnmatch patterns",
        dest="prune_include",
    ),
    _k(
        "prune",
        "exclude",
        "strs",
        "never prune layers matching these patterns",
        dest="prune_exclude",
    ),
    _k("prune", "keep_first_last_dense", "bool", "leave the first and last prunable layer"),
    _k("prune", "finetune_epochs", "int", "fine-tune with the masks held"),
    _k(
        "prune",
        "schedule",
        "choice",
        "when masks are computed",
        dest="prune_schedule",
        choices=("oneshot", "polynomial"),
    ),
    _k("prune", "initial_sparsity", "float", "polynomial: sparsity at the first step"),
    _k(
        "prune",
        "frequency",
        "int",
        "polynomial: optimizer steps between mask updates",
        dest="prune_frequency",
        attr="prune.prune_frequency",
    ),
    _k(
        "prune",
        "max_drop",
        "float",
        "auto: validation AUROC the pruned float model may lose",
        dest="max_prune_drop",
        attr="prune.max_prune_drop",
    ),
    _k(
        "prune",
        "structured_sparsity",
        "float",
        "structured pruning first: fraction of Conv/Dense output channels removed",
        attr="structured.sparsity",
        example="0.25",
    ),
    _k(
        "prune",
        "structured_threshold",
        "float",
        "or remove channels below T x their layer's mean filter norm",
        attr="structured.threshold",
        example="0.5",
    ),
    _k(
        "prune",
        "structured_criterion",
        "choice",
        "how channels are ranked: filter norm, or what their readers take from them",
        attr="structured.criterion",
        choices=("l1", "l2", "activation"),
    ),
    _k(
        "prune",
        "structured_scope",
        "choice",
        "global: one ranking over all layers; layer: R of every layer",
        attr="structured.scope",
        choices=("global", "layer"),
    ),
    _k(
        "prune",
        "min_channels",
        "int",
        "structured: no layer keeps fewer channels",
        attr="structured.min_channels",
    ),
    _k(
        "prune",
        "channel_multiple",
        "int",
        "structured: shrunk layers keep a multiple of M channels (1: exact)",
        attr="structured.channel_multiple",
    ),
    _k(
        "prune",
        "drop_blocks",
        "int",
        "structured: first remove the N residual branches that add least",
        attr="structured.drop_blocks",
        example="4",
    ),
    _k(
        "prune",
        "structured_finetune_epochs",
        "int",
        "fine-tune the rebuilt model (unset: finetune_epochs)",
        attr="structured.finetune_epochs",
        example="2",
    ),
    _k(
        "prune",
        "structured_augment",
        "choices",
        "structured fine-tuning: random image transforms",
        attr="structured.augment",
        choices=FINETUNE_AUGMENTATIONS,
        example='["hflip", "shift"]',
    ),
    _k(
        "prune",
        "structured_lr_schedule",
        "choice",
        "structured fine-tuning: learning rate constant or cosine-decayed to 0",
        attr="structured.lr_schedule",
        choices=tuple(s.value for s in LrSchedule),
    ),
    _k(
        "prune",
        "structured_distill",
        "float",
        "structured fine-tuning: weight of the unpruned model's probabilities in the targets",
        attr="structured.distill",
        example="0.5",
    ),
    _k("quantize", "calibration_samples", "int", "calibration sample size"),
    _k(
        "quantize",
        "io",
        "choice",
        "input/output type of the int8 model",
        choices=("int8", "uint8", "float32"),
    ),
    _k(
        "quantize",
        "activations",
        "choice",
        "activation width (int16: the 16x8 mode)",
        choices=("int8", "int16"),
    ),
    _k(
        "quantize",
        "sparse_encoding",
        "bool",
        "store pruned weights sparse if every runtime verifies it",
    ),
    _k("quantize", "max_auroc_drop", "float", "int8 validation AUROC budget of the remedies"),
    _k(
        "quantize",
        "remedy",
        "bool",
        "try remedies when plain PTQ breaks the AUROC budget",
        dest="no_remedy",
        flag="--no-remedy",
        invert=True,
    ),
    _k(
        "quantize",
        "remedy_int16",
        "bool",
        "let the remedies try int16 activations (16x8: accurate, not XNNPACK-accelerated)",
    ),
    _k(
        "quantize",
        "runtime_python",
        "path",
        "a Python with tflite-runtime: verify and bench there too",
        example='"/opt/legacy-venv/bin/python"',
    ),
    _k(
        "bench",
        "enabled",
        "bool",
        "measure latency and memory",
        dest="no_bench",
        flag="--no-bench",
        invert=True,
    ),
    _k("bench", "runs", "int", "timed runs per model", dest="bench_runs"),
    _k("bench", "threads", "int", "interpreter threads"),
    _k("export", "out", "path", "output directory", attr="out"),
    _k("export", "overwrite", "bool", "replace a non-empty out", attr="overwrite"),
    _k("export", "onnx", "bool", "also export ONNX files"),
    _k("export", "opset", "int", "ONNX opset"),
    _k("export", "html", "bool", "also write report.html"),
    *(
        _k(
            "gates",
            name,
            "int" if name == "max_int8_bytes" else "float",
            help,
            dest=f"gate_{name}",
            flag=f"--gate {name}=V",
            example=example,
        )
        for name, (help, example) in _GATE_HELP.items()
    ),
    _k(
        "gates",
        "require_runtimes",
        "targets",
        "runtimes or devices (names in [device] targets) the int8 model must verify on",
        dest="require_runtime",
        attr="quantize.require_runtimes",
        choices=RUNTIMES,
    ),
    _k(
        "gates",
        "require_onnx_parity",
        "bool",
        "ONNX files must match their source",
        attr="export.require_parity",
    ),
    _k(
        "gates",
        "baseline",
        "path",
        "the previous release's report.json",
        example='"baseline/report.json"',
    ),
    _k(
        "device",
        "targets",
        "strs",
        "bedside devices to verify and bench on over SSH: ssh://USER@HOST[:PORT] or "
        "inventory names",
        dest="device",
        flag="--device",
        example='["bedside1"]',
    ),
    _k(
        "device",
        "inventory",
        "path",
        "TOML inventory of devices ([devices.NAME] with ssh, identity, python, threads)",
        dest="devices",
        flag="--devices",
        example='"devices.toml"',
    ),
    _k(
        "device",
        "identity",
        "path",
        "SSH private key for the devices",
        example='"~/.ssh/bedside_ed25519"',
    ),
    _k(
        "device",
        "python",
        "str",
        "the devices' Python (with numpy and ai-edge-litert)",
        dest="device_python",
        example='"/opt/venv/bin/python"',
    ),
    _k(
        "device",
        "known_hosts",
        "path",
        "known_hosts file holding the devices' host keys (default: ssh's)",
        example='"~/.ssh/known_hosts"',
    ),
)
assert {k.name for k in KEYS if k.section == "gates"} >= set(GATE_LIMITS)
GATE_KEYS = {k.name: k for k in KEYS if k.section == "gates" and k.name != "baseline"}
BY_DEST = {k.dest: k for k in KEYS}


@dataclass(frozen=True)
class SweepKey:
    """A `[sweep]` key: a list of values per grid axis, or a sweep setting."""

    name: str
    kind: str  # floats_list | ints_list | choices | int | float | str | choice | path
    help: str
    choices: tuple[str, ...] = ()
    example: str = ""


SWEEP_KEYS = {
    k.name: k
    for k in (
        SweepKey("sparsity", "floats_list", "target sparsities to try", example="[0.0, 0.5, 0.8]"),
        SweepKey("threshold", "floats_list", "or magnitude thresholds tau", example="[0.01, 0.05]"),
        SweepKey(
            "schedule", "choices", "pruning schedules", ("oneshot", "polynomial"), '["oneshot"]'
        ),
        SweepKey("calibration_samples", "ints_list", "calibration sizes", example="[100, 200]"),
        SweepKey("activations", "choices", "activation widths", ("int8", "int16"), '["int8"]'),
        SweepKey("workers", "int", "parallel worker processes", example="1"),
        SweepKey(
            "prefer",
            "choice",
            "recommend the smallest or the fastest passing point",
            ("size", "latency"),
            '"size"',
        ),
        SweepKey("out", "path", "sweep output directory (resumable)", example='"sweep"'),
        SweepKey("ray", "str", "Ray cluster address, or auto ($RAY_ADDRESS)", example='"auto"'),
        SweepKey("point_cpus", "float", "CPUs per point on the Ray cluster", example="1"),
        SweepKey("ray_retries", "int", "reruns of a point whose Ray node died", example="2"),
    )
}


@dataclass(frozen=True)
class JobFile:
    """A parsed job file: `build` values by argparse dest, and the [sweep] section."""

    path: Path | None
    values: dict[str, Any]
    sweep: dict[str, Any]


def _type_name(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def _bad(where: str, key: str, expected: str, value: Any, example: str) -> ConfigError:
    return ConfigError(
        f"{where}: {key} must be {expected}; received {json.dumps(value, default=str)} "
        f"({_type_name(value)}). Write e.g. {example}."
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _convert(key: Key, value: Any, where: str) -> Any:
    """A TOML value of `key` in the form its argparse dest holds."""
    name = key.label
    ex = f"{key.name} = {key.example}" if key.example else f"{key.name} = ..."
    kind = key.kind
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad(where, name, "an integer", value, f"{key.name} = 3")
        return value
    if kind == "float":
        if not _number(value) or not math.isfinite(value):
            raise _bad(where, name, "a finite number", value, f"{key.name} = 0.5")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(where, name, "true or false", value, f"{key.name} = true")
        return not value if key.invert else value
    if kind == "str":
        if not isinstance(value, str):
            raise _bad(where, name, "a string", value, f'{key.name} = "label"')
        return value
    if kind == "path":
        if not isinstance(value, str) or not value:
            raise _bad(where, name, "a non-empty path string", value, ex)
        return Path(value)
    if kind == "strs":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(where, name, "an array of strings", value, f'{key.name} = ["conv*"]')
        return list(value)
    if kind == "floats":
        items = value if isinstance(value, list) else [value]
        if not items or not all(_number(v) for v in items):
            raise _bad(where, name, "a number or an array of numbers", value, ex)
        return tuple(float(v) for v in items)
    if kind == "size":
        if isinstance(value, str):
            parts = value.lower().split("x")
            value = [int(p) for p in parts] if all(p.isdigit() for p in parts) else value
        items = [value, value] if isinstance(value, int) and not isinstance(value, bool) else value
        if (
            not isinstance(items, list)
            or len(items) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in items)
        ):
            raise _bad(where, name, "[height, width]", value, ex)
        return int(items[0]), int(items[1])
    if kind == "class_ref":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise _bad(where, name, "a class index or a class name", value, ex)
        return value
    if kind == "sparsity":
        if isinstance(value, str) and value.strip().lower() == AUTO_SPARSITY:
            return AUTO_SPARSITY
        if not _number(value):
            raise _bad(
                where, name, f'a number in [0, 1) or "{AUTO_SPARSITY}"', value, f"{key.name} = 0.5"
            )
        return float(value)
    if kind == "choice":
        if value not in key.choices:
            raise _bad(
                where,
                name,
                f"one of {', '.join(key.choices)}",
                value,
                f'{key.name} = "{key.choices[0]}"',
            )
        return value
    if kind == "targets":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise _bad(
                where,
                name,
                f"an array of {', '.join(key.choices)} or device names",
                value,
                f'{key.name} = ["{key.choices[0]}"]',
            )
        return list(value)
    if kind == "choices":
        if not isinstance(value, list) or not all(v in key.choices for v in value):
            raise _bad(
                where,
                name,
                f"an array of {', '.join(key.choices)}",
                value,
                f'{key.name} = ["{key.choices[0]}"]',
            )
        return list(value)
    raise AssertionError(f"unknown key kind {kind}")  # pragma: no cover - schema defect


def _convert_sweep(key: SweepKey, value: Any, where: str) -> Any:
    name = f"[{SWEEP}] {key.name}"
    ex = f"{key.name} = {key.example}"
    if key.kind == "floats_list":
        if not isinstance(value, list) or not value or not all(_number(v) for v in value):
            raise _bad(where, name, "a non-empty array of numbers", value, ex)
        return [float(v) for v in value]
    if key.kind == "ints_list":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise _bad(where, name, "a non-empty array of integers", value, ex)
        return list(value)
    if key.kind == "choices":
        if not isinstance(value, list) or not value or not all(v in key.choices for v in value):
            raise _bad(where, name, f"a non-empty array of {', '.join(key.choices)}", value, ex)
        return list(value)
    if key.kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad(where, name, "an integer", value, ex)
        return value
    if key.kind == "float":
        if not _number(value):
            raise _bad(where, name, "a number", value, ex)
        return float(value)
    if key.kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise _bad(where, name, "a non-empty string", value, ex)
        return value
    if key.kind == "choice":
        if value not in key.choices:
            raise _bad(where, name, f"one of {', '.join(key.choices)}", value, ex)
        return value
    if not isinstance(value, str) or not value:
        raise _bad(where, name, "a non-empty path string", value, ex)
    return Path(value)


def _unknown(
    where: str, what: str, name: str, known: Iterable[str], hint: str = "", within: str = ""
) -> None:
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1)
    raise ConfigError(
        f"{where}: unknown {what} '{name}'"
        + (f" in {within}" if within else "")
        + (f" (did you mean '{close[0]}'?)" if close else "")
        + f"; expected one of: {', '.join(known)}.{hint}"
    )


def parse(doc: Mapping[str, Any], where: str = "job file") -> JobFile:
    """Validates a job document (as from `tomllib`) into values by argparse dest.

    Raises:
        ConfigError: an unknown section or key, or a value of the wrong type.
    """
    values: dict[str, Any] = {}
    sweep: dict[str, Any] = {}
    for section, table in doc.items():
        if section not in (*SECTIONS, SWEEP):
            if not isinstance(table, dict):
                owner = next((k.section for k in KEYS if k.name == section), "model")
                raise ConfigError(
                    f"{where}: key '{section}' must be inside a section; expected sections "
                    f"{', '.join(f'[{s}]' for s in (*SECTIONS, SWEEP))}. Put it under a "
                    f"section, e.g. [{owner}]."
                )
            _unknown(where, "section", f"[{section}]", (f"[{s}]" for s in (*SECTIONS, SWEEP)))
        if not isinstance(table, dict):
            raise ConfigError(
                f"{where}: [{section}] must be a table; received {json.dumps(table, default=str)}."
            )
        if section == SWEEP:
            for name, value in table.items():
                if name not in SWEEP_KEYS:
                    _unknown(where, "key", name, SWEEP_KEYS, within=f"[{SWEEP}]")
                sweep[name] = _convert_sweep(SWEEP_KEYS[name], value, where)
            continue
        keys = {k.name: k for k in KEYS if k.section == section}
        for name, value in table.items():
            if name not in keys:
                elsewhere = [k.section for k in KEYS if k.name == name]
                hint = f" '{name}' belongs in [{elsewhere[0]}]." if elsewhere else ""
                _unknown(where, "key", name, keys, hint, within=f"[{section}]")
            values[keys[name].dest] = _convert(keys[name], value, where)
    if "sparsity" in values and "threshold" in values:
        raise ConfigError(
            f"{where}: [prune] sparsity and threshold exclude each other; received both. "
            "Keep one of them."
        )
    return JobFile(None, values, sweep)


def load(path: Path) -> JobFile:
    """Reads and validates a job file.

    Raises:
        ConfigError: the file is missing, not TOML, or holds an unknown or mistyped key.
    """
    if not path.is_file():
        raise ConfigError(
            f"Job file '{path}' does not exist or is not a file; expected a TOML job file. "
            "Write a template with `bedside-lite init job.toml`."
        )
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Job file '{path}' is not valid TOML: {exc}.") from None
    job = parse(doc, where=str(path))
    return JobFile(path, job.values, job.sweep)


def gate_assignment(text: str) -> tuple[str, Any]:
    """Parses `--gate KEY=VALUE` into (dest, value); raises ConfigError naming the key."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ConfigError(
            f"--gate expects KEY=VALUE such as min_specificity=0.9; received '{text}'."
        )
    if name not in GATE_KEYS:
        _unknown("--gate", "gate", name, GATE_KEYS)
    key = GATE_KEYS[name]
    raw = raw.strip()
    value: Any
    if key.kind in ("choices", "targets"):
        value = [v.strip() for v in raw.split(",") if v.strip()]
    elif key.kind == "bool":
        value = {"true": True, "false": False, "1": True, "0": False}.get(raw.lower(), raw)
    else:
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
    return key.dest, _convert(key, value, "--gate")


def resolve(
    defaults: Mapping[str, Any], explicit: Mapping[str, Any], job: JobFile | None
) -> argparse.Namespace:
    """The build's options: flags the user passed > job file > flag defaults.

    Args:
        defaults: every `build` dest with its argparse default.
        explicit: only the dests the user passed on the command line.
        job: the parsed job file, if any.
    """
    values = {k.dest: None for k in KEYS}
    values.update(defaults)
    if job is not None:
        values.update(job.values)
    passed = dict(explicit)
    for group in EXCLUSIVE_DESTS:
        if any(d in passed for d in group):
            for d in group:
                values[d] = None
    for assignment in passed.pop("gate", None) or []:
        dest, value = gate_assignment(assignment) if isinstance(assignment, str) else assignment
        values[dest] = value
    values.update(passed)
    return argparse.Namespace(**values)


def _get(obj: Any, attr: str) -> Any:
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _to_toml(key: Key, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_to_toml(key, v) for v in value]
    if key.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def job_from_config(config: BuildConfig) -> dict[str, dict[str, Any]]:
    """The resolved job of a build, by section (unset values are left out).

    Keys whose attribute the config does not have (a flag another version adds) are
    skipped, so this never fails on a build that already ran.
    """
    job: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for key in KEYS:
        try:
            value = _get(config, key.attr)
        except AttributeError:
            continue
        value = _to_toml(key, value)  # inverted keys: the attribute is already positive
        if value == [] and key.section == "device":
            continue  # a build without devices writes no [device] section
        if value is not None:
            job[key.section][key.name] = value
    return {s: t for s, t in job.items() if t}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps(job: Mapping[str, Mapping[str, Any]], header: str = "") -> str:
    """Writes flat sections of scalars and arrays as TOML (all a job file holds)."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for section, table in job.items():
        if lines:
            lines.append("")
        lines.append(f"[{section}]")
        for name, value in table.items():
            if value is not None:
                lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def template(defaults: Mapping[str, Any]) -> str:
    """A commented job file holding every key: defaults written, unset keys commented."""
    lines = [
        "# bedside-lite job file: `bedside-lite build --config job.toml`.",
        "# Flags passed on the command line override these values. Paths are relative to the",
        "# working directory. Unknown keys are an error. Each key names its flag.",
    ]
    for section in (*SECTIONS, SWEEP):
        lines += ["", f"[{section}]"]
        if section == "gates":
            lines.append("# Release gates: unset gates are not checked; a failed gate exits 1.")
        if section == SWEEP:
            lines.append("# `bedside-lite sweep --config job.toml`: one point per combination.")
            for skey in SWEEP_KEYS.values():
                lines += [f"# {skey.help}", f"# {skey.name} = {skey.example}"]
            continue
        for key in (k for k in KEYS if k.section == section):
            extra = f" ({', '.join(key.choices)})" if key.kind == "choice" else ""
            lines.append(f"# {key.help}{extra}; {key.flag}")
            default = defaults.get(key.dest)
            if key.kind == "bool":
                default = bool(default) != key.invert
            if default is None or default == [] and key.kind in ("choices", "targets"):
                lists = ("choices", "targets")
                example = key.example or ('["litert"]' if key.kind in lists else '""')
                lines.append(f"# {key.name} = {example}")
            else:
                lines.append(f"{key.name} = {_toml_value(_to_toml(key, default))}")
    return "\n".join(lines) + "\n"


def dests(parser_actions: Iterable[argparse.Action]) -> dict[str, Any]:
    """Defaults of a parser's options by dest (`--help` excluded)."""
    return {
        a.dest: a.default
        for a in parser_actions
        if a.dest not in ("help",) and a.default is not argparse.SUPPRESS
    }


def uncovered(parser_actions: Iterable[argparse.Action]) -> list[str]:
    """`build` options without a job key (the schema must grow with the CLI)."""
    return sorted(
        a.dest
        for a in parser_actions
        if a.dest not in BY_DEST
        and a.dest not in PRESENTATION_DESTS
        and not a.dest.startswith("gate_")
    )
