"""MLflow: preflight faults before any work, a build as a run, the registered int8 model,
a sweep as a parent run with a child per point, and a failure while logging.

The server is a real `mlflow server` on 127.0.0.1 (tests/pipeline/mlflow_server.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipeline import mlflow_server, release_env

pytest.importorskip("mlflow", reason="needs bedside-lite[mlflow]")

from pipeline.config import ReleaseConfig  # noqa: E402
from pipeline.release import mlflow_log  # noqa: E402
from pipeline.release.report.schema import BuildReport, GateCheck, Gates  # noqa: E402

SECRET = "s3cret-pass"


def test_redact_hides_the_password_and_tokens() -> None:
    assert mlflow_log.redact("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    shown = mlflow_log.redact(f"https://alice:{SECRET}@mlflow.example:8443/base")
    assert shown == "https://alice:***@mlflow.example:8443/base"
    assert "tok" not in mlflow_log.redact("https://host/x?token=tok")
    uri = f"http://alice:{SECRET}@h:1"
    assert SECRET not in mlflow_log._scrub(f"failed for {uri} with {SECRET}", uri)


def test_flat_params_and_metric_names() -> None:
    assert mlflow_log.flat_params({"prune": {"sparsity": 0.5, "include": ["a*"]}}) == {
        "prune.sparsity": "0.5",
        "prune.include": '["a*"]',
    }


def _build_fails_before_work(tmp_path: Path, uri: str, *extra: str) -> release_env.Run:
    out = tmp_path / "out"
    run = release_env.run_cli(["build", "--mlflow", uri, "--out", str(out), "--quiet", *extra])
    assert run.code == 2, run.stderr
    assert not out.exists()  # nothing was built
    assert SECRET not in run.stderr + run.stdout
    assert "Traceback" not in run.stderr
    return run


def test_a_server_that_does_not_answer_stops_the_build_before_any_work(tmp_path: Path) -> None:
    port = mlflow_server.free_port()
    run = _build_fails_before_work(tmp_path, f"http://alice:{SECRET}@127.0.0.1:{port}")
    assert f"http://alice:***@127.0.0.1:{port}" in run.stderr
    assert "does not answer" in run.stderr


@contextlib.contextmanager
def _answering(status: int, body: bytes) -> Iterator[str]:
    """A stand-in HTTP server answering every GET with `status` and `body`."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://alice:{SECRET}@127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_refused_credentials_stop_the_build_before_any_work(tmp_path: Path) -> None:
    with _answering(401, b'{"error_code": "UNAUTHENTICATED"}') as uri:
        run = _build_fails_before_work(tmp_path, uri)
    assert "refused the credentials (HTTP 401)" in run.stderr
    assert "alice:***@127.0.0.1" in run.stderr


def test_a_deleted_experiment_stops_the_build_before_any_work(tmp_path: Path) -> None:
    body = json.dumps({"experiment": {"name": "old", "lifecycle_stage": "deleted"}}).encode()
    with _answering(200, body) as uri:
        run = _build_fails_before_work(tmp_path, uri, "--mlflow-experiment", "old")
    assert "experiment 'old'" in run.stderr and "deleted" in run.stderr


def test_register_model_needs_a_tracking_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = release_env.run_cli(["build", "--register-model", "m", "--out", str(tmp_path / "o")])
    assert run.code == 2 and "--register-model m needs a tracking server" in run.stderr


def test_the_environment_names_the_server_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = mlflow_server.free_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    run = release_env.run_cli(["build", "--out", str(tmp_path / "o"), "--quiet"])
    assert run.code == 2 and f"127.0.0.1:{port}" in run.stderr


# --- against a real server --------------------------------------------------------------


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    reason = mlflow_server.unavailable()
    if reason is not None:
        pytest.skip(reason)
    with mlflow_server.server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture(scope="module")
