"""Bench and verify on a bedside device over SSH, against a real sshd on 127.0.0.1.

The "device" is this machine seen through Debian's sshd (started here, stopped by its PID)
with a venv holding only numpy and ai-edge-litert; its sessions get their own TMPDIR, the
remote temp area every test checks is left empty.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.config import RuntimeTarget
from pipeline.config.inventory import Device, resolve
from pipeline.errors import ConfigError
from tests.interrupt import default_sigint
from tests.sshd import Sshd

ROOT = Path(__file__).resolve().parents[3]
MODELS = ROOT / "tests" / "device_bench" / "models"
FLOAT32, INT8 = MODELS / "dense_float32.tflite", MODELS / "dense_int8.tflite"
QUICK = ["--runs", "5", "--warmup", "1", "--min-seconds", "0"]


def _wrapper(path: Path, python: str, shell: str = "", block: tuple[str, ...] = ()) -> str:
    """A device 'python' that lacks modules (`block`) or runs under shell limits."""
    lines = ["#!/bin/sh", shell]
    if block:
        site = path.parent / f"{path.name}-site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(
            "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in block)
        )
        lines.append(f'PYTHONPATH="{site}" export PYTHONPATH')
    path.write_text("\n".join([*lines, f'exec "{python}" "$@"', ""]))
    path.chmod(0o755)
    return str(path)


def _device_args(sshd: Sshd, python: str, **over: str) -> list[str]:
    args = {
        "--device": sshd.address,
        "--identity": str(sshd.key),
        "--device-python": python,
        "--known-hosts": str(sshd.known_hosts),
    }
    args.update({f"--{k.replace('_', '-')}": v for k, v in over.items()})
    return [x for pair in args.items() for x in pair]


@pytest.mark.slow
def test_bench_on_a_device_from_the_inventory(
    sshd: Sshd, device_py: str, remote_tmp: Path, tmp_path: Path
) -> None:
    inventory = tmp_path / "devices.toml"
    inventory.write_text(
        f'[devices.bedside1]\nssh = "{sshd.address}"\nidentity = "{sshd.key}"\n'
        f'python = "{device_py}"\nthreads = 2\nknown_hosts = "{sshd.known_hosts}"\n'
    )
    out = tmp_path / "bench.json"
    argv = ["bench", str(FLOAT32), str(INT8), *QUICK, "--devices", str(inventory)]
    assert main([*argv, "--device", "bedside1", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    device = doc["device"]
    assert device["name"] == "bedside1" and device["address"] == sshd.address
    assert device["machine"] == platform.machine() and device["system"] == "Linux"
    assert device["runtime"] == "ai_edge_litert" and device["runtime_version"]
    assert device["python"] == platform.python_version() and device["cpu_count"] >= 1
    assert doc["settings"]["threads"] == 2  # the inventory's default for this device
    assert doc["settings"]["python"] == os.path.abspath(device_py)
    assert [m["path"] for m in doc["models"]] == [str(FLOAT32), str(INT8)]
    assert all(m["status"] == "ok" and m["latency_ms"]["p50"] > 0 for m in doc["models"])


def test_bench_profile_on_a_device_runs_the_cut_ops_there(
    sshd: Sshd, device_py: str, remote_tmp: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    argv = ["bench", str(INT8), *QUICK, *_device_args(sshd, device_py), "--profile"]
    assert main([*argv, "--json", str(out)]) == 0
    (entry,) = json.loads(out.read_text())["models"]
    assert entry["status"] == "ok" and entry["path"] == str(INT8)
    ops = entry["profile"]["ops"]
    assert [op["index"] for op in ops] == list(range(len(ops))) and ops[0]["op"]


def _unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _readable_copy(key: Path, tmp: Path) -> str:
    copy = tmp / "key"
    copy.write_bytes(key.read_bytes())
    copy.chmod(0o644)
    return str(copy)


BAD_DEVICES = {
    "unreachable": (lambda s, py, tmp: {"device": f"ssh://root@127.0.0.1:{_unused_port()}"}),
    "refused key": (lambda s, py, tmp: {"identity": str(s.other_key)}),
    "key readable by others": (lambda s, py, tmp: {"identity": _readable_copy(s.key, tmp)}),
    "unknown host key": (lambda s, py, tmp: {"known_hosts": str(s.empty_known_hosts)}),
    "missing python": (lambda s, py, tmp: {"device_python": "/nonexistent/bin/python3"}),
    "no numpy": (lambda s, py, tmp: {"device_python": _wrapper(tmp / "py", py, block=("numpy",))}),
    "no runtime": (
        lambda s, py, tmp: {
            "device_python": _wrapper(
                tmp / "py", py, block=("ai_edge_litert", "tflite_runtime", "tensorflow")
            )
        }
    ),
    "full disk": (lambda s, py, tmp: {"device_python": _wrapper(tmp / "py", py, "ulimit -f 1")}),
}
EXPECTED = {
    "unreachable": "nothing accepts SSH connections at 127.0.0.1:",
    "refused key": "refused the key",
    "key readable by others": "others can read it. Run `chmod 600` on it",
    "unknown host key": "host key is not in known_hosts",
    "missing python": "has no Python at '/nonexistent/bin/python3'",
    "no numpy": "lacks numpy",
    "no runtime": "has no LiteRT runtime",
    "full disk": "no room for the agent",
}


@pytest.mark.parametrize("case", list(BAD_DEVICES))
@pytest.mark.slow
def test_a_bad_device_is_exit_2_naming_it_and_what_to_fix(
    case: str,
    sshd: Sshd,
    device_py: str,
    remote_tmp: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    over = BAD_DEVICES[case](sshd, device_py, tmp_path)
    argv = ["bench", str(INT8), *QUICK, *_device_args(sshd, device_py, **over)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert EXPECTED[case] in err, err
    assert "device ssh://root@127.0.0.1:" in err and "Traceback" not in err
    assert err.count("\n") == 1  # one message


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _start_long_bench(sshd: Sshd, device_py: str, remote_tmp: Path) -> tuple[Any, int]:
    """`bedside-lite bench` in a subprocess, measuring for a minute; waits for the agent."""
    argv = [sys.executable, "-m", "pipeline", "bench", str(INT8), "--min-seconds", "60"]
    proc = subprocess.Popen(
        [*argv, *_device_args(sshd, device_py)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,  # `-m` puts the working directory first on sys.path
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # the test's Ctrl-C reaches it however pytest started
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = list(remote_tmp.glob("*/agent.pid"))
        if pids and pids[0].read_text().strip():
            return proc, int(pids[0].read_text())
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"the agent did not start: {proc.communicate()}")


@pytest.mark.slow
def test_a_device_dropping_mid_run_is_exit_2_and_cleaned_up(
    sshd: Sshd, device_py: str, remote_tmp: Path
) -> None:
    proc, agent = _start_long_bench(sshd, device_py, remote_tmp)
    time.sleep(1)  # the agent is measuring
    for child in sshd.children():  # the running connection's sshd: the link drops
        os.kill(child, signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "dropped the connection while benchmarking" in err and sshd.address in err
    assert "Traceback" not in err
    assert not _alive(agent)


@pytest.mark.slow
def test_ctrl_c_stops_the_agent_and_removes_its_directory(
    sshd: Sshd, device_py: str, remote_tmp: Path
) -> None:
    proc, agent = _start_long_bench(sshd, device_py, remote_tmp)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not _alive(agent)


@pytest.mark.slow
def test_verification_on_devices_is_compared_like_a_local_runtime(
    sshd: Sshd, device_py: str, remote_tmp: Path
) -> None:
    from device_bench.runner import run_model
    from pipeline.quantize.verification import verify

    x = np.random.default_rng(0).normal(size=(40, 16)).astype(np.float32)
    reference = run_model(FLOAT32, x).outputs
    good = Device(
        "bedside1", "127.0.0.1", sshd.user, sshd.port, sshd.key, device_py,
        known_hosts=sshd.known_hosts,
    )  # fmt: skip
    gone = Device("gone", "127.0.0.1", sshd.user, _unused_port(), sshd.key, device_py)
    checks = verify(
        INT8,
        x,
        reference,
        1.0,
        lambda out: out.argmax(-1),
        (RuntimeTarget.LITERT,),
        devices=(good, gone),
    )
    local, device, missing = (c.to_json() for c in checks)
    assert local["target"] == "litert" and local["status"] == "ok"
    assert device["target"] == "bedside1" and device["status"] == "ok", device
    assert device["agreement_vs_primary"] == 1.0 and device["max_steps_vs_primary"] == 0.0
    assert device["agreement_vs_reference"] == local["agreement_vs_reference"]
    assert device["device"]["machine"] == platform.machine()
    assert device["runtime"] == "ai_edge_litert"
    assert missing["target"] == "gone" and missing["status"] == "unreachable"
    assert "'gone'" in missing["reason"] and "nothing accepts SSH" in missing["reason"]


def test_require_runtimes_gate_accepts_a_device_name(tmp_path: Path) -> None:
    from pipeline.cli import build_config
    from pipeline.release.gates import evaluate

    argv = ["build", "--device", "ssh://clinic@127.0.0.1:2222"]
    config = build_config([*argv, "--gate", "require_runtimes=ssh://clinic@127.0.0.1:2222"])
    assert config.quantize.require_runtimes == ("ssh://clinic@127.0.0.1:2222",)
    report = {"quantization": {"verification": [{"target": "ssh://clinic@127.0.0.1:2222"}]}}
    for status, passed in (("ok", True), ("unreachable", False)):
        report["quantization"]["verification"][0].update(status=status, reason=None)
        (check,) = evaluate(report, config)["checks"]
        assert check["against"] == "ssh://clinic@127.0.0.1:2222" and check["passed"] is passed
    with pytest.raises(ConfigError, match="require_runtimes must be an array of litert"):
        build_config(["build", "--require-runtime", "bedside9"])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--device", "http://x"], "is neither an ssh:// address nor"),
        (["--device", "ssh://a@b:99999"], "not a valid ssh:// address"),
        (["--device", "bedside9", "--devices", "{inv}"], "not in the inventory"),
        (["--device", "ssh://a@b", "--identity", "/nonexistent/key"], "identity"),
        (["--identity", "{inv}"], "received no --device"),
    ],
)
def test_device_options_are_checked_before_connecting(
    tmp_path: Path, argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "devices.toml"
    inventory.write_text('[devices.bedside1]\nssh = "ssh://clinic@bedside-01.example:22"\n')
    argv = [a.replace("{inv}", str(inventory)) for a in argv]
    assert main(["bench", str(INT8), *argv]) == 2
    assert expected in capsys.readouterr().err
    with pytest.raises(ConfigError, match=expected):
        resolve(*_split(argv))


def _split(argv: list[str]) -> tuple[list[str], Path | None, Path | None]:
    opts = dict(zip(argv[::2], argv[1::2], strict=True))
    inv, key = opts.get("--devices"), opts.get("--identity")
    return (
        [opts["--device"]] if "--device" in opts else [],
        Path(inv) if inv else None,
        Path(key) if key else None,
    )


def test_build_records_an_unreachable_device_in_bench_and_the_summary() -> None:
    from pipeline.cli import build_config
    from pipeline.config import Variant
    from pipeline.device.stage import _bench_device
    from pipeline.release.report import device_bench_lines

    address = f"ssh://clinic@127.0.0.1:{_unused_port()}"
    config = build_config(["build", "--device", address, "--bench-runs", "5"])
    (device,) = config.device.devices
    paths = {Variant.FLOAT32: FLOAT32, Variant.INT8: INT8}
    benched = _bench_device(device, paths, config)
    assert set(benched) == set(paths)
    entry = benched[Variant.INT8]
    assert entry["status"] == "unreachable" and address in entry["reason"]
    assert entry["device"] == {
        "name": address,
        "address": address,
        "python_path": "python3",
        "emulated": False,
    }
    bench = {v.value: {"status": "ok", "devices": {address: e}} for v, e in benched.items()}
    ((name, line),) = device_bench_lines(bench)
    assert name == address and line.startswith("unreachable: device ssh://clinic@")
    described = {"machine": "aarch64", "system": "Linux", "runtime": "ai_edge_litert"}
    bench["int8"]["devices"][address] = {"latency_ms": {"p50": 1.5}, "device": described}
    bench["float32"]["devices"][address] = {"latency_ms": {"p50": 3.0}, "device": described}
    ((_, line),) = device_bench_lines(bench)
    assert line.startswith("aarch64 Linux, ai_edge_litert") and "float32 3, int8 1.5" in line
    assert "emulated" not in line
    for entry in bench.values():
        entry["devices"][address]["device"] = {**described, "emulated": True}
    ((_, line),) = device_bench_lines(bench)
    assert line.endswith("(emulated: these timings mean nothing)")


@pytest.mark.parametrize("value, expected", [("true", True), ("false", False), (None, False)])
def test_inventory_marks_an_emulated_device(value: str | None, expected: bool) -> None:
    from pipeline.config.inventory import parse_inventory

    table = {"ssh": "ssh://root@127.0.0.1:2222"}
    if value is not None:
        table["emulated"] = value == "true"
    (device,) = parse_inventory({"devices": {"arm64": table}}).values()
    assert device.emulated is expected and device.to_json()["emulated"] is expected
    with pytest.raises(ConfigError, match="emulated must be true or false; received 'yes'"):
        parse_inventory({"devices": {"arm64": {**table, "emulated": "yes"}}})


@pytest.mark.slow
def test_the_agent_zipapp_runs_device_bench_from_the_archive(
    device_py: str, tmp_path: Path
) -> None:
    from pipeline.device.agent import build_agent

    agent = build_agent(tmp_path / "agent.pyz")
    env = {"PATH": os.environ["PATH"]}  # no PYTHONPATH: device_bench comes from the archive
    argv = [device_py, str(agent), "bench", str(INT8), str(FLOAT32), *QUICK, "--json", "-"]
    proc = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # each model measured in its own child, started from the zip
    assert [m["status"] for m in doc["models"]] == ["ok", "ok"]
    assert all(m["exit_status"] is None for m in doc["models"])


def test_job_file_device_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import build_config
    from pipeline.config import jobfile

    inventory = tmp_path / "devices.toml"
    inventory.write_text(
        '[devices.bedside1]\nssh = "ssh://clinic@127.0.0.1:2222"\npython = "/opt/py"\n'
    )
    job = tmp_path / "job.toml"
    job.write_text(
        f'[device]\ntargets = ["bedside1", "ssh://pi@127.0.0.1"]\ninventory = "{inventory}"\n'
        '[gates]\nrequire_runtimes = ["bedside1"]\n'
    )
    config = build_config(["build", "--config", str(job)])
    first, second = config.device.devices
    assert (first.name, first.port, first.python) == ("bedside1", 2222, "/opt/py")
    assert (second.user, second.host, second.python) == ("pi", "127.0.0.1", "python3")
    assert jobfile.job_from_config(config)["device"]["targets"] == list(config.device.targets)
    overridden = build_config(["build", "--config", str(job), "--device-python", "/usr/bin/py"])
    assert {d.python for d in overridden.device.devices} == {"/usr/bin/py"}
    job.write_text('[device]\ntargets = "bedside1"\n')
    assert main(["build", "--config", str(job), "--out", str(tmp_path / "o")]) == 2
    assert "[device] targets must be an array of strings" in capsys.readouterr().err
