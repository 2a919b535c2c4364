"""A RabbitMQ broker of a test's own, to stop and start (outages) without touching the shared one.

A second node of the installed ``rabbitmq-server`` on free ports, with its
own name, database and logs under the test's directory and no plugins;
``stop()`` stops the node (every connection drops), ``start()`` brings it
back on the same port.  Its queues do not survive a stop (the database is
kept, but the daemon's and clients' queues are not durable).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

BIN = "/usr/lib/rabbitmq/bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
