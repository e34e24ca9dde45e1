"""Publishing to MLflow: a build as a run (a sweep as a parent run with a child per point),
and with `--register-model` the int8 model as a new model version.

`preflight` runs before any work: a server that does not answer, refuses the credentials
or the experiment stops the build with exit 2. `publish` runs after a good build; when it
fails, the artifacts stay where they are and the error says so (exit 2). mlflow is
imported only here and only when --mlflow (or $MLFLOW_TRACKING_URI) is set. A URI's
password never reaches a message, a param or a tag.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import ReleaseConfig
from pipeline.errors import BedsideError, MissingExtraError
from pipeline.release.model_card import METRICS
from pipeline.release.report.schema import BenchOk, BuildReport, VariantMetrics

PREFLIGHT_TIMEOUT_S = 5.0
MODEL_FILE = "model_int8.tflite"
_BATCH = 100  # MLflow's limit of params (and tags) per log_batch call
_FIX = "Check --mlflow ([release] mlflow_uri, $MLFLOW_TRACKING_URI) or leave it unset."


class PublishError(BedsideError):
    """The tracking server cannot be used, or logging to it failed. Exit code 2."""


@dataclass(frozen=True)
class Published:
    """Where a build went: the run, and the model version when one was registered."""

    run_id: str
    experiment_id: str
    model_version: str | None
    note: str


def redact(uri: str) -> str:
    """`uri` without its password or token (`https://user:***@host`)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None and "token" not in parts.query.lower():
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    query = "***" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, user + host, parts.path, query, ""))


def _scrub(text: str, uri: str) -> str:
    """A message with the URI's secrets replaced (libraries echo URLs in errors)."""
    parts = urllib.parse.urlsplit(uri)
    text = text.replace(uri, redact(uri))
    for secret in (parts.password, os.environ.get("MLFLOW_TRACKING_TOKEN")):
        if secret:
            text = text.replace(secret, "***")
    return text


def _require_mlflow() -> None:
    try:
        import mlflow  # noqa: F401
    except ImportError:
        raise MissingExtraError("mlflow-skinny", "mlflow", "--mlflow") from None


def preflight(release: ReleaseConfig) -> None:
    """Checks the server answers and accepts the credentials and the experiment.

    Raises:
        MissingExtraError: mlflow is not installed.
        PublishError: the server does not answer, refuses the credentials or the experiment.
    """
    uri = release.mlflow_uri
    if uri is None:
        return
    _require_mlflow()
    if urllib.parse.urlsplit(uri).scheme in ("http", "https"):
        _check_http(uri, release.mlflow_experiment)
        return
    try:
        experiment = _client(uri).get_experiment_by_name(release.mlflow_experiment)
    except Exception as exc:  # noqa: BLE001 - any store failure: it cannot be used
        raise PublishError(
            f"MLflow tracking URI {redact(uri)} cannot be used: {_scrub(str(exc), uri)}. {_FIX}"
        ) from None
    if experiment is not None and experiment.lifecycle_stage == "deleted":
        raise _deleted(uri, release.mlflow_experiment)


def _deleted(uri: str, name: str) -> PublishError:
    return PublishError(
        f"MLflow experiment '{name}' on {redact(uri)} is deleted; restore it "
        "(mlflow experiments restore) or pass another --mlflow-experiment NAME."
    )


def _auth_header(uri: str) -> dict[str, str]:
    """The header MLflow's client would send: the URI's user:password, else the env's."""
    parts = urllib.parse.urlsplit(uri)
    user = parts.username or os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = parts.password or os.environ.get("MLFLOW_TRACKING_PASSWORD")
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if user is not None and password is not None:
        pair = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    return {"Authorization": f"Bearer {token}"} if token else {}


def _check_http(uri: str, experiment: str) -> None:
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    query = urllib.parse.urlencode({"experiment_name": experiment})
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/experiments/get-by-name?{query}", headers=_auth_header(uri)
    )
    shown = redact(uri)
    try:
        with urllib.request.urlopen(request, timeout=PREFLIGHT_TIMEOUT_S) as response:
            doc = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise PublishError(
                f"MLflow tracking server {shown} refused the credentials (HTTP {exc.code}). "
                "Check the user and password in the URI, or MLFLOW_TRACKING_USERNAME/"
                "MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN."
            ) from None
        if exc.code == 404 and b"RESOURCE_DOES_NOT_EXIST" in exc.read():
            return  # a new experiment: created when the build logs
        raise PublishError(
            f"MLflow tracking server {shown} answered HTTP {exc.code} to an experiment "
            f"lookup; expected an MLflow tracking server. {_FIX}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PublishError(
            f"MLflow tracking server {shown} does not answer within "
            f"{PREFLIGHT_TIMEOUT_S:g} s ({_scrub(str(reason), uri)}). Start it. {_FIX}"
        ) from None
    if doc.get("experiment", {}).get("lifecycle_stage") == "deleted":
        raise _deleted(uri, experiment)


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextlib.contextmanager
def _client_settings() -> Iterator[None]:
    """A few HTTP retries instead of MLflow's minutes of backoff (unless the user set them),
    no run URL on stdout (it would break --json and could show the URI's password), and
    only MLflow's warnings on stderr."""
    keys = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    }
    added = [k for k in keys if k not in os.environ]
    os.environ.update({k: keys[k] for k in added})
    logger = logging.getLogger("mlflow")  # its INFO lines ("Waiting ... for model version")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)
        for k in added:
            os.environ.pop(k, None)


