"""The human report (report.md / report.html with plots) and the atomic output dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipeline.release import report as report_mod
from tests.pipeline import release_env


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.getbasetemp() / "release"
    out, _ = release_env.release_build(root, "a")
    return root, out


def _with_bench(report: dict[str, Any]) -> dict[str, Any]:
    report = json.loads(json.dumps(report))
    for i, variant in enumerate(report["artifacts"]):
        report["bench"][variant] = {
            "status": "ok",
            "peak_rss_mb": 50.0 + i,
            "latency_ms": {"p50": 1.0 + i, "p90": 1.5 + i, "p99": 2.0 + i},
        }
    return report


@pytest.mark.slow
def test_report_md_has_the_variant_table_gates_and_confusion_matrices(
    release: tuple[Path, Path],
) -> None:
    _, out = release
    report = json.loads((out / "report.json").read_text())
    text = (out / "report.md").read_text()
    assert "| variant | size | AUROC | sensitivity | specificity |" in text
    for variant in ("float32", "pruned_float32", "int8"):
        m = report["metrics"][variant]
        row = next(line for line in text.splitlines() if line.startswith(f"| `{variant}` |"))
        assert f"{m['auroc']:.4f}" in row and f"{m['sensitivity']:.3f}" in row
        assert f"{report['artifacts'][variant]['bytes'] / 1024:.1f} KB" in row
    assert "**2 of 4 gates FAILED**" in text
    assert "| `max_int8_bytes` | limit |" in text and "FAIL" in text
    cm = report["metrics"]["int8"]["confusion_matrix"]
    assert f"| 1 | {cm[1][0]} | {cm[1][1]} |" in text
    assert "latency plot skipped" in text  # the job ran with the bench off
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>") and html.count("<table>") >= 4
    assert '<td class="fail">FAIL</td>' in html


@pytest.mark.slow
def test_plots_are_png_files_linked_from_the_report(
    release: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    _, out = release
    text = (out / "report.md").read_text()
    for name in (report_mod.SIZE_AUROC_PNG, report_mod.CONFUSION_PNG):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text
    report = _with_bench(json.loads((out / "report.json").read_text()))
    written = report_mod.write_documents(report, tmp_path, html=False)
    assert tmp_path / report_mod.LATENCY_PNG in written
    assert f"]({report_mod.LATENCY_PNG})" in (tmp_path / "report.md").read_text()
    assert "| `int8` |" in (tmp_path / "report.md").read_text()
    assert not (tmp_path / "report.html").exists()


@pytest.mark.slow
def test_without_matplotlib_the_report_says_plots_were_skipped(
    release: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, out = release
    monkeypatch.setattr(report_mod, "_pyplot", lambda: None)
    report_mod.write_documents(json.loads((out / "report.json").read_text()), tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert report_mod.PLOTS_MISSING in text and ".png" not in text
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.slow
def test_summary_table_lists_gates(release: tuple[Path, Path]) -> None:
    from rich.console import Console

    _, out = release
    console = Console(record=True, width=120)
    report_mod.print_summary(json.loads((out / "report.json").read_text()), console)
    text = console.export_text()
    assert "gates: 2 of 4 failed" in text
    assert "FAIL max_int8_bytes" in text
    # the report's own text is printed as text, not read as rich markup
    assert "Set [model] intended_use" in text
    assert "vs float32 AUROC" in text and "], sens" in text


def test_summary_says_where_the_latency_model_measured() -> None:
    from pipeline.release.report.tables import speed_search_line

    latency = {
        "runtime": "ssh:10.0.0.2:aarch64:ai_edge_litert2.3.0:t2", "speedup_target": 2.0,
        "unpruned_ms": 0.5, "warning": "no cut", "ranking": {"epochs": 3, "candidates": []},
        "recipe": {"epochs": 40, "source": "speed-target default"},
        "seconds": {"latency_model_s": 1.0, "total_s": 2.0},
    }  # fmt: skip
    line = speed_search_line({"latency": latency}) or ""
    assert line.startswith(
        "speed search (--speedup-target 2, measured on ssh:10.0.0.2:aarch64:ai_edge_litert2.3.0"
    )
    assert "no cut chosen" in line and "recipe 40 epochs" in line


def test_summary_names_a_smaller_input_front() -> None:
    from pipeline.release.report.tables import speed_search_line, structured_auto_line

    point = {"sparsity": 0.0, "resize": 64, "val_auroc": 0.78, "within_budget": True}
    st = {
        "auto": {"chosen_sparsity": 0.0, "curve": [point]}, "channel_multiple": 1,
        "resize": {"before": [96, 96], "after": [64, 64]}, "dropped_blocks": [],
        "latency": {
            "runtime": "local", "speedup_target": 2.0, "unpruned_ms": 0.24,
            "predicted_ms": 0.114, "measured_ms": 0.113, "predicted_speedup": 2.1,
            "measured_speedup": 2.12, "ranking": {"epochs": 3, "candidates": []},
            "recipe": {"epochs": 40, "source": "speed-target default"},
            "seconds": {"total_s": 2.0},
        },
    }  # fmt: skip
    assert "input front 64x64 (was 96x96), R 0 at channel multiple 1" in (
        speed_search_line(st) or ""
    )
    assert "R 0 at input front 64x64: validation AUROC 0.78" in (
        structured_auto_line(st["auto"]) or ""
    )


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
@pytest.mark.slow
def test_failure_in_a_late_stage_leaves_the_previous_output_intact(
    release: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: type[BaseException],
) -> None:
    root, built = release
    out = tmp_path / "release"
    shutil.copytree(built, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = []

    def crash(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        raise failure("simulated failure while writing the report")

    monkeypatch.setattr(report_mod, "write_documents", crash)
    argv = [
        "build",
        "--config",
        str(release_env.release_job(root)),
        "--out",
        str(out),
        "--overwrite",
        "--sparsity",
        "0.6",
        "--quiet",
    ]
    if failure is KeyboardInterrupt:
        run = release_env.run_cli(argv)
        assert run.code == 130 and "no artifacts were written" in run.stderr
    else:
        with pytest.raises(RuntimeError, match="simulated failure"):
            release_env.run_cli(argv)
    assert calls, "the report stage never ran: the failure was not in a late stage"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["release"]  # no staging dir left
