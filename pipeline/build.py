"""`bedside-lite build`: load -> prune -> (fine-tune) -> convert -> verify -> evaluate ->
bench -> report, each stage handing a typed result to the next."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import artifacts
from pipeline.config import SCHEMA_VERSION, BuildConfig, PruneConfig, Variant
from pipeline.errors import DataError

JOB_FILE = "job.resolved.toml"
JOB_HEADER = (
    "The resolved job of this build (flags > job file > defaults). Re-run it with:\n"
    "  bedside-lite build --config job.resolved.toml --out DIR"
)


class StageClock:
    """Wall time of each stage, for the report."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self.seconds: dict[str, float] = {}
        self._progress = progress

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        self._progress(name)
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)


def _keras_val_auroc(model: Any, splits: Any, kind: Any) -> float | None:
    from pipeline.evaluation import evaluate, probabilities

    outputs = model.predict(splits.model_inputs("val"), verbose=0, batch_size=256)
    return evaluate(
        probabilities(outputs, kind), splits.y_val, positive_class=splits.positive_class
    )["auroc"]


def _keras_val_rates(model: Any, splits: Any, kind: Any, threshold: float) -> dict[str, Any]:
    """Validation sensitivity, specificity (at the operating point) and Brier score."""
    from pipeline.evaluation import probabilities
    from pipeline.operating_point import rates

    outputs = model.predict(splits.model_inputs("val"), verbose=0, batch_size=256)
    p = probabilities(outputs, kind)[:, splits.positive_class]
    return rates(splits.y_val == splits.positive_class, p, threshold)


@dataclass(frozen=True)
class OperatingPoint:
    """The decision threshold every variant is judged at; None for a multi-class task."""

    threshold: float | None
    report: dict[str, Any]


def operating_point_stage(
    float32_path: Path, splits: Any, kind: Any, config: BuildConfig
) -> OperatingPoint:
    """Chooses the threshold on the validation split from the float32 .tflite file.

    Raises:
        ConfigError: a rule other than a fixed threshold on a multi-class task.
    """
    from device_bench.runner import run_model
    from pipeline import operating_point as op
    from pipeline.errors import ConfigError
    from pipeline.evaluation import probabilities

    rule = config.evaluation.rule
    text = config.evaluation.operating_point or f"threshold={config.evaluation.decision_threshold}"
    probs = probabilities(run_model(float32_path, splits.model_inputs("val")).outputs, kind)
    if probs.shape[1] != 2:
        if config.evaluation.operating_point is not None and rule != ("threshold", 0.5):
            raise ConfigError(
                f"--operating-point {config.evaluation.operating_point} applies to a binary "
                f"task; this model has {probs.shape[1]} classes and predicts the most "
                "probable one. Drop --operating-point (or use threshold=0.5)."
            )
        doc = {"rule": "argmax", "threshold": None, "chosen_on": None, "validation": None}
        return OperatingPoint(None, doc)
    truth, score = splits.y_val == splits.positive_class, probs[:, splits.positive_class]
    if rule[0] != "threshold" and (truth.all() or not truth.any()):
        raise DataError(
            f"--operating-point {text} is chosen on the validation split, which holds a "
            "single class. Use a larger validation split or --operating-point threshold=T."
        )
    threshold = op.choose_threshold(truth, score, rule)
    validation = op.rates(truth, score, threshold)
    return OperatingPoint(threshold, op.describe(text, threshold, validation))


