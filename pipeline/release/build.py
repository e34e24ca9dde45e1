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

from pipeline.clock import StageClock
from pipeline.config import SCHEMA_VERSION, BuildConfig
from pipeline.data.memory import InMemory
from pipeline.data.stage import DataStageResult, load_stage
from pipeline.device.stage import bench_stage
from pipeline.evaluate.stage import evaluate_variants
from pipeline.release import artifacts
from pipeline.release.model_card import intended_use_warnings
from pipeline.release.onnx import onnx_stage
from pipeline.release.report.schema import (
    Artifact,
    BuildReport,
    DataSummary,
    Gates,
    ModelInfo,
    OnnxInfo,
    OperatingPointInfo,
    Provenance,
    PruningInfo,
    QuantizationInfo,
    SubgroupInfo,
    VariantMetrics,
    read_bench,
)
from pipeline.release.variants import Variants, make_variants
from pipeline.release.warnings import (
    bench_warnings,
    detectable_budget_warnings,
    flatten_warnings,
    quantization_warnings,
    structured_warnings,
)

JOB_FILE = "job.resolved.toml"
JOB_HEADER = (
    "The resolved job of this build (flags > job file > defaults). Re-run it with:\n"
    "  bedside-lite build --config job.resolved.toml --out DIR"
)


def build(
    config: BuildConfig,
    progress: Callable[[str], None] = lambda _: None,
    reference: Path | None = None,
    memory: InMemory | None = None,
) -> BuildReport:
    """Runs the whole pipeline and returns the report (also written as report.json).

    `reference` is a saved embedded reference model to use instead of training it (sweep);
    `memory` a model and/or arrays held in memory (`pipeline.build`) in place of files.

    Raises:
        BedsideError: bad input, at the stage that found it; nothing is left in `out`.
    """
    _require_inputs(config)  # a missing input is named before a non-empty --out
    artifacts.check_output_dir(config.out, config.overwrite)
    if config.export.onnx:
        from converters.onnx_export import require_extra

        require_extra()  # before any heavy work
    if config.structured.speedup_target is not None and config.device.latency_device:
        from pipeline.device.remote import describe_device

        describe_device(config.device.latency_device)  # unreachable: before any training
    from pipeline.release import gates as gates_mod
    from pipeline.release.recommendation import recommend

    clock = StageClock(progress)
    started = time.perf_counter()
    loaded = load_stage(config, clock, reference, memory)
    baseline = gates_mod.load_baseline(config.gates.baseline) if config.gates.baseline else None
    with artifacts.Staging(config.out) as stage:
        made = make_variants(loaded, config, clock, stage.dir, progress)
        provenance = _embed_provenance(made, loaded, config, clock, memory)
        metrics = clock.run(
            "evaluate",  # every variant, by running its .tflite file in the interpreter
            lambda: evaluate_variants(
                made.paths,
                loaded.splits,
                "test",
                loaded.kind,
                made.quant.output_kind,
                config,
                point=made.point,
            ),
        )
        onnx_doc = None
        if config.export.onnx:
            onnx_doc = clock.run(
                "export onnx",
                lambda: onnx_stage(
                    made.model,
                    loaded.splits,
                    config,
                    made.quant,
                    loaded.kind,
                    made.paths,
                    stage,
                    threshold=made.point.threshold,
                ),
            )
        bench = bench_stage(made.paths, config, clock)
        _write_preprocessing(stage.dir, loaded, made, config)
        report = _report(loaded, made, metrics, bench, config, clock)
        if onnx_doc is not None:
            _add_onnx(report, onnx_doc)
        report.recommendation = recommend(report, config.gates) or None
        report.gates = Gates.from_json(gates_mod.evaluate(report, config, baseline))
        report.provenance = provenance.report
        report.timings_s["total"] = round(time.perf_counter() - started, 3)
        _write_release(stage.dir, report, provenance, made, config, clock)
        stage.commit()
    return report


@dataclass
class _Provenance:
    """What the build records of its own making: the resolved job and the manifest."""

    job: dict[str, dict[str, Any]]
    embedded: dict[str, Any]
    report: Provenance


def _embed_provenance(
    made: Variants,
    loaded: DataStageResult,
    config: BuildConfig,
    clock: StageClock,
    memory: InMemory | None = None,
) -> _Provenance:
    """Embeds the manifest in every model file (outputs checked unchanged)."""
    from pipeline.config import jobfile
    from pipeline.release import manifest

    job = jobfile.job_from_config(config)
    embedded = manifest.embedded_manifest(config, job, manifest.input_files(config, memory))
    embedded_sha256 = clock.run(
        "embed manifest",
        lambda: manifest.embed_files(made.paths, embedded, loaded.splits.model_inputs("test")[:32]),
    )
    return _Provenance(
        job,
        embedded,
        Provenance(
            job=JOB_FILE,
            manifest=manifest.MANIFEST_FILE,
            tflite_metadata=manifest.METADATA_NAME,
            embedded_sha256=embedded_sha256,
        ),
    )


