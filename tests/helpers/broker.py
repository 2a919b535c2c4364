"""A RabbitMQ broker of a test's own, to stop and start (outages) without touching the shared one.

A second node of the installed ``rabbitmq-server`` on free ports, with its
own name, database and logs under the test's directory and no plugins;
``stop()`` stops the node (every connection drops), ``start()`` brings it
back on the same port.  Its queues do not survive a stop (the database is
kept, but the daemon's and clients' queues are not durable).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from synchronizer_fakecloud.testbed import free_port

BIN = "/usr/lib/rabbitmq/bin"


class PrivateBroker:
    """One RabbitMQ node on loopback, ``guest``/``guest`` on :attr:`port`."""

    def __init__(self, base: Path) -> None:
        if shutil.which("rabbitmq-server") is None:
            raise RuntimeError("rabbitmq-server is not installed")
        self.port = free_port()
        self.name = f"test{self.port}@localhost"
        base.mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        # A config file of its own: the system's names the shared broker's port.
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        self.env = dict(
            os.environ,
            RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_DIST_PORT=str(free_port()),
            RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
            RABBITMQ_LOG_BASE=str(base / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
            RABBITMQ_FEATURE_FLAGS_FILE=str(base / "feature_flags"),
            RABBITMQ_PLUGINS_EXPAND_DIR=str(base / "plugins"),
            RABBITMQ_PID_FILE=str(base / "pid"),
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        self.url = f"rabbit://guest:guest@127.0.0.1:{self.port}/"

    def start(self, timeout: float = 60.0) -> None:
        # The scripts themselves, not /usr/sbin's wrappers (which switch to the
        # rabbitmq user, who cannot write the test's directory).
        subprocess.run([f"{BIN}/rabbitmq-server", "-detached"], env=self.env, check=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._answers():
                return
            time.sleep(0.3)
        raise RuntimeError(f"the private broker on port {self.port} did not start")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"AMQP\x00\x00\x09\x01")
                return bool(s.recv(8))
        except OSError:
            return False

    def stop(self) -> None:
        subprocess.run(
            [f"{BIN}/rabbitmqctl", "-n", self.name, "stop"],
            env=self.env,
            check=False,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while self._answers() and time.monotonic() < deadline:
            time.sleep(0.2)


# -- cutting the connections of some processes on a shared broker -------------


def process_tree(root: int) -> set[int]:
    """``root`` and every process below it (read from ``/proc``)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in tree:
            tree.add(pid)
            todo.extend(children.get(pid, ()))
    return tree


def socket_inodes(pids: Iterable[int]) -> set[str]:
    """The inodes of the sockets ``pids`` hold open."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    return inodes


def tcp_sockets(pids: Iterable[int]) -> Iterator[tuple[str, str, int, int]]:
    """``(state, local address in hex, local port, remote port)`` of the TCP sockets of ``pids``.

    From ``/proc/net/tcp`` and ``tcp6``; ``state`` as the kernel writes it
    (``01`` ESTABLISHED, ``0A`` LISTEN).
    """
    inodes = socket_inodes(pids)
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                local, local_port = fields[1].rsplit(":", 1)
                remote_port = fields[2].rsplit(":", 1)[1]
                yield fields[3], local, int(local_port, 16), int(remote_port, 16)


def connected_ports(pids: Iterable[int], port: int) -> set[int]:
    """Local ports of the established TCP connections of ``pids`` to ``port``."""
    return {
        local_port
        for state, _, local_port, remote_port in tcp_sockets(pids)
        if state == "01" and remote_port == port
    }


#: Node names rabbitmqctl may reach the local broker by (None: its default).
NODES = (None, "rabbit@localhost", f"rabbit@{socket.gethostname()}")


def find_node() -> tuple[bool, str | None, str]:
    """``(found, node, error)``: the first of :data:`NODES` that rabbitmqctl reaches."""
    error = ""
    for node in NODES:
        cmd = ["rabbitmqctl", *(["-n", node] if node else []), "-q", "status"]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            error = str(exc)
            continue
        if result.returncode == 0:
            return True, node, ""
        error = "\n".join((result.stderr or result.stdout).strip().splitlines()[-1:])
    return False, None, error


def cut_connections(
    pids: Iterable[int], reason: str, *, port: int = 5672, node: str | None = None
) -> int:
    """Close, broker side, the AMQP connections of ``pids`` only; how many were closed.

    A fault for the test's own processes on the shared broker: every other
    client of it keeps its connections.
    """
    ours = connected_ports(pids, port)
    ctl = ["rabbitmqctl", *(["-n", node] if node else [])]
    listed = subprocess.run(
        [*ctl, "-q", "list_connections", "pid", "peer_port", "--no-table-headers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    targets = []
    for line in listed.stdout.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit() and int(fields[1]) in ours:
            targets.append(fields[0])
    if not targets:
        return 0
    # One call for all (each rabbitmqctl is an Erlang VM: one per connection,
    # at once, would take the test's processes' CPU for seconds).
    closes = ", ".join(
        f'rabbit_networking:close_connection(rabbit_misc:string_to_pid("{t}"), "{reason}")'
        for t in targets
    )
    subprocess.run([*ctl, "eval", f"[{closes}]."], capture_output=True, timeout=60, check=True)
    return len(targets)