def build(
    config: BuildConfig,
    progress: Callable[[str], None] = lambda _: None,
    reference: Path | None = None,
) -> dict[str, Any]:
    """Runs the whole pipeline and returns the report (also written as report.json).

    `reference` is a saved embedded reference model to use instead of training it (sweep).

    Raises:
        BedsideError: bad input, at the stage that found it; nothing is left in `out`.
    """
    from pipeline import data as data_mod

    _require_inputs(config)  # a missing input is named before a non-empty --out
    artifacts.check_output_dir(config.out, config.overwrite)
    if config.export.onnx:
        from converters.onnx_export import require_extra

        require_extra()  # before any heavy work
    clock = StageClock(progress)
    started = time.perf_counter()

    loaded = load_stage(config, clock, reference)
    model, splits, kind = loaded.model, loaded.splits, loaded.kind
    model_source, input_shape = loaded.source, loaded.input_shape

    from converters import tflite
    from pipeline import gates as gates_mod
    from pipeline import jobfile, manifest, quantization
    from pipeline import report as report_mod

    baseline = gates_mod.load_baseline(config.gates.baseline) if config.gates.baseline else None
    with artifacts.Staging(config.out) as stage:
        paths = {}
        paths[Variant.FLOAT32] = stage.write_bytes(
            Variant.FLOAT32.filename, clock.run("convert float32", lambda: tflite.to_float32(model))
        )

        point = clock.run(
            "operating point",
            lambda: operating_point_stage(paths[Variant.FLOAT32], splits, kind, config),
        )
        threshold = point.threshold
        pruned = prune_stage(model, splits, kind, config, clock, threshold=threshold)
        model, pruning_report = pruned.model, pruned.report
        source_parameters, reference_val_auroc = pruned.source_parameters, pruned.val_auroc
        rate_budget = _rate_budget(config, threshold, pruned.val_rates)

        paths[Variant.PRUNED_FLOAT32] = stage.write_bytes(
            Variant.PRUNED_FLOAT32.filename,
            clock.run("convert pruned float32", lambda: tflite.to_float32(model)),
        )
        quant = clock.run(
            "quantize int8",
            lambda: quantization.quantize(
                model,
                splits,
                config.quantize,
                kind,
                reference_val_auroc,
                config.seed,
                progress,
                rates=rate_budget,
            ),
        )
        paths[Variant.INT8] = stage.write_bytes(Variant.INT8.filename, quant.tflite)
        quant = clock.run(
            "verify runtimes",
            lambda: _verify(
                model,
                splits,
                config,
                quant,
                paths[Variant.INT8],
                kind,
                reference_val_auroc,
                progress,
                rates=rate_budget,
            ),
        )
        paths[Variant.INT8] = stage.write_bytes(Variant.INT8.filename, quant.tflite)

        # provenance inside every model file; outputs checked unchanged (pipeline/manifest.py)
        job = jobfile.job_from_config(config)
        embedded = manifest.embedded_manifest(config, job, manifest.input_files(config))
        embedded_sha256 = clock.run(
            "embed manifest",
            lambda: manifest.embed_files(paths, embedded, splits.model_inputs("test")[:32]),
        )

        # evaluate every variant by running the .tflite files in the interpreter
        metrics = clock.run(
            "evaluate",
            lambda: evaluate_variants(
                paths, splits, "test", kind, quant.output_kind, config, point=point
            ),
        )
        onnx_doc = None
        if config.export.onnx:
            onnx_doc = clock.run(
                "export onnx",
                lambda: _export_onnx(
                    model, splits, config, quant, kind, paths, stage, threshold=threshold
                ),
            )

        bench = bench_stage(paths, config, clock)

        data_mod.write_preprocessing(
            stage.dir / "preprocessing.json",
            splits,
            input_shape,
            postprocess=quant.postprocess,
            decision_threshold=config.evaluation.decision_threshold
            if threshold is None
            else threshold,
        )
        report: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "model": {
                "source": model_source,
                "input_shape": list(input_shape),
                "output_kind": kind.value,
                "parameters": source_parameters,
            },
            "data": splits.summary(),
            "operating_point": point.report,
            "pruning": pruning_report,
            "quantization": quant.report,
            "artifacts": {v.value: artifacts.describe(p, config.out) for v, p in paths.items()},
            "metrics": metrics,
            "bench": bench,
            "warnings": [
                *splits.warnings,
                *_structured_warnings(pruning_report.get("structured"), config.prune),
                *_flatten_warnings(pruning_report.get("flatten")),
                *_quantization_warnings(quant.report),
                *_warnings(bench),
            ],
            "timings_s": clock.seconds,
        }
        if onnx_doc is not None:
            report["artifacts"].update(onnx_doc["artifacts"])
            report["metrics"].update(onnx_doc["metrics"])
            report["onnx"] = {"parity": onnx_doc["parity"]}
            report["warnings"] += onnx_doc["warnings"]
        report["gates"] = gates_mod.evaluate(report, config, baseline)
        report["provenance"] = {
            "job": JOB_FILE,
            "manifest": manifest.MANIFEST_FILE,
            "tflite_metadata": manifest.METADATA_NAME,
            "embedded_sha256": embedded_sha256,
        }
        report["timings_s"]["total"] = round(time.perf_counter() - started, 3)
        (stage.dir / "report.json").write_text(json.dumps(report, indent=2, default=_json) + "\n")
        clock.run(
            "report", lambda: report_mod.write_documents(report, stage.dir, html=config.export.html)
        )
        (stage.dir / JOB_FILE).write_text(jobfile.dumps(job, header=JOB_HEADER))
        manifest.write(
            stage.dir, config, job, embedded, embedded_sha256, [p.name for p in paths.values()]
        )
        stage.commit()
    return report


