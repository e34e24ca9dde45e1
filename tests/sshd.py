"""A real OpenSSH server on 127.0.0.1 for the device tests, and a "device" Python.

`start_sshd(tmp)` generates a host key and client keys in `tmp`, starts Debian's
`/usr/sbin/sshd` in the foreground (stopped by its PID), trusting only the client key and
giving the device sessions their own TMPDIR (the "remote temp area" the tests inspect).
The device Python is a venv with only numpy and ai-edge-litert: BEDSIDE_DEVICE_PYTHON
(made by .ci/run), else one made once under the system temp dir (pip works offline from
its cache).
"""

from __future__ import annotations

import getpass
import importlib.metadata
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
DEVICE_PYTHON_ENV = "BEDSIDE_DEVICE_PYTHON"


@dataclass
class Sshd:
    """A running sshd and the files a client needs."""

    process: subprocess.Popen[bytes]
    port: int
    user: str
    key: Path  # authorized
    other_key: Path  # not authorized
    known_hosts: Path  # holds the server's host key
    empty_known_hosts: Path
    remote_tmp: Path  # the device sessions' TMPDIR
    log: Path

    @property
    def address(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def children(self) -> list[int]:
        """PIDs of the per-connection sshd processes (children of the listener)."""
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.process.pid)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bedside-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_sshd(tmp: Path) -> Sshd | str:
    """Starts sshd on 127.0.0.1; the reason as a string when it cannot run here."""
    if not SSHD.is_file() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "OpenSSH server/client not installed (apt-get install openssh-server)"
    if os.geteuid() != 0:
        return "sshd's privilege separation needs root"
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation chroot
    host_key, key, other = _keygen(tmp / "host_key"), _keygen(tmp / "key"), _keygen(tmp / "other")
    (tmp / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    remote_tmp = tmp / "remote-tmp"
    remote_tmp.mkdir()
    port = _free_port()
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {Path(f'{host_key}.pub').read_text()}")
    (tmp / "empty_known_hosts").write_text("")
    log = tmp / "sshd.log"
    options = {
        "ListenAddress": f"127.0.0.1:{port}",
        "HostKey": str(host_key),
        "AuthorizedKeysFile": str(tmp / "authorized_keys"),
        "PermitRootLogin": "prohibit-password",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "UsePAM": "no",
        "StrictModes": "no",  # the keys live in pytest's tmp dirs
        "PidFile": str(tmp / "sshd.pid"),
        "SetEnv": f"TMPDIR={remote_tmp}",
        "MaxStartups": "50",
    }
    argv = [str(SSHD), "-D", "-e", "-f", "/dev/null"]
    for name, value in options.items():
        argv += ["-o", f"{name}={value}"]
    with log.open("wb") as stream:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=stream, stdout=stream)
    server = Sshd(
        process, port, getpass.getuser(), key, other, known_hosts,
        tmp / "empty_known_hosts", remote_tmp, log,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"sshd exited at start: {log.read_text()[-500:]}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    return "sshd did not listen within 10 s"


def device_python() -> str:
    """A Python with only numpy and ai-edge-litert; raises RuntimeError if none can be made."""
    given = os.environ.get(DEVICE_PYTHON_ENV)
    if given:
        return given
    versions = {d: importlib.metadata.version(d) for d in ("numpy", "ai-edge-litert")}
    tag = "-".join(f"{d}{v}" for d, v in versions.items())
    venv = (
        Path(tempfile.gettempdir())
        / f"bedside-device-venv-{sys.version_info[0]}{sys.version_info[1]}-{tag}"
    )  # noqa: E501
    python = venv / "bin" / "python"
    if python.exists():
        return str(python)
    staging = Path(tempfile.mkdtemp(prefix=venv.name + ".", dir=venv.parent))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(staging)], check=True)
        pins = [f"{d}=={v}" for d, v in versions.items()]
        subprocess.run(
            [str(staging / "bin" / "python"), "-m", "pip", "install", "-q", *pins],
            check=True,
            timeout=600,
        )
        staging.rename(venv)
    except (subprocess.SubprocessError, OSError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"cannot make a device venv: {exc}") from exc
    return str(python)
