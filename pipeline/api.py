"""The Python API: `from pipeline import build, bench, sweep, inspect`.

The same jobs as the command line, from a notebook or a script. Options are the flags'
names in Python spelling (`--positive-class 1` -> `positive_class=1`, `--no-bench` ->
`no_bench=True`, `--gate noninferiority_auroc=0.01` -> `gates={"noninferiority_auroc":
0.01}`), taken from the option registry (`pipeline.config.options`) and validated on the
CLI's path (`pipeline.config.jobfile.resolve`, `pipeline.cli.options.config_from_args`),
so a bad value raises the `ConfigError` the CLI exits 2 with, with the same message.

Importing this module (and `pipeline`) imports no TensorFlow: each function imports what
it needs when called.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

    from converters.inspection import ModelInfo
    from pipeline.config import BuildConfig
    from pipeline.config.jobfile import JobFile
    from pipeline.data.memory import InMemory
    from pipeline.release.report.schema import BuildReport

__all__ = ["BenchResult", "ModelBench", "SweepResult", "bench", "build", "inspect", "sweep"]

# Keywords that are not a registry option of `build`: the job file and the gates table.
_OWN = ("config", "gates")


def _unknown(where: str, name: str, known: Sequence[str], what: str = "option") -> None:
    close = difflib.get_close_matches(name, known, n=1)
    raise _config_error(
        f"{where}: unknown {what} '{name}'"
        + (f" (did you mean '{close[0]}'?)" if close else "")
        + f"; expected one of: {', '.join(known)}."
    )


def _config_error(message: str) -> Exception:
    from pipeline.errors import ConfigError

    return ConfigError(message)


def _plain(value: Any) -> Any:
    """A Python value as a job file would hold it (paths as strings, tuples as lists)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def build_options() -> dict[str, Any]:
    """The keyword options of `build` (and `sweep`) by name: the registry's `build` options
    that have a job key, except `model`, `data` and `out`, which are arguments of their own."""
    from pipeline.config.options import for_command

    own = ("model", "data", "out")
    return {o.dest: o for o in for_command("build") if o.section and o.dest not in own}


def _explicit(options: Mapping[str, Any], where: str) -> tuple[dict[str, Any], JobFile | None]:
    """Keyword options as the CLI's explicitly passed flags (values by argparse dest), and the
    job file of `config=`.

    Raises:
        ConfigError: an unknown option or gate, or a value of the wrong type.
    """
    from pipeline.config import jobfile
    from pipeline.config.convert import convert
    from pipeline.errors import DeprecatedOption

    known = build_options()
    renamed = {o.renamed_from: o for o in known.values() if o.renamed_from}
    explicit: dict[str, Any] = {}
    job = None
    for name, value in options.items():
        if name == "config":
            job = jobfile.load(Path(value)) if value is not None else None
            continue
        if name == "gates":
            explicit["gate"] = _gates(value or {}, where)
            continue
        if name in renamed:
            new = renamed[name]
            message = f"{where}: {name}= is deprecated and will be removed; use {new.dest}="
            warnings.warn(message, DeprecatedOption, stacklevel=4)
            name = new.dest
        if name not in known:
            _unknown(where, name, [*known, *_OWN])
        option = known[name]
        value = _plain(value)
        if option.invert and isinstance(value, bool):
            value = not value  # `convert` reads the job key (`[bench] enabled`), not the flag
        if value is not None:
            explicit[name] = convert(option, value, f"{where}: {name}=")
    return explicit, job


def _gates(gates: Mapping[str, Any], where: str) -> list[tuple[str, Any]]:
    """`gates={"max_int8_bytes": 50_000}` as the (dest, value) pairs of `--gate K=V`."""
    from pipeline.config.convert import convert
    from pipeline.config.jobfile import GATE_KEYS

    if not isinstance(gates, Mapping):
        raise _config_error(
            f"{where}: gates= must be a dict of gate name to value; received "
            f"{type(gates).__name__}. Write e.g. gates={{'max_auroc_drop': 0.02}}."
        )
    pairs = []
    for name, value in gates.items():
        if name not in GATE_KEYS:
            _unknown(f"{where}: gates=", name, list(GATE_KEYS), "gate")
        key = GATE_KEYS[name]
        pairs.append((key.dest, convert(key, _plain(value), f"{where}: gates=")))
    return pairs