def _require_inputs(config: BuildConfig) -> None:
    """Checks that every input path exists, the most fundamental problem a user can have."""
    from pipeline import data as data_mod
    from pipeline.models import require_exists

    if config.model is not None:
        require_exists(config.model)
    if config.data.path is not None:
        data_mod.require_exists(config.data.path)
    if config.data.calibration is not None:
        data_mod.require_exists(config.data.calibration, "--calibration-data")


@dataclass
class Loaded:
    """What the load stage hands on: the model, its data and what its output holds."""

    model: Any
    splits: Any
    kind: Any
    input_shape: tuple[int | None, ...]
    source: str


def load_stage(config: BuildConfig, clock: StageClock, reference: Path | None = None) -> Loaded:
    """Loads the model (or trains the embedded one) and its data, fitted to the model.

    Args:
        config: the build.
        clock: times the stages.
        reference: a saved copy of the embedded reference model to load instead of training
            it again (the sweep trains it once).
    """
    from pipeline import data as data_mod
    from pipeline import models

    if config.model is None:
        splits = clock.run(
            "load data",
            lambda: data_mod.from_config(
                config.data, positive_class=config.evaluation.positive_class
            ),
        )
        if reference is not None:
            model = clock.run("load model", lambda: models.load_model(reference))
        else:
            model = clock.run(
                "train reference model", lambda: models.train_reference_model(splits, config.seed)
            )
        model_source = "embedded: MLP trained on the Wisconsin breast-cancer data"
    else:
        model = clock.run("load model", lambda: models.load_model(config.model, config.unsafe_load))
        raw = clock.run("load data", lambda: _load_user_data(config, tuple(model.inputs[0].shape)))
        splits = data_mod.fit_to_model(raw, tuple(model.inputs[0].shape), raw.source)
        model_source = str(config.model)
    models.check_labels(model, splits)
    return Loaded(
        model, splits, models.output_kind(model), tuple(model.inputs[0].shape), model_source
    )


@dataclass
class Pruned:
    """The pruned (and fine-tuned) model with its report block."""

    model: Any  # a rebuilt, smaller model after structured pruning; else the same, in place
    report: dict[str, Any]
    source_parameters: int
    val_auroc: float | None  # validation AUROC of the model that gets quantized
    val_rates: dict[str, Any] | None = None  # ... its sensitivity, specificity, Brier there


def prune_stage(
    model: Any,
    splits: Any,
    kind: Any,
    config: BuildConfig,
    clock: StageClock,
    threshold: float | None = None,
) -> Pruned:
    """Structured pruning (if enabled), threshold pruning and fine-tuning; with a binary
    operating point's `threshold`, auto sparsity also watches the validation sensitivity,
    specificity and Brier score there."""
    from pipeline import pruning
    from pipeline.flatten import flatten, needs_flattening

    # structured: remove whole channels, rebuild a smaller model that replaces `model`
    # for the rest of the build (the float32 variant converted before stays the original)
    structured_report = flatten_report = None
    source_parameters = int(model.count_params())

    pruning_on = config.structured.enabled or config.prune.target_sparsity != 0
    if pruning_on and needs_flattening(model):
        # nested backbones inlined once, so every pruning path sees their layers
        flat = clock.run("flatten nested models", lambda: flatten(model))
        model, flatten_report = flat.model, flat.to_json()
    if config.structured.enabled:
        from pipeline import structured

        outcome = clock.run(
            "structured prune",
            lambda: structured.prune_structured(
                model,
                splits,
                kind,
                config.structured,
                seed=config.seed,
                score=lambda m: _keras_val_auroc(m, splits, kind),
            ),
        )
        model = outcome.model
        structured_report = outcome.to_json()

    rates = None
    if threshold is not None:
        cut = threshold

        def rates(m: Any) -> dict[str, Any]:
            return _keras_val_rates(m, splits, kind, cut)

    # prune (auto: search the sparsity) and fine-tune, in place
    pruned = clock.run(
        "prune",
        lambda: pruning.prune_model(
            model,
            splits,
            kind,
            config.prune,
            seed=config.seed,
            score=lambda m: _keras_val_auroc(m, splits, kind),
            rates=rates,
            max_sensitivity_drop=config.evaluation.max_sensitivity_drop,
            max_specificity_drop=config.evaluation.max_specificity_drop,
            max_brier_increase=config.evaluation.max_brier_increase,
        ),
    )
    pruning_report = pruned.to_json()
    pruning_report["structured"] = structured_report
    pruning_report["flatten"] = flatten_report
    history = pruning_report["finetune"]
    pruned_val_auroc = pruning_report["validation_auroc"]["pruned"]
    finetuned_val_auroc = pruning_report["validation_auroc"]["finetuned"]
    reference_val_auroc = finetuned_val_auroc if history else pruned_val_auroc
    val_rates = None if rates is None else rates(model)
    return Pruned(model, pruning_report, source_parameters, reference_val_auroc, val_rates)


