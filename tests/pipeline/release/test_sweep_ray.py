"""`bedside-lite sweep --ray`: points as Ray tasks on a real two-node cluster.

The cluster (a head and a worker node, one CPU each) runs in a network namespace holding
only loopback (see ray_cluster.py); the drivers run there too. One cluster serves the
module; the test that kills the worker node runs last.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import jobfile
from pipeline.errors import ConfigError
from pipeline.release import cluster as cluster_mod
from pipeline.release import sweep
from tests.pipeline import ray_cluster, release_env

ROOT = Path(__file__).resolve().parents[3]
DRIVER_TIMEOUT_S = 400
NO_PASS = "no sweep point passes the gates"
POINT_TITLE = "ray::_ray_point"  # a Ray worker's process title while it runs a point


@pytest.fixture(scope="module")
def cluster() -> Iterator[ray_cluster.Cluster]:
    reason = ray_cluster.unavailable()
    if reason is not None:
        pytest.skip(f"no Ray cluster can run here: {reason}")
    started = ray_cluster.start(workers=1)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return release_env.tiny_inputs(tmp_path_factory.getbasetemp() / "release" / "inputs")


def _argv(inputs: tuple[Path, Path], out: Path, sparsity: str, confirm: bool = False) -> list[str]:
    """A sweep of the tiny MLP; without `confirm`, a size gate no point passes spares the
    confirming build (exit 1)."""
    model, data = inputs
    return [
        "sweep",
        "--model",
        str(model),
        "--data",
        str(data),
        "--out",
        str(out),
        "--sparsity",
        sparsity,
        "--calibration-samples",
        "64",
        "--no-bench",
        "--gate",
        "max_auroc_drop=0.05",
        *(["--gate", "max_int8_bytes=1"] if not confirm else []),
        "--quiet",
    ]


def _driver_env() -> dict[str, str]:
    # the driver imports this checkout; Ray ships it to the workers (py_modules)
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "RAY_ADDRESS": ""}


def _ray_sweep(cluster: ray_cluster.Cluster, argv: list[str]) -> Any:
    return cluster.run(
        [sys.executable, "-m", "pipeline", *argv, "--ray", cluster.address],
        timeout=DRIVER_TIMEOUT_S,
        env=_driver_env(),
    )


def _points(out: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in (out / sweep.POINTS_DIR).glob("*.json")}


def _wait_for_running_point(node: int | Sequence[int], driver: Any, timeout: float = 240) -> int:
    """Waits until a point task runs on the node whose `ray start` has pid `node` (or on
    any of several): never a point of another cluster on the same machine (a second test
    run beside this one), which would make a test interrupt its driver too early."""
    sessions = [node] if isinstance(node, int) else list(node)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert driver.poll() is None, driver.communicate()
        found = [p for s in sessions for p in ray_cluster.processes(POINT_TITLE, session=s)]
        if found:
            return min(found)
        time.sleep(0.2)
    raise AssertionError("no point started within the time limit")


@pytest.mark.slow
def test_ray_without_the_extra_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with contextlib.suppress(ImportError):
        import ray  # noqa: F401 - loaded first, so that monkeypatch puts it back whole
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    run = release_env.run_cli(["sweep", "--out", str(tmp_path / "a"), "--ray", "auto"])
    assert run.code == 2
    assert "pip install 'bedside-lite[cluster]'" in run.stderr
    assert not (tmp_path / "a").exists()


def test_ray_needs_an_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install '.[cluster]')")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    run = release_env.run_cli(["sweep", "--out", str(tmp_path / "b"), "--ray", "auto"])
    assert run.code == 2 and "RAY_ADDRESS" in run.stderr
    run = release_env.run_cli(["sweep", "--out", str(tmp_path / "c"), "--ray", "head-node"])
    assert run.code == 2 and "HOST:PORT" in run.stderr
    assert not (tmp_path / "c").exists()
    job = tmp_path / "job.toml"
    job.write_text('[sweep]\nray = "auto"\npoint_cpus = 2\n')
    assert jobfile.load(job).sweep == {"ray": "auto", "point_cpus": 2.0}
    run = release_env.run_cli(["sweep", "--config", str(job), "--out", str(tmp_path / "d")])
    assert run.code == 2 and "RAY_ADDRESS" in run.stderr  # the job file's [sweep] ray
    run = release_env.run_cli(["sweep", "--out", str(tmp_path / "e"), "--point-cpus", "0"])
    assert run.code == 2 and "--point-cpus must be > 0" in run.stderr
    job.write_text("[sweep]\nray = 6379\n")
    with pytest.raises(ConfigError, match=r"\[sweep\] ray must be a non-empty string"):
        jobfile.load(job)


@pytest.mark.slow
def test_dead_address_exits_2_quickly(tmp_path: Path, inputs: tuple[Path, Path]) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install '.[cluster]')")
    with socket.socket() as s:  # a port nobody listens on (bound, never listening)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        out = tmp_path / "s"
        run = release_env.run_cli([*_argv(inputs, out, "0.5"), "--ray", f"127.0.0.1:{port}"])
    assert run.code == 2, run.stderr
    assert f"No Ray cluster answers at '127.0.0.1:{port}'" in run.stderr
    assert "Traceback" not in run.stderr
    assert not list((out / sweep.POINTS_DIR).glob("*.json"))


@pytest.mark.slow
def test_points_run_on_both_nodes_equal_the_local_pool_and_resume(
    cluster: ray_cluster.Cluster, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    nodes = cluster.ids
    out = tmp_path / "ray"
    argv = _argv(inputs, out, "0,0.5")
    first = _ray_sweep(cluster, argv)
    assert first.returncode == 1 and NO_PASS in first.stderr, first.stderr
    assert "Traceback" not in first.stderr, first.stderr
    points = _points(out)
    assert len(points) == 2
    # SPREAD: two one-CPU nodes, two points, one point on each
    assert {p["node"]["id"] for p in points.values()} == {nodes["head"], nodes["worker0"]}
    assert all(p["node"]["hostname"] == socket.gethostname() for p in points.values())
    assert all(p["wall_s"] > 0 for p in points.values())
    summary = json.loads((out / sweep.SWEEP_JSON).read_text())
    assert summary["failed"] == [] and summary["recommended"] is None

    local_out = tmp_path / "local"
    local = release_env.run_cli(_argv(inputs, local_out, "0,0.5"))
    assert local.code == 1 and NO_PASS in local.stderr, local.stderr
    local_points = _points(local_out)
    assert set(local_points) == set(points)  # same keys: same jobs and versions
    for key, doc in points.items():
        mine = local_points[key]
        assert mine["node"]["id"] is None
        assert doc["metrics"] == mine["metrics"]  # same validation AUROC and the rest
        # byte-identical files: the provenance names the user's paths, not the worker's
        assert doc["artifacts"] == mine["artifacts"]
        assert doc["pruning"] == mine["pruning"]

    # finished: nothing recomputed (not even a connection: the address is never used)
    stamps = {p: p.stat().st_mtime_ns for p in (out / sweep.POINTS_DIR).glob("*.json")}
    again = release_env.run_cli([*argv, "--ray", "127.0.0.1:1"])
    assert again.code == 1 and NO_PASS in again.stderr, again.stderr
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    # interrupted: only the missing point runs again, with the same result
    lost = min(points)
    (out / sweep.POINTS_DIR / f"{lost}.json").unlink()
    resumed = _ray_sweep(cluster, argv)
    assert resumed.returncode == 1 and NO_PASS in resumed.stderr, resumed.stderr
    after = _points(out)
    assert after[lost]["metrics"] == points[lost]["metrics"]
    kept = [p for p in stamps if p.stem != lost]
    assert {p: p.stat().st_mtime_ns for p in kept} == {p: stamps[p] for p in kept}


@pytest.mark.slow
def test_ctrl_c_cancels_the_outstanding_points(
    cluster: ray_cluster.Cluster, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "s"
    argv = [*_argv(inputs, out, "0.1,0.2,0.3"), "--ray", cluster.address]
    driver = cluster.popen([sys.executable, "-m", "pipeline", *argv], env=_driver_env())
    try:
        _wait_for_running_point([n.process.pid for n in cluster.nodes.values()], driver)
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, err

    def running() -> list[int]:
        return [
            pid
            for node in cluster.nodes.values()
            for pid in ray_cluster.processes(POINT_TITLE, session=node.process.pid)
        ]

    deadline = time.monotonic() + 60
    while running() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not running()  # cancelled, not left running
    assert len(_points(out)) < 3


@pytest.mark.slow
def test_a_killed_worker_node_point_is_retried_and_the_sweep_finishes(
    cluster: ray_cluster.Cluster, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    nodes = cluster.ids
    worker = cluster.nodes["worker0"]
    out = tmp_path / "s"
    argv = [*_argv(inputs, out, "0.4,0.6"), "--ray", cluster.address]
    driver = cluster.popen([sys.executable, "-m", "pipeline", *argv], env=_driver_env())
    try:
        _wait_for_running_point(worker.process.pid, driver)
        worker.kill()  # mid-point: the worker node dies as a machine would
        _, err = driver.communicate(timeout=DRIVER_TIMEOUT_S)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 1 and NO_PASS in err, err
    points = _points(out)
    assert len(points) == 2
    # the point that was on the dead node ran again on the head (Ray's max_retries)
    assert {p["node"]["id"] for p in points.values()} == {nodes["head"]}
    summary = json.loads((out / sweep.SWEEP_JSON).read_text())
    assert summary["failed"] == []


def test_address_forms() -> None:
    pytest.importorskip("ray", reason="Ray is not installed (pip install '.[cluster]')")
    assert cluster_mod.resolve_address("ray://10.0.0.5:10001") == "ray://10.0.0.5:10001"
    assert cluster_mod._host_port("[::1]:6379") == ("::1", 6379)


@pytest.mark.slow
def test_a_point_whose_node_dies_past_its_retries_is_reported_failed(
    cluster: ray_cluster.Cluster, inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    worker = cluster.start_node("worker1", head=False, index=2)  # worker0 was killed above
    deadline = time.monotonic() + 60
    while "worker1" not in cluster.ids and time.monotonic() < deadline:
        time.sleep(1.0)
        cluster.ids = cluster.node_ids()
    out = tmp_path / "s"
    argv = [*_argv(inputs, out, "0.4,0.6"), "--ray", cluster.address, "--ray-retries", "0"]
    driver = cluster.popen([sys.executable, "-m", "pipeline", *argv], env=_driver_env())
    try:
        _wait_for_running_point(worker.process.pid, driver)
        worker.kill()
        _, err = driver.communicate(timeout=DRIVER_TIMEOUT_S)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 1, err
    assert "1 of 2 sweep points did not finish" in err and "run the same command again" in err
    summary = json.loads((out / sweep.SWEEP_JSON).read_text())
    assert len(summary["points"]) == 1 and len(summary["failed"]) == 1  # the rest finished
    failed = summary["failed"][0]
    assert failed["key"] not in _points(out)  # not cached: a rerun computes it
    assert failed["error"]  # Ray's reason (the worker or node died)
    assert summary["points"][0]["node"]["id"] == cluster.ids["head"]
    assert "Failed points" in (out / sweep.SWEEP_MD).read_text()
