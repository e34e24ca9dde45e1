"""Running the agent on a device over SSH, with the system OpenSSH client.

Why the system `ssh` and not an SSH library: it is what the user has already configured
(known_hosts, keys in an agent, `~/.ssh/config` with jump hosts and proxies), it is
maintained by the OS, and it adds no dependency. Every call passes `BatchMode=yes` (never
prompt: CI has no terminal), a connect timeout and server-alive probes (a device that drops
is noticed within about 15 s). The host key is checked as ssh's configuration says; with
ssh's default an unknown key is refused, never silently accepted.

A `Session` makes a fresh temporary directory on the device, streams the agent zipapp and
the files into it (a tar read by the device's own Python: no scp/sftp needed there), reads
the device's description (`agent.pyz info`), runs device_bench commands in it, and removes
it on exit, also after an error or Ctrl-C (first ending the agent's processes).
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from pipeline.config.inventory import Device
from pipeline.device.agent import AGENT_NAME, MISSING_EXIT, build_agent
from pipeline.errors import ConfigError, DeviceError

CONNECT_TIMEOUT_S = 10
ALIVE_INTERVAL_S = 5
ALIVE_COUNT_MAX = 3
SETUP_TIMEOUT_S = 120.0  # connect, upload, describe: bounded even on a slow link
CLEANUP_TIMEOUT_S = 25.0
PID_FILE = "agent.pid"
TEMP_PREFIX = "bedside-lite."

# The device's Python unpacks the bundle from stdin: only a POSIX shell and that Python
# are needed there. tarfile's data filter where the device's Python has it.
_EXTRACT = (
    "import sys,tarfile;t=tarfile.open(fileobj=sys.stdin.buffer,mode='r|');"
    "t.extractall('.',**({'filter':'data'} if hasattr(tarfile,'data_filter') else {}))"
)
# What ssh prints, mapped to what the user must fix.
_SSH_FAILURES = (
    (
        ("Host key verification failed", "host key for", "HOST IDENTIFICATION HAS CHANGED"),
        "unreachable",
        "its host key is not in known_hosts (or does not match it); ssh refuses unknown "
        "hosts. Check the key's fingerprint with the device's owner, then add it, e.g. "
        "`ssh-keyscan {scan} >> ~/.ssh/known_hosts` (or set known_hosts in the inventory)",
    ),
    (
        ("UNPROTECTED PRIVATE KEY FILE",),
        "unreachable",
        "ssh ignores the key{key}: others can read it. Run `chmod 600` on it",
    ),
    (
        ("Permission denied",),
        "unreachable",
        "it refused the key{key} for user {user}. Add the public key to "
        "~{user}/.ssh/authorized_keys on the device, or pass the right --identity KEY",
    ),
    (
        ("Connection refused",),
        "unreachable",
        "nothing accepts SSH connections at {host}{port}. Check the address and port and "
        "that sshd runs on the device",
    ),
    (
        (
            "timed out",
            "No route to host",
            "Network is unreachable",
            "Could not resolve hostname",
            "Name or service not known",
        ),
        "unreachable",
        "it cannot be reached at {host}{port}. Check that it is on and on the network, "
        "and the address",
    ),
)
_DISK_FULL = ("No space left on device", "Disk quota exceeded", "File too large")


def ssh_command(device: Device, remote: str) -> list[str]:
    """The `ssh` argv that runs the shell command `remote` on `device`."""
    cmd = ["ssh", "-T", "-o", "BatchMode=yes"]
    cmd += ["-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]
    cmd += ["-o", f"ServerAliveInterval={ALIVE_INTERVAL_S}"]
    cmd += ["-o", f"ServerAliveCountMax={ALIVE_COUNT_MAX}"]
    if device.ssh_config is not None:
        cmd += ["-F", str(device.ssh_config)]
    if device.identity is not None:
        cmd += ["-i", str(device.identity), "-o", "IdentitiesOnly=yes"]
    if device.known_hosts is not None:
        cmd += ["-o", f"UserKnownHostsFile={device.known_hosts}"]
    if device.port is not None:
        cmd += ["-p", str(device.port)]
    if device.user is not None:
        cmd += ["-l", device.user]
    return [*cmd, "--", device.host, remote]


def _tail(data: bytes, lines: int = 2) -> str:
    kept = [ln.strip() for ln in data.decode(errors="replace").splitlines() if ln.strip()]
    return " | ".join(ln.removeprefix("ssh: ") for ln in kept[-lines:])


def connection_error(device: Device, stderr: bytes, doing: str) -> DeviceError:
    """The error for an ssh that failed to connect or lost the connection (exit 255)."""
    text = stderr.decode(errors="replace")
    fields = {
        "host": device.host,
        "port": f":{device.port}" if device.port else "",
        "scan": f"-p {device.port} {device.host}" if device.port else device.host,
        "user": device.user or "(ssh's default)",
        "key": f" {device.identity}" if device.identity else "",
    }
    for needles, status, advice in _SSH_FAILURES:
        if any(n in text for n in needles):
            return DeviceError(
                f"device {device.label}: {advice.format(**fields)} (ssh: {_tail(stderr, 1)}).",
                status,
            )
    return DeviceError(
        f"device {device.label} dropped the connection while {doing} (ssh: "
        f"{_tail(stderr, 1) or 'no message'}). Check the device's power and network, then "
        "run again.",
        "unreachable",
    )


class Session:
    """A temporary directory on `device` holding the agent and `files`, removed on exit.

    Args:
        device: where to run.
        files: name in the directory -> local file to copy there.
    """

    def __init__(self, device: Device, files: dict[str, Path]) -> None:
        self.device = device
        self.files = files
        self.dir: str | None = None
        self.info: dict[str, Any] = {}
        self._agent_may_run = False

    def __enter__(self) -> Session:
        try:
            self._open()
        except BaseException as error:
            self.close(error)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close(error)

    def _ssh(
        self, remote: str, timeout: float, doing: str, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        # Its own session: a Ctrl-C reaches only this Python, which then cleans up in order.
        try:
            proc = subprocess.Popen(
                ssh_command(self.device, remote),
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise ConfigError(
                f"--device {self.device.label} needs the OpenSSH client `ssh` on this "
                "machine; it is not on PATH. Install it (e.g. apt-get install openssh-client)."
            ) from None
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise DeviceError(
                f"device {self.device.label} gave no answer within {timeout:g} s while "
                f"{doing}. Check that it is not overloaded or asleep, then run again.",
                "unreachable",
            ) from None
        except BaseException:
            proc.kill()
            proc.communicate()
            raise
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def _bundle(self) -> bytes:
        buffer = io.BytesIO()
        with tempfile.TemporaryDirectory(prefix="bedside-agent-") as tmp:
            agent = build_agent(Path(tmp, AGENT_NAME))
            with tarfile.open(fileobj=buffer, mode="w", dereference=True) as tar:
                tar.add(agent, AGENT_NAME)
                for name, path in self.files.items():
                    tar.add(path, name)
        return buffer.getvalue()

    def _open(self) -> None:
        py = shlex.quote(self.device.python)
        remote = (
            'umask 077 && d=$(mktemp -d "${TMPDIR:-/tmp}/' + TEMP_PREFIX + 'XXXXXXXX") && '
            f'printf "%s\\n" "$d" && cd "$d" && {py} -c {shlex.quote(_EXTRACT)} && '
            f"exec {py} {AGENT_NAME} info"
        )
        proc = self._ssh(remote, SETUP_TIMEOUT_S, "copying the agent", self._bundle())
        first, _, rest = proc.stdout.decode(errors="replace").partition("\n")
        if first.startswith("/"):
            self.dir = first.strip()
        self._check_setup(proc, rest)

    def _check_setup(self, proc: subprocess.CompletedProcess[bytes], rest: str) -> None:
        device, code, err = self.device, proc.returncode, proc.stderr
        if code == 255:
            raise connection_error(device, err, "copying the agent")
        text = err.decode(errors="replace")
        if any(n in text for n in _DISK_FULL) or (self.dir is None and "mktemp" in text):
            raise DeviceError(
                f"device {device.label}: no room for the agent in its temporary directory "
                f"({_tail(err, 1)}). Free space in $TMPDIR (default /tmp) on the device; "
                "it needs a few MB plus the models.",
                "refused",
            )
        if code in (126, 127):
            raise DeviceError(
                f"device {device.label} has no Python at '{device.python}' ({_tail(err, 1)}). "
                "Pass --device-python PATH (or python = ... in the inventory): a Python "
                "3.10+ with numpy and ai-edge-litert.",
                "refused",
            )
        if code == MISSING_EXIT:
            doc = json_object(rest) or {}
            missing = doc.get("missing", "a module")
            fix = (
                "Use a Python 3.10+ (--device-python PATH)"
                if missing == "python"
                else f"Install it there: {device.python} -m pip install numpy ai-edge-litert"
            )
            raise DeviceError(
                f"device {device.label}: Python '{device.python}' "
                f"({doc.get('python', '?')}) lacks {missing} ({doc.get('reason')}). {fix}.",
                "refused",
            )
        info = json_object(rest)
        if code != 0 or info is None:
            raise DeviceError(
                f"device {device.label}: the agent did not start under '{device.python}' "
                f"(exit {code}: {_tail(err) or _tail(proc.stdout)}). Check that it is a "
                "Python 3.10+ with numpy and a LiteRT runtime.",
                "refused",
            )
        if info.get("runtime") is None:
            raise DeviceError(
                f"device {device.label}: Python '{device.python}' has no LiteRT runtime "
                f"({info.get('runtime_error')}). Install one there: {device.python} -m pip "
                "install ai-edge-litert (or tflite-runtime on older devices).",
                "refused",
            )
        self.info = info

    def describe(self) -> dict[str, Any]:
        """The report's `device` object: the device and what it runs."""
        keys = ("machine", "system", "release", "python", "numpy", "runtime", "runtime_version")
        return {
            **self.device.to_json(),
            **{k: self.info.get(k) for k in keys},
            "cpu_count": self.info.get("cpu_count"),
        }

    def run(
        self, args: list[str], timeout: float, doing: str
    ) -> subprocess.CompletedProcess[bytes]:
        """Runs `agent.pyz ARGS` in the session's directory; stdout and stderr as bytes.

        Raises:
            DeviceError: the connection failed or dropped, or no answer within `timeout`.
        """
        assert self.dir is not None, "run() needs an open session"
        py = shlex.quote(self.device.python)
        remote = (
            f"cd {shlex.quote(self.dir)} && echo $$ > {PID_FILE} && exec {py} {AGENT_NAME} "
            + " ".join(shlex.quote(a) for a in args)
        )
        self._agent_may_run = True
        proc = self._ssh(remote, timeout, doing)
        if proc.returncode == 255:
            raise connection_error(self.device, proc.stderr, doing)
        self._agent_may_run = False
        return proc

    def fetch(self, name: str, doing: str) -> bytes:
        """The bytes of a file the agent wrote in the session's directory."""
        assert self.dir is not None, "fetch() needs an open session"
        remote = f"cat {shlex.quote(self.dir + '/' + name)}"
        proc = self._ssh(remote, SETUP_TIMEOUT_S, doing)
        if proc.returncode == 255:
            raise connection_error(self.device, proc.stderr, doing)
        if proc.returncode != 0:
            raise DeviceError(
                f"device {self.device.label}: the agent wrote no {name} while {doing} "
                f"({_tail(proc.stderr)}).",
                "refused",
            )
        return proc.stdout

    def close(self, error: BaseException | None = None) -> None:
        """Ends the agent's processes if a run was cut short, and removes the directory.

        Raises:
            DeviceError: the directory could not be removed and nothing else failed.
        """
        if self.dir is None:
            return
        d = shlex.quote(self.dir)
        # The agent was exec'd by sshd's session leader: its pid is its process group.
        kill = (
            f'p=$(cat {d}/{PID_FILE} 2>/dev/null) && [ -n "$p" ] && '
            '{ kill -TERM -"$p" 2>/dev/null; kill -TERM "$p" 2>/dev/null; sleep 1; '
            'kill -KILL -"$p" 2>/dev/null; }; '
            if self._agent_may_run
            else ""
        )
        remote = f"{kill}rm -rf {d}"
        where, self.dir = self.dir, None
        try:
            proc = self._ssh(remote, CLEANUP_TIMEOUT_S, "removing its temporary directory")
            failed = proc.returncode != 0
            detail = _tail(proc.stderr)
        except DeviceError as exc:
            failed, detail = True, str(exc)
        if not failed:
            return
        message = (
            f"device {self.device.label}: could not remove its temporary directory {where} "
            f"({detail}); remove it by hand: ssh {self.device.address} rm -rf {where}"
        )
        if isinstance(error, DeviceError):
            error.args = (f"{error.args[0]} Also, {message}",)
        elif error is None:
            raise DeviceError(message, "unreachable")
        else:  # Ctrl-C or a bug: the user must still learn what is left on the device
            print(f"warning: {message}", file=sys.stderr)


def json_object(text: str | bytes) -> dict[str, Any] | None:
    """The JSON object in `text`, or None when it holds none (e.g. a crash's output)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
