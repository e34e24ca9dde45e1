"""The wall between pipeline/ and device_bench/: one client module is the only door.

`pipeline/device/client.py` calls device_bench's public functions; `agent.py` (the SSH
devices' zipapp) and `release/cluster.py` (a Ray cluster's py_modules) ship the package's
files without calling it. Any other pipeline module reaches device_bench through the client.

Below: the layer order of pipeline/ (`LAYERS`) and no import circle in pipeline/,
converters/ or device_bench/, imports inside functions included.
"""

from __future__ import annotations

import pytest

from tests.imports import ROOT, cycles, import_graph, importers_of

ALLOWED = {
    "pipeline/device/client.py",  # the door
    "pipeline/device/agent.py",  # packs device_bench as a zipapp for SSH devices
    "pipeline/release/cluster.py",  # ships device_bench to Ray workers
}


def test_only_the_client_imports_device_bench() -> None:
    importers = importers_of("device_bench", ROOT / "pipeline")
    assert {f: hits for f, hits in importers.items() if f not in ALLOWED} == {}
    assert "pipeline/device/client.py" in importers


def test_the_client_uses_device_bench_for_every_run_and_bench() -> None:
    """No hand-written `python -m device_bench run/bench` command lines outside the client."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "pipeline").rglob("*.py"))
        if path.relative_to(ROOT).as_posix() not in ALLOWED
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if '"device_bench",' in line or "'-m', 'device_bench'" in line
    ]
    assert offenders == []


STAGES = ("config", "data", "prune", "quantize", "evaluate", "device")


def test_stage_folders_never_import_the_release_stage_or_the_cli() -> None:
    """Stages hand results forward: only `release/` (the orchestrator) and `cli/` sit on top."""
    importers = {
        stage: {
            f: hits
            for upper in ("pipeline.release", "pipeline.cli")
            for f, hits in importers_of(upper, ROOT / "pipeline" / stage).items()
        }
        for stage in STAGES
    }
    assert {stage: found for stage, found in importers.items() if found} == {}


# The layers of pipeline/, lowest first: a module imports its own stage or a lower layer,
# never a higher one nor another stage of its own layer. `models` (loading, the Keras graph
# walk, flattening) sits below `data`, whose host front walks the model's graph; `errors`,
# `clock` and `config` (with the inventory and MedMNIST spec parsing) are the bottom.
LAYERS: dict[str, int] = {
    "errors": 0,
    "clock": 0,
    "config": 0,
    "models": 1,
    "data": 2,
    "device": 2,
    "evaluate": 3,
    "prune": 4,
    "quantize": 4,
    "release": 5,
    "cli": 6,
    "__main__": 7,  # `python -m pipeline`: the CLI's front door
    "api": 7,  # `from pipeline import build, ...`: the Python front door, beside the CLI
}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_pipeline_module_sits_in_a_layer() -> None:
    assert sorted({_stage(m) for m in import_graph("pipeline")} - {""} - set(LAYERS)) == []


def test_pipeline_has_no_import_circle() -> None:
    assert cycles(import_graph("pipeline")) == []


@pytest.mark.parametrize("package", ["converters", "device_bench"])
def test_converters_and_device_bench_have_no_import_circle(package: str) -> None:
    assert cycles(import_graph(package)) == []


def test_each_layer_imports_only_its_own_stage_or_lower_layers() -> None:
    """config < models < data, device < evaluate < prune, quantize < release < cli."""
    upward = [
        f"{module} -> {target}"
        for module, targets in sorted(import_graph("pipeline").items())
        for target in sorted(targets)
        if _stage(target) != _stage(module)
        and LAYERS.get(_stage(target), 0) >= LAYERS.get(_stage(module), 0)
        and LAYERS.get(_stage(module), 0) > 0  # errors, clock, config: one bottom layer
    ]
    assert upward == []


def test_the_circle_finder_finds_a_circle() -> None:
    """The checks above can fail: a two-module circle and a longer one are found."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert cycles(graph) == [["a", "b", "c"], ["d", "e"]]