def config_of(
    options: Mapping[str, Any],
    where: str = "pipeline.build()",
    *,
    model: Any = None,
    data: Any = None,
    out: Any = None,
) -> BuildConfig:
    """The validated `BuildConfig` of keyword options, by the CLI's own path.

    Args:
        options: keyword options named like the flags (see `build`).
        where: the call, for messages.
        model: a model path (`--model`), or None.
        data: a data path or `medmnist:NAME` (`--data`), or None.
        out: the output directory (`--out`), or None for the default.

    Raises:
        ConfigError: an unknown option, a wrong type or an invalid value.
    """
    from pipeline.cli.options import build_defaults, config_from_args
    from pipeline.config import jobfile

    explicit, job = _explicit(options, where)
    for dest, value in (("model", model), ("data", data), ("out", out)):
        if value is not None:
            explicit[dest] = Path(value)
    return config_from_args(jobfile.resolve(build_defaults(), explicit, job))


def _is_path(value: Any) -> bool:
    return isinstance(value, str | Path)


def _memory(model: Any, data: Any) -> InMemory | None:
    """The in-memory model and arrays of `build`, or None when both are paths."""
    from pipeline.data.memory import (
        InMemory,
        arrays_sha256,
        digest,
        loaded_arrays,
        subgroup_arrays,
    )

    arrays = None if data is None or _is_path(data) else loaded_arrays(data)
    subgroups = subgroup_arrays(data) if arrays is not None else {}
    if subgroups and arrays is not None:  # read by the data stage like an .npz's arrays
        arrays = dataclasses.replace(arrays, attributes=subgroups)
    given_model = None if model is None or _is_path(model) else _own_copy(model)
    if given_model is None and arrays is None:
        return None
    if given_model is not None and data is None:
        raise _config_error(
            "pipeline.build(): an in-memory model needs data; pass data=(x, y), "
            "data={'train': (x, y), 'val': (x, y), 'test': (x, y)} or a --data path."
        )
    return InMemory(
        model=given_model,
        model_sha256=None if given_model is None else digest(given_model.get_weights()),
        arrays=arrays,
        arrays_sha256=None if arrays is None else arrays_sha256(arrays),
        subgroups=subgroups or None,
    )


def _subgroup_names(memory: InMemory) -> list[str]:
    return [name for part in (memory.subgroups or {}).values() for name in part]


def _own_copy(model: Any) -> keras.Model:
    """A copy of the user's model (the build prunes its weights), compiled with its loss as
    a reloaded file would be.

    Raises:
        ModelError: not a single-input, single-output functional or Sequential keras.Model.
    """
    import keras

    from pipeline import models
    from pipeline.errors import ModelError

    if not isinstance(model, keras.Model):
        raise ModelError(
            f"pipeline.build(): model must be a keras.Model or a model path (.keras, .h5, "
            f"SavedModel dir); received {type(model).__name__}."
        )
    try:
        copy = keras.models.clone_model(model)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise ModelError(
            f"pipeline.build(): model {model.name!r} cannot be copied ({exc}); expected a "
            "functional or Sequential keras.Model. Save it with model.save() and pass the path."
        ) from None
    copy.set_weights(model.get_weights())
    models.compile_like(copy, model)
    models.check_single_io(copy, f"model {model.name!r}")
    return copy


