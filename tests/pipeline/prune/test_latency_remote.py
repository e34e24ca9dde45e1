"""The latency model measured on an SSH device (`--latency-target`): the profiler against a
real sshd on 127.0.0.1 (tests/pipeline/conftest.py), which target a build measures on, and
the option's validation."""

from __future__ import annotations

import json
import platform
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.cli import main
from pipeline.config import BuildConfig, StructuredConfig
from pipeline.config.inventory import Device, resolve
from pipeline.config.types import DeviceConfig
from pipeline.device.latency_model import WHOLE_RUNS
from pipeline.errors import ConfigError
from pipeline.prune.structured.latency import LayerShape, LayerTimes
from tests.sshd import Sshd

SHAPES = [
    LayerShape("Conv2D", (8, 8, 4), 8, (3, 3), (1, 1), "same"),
    LayerShape("Dense", (16,), 4),
]
SPEED = ["--structured-sparsity", "auto", "--speedup-target", "2"]


def _device(sshd: Sshd, python: str) -> Device:
    (device,) = resolve([sshd.address], None, sshd.key, python, sshd.known_hosts)
    return device


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_remote_profiler_measures_on_the_device_once_and_caches_by_device(
    sshd: Sshd, device_py: str, remote_tmp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    from pipeline.device import remote
    from pipeline.prune.structured.probe import LocalProfiler, RemoteProfiler

    runs: list[int] = []
    bench_on_device = remote.bench_on_device

    def counted(device: Device, models: list[Path], config: Any) -> dict[str, Any]:
        runs.append(len(models))
        return bench_on_device(device, models, config)

    monkeypatch.setattr(remote, "bench_on_device", counted)
    device = _device(sshd, device_py)
    x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    profiler = RemoteProfiler(x, device)
    assert profiler.runtime.startswith(f"ssh:127.0.0.1:{sshd.port}:{platform.machine()}:")
    assert profiler.runtime.endswith(":t1") and "ai_edge_litert" in profiler.runtime
    times = LayerTimes(profiler, tmp_path)
    ms = times.ms(SHAPES)
    assert runs == [len(SHAPES)]  # every shape of one call in one device_bench run
    assert all(t > 0 for t in ms) and times.measured == len(SHAPES)
    cached = json.loads(times.path.read_text())
    assert set(cached) == {s.key(profiler.runtime) for s in SHAPES}
    assert f"127.0.0.1_{sshd.port}" in times.path.name

    again = LayerTimes(RemoteProfiler(x, device), tmp_path)
    assert again.ms(SHAPES) == ms and again.measured == 0 and runs == [len(SHAPES)]
    local = LayerTimes(LocalProfiler(x), tmp_path)
    assert local.path != times.path  # this machine's times never mix with the device's

    inputs = keras.Input((16,))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
    assert profiler.models_ms([model])[0] > 0  # the median of WHOLE_RUNS runs on the device
    assert runs == [len(SHAPES)] + [1] * WHOLE_RUNS


def test_latency_target_defaults_to_the_builds_first_real_device() -> None:
    bedside, emulated = Device("bedside", "10.0.0.2"), Device("qemu", "10.0.0.3", emulated=True)
    config = DeviceConfig(targets=("ssh://clinic@10.0.0.2",))
    assert config.latency_device == config.devices[0]
    assert DeviceConfig().latency_device is None
    assert DeviceConfig(targets=config.targets, latency_target="local").latency_device is None
    other = DeviceConfig(targets=config.targets, latency_target="ssh://a@10.0.0.9:2222")
    assert other.latency_device is not None and other.latency_device.port == 2222
    from pipeline.config.inventory import resolve_latency_target

    assert resolve_latency_target(None, (emulated, bedside)) == bedside
    assert resolve_latency_target(None, (emulated,)) is None
    with pytest.raises(ConfigError, match="--latency-target qemu: .* is emulated"):
        resolve_latency_target("qemu", (emulated,))


def test_latency_target_can_name_an_inventory_device_the_build_does_not_bench(
    tmp_path: Path,
) -> None:
    inventory = tmp_path / "devices.toml"
    inventory.write_text('[devices.bedside1]\nssh = "ssh://clinic@10.0.0.2:2222"\nthreads = 2\n')
    config = DeviceConfig(inventory=inventory, python="/opt/py", latency_target="bedside1")
    assert config.devices == () and config.latency_device is not None
    assert config.latency_device.port == 2222 and config.latency_device.python == "/opt/py"
    with pytest.raises(ConfigError, match="--latency-target 'bedside2' is not in the inventory"):
        DeviceConfig(inventory=inventory, latency_target="bedside2")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bedside9", "--latency-target 'bedside9' is neither an ssh:// address"),
        ("ssh://clinic@", "--latency-target: 'ssh://clinic@' is not an ssh:// device address"),
        ("  ", "--latency-target must be local, an ssh:// address or a device name"),
    ],
)
def test_a_bad_latency_target_is_a_config_error_naming_the_flag(value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        DeviceConfig(latency_target=value)
    assert str(raised.value).startswith(expected)


def test_local_latency_target_measures_here() -> None:
    structured = StructuredConfig(sparsity="auto", speedup_target=2)
    config = BuildConfig(structured=structured, device=DeviceConfig(latency_target="local"))
    assert config.device.latency_device is None


def test_an_unreachable_latency_target_exits_2_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "build"
    target = f"ssh://root@127.0.0.1:{_unused_port()}"
    assert main(["build", *SPEED, "--latency-target", target, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"device {target}: nothing accepts SSH connections" in err, err
    assert "Traceback" not in err and not out.exists()