def logged(tracking_uri: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A good build of the tiny model, logged and registered (the model card's intended
    use given)."""
    root = tmp_path_factory.mktemp("mlflow-build")
    model, data = release_env.tiny_inputs(root / "inputs")
    out = root / "out"
    run = release_env.run_cli(
        [
            "build", "--model", str(model), "--data", str(data), "--out", str(out),
            "--no-bench", "--bootstrap", "200", "--sparsity", "0.3", "--quiet",
            "--mlflow", tracking_uri, "--mlflow-experiment", "tests",
            "--register-model", "tiny-int8", "--intended-use", "triage test",
        ]
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert "model 'tiny-int8' version 1" in run.stderr
    assert run.stdout == ""  # no run URL from mlflow on stdout (--json owns it)
    return out, tracking_uri


def _client(uri: str):  # type: ignore[no-untyped-def]
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _runs(uri: str, experiment: str) -> list:  # type: ignore[type-arg]
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else list(client.search_runs([found.experiment_id]))


@pytest.mark.slow
def test_a_build_is_logged_as_one_run(logged: tuple[Path, str]) -> None:
    out, uri = logged
    (run,) = _runs(uri, "tests")
    report = json.loads((out / "report.json").read_text())
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["prune.sparsity"] == "0.3" and params["model.intended_use"] == "triage test"
    assert metrics["int8.auroc"] == pytest.approx(report["metrics"]["int8"]["auroc"])
    low, high = report["metrics"]["int8"]["ci95"]["auroc"]
    assert metrics["int8.auroc.ci95_low"] == pytest.approx(low)
    assert metrics["int8.auroc.ci95_high"] == pytest.approx(high)
    paired = report["metrics"]["int8"]["vs_float32"]["auroc"]["diff"]
    assert metrics["int8.auroc.vs_float32"] == pytest.approx(paired)
    assert metrics["int8.bytes"] == report["artifacts"]["int8"]["bytes"]
    assert tags["gates.passed"] == "true"
    job_sha = hashlib.sha256((out / "job.resolved.toml").read_bytes()).hexdigest()
    assert tags["job.sha256"] == job_sha
    verified = [c["target"] for c in report["quantization"]["verification"] if c["status"] == "ok"]
    assert {"litert", "litert-no-delegates"} <= set(verified)  # tflm too where [micro] is in
    assert tags["runtimes.verified"] == ",".join(verified)
    assert run.info.status == "FINISHED"
    logged_files = {a.path for a in _client(uri).list_artifacts(run.info.run_id)}
    assert {p.name for p in out.iterdir()} == logged_files


@pytest.mark.slow
def test_register_model_makes_a_version_of_the_int8_file(
    logged: tuple[Path, str], tmp_path: Path
) -> None:
    from mlflow.artifacts import download_artifacts

    out, uri = logged
    client = _client(uri)
    version = client.get_model_version("tiny-int8", "1")
    report = json.loads((out / "report.json").read_text())
    assert version.tags["gates.passed"] == "true"
    assert float(version.tags["int8.auroc"]) == pytest.approx(
        report["metrics"]["int8"]["auroc"], abs=1e-5
    )
    assert int(version.tags["int8.bytes"]) == report["artifacts"]["int8"]["bytes"]
    local = download_artifacts(
        artifact_uri=version.source, dst_path=str(tmp_path), tracking_uri=uri
    )
    assert Path(local).read_bytes() == (out / "model_int8.tflite").read_bytes()


def _report(out: Path) -> BuildReport:
    return BuildReport.from_json(json.loads((out / "report.json").read_text()))


@pytest.mark.slow
def test_failed_gates_log_the_run_but_register_no_version(logged: tuple[Path, str]) -> None:
    out, uri = logged
    report = _report(out)
    failed = GateCheck("max_auroc_drop", "float32", 0.2, 0.01, False, "int8 lost 0.2 AUROC")
    report.gates = Gates(passed=False, checks=[failed], baseline=None)
    release = ReleaseConfig(uri, "failing", register_model="tiny-int8")
    published = mlflow_log.publish(release, report, out, {"model": {"seed": 0}})
    assert published.model_version is None and "gates failed" in published.note
    (run,) = _runs(uri, "failing")
    assert run.data.tags["gates.passed"] == "false"
    assert run.data.tags["gates.failed"] == failed.name
    versions = _client(uri).search_model_versions("name='tiny-int8'")
    assert [v.version for v in versions] == ["1"]


@pytest.mark.slow
def test_a_failure_while_logging_keeps_the_artifacts_and_says_so(
    logged: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    out, uri = logged
    before = sorted(p.name for p in out.iterdir())

    with_password = uri.replace("http://", f"http://alice:{SECRET}@")  # the server ignores it

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(f"disk full at {with_password}/api")

    monkeypatch.setattr(MlflowClient, "log_artifacts", broken)
    release = ReleaseConfig(with_password, "broken")
    with pytest.raises(mlflow_log.PublishError) as caught:
        mlflow_log.publish(release, _report(out), out, {})
    message = str(caught.value)
    assert "failed after a good build" in message and f"kept in {out}/" in message
    assert SECRET not in message and "disk full" in message
    assert sorted(p.name for p in out.iterdir()) == before
    (run,) = _runs(uri, "broken")
    assert run.info.status == "FAILED"


@pytest.mark.slow
def test_a_sweep_is_a_parent_run_with_a_child_per_point(logged: tuple[Path, str]) -> None:
    out, uri = logged
    metrics = json.loads((out / "report.json").read_text())["metrics"]
    points = [
        {
            "key": f"p{i}",
            "params": {"sparsity": s},
            "split": "val",
            "metrics": metrics,
            "artifacts": {"int8": {"bytes": 1000 + i, "sha256": "0" * 64}},
            "gates": {"passed": True, "checks": []},
            "pareto": i == 0,
        }
        for i, s in enumerate((0.0, 0.5))
    ]
    summary = {
        "grid": {"sparsity": [0.0, 0.5]},
        "prefer": "size",
        "points": points,
        "recommended": {"key": "p0", "out": str(out), "gates_passed": True},
    }
    release = ReleaseConfig(uri, "sweeps", register_model="tiny-sweep")
    published = mlflow_log.publish_sweep(release, summary, out, {"prune": {"sparsity": 0.0}})
    runs = {r.info.run_id: r for r in _runs(uri, "sweeps")}
    parent = runs.pop(published.run_id)
    assert parent.data.tags["sweep.recommended"] == "p0"
    assert parent.data.params["sweep.sparsity"] == "[0.0, 0.5]"
    assert sorted(r.data.params["sparsity"] for r in runs.values()) == ["0.0", "0.5"]
    for child in runs.values():
        assert child.data.tags["mlflow.parentRunId"] == published.run_id
        assert child.data.metrics["int8.auroc"] == pytest.approx(metrics["int8"]["auroc"])
    assert published.model_version == "1"
    version = _client(uri).get_model_version("tiny-sweep", "1")
    assert version.source.endswith("confirmed/model_int8.tflite")


def test_a_sweep_checks_the_server_before_any_point(tmp_path: Path) -> None:
    port = mlflow_server.free_port()
    out = tmp_path / "sweep"
    uri = f"http://alice:{SECRET}@127.0.0.1:{port}"
    run = release_env.run_cli(
        ["sweep", "--mlflow", uri, "--sparsity", "0,0.5", "--out", str(out), "--quiet"]
    )
    assert run.code == 2, run.stderr
    assert f"alice:***@127.0.0.1:{port}" in run.stderr and SECRET not in run.stderr
    assert not out.exists()


@pytest.mark.slow
def test_a_database_uri_is_checked_through_the_mlflow_client(tmp_path: Path) -> None:
    if mlflow_server.unavailable() is not None:
        pytest.skip("the sqlite store needs the full mlflow package")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow_log.preflight(ReleaseConfig(uri, "fresh"))  # a new experiment: fine
    client = _client(uri)
    client.delete_experiment(client.create_experiment("gone"))
    with pytest.raises(mlflow_log.PublishError, match="experiment 'gone' .* is deleted"):
        mlflow_log.preflight(ReleaseConfig(uri, "gone"))