def build(
    model: keras.Model | str | Path | None,
    data: Any = None,
    *,
    out: str | Path,
    progress: Callable[[str], None] | None = None,
    debug: bool = False,
    **options: Any,
) -> BuildReport:
    """Prunes, quantizes to int8, verifies, evaluates, benches and reports, as
    `bedside-lite build` does, and writes the same artifacts into `out`.

    Example:
        >>> from pipeline import build
        >>> report = build(model, {"train": (x_tr, y_tr), "val": (x_va, y_va),
        ...                        "test": (x_te, y_te)}, out="build", no_bench=True)
        >>> report.metrics["int8"].auroc

    Args:
        model: a single-input, single-output `keras.Model` in memory (copied, never
            changed; provenance records the sha256 of its weights), or what `--model` takes
            (a .keras/.h5 file or a SavedModel directory); None: train the embedded
            reference classifier.
        data: numpy arrays `(x, y)`, split 60/20/20 (stratified, by `seed`) as an x/y
            .npz is; or `{"train": (x, y), "val": (x, y), "test": (x, y)}`, used as given;
            or what `--data` takes (a path or `medmnist:NAME[@SIZE]`); None: the embedded
            WDBC data. `y` holds class indices. A split may carry subgroup attributes,
            `(x, y, {"site": sites})`, one value per sample (on `(x, y, ...)`, or on the
            val and test splits): they are evaluated as `--subgroup NAME` (all of them
            unless `subgroup=[...]` names some).
        out: the output directory (`--out`); refused when not empty unless
            `overwrite=True`.
        progress: called with the name of each stage as it starts.
        debug: let TensorFlow's native (C++) log through to stderr (`--debug`); by
            default it is held back, and replayed only when the build fails unexpectedly.
        **options: every `build` option, named like its flag without the dashes
            (`positive_class=1`, `sparsity=0.5`, `no_bench=True`, `operating_point=
            "sensitivity=0.95"`); `gates={"max_auroc_drop": 0.02}` for `--gate K=V`;
            `config="job.toml"` for a job file (keywords win over it, as flags do).
            `pipeline.api.build_options()` lists them.

    Returns:
        The typed report, also written as `out/report.json`; `report.gates.passed` says
        whether the release gates passed (the CLI's exit 1 when not).

    Raises:
        ConfigError: an unknown option, or a value of the wrong type or out of range (the
            CLI's message and exit code 2).
        DataError: data that is missing, malformed or does not fit the model.
        ModelError: a model that cannot be read or copied, or has several inputs/outputs.
        BedsideError: any other bad input, at the stage that found it.
    """
    memory = _memory(model, data)
    if memory is not None and memory.subgroups and options.get("subgroup") is None:
        options = {**options, "subgroup": list(dict.fromkeys(_subgroup_names(memory)))}
    config = config_of(
        options,
        model=model if _is_path(model) else None,
        data=data if _is_path(data) else None,
        out=out,
    )
    from pipeline.release import gates, mlflow_log
    from pipeline.release.build import build as run_build

    if config.gates.baseline is not None:
        gates.load_baseline(config.gates.baseline)  # a bad baseline fails before TensorFlow
    mlflow_log.preflight(config.release)
    from pipeline.cli.console import native_logs_captured

    with native_logs_captured(enabled=not debug):
        report = run_build(config, progress=progress or (lambda _: None), memory=memory)
    if config.release.mlflow_uri is not None:
        from pipeline.config.jobfile import job_from_config

        mlflow_log.publish(config.release, report, config.out, job_from_config(config))
    return report