def _write_preprocessing(
    out: Path, loaded: DataStageResult, made: Variants, config: BuildConfig
) -> None:
    """preprocessing.json: what the device does before and after the int8 model."""
    from pipeline.data.provenance import write_preprocessing

    threshold = made.point.threshold
    write_preprocessing(
        out / "preprocessing.json",
        loaded.splits,
        loaded.input_shape,
        postprocess=made.quant.postprocess,
        decision_threshold=config.evaluation.decision_threshold if threshold is None else threshold,
    )


def _write_release(
    out: Path,
    report: BuildReport,
    provenance: _Provenance,
    made: Variants,
    config: BuildConfig,
    clock: StageClock,
) -> None:
    """report.json, report.md (and plots, html), the model card, the SBOM, the resolved job
    and the manifest (last: it lists the others)."""
    from pipeline.config import jobfile
    from pipeline.release import manifest, model_card, sbom
    from pipeline.release import report as report_mod

    (out / "report.json").write_text(json.dumps(report.to_json(), indent=2, default=_json) + "\n")
    clock.run("report", lambda: report_mod.write_documents(report, out, html=config.export.html))
    (out / JOB_FILE).write_text(jobfile.dumps(provenance.job, header=JOB_HEADER))
    model_card.write(out, report, provenance.embedded["inputs"])
    sbom.write(out, report)
    sha256 = provenance.report.embedded_sha256
    files = [p.name for p in made.paths.values()]
    manifest.write(out, config, provenance.job, provenance.embedded, sha256, files)


def _report(
    loaded: DataStageResult,
    made: Variants,
    metrics: dict[str, Any],
    bench: dict[str, Any],
    config: BuildConfig,
    clock: StageClock,
) -> BuildReport:
    """The report of the stages' results, before the gates judge it."""
    splits, pruned, paths, quant = loaded.splits, made.pruned, made.paths, made.quant
    return BuildReport(
        schema_version=SCHEMA_VERSION,
        model=ModelInfo(
            source=loaded.source,
            input_shape=list(loaded.input_shape),
            output_kind=loaded.kind.value,
            parameters=pruned.source_parameters,
            intended_use=config.intended_use,
        ),
        data=DataSummary.from_json(splits.summary()),
        operating_point=OperatingPointInfo.from_json(made.point.report),
        pruning=PruningInfo(pruned.to_json()),
        quantization=QuantizationInfo(quant.to_json()),
        artifacts={
            v.value: Artifact.from_json(artifacts.describe(p, config.out)) for v, p in paths.items()
        },
        metrics={v: VariantMetrics.from_json(m) for v, m in metrics.items()},
        bench=read_bench(bench),
        warnings=[
            *splits.warnings,
            *structured_warnings(pruned.structured, config.prune),
            *flatten_warnings(pruned.flatten),
            *quantization_warnings(quant),
            *detectable_budget_warnings(
                pruned.outcome, pruned.structured, quant, len(splits.y_val)
            ),
            *bench_warnings(bench),
            *intended_use_warnings(config.intended_use),
        ],
        timings_s=clock.seconds,  # the clock's own dict: see BuildReport.timings_s
        subgroups=_subgroups(loaded, config),
    )


def _subgroups(
    loaded: DataStageResult, config: BuildConfig
) -> dict[str, dict[str, SubgroupInfo]] | None:
    """The report's `subgroups` block: the test split's groups (None without --subgroup)."""
    from pipeline.evaluate.subgroups import describe

    splits = loaded.splits
    if splits.subgroups is None:
        return None
    doc = describe(
        splits.subgroups.of("test"),
        splits.y_test,
        splits.positive_class,
        splits.num_classes,
        config.evaluation.min_subgroup_cases,
    )
    return {n: {v: SubgroupInfo.from_json(d) for v, d in g.items()} for n, g in doc.items()}


def _add_onnx(report: BuildReport, onnx_doc: dict[str, Any]) -> None:
    """The .onnx files, their metrics and parity, and their warnings."""
    for name, artifact in onnx_doc["artifacts"].items():
        report.artifacts[name] = Artifact.from_json(artifact)
    for name, metrics in onnx_doc["metrics"].items():
        report.metrics[name] = VariantMetrics.from_json(metrics)
    report.onnx = OnnxInfo(parity=onnx_doc["parity"])
    report.warnings += onnx_doc["warnings"]


def _require_inputs(config: BuildConfig) -> None:
    """Checks that every input path exists, the most fundamental problem a user can have."""
    from pipeline.data.sources import require_data_exists
    from pipeline.models import require_exists

    if config.model is not None:
        require_exists(config.model)
    if config.data.path is not None:
        require_data_exists(config.data.path)
    if config.data.calibration is not None:
        require_data_exists(config.data.calibration, "--calibration-data")


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
