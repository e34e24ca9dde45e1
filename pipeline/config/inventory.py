"""Device addresses and the TOML inventory of bedside devices.

A device is named on the command line either by address, `ssh://USER@HOST[:PORT]`, or by
its name in an inventory (`--devices FILE --device NAME`):

    [devices.bedside1]
    ssh = "ssh://clinic@bedside-01.ward3.example:22"
    identity = "~/.ssh/bedside_ed25519"   # optional private key
    python = "/opt/venv/bin/python"       # optional, default python3
    threads = 2                           # optional: bench threads on this device
    known_hosts = "~/.ssh/known_hosts"    # optional: host keys to trust (default: ssh's)
    ssh_config = "~/.ssh/config"          # optional: `ssh -F` file (default: ssh's)
    emulated = true                       # optional: an emulator (qemu): its timings mean
                                          # nothing, its outputs are still checked

Paths are expanded (`~`) and taken relative to the working directory, as in a job file.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_PYTHON = "python3"
INVENTORY_KEYS = (
    "ssh",
    "identity",
    "python",
    "threads",
    "known_hosts",
    "ssh_config",
    "emulated",
)
_EXAMPLE = 'ssh = "ssh://clinic@bedside-01.ward3.example:22"'


@dataclass(frozen=True)
class Device:
    """One bedside device: how to reach it and which Python runs the agent there.

    Attributes:
        name: the inventory name, or the address as given.
        host: host name or address.
        user: login name, or None for ssh's default.
        port: SSH port, or None for ssh's default (22 or the ssh config's).
        identity: private key file (`ssh -i`), or None for ssh's keys and agent.
        python: the device's Python, with numpy and a LiteRT runtime.
        threads: interpreter threads for the bench on this device, or None (the build's).
        known_hosts: known_hosts file to check the host key against, or None (ssh's).
        ssh_config: `ssh -F` file, or None (ssh's).
        emulated: the device is an emulator (qemu-user): outputs count, timings do not.
    """

    name: str
    host: str
    user: str | None = None
    port: int | None = None
    identity: Path | None = None
    python: str = DEFAULT_PYTHON
    threads: int | None = None
    known_hosts: Path | None = None
    ssh_config: Path | None = None
    emulated: bool = False

    @property
    def address(self) -> str:
        """`ssh://USER@HOST[:PORT]`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"ssh://{user}{host}{port}"

    @property
    def label(self) -> str:
        """How messages name the device: `'bedside1' (ssh://...)` or the address."""
        return self.address if self.name == self.address else f"'{self.name}' ({self.address})"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "python_path": self.python,
            "emulated": self.emulated,
        }


def parse_address(text: str, where: str = "--device") -> tuple[str | None, str, int | None]:
    """`ssh://USER@HOST[:PORT]` -> (user, host, port).

    Raises:
        ConfigError: not an ssh:// address of that form.
    """
    hint = "Write ssh://USER@HOST[:PORT], e.g. ssh://clinic@bedside-01.ward3.example:22."
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"{where}: '{text}' is not a valid ssh:// address ({exc}). {hint}"
        ) from None
    host = parts.hostname or ""
    if (
        parts.scheme != "ssh"
        or not host
        or host.startswith("-")
        or parts.password is not None
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ConfigError(f"{where}: '{text}' is not an ssh:// device address. {hint}")
    if port is not None and not 0 < port < 65536:
        raise ConfigError(f"{where}: port {port} of '{text}' is not in 1..65535. {hint}")
    user = parts.username or None
    if user is not None and (user.startswith("-") or any(c.isspace() for c in user)):
        raise ConfigError(f"{where}: user '{user}' of '{text}' is not a login name. {hint}")
    return user, host, port


def _path(value: Any, where: str, key: str, must_exist: bool) -> Path:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty path string; received {value!r}.")
    path = Path(value).expanduser()
    if must_exist and not path.is_file():
        raise ConfigError(
            f"{where}: {key} '{value}' is not a file; expected "
            + ("a private key, e.g. ~/.ssh/bedside_ed25519." if key == "identity" else "a file.")
        )
    return path


def _python(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or "\n" in value:
        raise ConfigError(
            f"{where}: python must be the path of the device's Python, e.g. "
            f'"/opt/venv/bin/python"; received {value!r}.'
        )
    return value.strip()


def load_inventory(path: Path) -> dict[str, Device]:
    """Reads an inventory file: its devices by name.

    Raises:
        ConfigError: the file is missing, not TOML, or a device entry is wrong.
    """
    if not path.is_file():
        raise ConfigError(
            f"Device inventory '{path}' is not a file; expected a TOML file with "
            f"[devices.NAME] tables holding {_EXAMPLE}."
        )
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Device inventory '{path}' is not valid TOML: {exc}.") from None
    return parse_inventory(doc, str(path))


def parse_inventory(doc: Mapping[str, Any], where: str = "inventory") -> dict[str, Device]:
    """Validates an inventory document (as from `tomllib`)."""
    extra = [k for k in doc if k != "devices"]
    devices = doc.get("devices")
    if extra or not isinstance(devices, dict) or not devices:
        raise ConfigError(
            f"{where}: expected [devices.NAME] tables only; received "
            f"{', '.join(extra) or 'no devices'}. Write [devices.bedside1] with {_EXAMPLE}."
        )
    out = {}
    for name, table in devices.items():
        at = f"{where} [devices.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{at}: must be a table holding {_EXAMPLE}.")
        unknown = [k for k in table if k not in INVENTORY_KEYS]
        if unknown:
            raise ConfigError(
                f"{at}: unknown key '{unknown[0]}'; expected {', '.join(INVENTORY_KEYS)}."
            )
        if "ssh" not in table or not isinstance(table["ssh"], str):
            raise ConfigError(f"{at}: needs the device's address, e.g. {_EXAMPLE}.")
        user, host, port = parse_address(table["ssh"], at)
        threads = table.get("threads")
        if threads is not None and (
            not isinstance(threads, int) or isinstance(threads, bool) or threads < 1
        ):
            raise ConfigError(f"{at}: threads must be an integer >= 1; received {threads!r}.")
        emulated = table.get("emulated", False)
        if not isinstance(emulated, bool):
            raise ConfigError(f"{at}: emulated must be true or false; received {emulated!r}.")
        out[name] = Device(
            name=name,
            host=host,
            user=user,
            port=port,
            identity=_opt_path(table, "identity", at, True),
            python=_python(table.get("python", DEFAULT_PYTHON), at),
            threads=threads,
            known_hosts=_opt_path(table, "known_hosts", at, False),
            ssh_config=_opt_path(table, "ssh_config", at, True),
            emulated=emulated,
        )
    return out


def _opt_path(table: Mapping[str, Any], key: str, where: str, must_exist: bool) -> Path | None:
    return _path(table[key], where, key, must_exist) if key in table else None


def resolve(
    targets: Sequence[str],
    inventory: Path | None = None,
    identity: Path | None = None,
    python: str | None = None,
    known_hosts: Path | None = None,
    elsewhere: bool = False,
) -> tuple[Device, ...]:
    """The devices named by `--device` values: addresses, or names in `inventory`.

    `identity`, `python` and `known_hosts` (the flags) apply to every device and override
    the inventory's values. `elsewhere`: another option names a device they apply to.

    Raises:
        ConfigError: a bad address, an unknown name, a missing key file.
    """
    if not targets:
        if not elsewhere and (inventory is not None or identity is not None or python is not None):
            raise ConfigError(
                "--devices, --identity and --device-python apply to a device; received no "
                "--device. Name one: --device ssh://USER@HOST[:PORT] or --device NAME."
            )
        return ()
    known = load_inventory(inventory) if inventory is not None else {}
    overrides = _overrides(identity, python, known_hosts)
    devices: list[Device] = []
    for target in targets:
        device = _device(target, known, inventory, overrides)
        if any(d.name == device.name for d in devices):
            raise ConfigError(f"--device '{target}' is given twice; name each device once.")
        devices.append(device)
    return tuple(devices)


def _overrides(identity: Path | None, python: str | None, known_hosts: Path | None) -> dict:
    overrides: dict[str, Any] = {}
    if identity is not None:
        overrides["identity"] = _path(str(identity), "--identity", "identity", True)
    if python is not None:
        overrides["python"] = _python(python, "--device-python")
    if known_hosts is not None:
        overrides["known_hosts"] = Path(known_hosts).expanduser()
    return overrides


def _device(
    target: str,
    known: Mapping[str, Device],
    inventory: Path | None,
    overrides: Mapping[str, Any],
    flag: str = "--device",
) -> Device:
    """The device `flag` names: an ssh:// address or a name in the inventory `known`."""
    target = target.strip()
    if target.startswith("ssh://"):
        user, host, port = parse_address(target, flag)
        device = Device(name=target, host=host, user=user, port=port)
    elif target in known:
        device = known[target]
    elif inventory is None:
        raise ConfigError(
            f"{flag} '{target}' is neither an ssh:// address nor, without --devices "
            f"FILE, an inventory name. Pass {flag} ssh://USER@HOST[:PORT], or "
            f"--devices inventory.toml {flag} NAME."
        )
    else:
        raise ConfigError(
            f"{flag} '{target}' is not in the inventory '{inventory}'; it has "
            f"{', '.join(sorted(known))}. Add [devices.{target}] there or fix the name."
        )
    return Device(**{**vars(device), **overrides})


LOCAL = "local"  # --latency-target: this machine's runtime


def resolve_latency_target(
    target: str | None,
    devices: Sequence[Device],
    inventory: Path | None = None,
    identity: Path | None = None,
    python: str | None = None,
    known_hosts: Path | None = None,
) -> Device | None:
    """The device `--latency-target` names (None: this machine).

    Unset: the build's first device that is not emulated, else this machine. `local`:
    this machine. A name of the build's devices, an ssh:// address or an inventory name:
    that device (the device flags apply to it as to `--device`).

    Raises:
        ConfigError: a bad address, an unknown name, an emulated device.
    """
    if target is None:
        return next((d for d in devices if not d.emulated), None)
    if not isinstance(target, str) or not target.strip():
        raise ConfigError(
            f"--latency-target must be {LOCAL}, an ssh:// address or a device name; received "
            f"{target!r}. E.g. --latency-target ssh://clinic@bedside-01.ward3.example:22."
        )
    target = target.strip()
    if target == LOCAL:
        return None
    device = next((d for d in devices if d.name == target), None)
    if device is None:
        known = load_inventory(inventory) if inventory is not None else {}
        overrides = _overrides(identity, python, known_hosts)
        try:
            device = _device(target, known, inventory, overrides, "--latency-target")
        except ConfigError as error:
            raise ConfigError(f"{error} Or --latency-target {LOCAL}: this machine.") from None
    if device.emulated:
        raise ConfigError(
            f"--latency-target {target}: {device.label} is emulated; an emulator's clock "
            f"measures the emulator, not the device. Name a real device, or {LOCAL}."
        )
    return device
