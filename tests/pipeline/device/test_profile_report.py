"""`--profile` in a build's report: bench.<variant>.profile and its report.md section."""

from __future__ import annotations

from typing import Any

from pipeline.release.report.document import Document, _profiles
from pipeline.release.report.schema import BuildReport


def _profile() -> dict[str, Any]:
    ops = [
        {
            "index": 0,
            "op": "QUANTIZE",
            "p50_ms": 0.001,
            "share": 0.05,
            "dtype": "int8",
            "float": False,
        },
        {
            "index": 1,
            "op": "CONV_2D",
            "p50_ms": 0.018,
            "share": 0.9,
            "dtype": "int8",
            "float": False,
        },
        {
            "index": 2,
            "op": "DEQUANTIZE",
            "p50_ms": 0.001,
            "share": 0.05,
            "dtype": "float32",
            "float": False,
        },
    ]
    return {
        "whole_p50_ms": 0.021,
        "overhead_ms": 0.0005,
        "xnnpack": True,
        "runs_per_op": 50,
        "ops": ops,
    }


def test_report_md_lists_the_top_ops_and_the_quantize_share() -> None:
    bench = {"status": "ok", "runtime": "ai_edge_litert", "latency_ms": {"p50": 0.021}}
    report = BuildReport.from_json(
        {"bench": {"int8": {**bench, "profile": _profile()}, "float32": bench}}, strict=False
    )
    doc = Document("t")
    _profiles(doc, report)
    text = doc.markdown()
    assert "## Per-op latency (--profile)" in text
    assert "int8: per-op p50 sum 0.02 ms = 0.95 x whole 0.021 ms" in text
    assert "QUANTIZE/DEQUANTIZE 10.0%" in text
    first_op = text.index("#1    CONV_2D")
    assert first_op < text.index("#0    QUANTIZE") and "float32:" not in text


def test_without_profile_report_md_has_no_section() -> None:
    bench = {"status": "ok", "runtime": "ai_edge_litert", "latency_ms": {"p50": 0.021}}
    report = BuildReport.from_json({"bench": {"int8": bench}}, strict=False)
    doc = Document("t")
    _profiles(doc, report)
    assert "Per-op" not in doc.markdown()
    assert "profile" not in report.bench["int8"].to_json()
