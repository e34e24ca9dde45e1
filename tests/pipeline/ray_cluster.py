"""A real two-node Ray cluster on this machine, in a network namespace of its own.

Ray replaces 127.0.0.1 with the machine's routable address unless loopback is all there
is, so the head and worker nodes (and every driver that talks to them) run in a named
network namespace holding only `lo`. Each node is a `ray start --block` process in its
own session with its own --temp-dir; it is stopped by killing that process group (never
`ray stop`, which ends every Ray process on the machine). Needs root, `ip` and Ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.interrupt import default_sigint

NODES_MARK = "bedside-nodes:"  # prefixes the node list node_ids() reads back
PORT = 6390  # the head's GCS port, inside the namespace only
OBJECT_STORE_BYTES = 200 * 1024 * 1024
NODE_START_TIMEOUT_S = 90.0


def unavailable() -> str | None:
    """Why the cluster cannot run here, or None."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return "Ray is not installed (pip install '.[cluster]')"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not (Path(sys.executable).parent / "ray").is_file():
        return f"no `ray` command beside {sys.executable}"
    probe = f"bedside-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


@dataclass
class Node:
    name: str
    process: subprocess.Popen[bytes]
    temp_dir: Path
    log: Path

    def kill(self) -> None:
        """SIGKILL to every process of the node (its session: `ray start` leads it, the
        raylet and its workers are in it): the node dies as a machine would."""
        for pid in processes(session=self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)


def processes(title: str = "", session: int | None = None) -> dict[int, int]:
    """pid -> session id of the processes whose argv starts with `title` (in `session`)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            sid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[3])
        except (OSError, ValueError, IndexError):
            continue
        if cmdline.startswith(title) and session in (None, sid):
            found[int(proc.name)] = sid
    return found


@dataclass
class Cluster:
    """A head and worker nodes; `run` executes a command inside the namespace."""

    netns: str
    root: Path
    nodes: dict[str, Node] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # Ray node id by name, once all run

    @property
    def address(self) -> str:
        return f"127.0.0.1:{PORT}"

    def run(
        self, argv: list[str], timeout: float, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    def popen(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=default_sigint,  # a test may Ctrl-C it however pytest started
        )

    def start_node(self, name: str, head: bool, index: int) -> Node:
        """`ray start --block` for one node; returns once the cluster counts it."""
        temp_dir = self.root / name
        temp_dir.mkdir()
        log = self.root / f"{name}.log"
        ports = 20000 + 400 * index  # each node its own ports: they share 127.0.0.1
        argv = [
            str(Path(sys.executable).parent / "ray"),
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            f"--object-store-memory={OBJECT_STORE_BYTES}",
            f"--temp-dir={temp_dir}",
            f"--min-worker-port={ports}",
            f"--max-worker-port={ports + 199}",
            f"--dashboard-agent-listen-port={ports + 200}",
            f"--metrics-export-port={ports + 201}",
            "--disable-usage-stats",
            f"--resources={json.dumps({f'bedside_{name}': 1})}",
        ]
        if head:
            argv += ["--head", f"--port={PORT}", "--include-dashboard=false"]
        else:
            argv += [f"--address={self.address}"]
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["ip", "netns", "exec", self.netns, *argv],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped by our PID only
            )
        node = Node(name, process, temp_dir, log)
        self.nodes[name] = node
        self._wait_for(node)
        return node

    def node_ids(self) -> dict[str, str]:
        """Ray node id of each live node, by our name for it."""
        code = (
            "import json, ray\n"
            f"ray.init(address='{self.address}', logging_level='ERROR')\n"
            "nodes = [[n['NodeID'], n['Alive'], n['Resources']] for n in ray.nodes()]\n"
            f"print('{NODES_MARK}' + json.dumps(nodes))\n"
        )
        done = self.run([sys.executable, "-c", code], timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"ray.nodes() failed: {done.stderr[-2000:]}")
        out: dict[str, str] = {}
        # Ray prints its own warnings on stdout too (e.g. lagging raylet heartbeats on a
        # busy machine): read only the line this script marked.
        marked = [ln for ln in done.stdout.splitlines() if ln.startswith(NODES_MARK)]
        if not marked:
            raise RuntimeError(f"ray.nodes() printed no node list: {done.stdout[-2000:]}")
        for node_id, alive, resources in json.loads(marked[-1][len(NODES_MARK) :]):
            for name in self.nodes:
                if alive and f"bedside_{name}" in resources:
                    out[name] = node_id
        return out

    def _wait_for(self, node: Node) -> None:
        """Until `ray start` says the node runs (cheaper than asking the cluster)."""
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                raise RuntimeError(f"ray start exited: {node.log.read_text()[-3000:]}")
            if "Ray runtime started" in node.log.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"node {node.name} did not start: {node.log.read_text()[-3000:]}")

    def stop(self) -> None:
        for node in reversed(list(self.nodes.values())):
            node.kill()
        subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def start(workers: int = 1) -> Cluster:
    """A head and `workers` worker nodes, one CPU each, in a fresh namespace."""
    netns = f"bedside-ray-{os.getpid()}"
    subprocess.run(["ip", "netns", "delete", netns], capture_output=True)  # a stale one
    subprocess.run(["ip", "netns", "add", netns], check=True)
    # short: Ray's unix socket paths under --temp-dir must stay below 108 characters
    cluster = Cluster(netns, Path(tempfile.mkdtemp(prefix="bray", dir="/tmp")))
    try:
        cluster.run(["ip", "link", "set", "lo", "up"], timeout=30).check_returncode()
        cluster.start_node("head", head=True, index=0)
        for i in range(workers):
            cluster.start_node(f"worker{i}", head=False, index=i + 1)
        deadline = time.monotonic() + NODE_START_TIMEOUT_S
        while len(cluster.ids) < 1 + workers:  # every node registered
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster has {cluster.ids} after start")
            time.sleep(1.0)
            cluster.ids = cluster.node_ids()
    except BaseException:
        cluster.stop()
        raise
    return cluster