def _rate_budget(config: BuildConfig, threshold: float | None, reference: Any) -> Any:
    """What the int8 recipes must keep at the operating point; None for multi-class."""
    from pipeline.operating_point import RateBudget

    if threshold is None or reference is None:
        return None
    ev = config.evaluation
    return RateBudget(
        ev.max_sensitivity_drop,
        ev.max_specificity_drop,
        reference,
        threshold,
        max_brier_increase=ev.max_brier_increase,
    )


def evaluate_variants(
    paths: dict[Variant, Path],
    splits: Any,
    split: str,
    kind: Any,
    int8_kind: Any,
    config: BuildConfig,
    point: OperatingPoint | None = None,
) -> dict[str, Any]:
    """Metrics of every variant on `split`, by running the .tflite files in the interpreter,
    at the operating point (chosen here on validation when `point` is None); agreement,
    flips and paired differences are with the first variant (float32), and each metric
    gets its stratified-bootstrap 95% interval (`config.evaluation.bootstrap` replicates).
    """
    from device_bench.runner import run_model
    from pipeline import bootstrap
    from pipeline.evaluation import calibration, evaluate, flips, probabilities

    if point is None:
        point = operating_point_stage(paths[Variant.FLOAT32], splits, kind, config)
    threshold = 0.5 if point.threshold is None else point.threshold
    x, y = splits.model_inputs(split), splits.split(split)[1]
    out: dict[str, Any] = {}
    scored: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    reference = None
    for variant, path in paths.items():
        outputs = run_model(path, x).outputs
        variant_kind = int8_kind if variant is Variant.INT8 else kind
        probs = probabilities(outputs, variant_kind)
        metrics = evaluate(
            probs,
            y,
            positive_class=splits.positive_class,
            decision_threshold=threshold,
            reference_predictions=reference,
            class_names=splits.class_names,
        )
        if reference is None:
            reference = metrics.predictions
        out[variant.value] = metrics.values
        out[variant.value]["calibration"] = calibration(probs, y, splits.positive_class)
        if probs.shape[1] == 2:
            first = next(iter(scored.values()), (probs, None))[0]
            out[variant.value]["flips"] = flips(y, first, probs, splits.positive_class, threshold)
        scored[variant.value] = (probs, metrics.predictions)
    if config.evaluation.bootstrap:
        cis = bootstrap.intervals(
            scored,
            y,
            reference=next(iter(scored)),
            replicates=config.evaluation.bootstrap,
            seed=config.seed,
            positive_class=splits.positive_class,
            points=out,
        )
        for name, doc in cis.items():
            out[name].update(doc)
            out[name]["bootstrap"] = {
                "replicates": config.evaluation.bootstrap,
                "method": "stratified percentile",
                "seed": config.seed,
            }
    return out


def bench_stage(
    paths: dict[Variant, Path], config: BuildConfig, clock: StageClock
) -> dict[str, Any]:
    """Latency and memory of every variant through device_bench (empty when disabled)."""
    from pipeline.benchmark import run_device_bench, summarize

    bench: dict[str, Any] = {}
    if not config.bench.enabled:
        return bench
    raw_bench = clock.run("bench", lambda: run_device_bench(list(paths.values()), config.bench))
    for variant, entry in zip(paths, raw_bench["models"], strict=True):
        bench[variant.value] = summarize(entry)
    if config.quantize.runtime_python is not None:
        # the same files on the device's runtime: ratios can differ completely
        other = clock.run(
            "bench runtime-python",
            lambda: run_device_bench(
                list(paths.values()), config.bench, str(config.quantize.runtime_python)
            ),
        )
        for variant, entry in zip(paths, other["models"], strict=True):
            bench[variant.value]["runtime_python"] = summarize(entry)
    for device in config.device.devices:
        # the same files on the bedside device itself, over SSH
        for variant, summary in clock.run(
            f"bench {device.name}", lambda d=device: _bench_device(d, paths, config)
        ).items():
            bench[variant.value].setdefault("devices", {})[device.name] = summary
    return bench


