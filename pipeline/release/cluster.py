"""Sweep points as Ray tasks on an existing cluster (`bedside-lite sweep --ray ADDRESS`).

The driver (the machine running `bedside-lite sweep`) connects to the cluster, puts the
input files (model, data, labels, calibration samples, the sweep's reference model) into
Ray's object store once, and submits one task per pending point, each reserving
`--point-cpus` CPUs. A worker unpacks the files into a private temporary directory and runs
exactly what the local executor runs (`sweep_executor.evaluate_point`), embedding the
provenance of the user's paths so the bytes do not depend on where a point ran; no shared
file system is needed. The code itself reaches the workers through the job's runtime
environment (`py_modules`); the libraries (TensorFlow, ...) must be installed on the nodes,
in the driver's versions (a point whose worker has other versions fails and says so).

The driver writes each point's cache file as its result arrives. A task whose worker or
node dies is retried on another node (`--ray-retries`), then reported failed; the other
points go on. Ctrl-C cancels the outstanding tasks.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeline.config import BuildConfig
from pipeline.errors import ConfigError, MissingExtraError

PROBE_TIMEOUT_S = 10.0  # TCP connect to the head's GCS port
INIT_TIMEOUT_S = 40.0  # ray.init after the probe: together well under a minute
ENV_ADDRESS = "RAY_ADDRESS"
_ROLES = ("model", "data", "labels", "calibration", "reference", "keras_home")


def require_ray() -> ModuleType:
    """The `ray` module, or MissingExtraError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError("ray", "cluster", "sweep --ray") from None
    return ray


def resolve_address(value: str) -> str:
    """`HOST:PORT` or `ray://HOST:PORT`; `auto` reads RAY_ADDRESS. Checks Ray is installed.

    Raises:
        MissingExtraError: Ray is not installed.
        ConfigError: `auto` without RAY_ADDRESS, or not an address.
    """
    require_ray()
    address = value.strip()
    if address == "auto":
        address = os.environ.get(ENV_ADDRESS, "").strip()
        if not address:
            raise ConfigError(
                f"--ray auto reads the {ENV_ADDRESS} environment variable, which is unset or "
                f"empty. Set {ENV_ADDRESS}=HOST:PORT (the head node's address that `ray start "
                "--head` prints), or pass --ray HOST:PORT."
            )
    _host_port(address, value)
    return address


def _host_port(address: str, given: str | None = None) -> tuple[str, int]:
    bare = address.removeprefix("ray://")
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"--ray expects a Ray cluster's address HOST:PORT (or ray://HOST:PORT, or auto "
            f"for ${ENV_ADDRESS}); received '{given or address}'. Example: --ray 10.0.0.5:6379."
        )
    return host.strip("[]"), int(port)


