"""The staging folder beside --out: swapped in whole, and cleaned after a killed build."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

from pipeline.release.artifacts import Staging, current_owner, remove_stale

# A build's staging step in a process of its own: stage a file, say where, wait to be killed.
_HOLD = """
import sys, time
from pathlib import Path
from pipeline.release.artifacts import Staging
stage = Staging(Path(sys.argv[1]))
stage.write_bytes("model_int8.tflite", b"half")
print(stage.dir, flush=True)
time.sleep(600)
"""


def _beside(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


def _holder(out: Path) -> tuple[subprocess.Popen[str], Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def _previous_build(out: Path) -> None:
    with Staging(out) as stage:
        stage.write_bytes("report.json", b"{}")
        stage.commit()


def test_a_build_killed_with_sigkill_leaves_a_folder_the_next_build_removes(
    tmp_path: Path,
) -> None:
    out = tmp_path / "build"
    _previous_build(out)
    proc, partial = _holder(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partial.is_dir() and partial.name.startswith(".build.partial-")
    with Staging(out) as stage:
        assert not partial.exists()
        assert _beside(out) == [stage.dir.name]
    assert (out / "report.json").read_bytes() == b"{}"  # the previous output is intact


def test_a_running_build_keeps_its_folder(tmp_path: Path) -> None:
    out = tmp_path / "build"
    proc, partial = _holder(out)
    try:
        with Staging(out) as stage:
            assert partial.is_dir() and stage.dir.is_dir()
            assert remove_stale(out) == []
    finally:
        proc.kill()
        proc.wait()
    assert remove_stale(out) == [partial]


def test_a_reused_pid_is_not_the_owner_and_another_host_is_not_judged(tmp_path: Path) -> None:
    out = tmp_path / "build"
    me = current_owner()
    reused = dataclasses.replace(me, start=str(int(me.start) + 1))  # this PID, another process
    elsewhere = dataclasses.replace(me, host="0" * 8, pid=1 << 22)
    dirs = {}
    for name, owner in (("reused", reused), ("elsewhere", elsewhere)):
        dirs[name] = tmp_path / f".build.partial-{owner.tag()}-{name}"
    dirs["unowned"] = tmp_path / ".build.partial-k2j4abcd"  # no owner recorded: left alone
    for d in dirs.values():
        d.mkdir()
    assert remove_stale(out) == [dirs["reused"]]
    assert dirs["elsewhere"].is_dir() and dirs["unowned"].is_dir()


def test_two_builds_at_once_both_finish_and_the_last_one_wins(tmp_path: Path) -> None:
    out = tmp_path / "build"
    _previous_build(out)
    with Staging(out) as first, Staging(out) as second:
        first.write_bytes("model_int8.tflite", b"first")
        second.write_bytes("model_int8.tflite", b"second")
        first.commit()
        second.commit()
    assert (out / "model_int8.tflite").read_bytes() == b"second"
    assert sorted(os.listdir(out)) == ["model_int8.tflite"]
    assert _beside(out) == []