def sweep(
    model: str | Path | None = None,
    data: str | Path | None = None,
    *,
    out: str | Path | None = None,
    grid: Mapping[str, Sequence[Any]] | None = None,
    workers: int | None = None,
    prefer: str | None = None,
    ray: str | None = None,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> SweepResult:
    """Builds one point per combination of `grid`, as `bedside-lite sweep` does.

    Each point runs in its own process, so `model` and `data` are paths here (save an
    in-memory model with `model.save(path)` first).

    Args:
        model: what `--model` takes; None: the embedded reference classifier.
        data: what `--data` takes; None: the embedded WDBC data.
        out: the sweep directory (resumable); None: the `[sweep] out` default.
        grid: the axes by their `[sweep]` key, e.g. `{"sparsity": [0, 0.5, 0.8],
            "calibration_samples": [100, 200]}`.
        workers: points in parallel (`--workers`).
        prefer: "size" or "latency" (`--prefer`).
        ray: a Ray cluster address (`--ray`).
        progress: called with what is running.
        **options: the base job's `build` options, as for `build`.

    Returns:
        The points, the Pareto front and the recommended point; `to_json()` is
        `sweep.json`.

    Raises:
        ConfigError: an unknown option or axis, or a bad value.
    """
    from pipeline.cli.options import job_config
    from pipeline.config import jobfile
    from pipeline.config.convert import convert_sweep
    from pipeline.release import sweep as sweep_mod

    if not all(v is None or _is_path(v) for v in (model, data)):
        raise _config_error(
            "pipeline.sweep(): model and data must be paths (each point runs in its own "
            "process); save the model with model.save('model.keras') and the arrays with "
            "numpy.savez('data.npz', x=x, y=y)."
        )
    where = "pipeline.sweep()"
    base_job = jobfile.job_from_config(config_of(options, where, model=model, data=data))
    axes = {f.name for f in dataclasses.fields(sweep_mod.Grid)}
    values: dict[str, Any] = {}
    for name, axis in (grid or {}).items():
        if name not in axes:
            _unknown(f"{where}: grid=", name, sorted(axes), "axis")
        key = jobfile.SWEEP_KEYS[name]
        values[name] = tuple(convert_sweep(key, _plain(axis), f"{where}: grid="))
    settings = {"out": out, "workers": workers, "prefer": prefer, "ray": ray}
    own: dict[str, Any] = {
        name: jobfile.SWEEP_KEYS[name].default if value is None else value
        for name, value in settings.items()
    }
    for name in ("point_cpus", "ray_retries"):
        own[name] = jobfile.SWEEP_KEYS[name].default
    own["out"] = Path(own["out"])
    summary = sweep_mod.run(
        base_job,
        sweep_mod.Grid(**values),
        sweep_mod.SweepOptions(**own),
        job_config,
        progress or (lambda _: None),
    )
    return SweepResult.from_json(summary)


@dataclass(frozen=True)
class ModelBench:
    """One model of a `bench` run (device_bench's `models[i]`).

    Attributes:
        path: the .tflite file.
        status: `ok`, or why not: `refused`, `crashed`, `timeout`, `error`.
        reason: what went wrong (None when ok).
        runtime: the LiteRT runtime that ran it.
        latency_ms: percentiles (`p50`, `p90`, `p99`, ...) of the timed runs.
        peak_rss_mb: the process's peak resident memory.
        ratio_to_first: latency relative to the first model.
        profile: with `profile=True`, the per-op latency (`ops[]`, `top`, shares).
    """

    path: str
    status: str
    reason: str | None
    runtime: str | None
    latency_ms: Mapping[str, float]
    peak_rss_mb: float | None
    ratio_to_first: Mapping[str, float] | None
    profile: Mapping[str, Any] | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def p50_ms(self) -> float | None:
        return self.latency_ms.get("p50")


@dataclass(frozen=True)
class BenchResult:
    """What `bench` measured: one `ModelBench` per file, in the order given."""

    models: tuple[ModelBench, ...]
    host: Mapping[str, Any]  # where it ran: Python, machine, CPU count
    doc: Mapping[str, Any] = field(repr=False)  # as `bench --json` writes it

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> BenchResult:
        models = tuple(
            ModelBench(
                path=m["path"],
                status=m["status"],
                reason=m.get("reason"),
                runtime=m.get("runtime"),
                latency_ms=m.get("latency_ms") or {},
                peak_rss_mb=(m.get("memory") or {}).get("peak_rss_mb"),
                ratio_to_first=m.get("ratio_to_first"),
                profile=m.get("profile"),
            )
            for m in doc.get("models", [])
        )
        return cls(models, doc.get("host") or {}, doc)

    def to_json(self) -> dict[str, Any]:
        return dict(self.doc)


@dataclass(frozen=True)
class SweepResult:
    """A sweep's points judged by the gates on validation, its Pareto front and choice."""

    points: tuple[Mapping[str, Any], ...]  # each point's params, metrics, bench and gates
    pareto: tuple[str, ...]  # keys of the points on the front
    recommended: Mapping[str, Any] | None  # the point a release would take, if any
    failed: tuple[Any, ...]  # points that could not run (Ray), with why
    doc: Mapping[str, Any] = field(repr=False)  # as `sweep.json` holds it

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SweepResult:
        return cls(
            tuple(doc.get("points", ())),
            tuple(doc.get("pareto", ())),
            doc.get("recommended"),
            tuple(doc.get("failed") or ()),
            doc,
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.doc)


def bench(
    paths: str | Path | Sequence[str | Path],
    *,
    device: str | None = None,
    runs: int | None = None,
    **options: Any,
) -> BenchResult:
    """Latency and memory of .tflite files, as `bedside-lite bench` measures them.

    Args:
        paths: one .tflite file or several (the first is the reference of the ratios).
        device: an `ssh://USER@HOST[:PORT]` address or a name in `devices=`; None: here.
        runs: timed runs per model (`--runs`).
        **options: the other `bench` flags in Python spelling: `warmup`, `min_seconds`,
            `threads`, `profile`, `runtime_python`, `devices`, `identity`, `device_python`,
            `known_hosts`.

    Returns:
        One `ModelBench` per file (status, latency percentiles, peak memory, runtime,
        per-op profile); `to_json()` is the report `bench --json` prints.

    Raises:
        ConfigError: an unknown option or a value of the wrong type.
        ModelError: a path that is not a file.
        DeviceError: the device cannot be reached.
    """
    from pipeline.cli.commands import bench_report

    files = [paths] if isinstance(paths, str | Path) else list(paths)
    given = {**options, "runs": runs, "device": None if device is None else [device]}
    doc = bench_report(_command_args("bench", given, models=[Path(p) for p in files]))
    return BenchResult.from_json(doc)


def _command_args(command: str, options: Mapping[str, Any], **fixed: Any) -> Any:
    """An argparse namespace of `command`: its parser's defaults, then `options` (checked
    against each flag's type), then `fixed`."""
    import argparse

    from pipeline.cli.parser import make_parser, subcommand_parser

    actions = {
        a.dest: a
        for a in subcommand_parser(make_parser(), command)._actions
        if a.option_strings and a.dest not in ("help", "json")
    }
    values = {dest: a.default for dest, a in actions.items()}
    where = f"pipeline.{command}()"
    for name, value in options.items():
        if name not in actions:
            _unknown(where, name, list(actions))
        if value is None:
            continue
        kind = actions[name].type
        if kind in (int, float) and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (kind is int and not isinstance(value, int))
        ):
            raise _config_error(
                f"{where}: {name}= must be {'an integer' if kind is int else 'a number'}; "
                f"received {value!r}."
            )
        values[name] = Path(value) if kind is Path else value
    return argparse.Namespace(**values, json=None, **fixed)


def inspect(path: str | Path) -> ModelInfo:
    """The ops, tensor dtypes and quantization of a .tflite file (`bedside-lite inspect`).

    Args:
        path: the .tflite file.

    Returns:
        The typed model description (`full_integer`, `ops`, `float_tensors`, `to_json()`).

    Raises:
        ModelError: the path is not a file, or not a readable .tflite model.
    """
    from converters.inspection import inspect_tflite
    from pipeline.errors import ModelError

    file = Path(path)
    if not file.is_file():
        raise ModelError(f"'{file}' is not a file; expected a .tflite model.")
    return inspect_tflite(file)
