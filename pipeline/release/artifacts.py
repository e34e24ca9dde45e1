"""The output directory: checked before work starts, staged, and swapped in atomically.

All artifacts are written to a staging directory beside `--out` and renamed into place only
when every stage succeeded, so a failed or interrupted build never leaves a half-written
model where a good one stood.

A staging directory's name says which process owns it:
`.NAME.partial-HOST-BOOT-PID-START-xxxxxxxx` (a hash of the host name, the boot id, the
PID and the process's start time in clock ticks since boot). A build killed with
`kill -9` cannot remove its own; the next build into the same `--out` removes those whose
owner is gone (same host, and another boot, or no such PID, or a PID now held by a
process started at another time) and leaves every other one alone, e.g. a build running
into the same `--out` at the same time, or one on another host sharing the folder.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import OutputError


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuses an output path that is a file, or a non-empty directory without overwrite."""
    if out.exists() and not out.is_dir():
        raise OutputError(
            f"--out '{out}' is a file; expected a directory (new or empty). Choose another "
            "path or remove the file."
        )
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(
            f"--out '{out}' is not empty. Pass --overwrite to replace its contents, or choose "
            "an empty directory."
        )


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe(path: Path, final_dir: Path) -> dict[str, Any]:
    """`path`, `bytes`, `sha256` of an artifact (path as it will be after the swap)."""
    return {
        "path": str(final_dir / path.name),
        "bytes": path.stat().st_size,
        "sha256": sha256(path),
    }


@dataclass(frozen=True)
class Owner:
    """The process that owns a staging directory, as its name records it."""

    host: str  # a short hash of the host name
    boot: str  # the start of the kernel's boot id ("0" where there is none)
    pid: int
    start: str  # start time in clock ticks since boot ("0" where unknown)

    def tag(self) -> str:
        return f"{self.host}-{self.boot}-{self.pid}-{self.start}"

    def gone(self) -> bool:
        """Whether the owning process no longer runs (False when that cannot be told)."""
        me = current_owner()
        if self.host != me.host:
            return False  # another host's process: not ours to judge
        if self.boot != me.boot:
            return True  # the host rebooted since
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # alive, another user's
        start = _start_time(self.pid)
        return self.start != "0" and start != "0" and start != self.start  # a reused PID


_TAG = re.compile(r"-(?P<host>[0-9a-f]{8})-(?P<boot>[0-9a-f]+)-(?P<pid>\d+)-(?P<start>\d+)-[^-]+$")


def _start_time(pid: int) -> str:
    """A process's start time in clock ticks since boot (Linux /proc), else "0"."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "0"
    return stat.rpartition(")")[2].split()[19]  # field 22; the name may hold spaces


def current_owner() -> Owner:
    """This process as a staging directory's owner."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8] or "0"
    except OSError:
        boot = "0"
    host = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
    return Owner(host, boot, os.getpid(), _start_time(os.getpid()))


def owner_of(directory: Path, prefix: str) -> Owner | None:
    """The owner recorded in a staging directory's name (None: an unowned name)."""
    if not directory.name.startswith(prefix):
        return None
    match = _TAG.fullmatch(directory.name[len(prefix) - 1 :])
    if match is None:
        return None
    return Owner(match["host"], match["boot"], int(match["pid"]), match["start"])


def remove_stale(out: Path) -> list[Path]:
    """Removes the staging directories beside `out` whose owning process is gone.

    Returns:
        The directories removed.
    """
    removed = []
    for kind in ("partial", "old"):
        prefix = f".{out.name}.{kind}-"
        for directory in out.parent.glob(f"{glob.escape(prefix)}*"):
            owner = owner_of(directory, prefix)
            if directory.is_dir() and owner is not None and owner.gone():
                shutil.rmtree(directory, ignore_errors=True)
                removed.append(directory)
    return removed


def _owned_tempdir(out: Path, kind: str) -> Path:
    """A new directory beside `out` named after its kind and its owner (this process)."""
    prefix = f".{out.name}.{kind}-{current_owner().tag()}-"
    return Path(tempfile.mkdtemp(prefix=prefix, dir=out.parent))


class Staging:
    """A staging directory that becomes `out` on commit and vanishes on failure.

    Use as a context manager; call `commit()` once every artifact is written.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(out)
        self.dir = _owned_tempdir(out, "partial")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.dir, 0o777 & ~umask)  # mkdtemp makes it private; the output is not
        self._committed = False

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._committed:
            shutil.rmtree(self.dir, ignore_errors=True)

    def write_bytes(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path

    def commit(self) -> None:
        """Swaps the staging directory into place; the previous output is removed after."""
        old = None
        if self.out.exists():
            old = _owned_tempdir(self.out, "old")
            os.replace(self.out, old / self.out.name)
        os.replace(self.dir, self.out)
        self._committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