def _bench_device(device: Any, paths: dict[Variant, Path], config: BuildConfig) -> dict:
    """`bench.<variant>.devices.<name>` of one device; its status when it fails."""
    from pipeline.benchmark import summarize
    from pipeline.device.remote import bench_on_device
    from pipeline.errors import DeviceError

    try:
        doc = bench_on_device(device, list(paths.values()), config.bench)
    except DeviceError as error:
        failed = {"status": error.status, "reason": str(error), "device": device.to_json()}
        return {variant: dict(failed) for variant in paths}
    emulated = {"emulated": True} if device.emulated else {}
    return {
        variant: {**summarize(entry), **emulated, "device": doc["device"]}
        for variant, entry in zip(paths, doc["models"], strict=True)
    }


def _verify(
    model: Any,
    splits: Any,
    config: BuildConfig,
    quant: Any,
    path: Any,
    kind: Any,
    reference_val_auroc: float | None,
    progress: Callable[[str], None],
    rates: Any = None,
) -> Any:
    """Runs the int8 file on every target runtime; drops a sparse encoding that fails."""
    from dataclasses import replace

    from converters import tflite
    from converters.inspection import inspect_tflite
    from pipeline import quantization
    from pipeline.evaluation import predictions, probabilities
    from pipeline.verification import target_name, verify

    x_test = splits.model_inputs("test")
    if quant.postprocess == "none":
        reference = model.predict(x_test, verbose=0, batch_size=256)
    else:
        with tflite.logits_view(model) as (view, _):
            reference = view.predict(x_test, verbose=0, batch_size=256)

    threshold = rates.threshold if rates is not None else 0.5

    def predict(outputs: np.ndarray) -> np.ndarray:
        probs = probabilities(outputs, quant.output_kind)
        return predictions(probs, splits.positive_class, threshold)

    def run_checks(data_path: Any) -> list[Any]:
        info = inspect_tflite(data_path)
        scale = info.tensors[info.outputs[0]].scale
        return verify(
            data_path,
            x_test,
            reference,
            scale[0] if scale else 1.0,
            predict,
            config.quantize.runtimes,
            config.quantize.runtime_python,
            config.device.devices,
        )

    progress("verify runtimes")
    checks = run_checks(path)
    sparse = {"requested": config.quantize.sparse_encoding, "kept": False, "reason": None}
    if config.quantize.sparse_encoding:
        failed = [c for c in checks if c.status != "ok"]
        if failed:
            sparse["reason"] = "; ".join(
                f"{target_name(c.target)}: {c.status} ({c.reason})" for c in failed
            )
            dense_config = replace(config.quantize, sparse_encoding=False)
            quant = quantization.quantize(
                model,
                splits,
                dense_config,
                kind,
                reference_val_auroc,
                config.seed,
                progress,
                rates=rates,
            )
            path.write_bytes(quant.tflite)
            checks = run_checks(path)
        else:
            sparse["kept"] = True
    quant.report["sparse_encoding"] = sparse
    quant.report["verification"] = [c.to_json() for c in checks]
    return quant


