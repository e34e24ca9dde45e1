"""model_card.md and model_card.json: what a reviewer of a medical-device submission asks.

The FDA's draft guidance on AI-enabled device software functions (January 2025) asks for a
model card: intended use, the model and data, performance (with subgroups), limitations.
Everything here is read from the typed `BuildReport` and the input hashes the build already
computed for the manifest; nothing is measured again. The JSON is the card; the Markdown is
rendered from it, so the two never disagree. No timings or dates: the same build gives the
same card.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.release.report.schema import BenchOk, BuildReport, VariantMetrics

CARD_JSON = "model_card.json"
CARD_MD = "model_card.md"
CARD_VERSION = 1
METRICS = ("auroc", "sensitivity", "specificity", "ppv", "npv", "accuracy", "balanced_accuracy")
NO_INTENDED_USE = (
    "No intended use was given: the model card says 'not stated'. Set [model] intended_use "
    "(--intended-use TEXT): who uses the model, on which patients, for which decision."
)


def intended_use_warnings(intended_use: str | None) -> list[str]:
    """The build's warning when the card has no intended use."""
    return [] if intended_use else [NO_INTENDED_USE]


def card(report: BuildReport, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The model card of a build.

    Args:
        report: the build's report, gates judged.
        inputs: the sha256 of the input model and data (`manifest.input_files`).
    """
    return {
        "card_version": CARD_VERSION,
        "intended_use": report.model.intended_use or "not stated",
        "model": _model(report, inputs),
        "data": _data(report, inputs),
        "operating_point": report.operating_point.to_json(),
        "performance": {name: _performance(m) for name, m in report.metrics.items()},
        "calibration": {
            name: {k: getattr(m.calibration, k) for k in ("ece", "brier", "bins", "basis")}
            for name, m in report.metrics.items()
            if m.calibration is not None
        },
        "changed_decisions": {
            name: {k: getattr(m.flips, k) for k in m.flips.KINDS}
            for name, m in report.metrics.items()
            if m.flips is not None
        },
        # subgroups: filled by the per-subgroup evaluation when the report has them
        "subgroups": _subgroups(report),
        "verified": _verified(report),
        "gates": None if report.gates is None else report.gates.to_json(),
        "limitations": {"warnings": list(report.warnings), "not_measured": _not_measured(report)},
        "provenance": _provenance(report, inputs),
    }


def _model(report: BuildReport, inputs: Mapping[str, Any]) -> dict[str, Any]:
    m = report.model
    return {
        "source": m.source,
        "sha256": inputs.get("model", {}).get("sha256"),
        "output_kind": m.output_kind,
        "input_shape": m.input_shape,
        "parameters": m.parameters,
        "pruning": {
            "sparsity_mode": report.pruning.sparsity_mode,
            "achieved_sparsity": report.pruning.achieved_sparsity,
        },
        "quantization": {
            "full_integer": report.quantization.full_integer,
            "recipe": report.quantization.recipe,
            "calibration_samples": report.quantization.calibration_samples,
        },
        "files": {  # by file name: the card does not depend on where --out was
            name: {"file": Path(a.path).name, "bytes": a.bytes, "sha256": a.sha256}
            for name, a in report.artifacts.items()
        },
    }


def _data(report: BuildReport, inputs: Mapping[str, Any]) -> dict[str, Any]:
    d = report.data
    return {
        "source": d.source,
        "files": list(inputs.get("data", [])),
        "num_classes": d.num_classes,
        "class_names": d.class_names,
        "positive_class": d.positive_class_name or d.positive_class,
        "splits": {
            name: {"samples": s.samples, "class_counts": s.label_counts}
            for name, s in d.splits.items()
        },
        "calibration": d.calibration.to_json(),
    }


def _performance(m: VariantMetrics) -> dict[str, Any]:
    """Each metric with its 95% interval and its paired difference from float32."""
    out: dict[str, Any] = {"samples": m.samples}
    for metric in METRICS:
        value = m.value(metric)
        if value is None:
            continue
        entry: dict[str, Any] = {"value": value, "ci95": m.interval(metric)}
        paired = (m.vs_float32 or {}).get(metric)
        if paired is not None:
            entry["vs_float32"] = paired.to_json()
        out[metric] = entry
    if m.agreement is not None:
        out["agreement_with_float32"] = m.agreement
    return out


def _subgroups(report: BuildReport) -> dict[str, dict[str, Any]] | None:
    """Per test subgroup (`--subgroup`): its counts, whether a verdict rests on it, and the
    int8 model's metrics there with intervals and paired differences from float32 (None: not
    measured)."""
    if report.subgroups is None:
        return None
    int8 = report.metrics.get("int8")
    measured = (int8.subgroups if int8 is not None else None) or {}
    out: dict[str, dict[str, Any]] = {}
    for name, values in report.subgroups.items():
        out[name] = {}
        for value, info in values.items():
            entry = info.to_json()
            metrics = measured.get(name, {}).get(value)
            if metrics is not None:
                entry["int8"] = metrics.to_json()
            out[name][value] = entry
    return out


def _verified(report: BuildReport) -> dict[str, Any]:
    runtimes = [
        {k: check.get(k) for k in ("target", "status", "reason", "runtime", "runtime_version")}
        for check in report.quantization.verification
    ]
    devices: dict[str, Any] = {}
    for summary in report.bench.values():
        for name, entry in sorted((summary.devices or {}).items()):
            info = entry.get("device") or {}
            devices.setdefault(
                name,
                {
                    "status": entry.get("status"),
                    "emulated": entry.get("emulated"),
                    **{k: info.get(k) for k in ("machine", "system", "python", "numpy")},
                    "runtime": info.get("runtime"),
                    "runtime_version": info.get("runtime_version"),
                },
            )
    host = next((s for s in report.bench.values() if isinstance(s, BenchOk)), None)
    return {
        "runtimes": runtimes,
        "bench_host": None if host is None else f"{host.runtime} {host.runtime_version}",
        "devices": devices,
    }


def _not_measured(report: BuildReport) -> list[str]:
    """What this build did not measure, so the card does not imply it did."""
    out = []
    first = report.first_metrics()
    if first is not None and first.ci95 is None:
        out.append("no 95% intervals or paired differences (--bootstrap 0)")
    if not report.bench:
        out.append("latency and memory (--no-bench)")
    if not any(s.devices for s in report.bench.values()):
        out.append("on a bedside device (no --device): runtimes verified on the build host only")
    if _subgroups(report) is None:
        out.append("performance per subgroup (sex, age, site, scanner)")
    out.append(
        "prospective or multi-site clinical performance: the test split is held out from the "
        f"same source ({report.data.source})"
    )
    return out


def _provenance(report: BuildReport, inputs: Mapping[str, Any]) -> dict[str, Any]:
    from pipeline.release.manifest import versions

    p = report.provenance
    return {
        "versions": versions(),
        "job": None if p is None else p.job,
        "manifest": None if p is None else p.manifest,
        "embedded_manifest_sha256": None if p is None else p.embedded_sha256,
        "sbom": "sbom.cdx.json",
    }


# --- Markdown ---------------------------------------------------------------------------


def _num(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _ci(interval: Any) -> str:
    return "" if not interval else f" [{_num(interval[0])}, {_num(interval[1])}]"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def markdown(doc: Mapping[str, Any]) -> str:
    """model_card.md of the card's JSON."""
    model, data, point = doc["model"], doc["data"], doc["operating_point"]
    lines = [f"# Model card: {model['source']}", "", "## Intended use", "", doc["intended_use"], ""]
    lines += ["## Model", ""]
    lines += [
        f"- source: `{model['source']}` (sha256 `{model['sha256'] or 'embedded'}`)",
        f"- {model['output_kind']} output, input shape {model['input_shape']}, "
        f"{model['parameters']} parameters",
        f"- pruning: {model['pruning']['sparsity_mode'] or '-'}, sparsity "
        f"{_num(model['pruning']['achieved_sparsity'])}; quantization: "
        f"{model['quantization']['recipe']}, full integer {model['quantization']['full_integer']}",
        "",
    ]
    lines += _table(
        ["file", "bytes", "sha256"],
        [[f["file"], str(f["bytes"]), f"`{f['sha256']}`"] for f in model["files"].values()],
    )
    lines += ["## Data", "", f"- source: `{data['source']}`"]
    for f in data["files"]:
        where = f.get("path") or f.get("embedded")
        lines.append(f"- {f.get('role', 'data')}: `{where}` sha256 `{f.get('sha256')}`")
    lines += [f"- classes: {data['class_names']}; positive: {data['positive_class']}", ""]
    lines += _table(
        ["split", "samples", "class counts"],
        [[n, str(s["samples"]), str(s["class_counts"])] for n, s in data["splits"].items()],
    )
    lines += ["## Operating point", ""]
    lines += [
        f"Rule `{point['rule']}`, threshold {_num(point['threshold'])}, chosen on "
        f"{point['chosen_on'] or '-'} from the float32 model and applied to every variant.",
        "",
    ]
    lines += ["## Performance (test split)", ""] + _performance_md(doc["performance"])
    lines += ["## Calibration", ""]
    lines += _table(
        ["variant", "ECE", "Brier", "basis"],
        [[n, _num(c["ece"]), _num(c["brier"]), c["basis"]] for n, c in doc["calibration"].items()],
    )
    lines += ["## Changed decisions (vs float32)", ""]
    kinds = ["positive_missed", "positive_found", "negative_flagged", "negative_cleared"]
    lines += _table(
        ["variant", *kinds],
        [[n, *(str(f[k]) for k in kinds)] for n, f in doc["changed_decisions"].items()],
    )
    lines += _subgroups_md(doc["subgroups"]) + _verified_md(doc["verified"], doc["gates"])
    lines += ["## Limitations", ""]
    lines += [f"- {w}" for w in doc["limitations"]["warnings"]]
    lines += [f"- not measured: {m}" for m in doc["limitations"]["not_measured"]] + [""]
    prov = doc["provenance"]
    lines += ["## Provenance", ""]
    lines += [f"- {k}: {v}" for k, v in prov["versions"].items()]
    lines += [
        f"- resolved job `{prov['job']}`, manifest `{prov['manifest']}`, SBOM `{prov['sbom']}`",
        f"- embedded manifest sha256 `{prov['embedded_manifest_sha256']}`",
        "",
    ]
    return "\n".join(lines)