# --- what a build logs ------------------------------------------------------------------


def flat_params(job: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The resolved job as `section.key` -> text (lists as JSON)."""
    return {
        f"{section}.{key}": json.dumps(value) if isinstance(value, list | dict) else str(value)
        for section, table in job.items()
        for key, value in table.items()
    }


def variant_metrics(name: str, m: VariantMetrics) -> dict[str, float]:
    """`int8.auroc`, `int8.auroc.ci95_low`, `int8.auroc.vs_float32`, `int8.ece`, ..."""
    out: dict[str, float] = {}
    for metric in (*METRICS, "agreement"):
        value = m.value(metric)
        if value is not None:
            out[f"{name}.{metric}"] = float(value)
        interval = m.interval(metric)
        if interval is not None:
            out[f"{name}.{metric}.ci95_low"], out[f"{name}.{metric}.ci95_high"] = interval
        paired = (m.vs_float32 or {}).get(metric)
        if paired is not None and paired.diff is not None:
            out[f"{name}.{metric}.vs_float32"] = paired.diff
            if paired.ci95 is not None:
                low, high = paired.ci95
                out[f"{name}.{metric}.vs_float32.ci95_low"] = low
                out[f"{name}.{metric}.vs_float32.ci95_high"] = high
    if m.calibration is not None:
        out[f"{name}.ece"], out[f"{name}.brier"] = m.calibration.ece, m.calibration.brier
    return out


def report_metrics(report: BuildReport) -> dict[str, float]:
    """Every variant's test metrics and intervals, its bytes and measured p50."""
    out: dict[str, float] = {}
    for name, m in report.metrics.items():
        out.update(variant_metrics(name, m))
    for name, artifact in report.artifacts.items():
        out[f"{name}.bytes"] = float(artifact.bytes)
    for name, bench in report.bench.items():
        if isinstance(bench, BenchOk) and "p50" in bench.latency_ms:
            out[f"{name}.latency_ms.p50"] = bench.latency_ms["p50"]
    return out


def report_tags(report: BuildReport, out: Path) -> dict[str, str]:
    """The gate verdict, the job's sha256, the runtimes and devices verified."""
    from pipeline.release.manifest import tool_version

    job = out / (report.provenance.job if report.provenance else "job.resolved.toml")
    verified = [c["target"] for c in report.quantization.verification if c["status"] == "ok"]
    devices = sorted(
        {
            name
            for summary in report.bench.values()
            for name, entry in (summary.devices or {}).items()
            if entry.get("status") == "ok"
        }
    )
    tags = {
        "gates.passed": str(report.gates.passed if report.gates else True).lower(),
        "job.sha256": hashlib.sha256(job.read_bytes()).hexdigest() if job.is_file() else "",
        "runtimes.verified": ",".join(verified),
        "devices.verified": ",".join(devices),
        "bedside-lite.version": tool_version(),
        "model.source": report.model.source,
    }
    if report.gates is not None and not report.gates.passed:
        tags["gates.failed"] = ",".join(c.name for c in report.gates.failed())
    return tags


def _log(client: Any, run_id: str, params: dict[str, str], metrics: dict[str, float],
         tags: dict[str, str]) -> None:  # fmt: skip
    from mlflow.entities import Metric, Param, RunTag

    params = {k: v[:6000] for k, v in params.items()}  # MLflow's param value limit
    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), _BATCH):
        client.log_batch(run_id, params=items[i : i + _BATCH])
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )


def _experiment(client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return str(experiment.experiment_id if experiment else client.create_experiment(name))


def _register(client: Any, name: str, run: Any, source: str, tags: Mapping[str, str]) -> str:
    """A new version of registered model `name` (created on first use)."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code):
            raise
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/{source}", run_id=run.info.run_id, tags=dict(tags)
    )
    return str(version.version)


def _version_tags(report: BuildReport, tags: Mapping[str, str]) -> dict[str, str]:
    """The gate verdict and the key numbers of the int8 model."""
    keys = (
        "int8.auroc",
        "int8.auroc.ci95_low",
        "int8.sensitivity",
        "int8.specificity",
        "int8.bytes",
    )
    numbers = report_metrics(report)
    return {
        "gates.passed": tags["gates.passed"],
        "job.sha256": tags["job.sha256"],
        "runtimes.verified": tags["runtimes.verified"],
        **{k: f"{numbers[k]:.6g}" for k in keys if k in numbers},
    }  # fmt: skip


def publish(
    release: ReleaseConfig, report: BuildReport, out: Path, job: Mapping[str, Mapping[str, Any]]
) -> Published:
    """Logs a finished build as one run; registers model_int8.tflite with --register-model
    when the gates passed.

    Raises:
        PublishError: logging failed; the artifacts in `out` are kept.
    """
    assert release.mlflow_uri is not None
    uri = release.mlflow_uri
    tags = report_tags(report, out)
    with _failure(uri, out), _client_settings():
        client = _client(uri)
        experiment_id = _experiment(client, release.mlflow_experiment)
        run = client.create_run(
            experiment_id, run_name=out.name, tags={"mlflow.source.name": "bedside-lite build"}
        )
        run_id = run.info.run_id
        try:
            _log(client, run_id, flat_params(job), report_metrics(report), tags)
            client.log_artifacts(run_id, str(out))
            version, note = None, f"run {run_id} in experiment '{release.mlflow_experiment}'"
            if release.register_model and tags["gates.passed"] == "true":
                version = _register(client, release.register_model, run, MODEL_FILE,
                                    _version_tags(report, tags))  # fmt: skip
                note += f"; model '{release.register_model}' version {version}"
            elif release.register_model:
                note += f"; no model version registered: the gates failed ({tags['gates.failed']})"
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
    return Published(run_id, experiment_id, version, note)


@contextlib.contextmanager
def _failure(uri: str, out: Path) -> Iterator[None]:
    """Any failure while logging as a PublishError that keeps the build's artifacts."""
    try:
        yield
    except PublishError:
        raise
    except Exception as exc:  # noqa: BLE001 - the server, the network, the store
        message = _scrub(f"{type(exc).__name__}: {exc}", uri)
        raise PublishError(
            f"Logging to MLflow at {redact(uri)} failed after a good build: {message}. The "
            f"artifacts are kept in {out}/; log them again by rerunning, or check the server."
        ) from None


# --- a sweep: one parent run, a child run per point ------------------------------------


def _point_run(client: Any, experiment_id: str, parent_id: str, point: Mapping[str, Any]) -> None:
    """A point's child run: its parameters, validation metrics and gate verdict."""
    params = {str(k): str(v) for k, v in point["params"].items()}
    name = ",".join(f"{k}={v}" for k, v in params.items()) or point["key"]
    child = client.create_run(experiment_id, run_name=name, tags={"mlflow.parentRunId": parent_id})
    metrics: dict[str, float] = {}
    for variant, doc in point.get("metrics", {}).items():
        metrics.update(variant_metrics(variant, VariantMetrics.from_json(doc, strict=False)))
    for variant, artifact in point.get("artifacts", {}).items():
        metrics[f"{variant}.bytes"] = float(artifact["bytes"])
    tags = {
        "sweep.point": point["key"],
        "split": str(point.get("split", "val")),
        "gates.passed": str(point.get("gates", {}).get("passed", False)).lower(),
        "pareto": str(point.get("pareto", False)).lower(),
    }
    _log(client, child.info.run_id, params, metrics, tags)
    client.set_terminated(child.info.run_id, "FINISHED")


def publish_sweep(
    release: ReleaseConfig,
    summary: Mapping[str, Any],
    sweep_out: Path,
    base_job: Mapping[str, Mapping[str, Any]],
) -> Published:
    """Logs a finished sweep: a parent run (the grid, sweep.json/.md, the confirmed build)
    with one child run per point; --register-model registers the confirmed build's int8
    model when its gates passed.

    Raises:
        PublishError: logging failed; the sweep's files are kept.
    """
    assert release.mlflow_uri is not None
    uri, rec = release.mlflow_uri, summary.get("recommended")
    with _failure(uri, sweep_out), _client_settings():
        client = _client(uri)
        experiment_id = _experiment(client, release.mlflow_experiment)
        parent = client.create_run(experiment_id, run_name=f"sweep {sweep_out.name}")
        parent_id = parent.info.run_id
        try:
            params = flat_params(base_job)
            params.update({f"sweep.{k}": json.dumps(v) for k, v in summary["grid"].items()})
            params["sweep.prefer"] = str(summary["prefer"])
            tags = {
                "sweep.points": str(len(summary["points"])),
                "sweep.recommended": rec["key"] if rec else "",
                "gates.passed": str(bool(rec and rec["gates_passed"])).lower(),
            }
            _log(client, parent_id, params, {}, tags)
            for name in ("sweep.json", "sweep.md"):
                if (sweep_out / name).is_file():
                    client.log_artifact(parent_id, str(sweep_out / name))
            for point in summary["points"]:
                _point_run(client, experiment_id, parent_id, point)
            note = f"sweep run {parent_id} with {len(summary['points'])} point runs"
            version = None
            if rec is not None:
                confirmed = Path(rec["out"])
                client.log_artifacts(parent_id, str(confirmed), artifact_path="confirmed")
                if release.register_model and rec["gates_passed"]:
                    report = BuildReport.from_json(
                        json.loads((confirmed / "report.json").read_text()), strict=False
                    )
                    version = _register(
                        client, release.register_model, parent, f"confirmed/{MODEL_FILE}",
                        _version_tags(report, report_tags(report, confirmed)),
                    )  # fmt: skip
                    note += f"; model '{release.register_model}' version {version}"
        except BaseException:
            client.set_terminated(parent_id, "FAILED")
            raise
        client.set_terminated(parent_id, "FINISHED")
    return Published(parent_id, experiment_id, version, note)