def _export_onnx(
    model: Any,
    splits: Any,
    config: BuildConfig,
    quant: Any,
    kind: Any,
    paths: dict[Variant, Any],
    stage: artifacts.Staging,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Writes both .onnx files into the staging dir; parity and metrics on the test split,
    at the operating point's `threshold` (default: the configured decision threshold)."""
    from converters import onnx_export
    from device_bench.runner import run_model
    from pipeline.evaluation import evaluate, predictions, probabilities

    x_test = splits.model_inputs("test")
    threshold = config.evaluation.decision_threshold if threshold is None else threshold
    exported = onnx_export.export(
        model,
        paths[Variant.INT8],
        x_test,
        kind,
        quant.output_kind,
        positive_class=splits.positive_class,
        decision_threshold=threshold,
        opset=config.export.opset,
    )
    files = {
        "onnx_pruned_float32": stage.write_bytes(onnx_export.FLOAT_FILENAME, exported.float_onnx),
        "onnx_int8": stage.write_bytes(onnx_export.INT8_FILENAME, exported.int8_onnx),
    }
    reference = predictions(
        probabilities(run_model(paths[Variant.FLOAT32], x_test).outputs, kind),
        splits.positive_class,
        threshold,
    )
    metrics = {}
    for name, outputs, variant_kind in (
        ("onnx_pruned_float32", exported.float_outputs, kind),
        ("onnx_int8", exported.int8_outputs, quant.output_kind),
    ):
        metrics[name] = evaluate(
            probabilities(outputs, variant_kind),
            splits.y_test,
            positive_class=splits.positive_class,
            decision_threshold=threshold,
            reference_predictions=reference,
            class_names=splits.class_names,
        ).values
    return {
        "artifacts": {k: artifacts.describe(p, config.out) for k, p in files.items()},
        "metrics": metrics,
        "parity": exported.parity,
        "warnings": exported.warnings(),
    }


def _load_user_data(config: BuildConfig, input_shape: tuple[int | None, ...]) -> Any:
    from pipeline import data as data_mod

    if config.data.path is None:
        raise DataError(
            "--model was given without --data. Pass the model's dataset with --data "
            "(an .npz, medmnist:NAME, an image/DICOM folder or a .csv)."
        )
    return data_mod.from_config(
        config.data, input_shape=input_shape, positive_class=config.evaluation.positive_class
    )


def _flatten_warnings(flatten: dict[str, Any] | None) -> list[str]:
    """A warning for every nested model left whole by the flattening before pruning."""
    return [
        f"nested model '{s['layer']}' not flattened for pruning: {s['reason']}"
        for s in (flatten or {}).get("skipped", [])
    ]


def _structured_warnings(s: dict[str, Any] | None, prune: PruneConfig) -> list[str]:
    """A warning when structured pruning lost more validation AUROC than pruning may."""
    if not s:
        return []
    auroc = s["validation_auroc"]
    after = auroc["finetuned"] if auroc["finetuned"] is not None else auroc["pruned"]
    if auroc["original"] is None or after is None:
        return []
    drop = auroc["original"] - after
    if drop <= prune.max_prune_drop:
        return []
    return [
        f"structured pruning lost {drop:.4f} validation AUROC ({auroc['original']:.4f} -> "
        f"{after:.4f}), more than --max-prune-drop {prune.max_prune_drop}. Remove fewer "
        "channels or branches, fine-tune longer (--structured-finetune-epochs), or try the "
        "other --structured-criterion; gate the release with --gate max_auroc_drop=X."
    ]


def _quantization_warnings(q: dict[str, Any]) -> list[str]:
    if q.get("budget_met", True):
        return []
    best = next(t for t in q["tried"] if t["name"] == q["recipe"])
    sens = best_sens = ""
    if q.get("reference_val_sensitivity") is not None and best.get("val_sensitivity") is not None:
        sens = (
            f" and validation sensitivity/specificity within {q['max_sensitivity_drop']}/"
            f"{q['max_specificity_drop']} of its {q['reference_val_sensitivity']:.3f}/"
            f"{q['reference_val_specificity']:.3f}"
        )
        best_sens = (
            f" (sensitivity {best['val_sensitivity']:.3f}, specificity "
            f"{best['val_specificity']:.3f})"
        )
    return [
        f"no int8 recipe kept validation AUROC within {q['max_auroc_drop']} of the pruned "
        f"float model ({q['reference_val_auroc']:.4f}){sens}; shipping '{q['recipe']}' with "
        f"{best['val_auroc']:.4f}{best_sens}. Consider --remedy-int16, more calibration data "
        "or less pruning."
    ]


def _warnings(bench: dict[str, Any]) -> list[str]:
    """A plain warning per measured runtime on which int8 is not faster than float32."""
    f32, i8 = bench.get(Variant.FLOAT32.value), bench.get(Variant.INT8.value)
    if not f32 or not i8:
        return []
    out = []
    for a, b in ((f32, i8), (f32.get("runtime_python"), i8.get("runtime_python"))):
        if not a or not b or not a.get("status") == b.get("status") == "ok":
            continue
        f, q = a["latency_ms"]["p50"], b["latency_ms"]["p50"]
        if q >= f:
            out.append(
                f"int8 is not faster than float32 on {b['runtime']} {b.get('runtime_version')}"
                f" ({b['threads']} thread(s)): p50 {q:.3g} ms int8 vs {f:.3g} ms float32. "
                "Ship what is fastest on the device's runtime: measure there."
            )
    for name, entry in (f32.get("devices") or {}).items():
        if entry.get("emulated"):
            out.append(
                f"device '{name}' is emulated: its bench timings measure the emulator and "
                "mean nothing for the real device; only its verification counts."
            )
    return out


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