def _performance_md(performance: Mapping[str, Any]) -> list[str]:
    metrics = [m for m in METRICS if any(m in p for p in performance.values())]
    rows = []
    for name, p in performance.items():
        cells = [name, str(p["samples"])]
        for metric in metrics:
            e = p.get(metric)
            if e is None:
                cells.append("-")
                continue
            diff = e.get("vs_float32")
            paired = "" if diff is None else f"; Δ {_num(diff['diff'])}{_ci(diff['ci95'])}"
            cells.append(f"{_num(e['value'])}{_ci(e['ci95'])}{paired}")
        rows.append(cells)
    note = "Values with their 95% interval; Δ: the paired difference from float32."
    return _table(["variant", "n", *metrics], rows) + [note, ""]


def _subgroups_md(subgroups: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    if subgroups is None:
        return ["## Subgroups", "", "Not measured in this build.", ""]
    metrics = ("auroc", "sensitivity", "specificity")
    rows = []
    for name, values in subgroups.items():
        for value, entry in values.items():
            int8 = entry.get("int8") or {}
            ci, paired = int8.get("ci95") or {}, int8.get("vs_float32") or {}
            cells = [f"{name}={value}", str(entry["n"]), _num(entry.get("positives"))]
            cells.append("yes" if entry["judged"] else f"no ({entry.get('reason')})")
            for m in metrics:
                diff = paired.get(m)
                delta = "" if not diff else f"; Δ {_num(diff['diff'])}{_ci(diff['ci95'])}"
                cells.append(f"{_num(int8.get(m))}{_ci(ci.get(m))}{delta}")
            rows.append(cells)
    note = (
        "int8 on the test split's group, with its 95% interval; Δ: the paired difference "
        "from float32 in that group. Only judged groups carry a verdict."
    )
    return (
        ["## Subgroups", ""]
        + _table(["group", "n", "positives", "judged", *metrics], rows)
        + [
            note,
            "",
        ]
    )


def _verified_md(verified: Mapping[str, Any], gates: Mapping[str, Any] | None) -> list[str]:
    lines = ["## Runtimes and devices verified", ""]
    lines += _table(
        ["runtime target", "status", "runtime", "note"],
        [
            [r["target"], r["status"], f"{r['runtime'] or '-'} {r['runtime_version'] or ''}",
             r["reason"] or ""]
            for r in verified["runtimes"]
        ],
    )  # fmt: skip
    for name, d in verified["devices"].items():
        lines.append(
            f"- device `{name}`: {d['status']}, {d['machine'] or '-'} {d['system'] or ''}, "
            f"Python {d['python'] or '-'}, numpy {d['numpy'] or '-'}, "
            f"{d['runtime'] or '-'} {d['runtime_version'] or ''}"
        )
    if verified["bench_host"]:
        lines.append(f"- measured on the build host with {verified['bench_host']}")
    if gates is not None:
        failed = [c["name"] for c in gates["checks"] if not c["passed"]]
        verdict = "passed" if gates["passed"] else f"FAILED ({', '.join(failed)})"
        lines.append(f"- release gates: {verdict}")
    return [*lines, ""]


def write(out: Path, report: BuildReport, inputs: Mapping[str, Any]) -> list[Path]:
    """Writes model_card.json and model_card.md into `out`."""
    doc = card(report, inputs)
    (out / CARD_JSON).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out / CARD_MD).write_text(markdown(doc))
    return [out / CARD_JSON, out / CARD_MD]
