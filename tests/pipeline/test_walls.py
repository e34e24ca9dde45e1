"""The wall between pipeline/ and device_bench/: one client module is the only door.

`pipeline/device/client.py` calls device_bench's public functions; `agent.py` (the SSH
devices' zipapp) and `release/cluster.py` (a Ray cluster's py_modules) ship the package's
files without calling it. Any other pipeline module reaches device_bench through the client.
"""

from __future__ import annotations

from tests.imports import ROOT, importers_of

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