@contextlib.contextmanager
def connect(address: str, progress: Callable[[str], None] = lambda _: None) -> Iterator[None]:
    """Connects this process to the cluster for the duration of the block.

    Raises:
        ConfigError: nothing answers at the address, or Ray refuses the connection; within
            PROBE_TIMEOUT_S + INIT_TIMEOUT_S.
    """
    ray = require_ray()
    host, port = _host_port(address)
    fix = (
        "Start the cluster (`ray start --head` on the head node), fix --ray ([sweep] ray), "
        "or leave --ray out to run the points in local processes."
    )
    progress(f"connect to the Ray cluster at {address}")
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise ConfigError(
            f"No Ray cluster answers at '{address}' ({exc.strerror or exc}); expected the "
            f"address of a running cluster's head node. {fix}"
        ) from None
    # the package's folder (Ray takes paths as it takes modules), not `import pipeline`: the
    # package re-exports the Python API, which sits above this module
    modules: list[Any] = [str(Path(__file__).resolve().parents[1]), *_sibling_packages()]
    outcome: list[BaseException | None] = []

    def init() -> None:
        import logging

        try:
            ray.init(
                address=address,
                runtime_env={
                    # the driver's code runs on the workers, whatever they have installed
                    "py_modules": modules,
                    "excludes": ["__pycache__", "*.pyc"],
                    "env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"},
                },
                logging_level=logging.WARNING,
                log_to_driver=False,  # TensorFlow's worker logs would bury the progress
            )
            outcome.append(None)
        except BaseException as exc:  # reported by the caller's thread
            outcome.append(exc)

    # ray.init can wait for minutes on something that accepts connections but is no head
    thread = threading.Thread(target=init, name="ray-init", daemon=True)
    thread.start()
    thread.join(INIT_TIMEOUT_S)
    if not outcome:
        raise ConfigError(
            f"'{address}' accepts connections but no Ray cluster answered within "
            f"{INIT_TIMEOUT_S:.0f} s; expected a Ray head node's GCS port (6379 by "
            f"default). {fix}"
        )
    if outcome[0] is not None:
        error = outcome[0]
        raise ConfigError(
            f"Could not join the Ray cluster at '{address}': {type(error).__name__}: "
            f"{_first_line(error)}. The driver needs the cluster's Ray and Python versions. "
            f"{fix}"
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


def _sibling_packages() -> list[ModuleType]:
    import converters
    import device_bench

    return [converters, device_bench]


def _first_line(error: BaseException, limit: int = 300) -> str:
    text = str(error).strip().splitlines()
    line = text[0] if text else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _pack(path: Path) -> bytes:
    """A file's bytes, or a directory as an uncompressed tar."""
    if path.is_file():
        return path.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(path, arcname=".")
    return buffer.getvalue()


def _unpack(blob: bytes, dest: Path, is_dir: bool) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not is_dir:
        dest.write_bytes(blob)
        return
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: no links out of dest
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - older Pythons; the archive is the driver's own
            tar.extractall(dest)


def _files(config: BuildConfig, reference: Path | None) -> list[tuple[str, Path, str]]:
    """(role, local path, name on the worker) of every input file a point reads."""
    out = []
    for role, path in (
        ("model", config.model),
        ("data", config.data.path),
        ("labels", config.data.labels),
        ("calibration", config.data.calibration),
        ("reference", reference),
    ):
        if path is None:
            continue
        if str(path).lower().startswith("medmnist:"):
            if role == "data":  # the spec stays; the downloaded file goes to KERAS_HOME
                from pipeline.config.medmnist import parse_spec
                from pipeline.data.loaders.medmnist import cache_dir

                cached = cache_dir() / parse_spec(str(path)).filename
                if cached.is_file():
                    out.append(("keras_home", cached, f"datasets/{cached.name}"))
            continue
        if path.exists():  # a missing file fails on the worker with the loader's message
            out.append((role, path, path.name or "input"))
    return out


def _ray_point(
    config: BuildConfig,
    roles: Sequence[tuple[str, str, bool]],
    inputs: Mapping[str, Any],
    head: Mapping[str, Any],
    *blobs: bytes,
) -> dict[str, Any]:
    """One point on a Ray worker: the files unpacked here, then the local pool's code."""
    import ray

    from pipeline.release import manifest
    from pipeline.release.sweep_executor import evaluate_point, where_ran

    start = time.perf_counter()
    here = manifest.versions()
    if here != head["versions"]:
        raise ConfigError(
            f"This Ray node has other library versions than the driver ({here} instead of "
            f"{head['versions']}); its results would differ. Install the driver's versions "
            "on every node."
        )
    with tempfile.TemporaryDirectory(prefix="bedside-ray-") as tmp:
        local: dict[str, Path] = {}
        for i, ((role, name, is_dir), blob) in enumerate(zip(roles, blobs, strict=True)):
            local[role] = Path(tmp) / str(i) / name
            _unpack(blob, local[role], is_dir)
        run = replace(
            config,
            model=local.get("model", config.model),
            data=replace(
                config.data,
                path=local.get("data", config.data.path),
                labels=local.get("labels", config.data.labels),
                calibration=local.get("calibration", config.data.calibration),
            ),
        )
        keras_home = os.environ.get("KERAS_HOME")
        if "keras_home" in local:  # medmnist:NAME reads the dataset cache under KERAS_HOME
            os.environ["KERAS_HOME"] = str(local["keras_home"].parent.parent)
        try:
            result = evaluate_point(run, local.get("reference"), (config, inputs))
        finally:
            if "keras_home" in local:
                os.environ.pop("KERAS_HOME", None)
                if keras_home is not None:
                    os.environ["KERAS_HOME"] = keras_home
    node = ray.get_runtime_context().get_node_id()
    return {**head, **result, **where_ran(node, time.perf_counter() - start)}


def run_points(
    pending: Sequence[tuple[str, BuildConfig, Mapping[str, Any]]],
    reference: Path | None,
    point_cpus: float,
    retries: int,
    arrived: Callable[[str, dict[str, Any]], None],
    progress: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Runs (key, config, head) points as Ray tasks on the connected cluster.

    `arrived(key, doc)` is called in this process as each point finishes. Returns the
    failed points as {key, params, error}. Ctrl-C cancels the outstanding tasks.
    """
    import ray

    from pipeline.release import manifest

    task = ray.remote(
        num_cpus=point_cpus,
        max_retries=retries,  # a worker or node dying; a point's own error is final
        scheduling_strategy="SPREAD",  # points are heavy: one per node before doubling up
    )(_ray_point)
    refs: dict[Path, Any] = {}  # one object per distinct file, shared by every point
    heads: dict[Any, tuple[str, Mapping[str, Any]]] = {}
    for key, config, head in pending:
        roles, blobs = [], []
        for role, path, name in _files(config, reference):
            if path not in refs:
                refs[path] = ray.put(_pack(path))
            roles.append((role, name, path.is_dir()))
            blobs.append(refs[path])
        inputs = manifest.input_files(config)  # hashed here, where the user's files are
        heads[task.remote(config, roles, inputs, head, *blobs)] = (key, head)
    progress(f"sweep: {len(heads)} points submitted to the Ray cluster")
    failed: list[dict[str, Any]] = []
    remaining = list(heads)
    try:
        while remaining:
            # a short timeout keeps the loop responsive to Ctrl-C
            ready, remaining = ray.wait(remaining, num_returns=1, timeout=1.0)
            for ref in ready:
                key, head = heads[ref]
                try:
                    doc = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    cause = getattr(exc, "cause", None) or exc
                    error = f"{type(cause).__name__}: {_first_line(cause)}"
                    failed.append({"key": key, "params": head["params"], "error": error})
                    progress(f"sweep: point {key} failed: {error}")
                else:
                    arrived(key, doc)
    except KeyboardInterrupt:
        for ref in remaining:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        raise
    return failed
