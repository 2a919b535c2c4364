"""The fleet's real parts for tests: a SQL database of our own, a Redis of our own.

Each is skipped with a reason on a developer's machine without it, and a
failure under CI (``.ci/run`` starts them).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

POSTGRES = ("127.0.0.1", 5432)
MARIADB = ("127.0.0.1", 3306)
REDIS = ("127.0.0.1", 6379)


def reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def require(address: tuple[str, int], what: str) -> None:
    if reachable(address):
        return
    reason = f"no {what} on {address[0]}:{address[1]} (.ci/run starts it)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " - the functional suite must not skip under CI")
    pytest.skip(reason)


def create_database(kind: str) -> str:
    """A new, empty database of ``kind`` (postgresql or mysql); its URL."""
    import sqlalchemy as sa

    name = f"sync_test_{uuid.uuid4().hex[:10]}"
    if kind == "postgresql":
        require(POSTGRES, "PostgreSQL")
        admin = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
        url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    else:
        require(MARIADB, "MariaDB")
        admin = "mysql+pymysql://root@127.0.0.1:3306/"
        url = f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return url


def drop_database(url: str) -> None:
    import sqlalchemy as sa

    base, name = url.split("?")[0].rsplit("/", 1)
    if url.startswith("postgresql"):
        admin, sql = base + "/postgres", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    else:
        admin, sql = base + "/", f"DROP DATABASE IF EXISTS {name}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Redis:
    """A redis-server of our own on loopback, to stop, pause and restart."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> Redis:
        binary = shutil.which("redis-server")
        if binary is None:
            reason = "no redis-server installed (.ci/run installs it)"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not reachable(("127.0.0.1", self.port)):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        return self

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)


ZKSERVER = "/usr/share/zookeeper/bin/zkServer.sh"  # Debian's zookeeper package


class ZooKeeper:
    """A ZooKeeper server of our own on loopback (Debian's), to pause and stop.

    The same interface as :class:`Redis`, so a test can run on either
    coordinator; tooz reaches it through kazoo (``zookeeper://``).
    """

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir / "zookeeper"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"zookeeper://127.0.0.1:{self.port}"

    def start(self) -> ZooKeeper:
        if not Path(ZKSERVER).exists():
            reason = "no ZooKeeper installed (.ci/run installs Debian's zookeeperd)"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "zoo.cfg"
        config.write_text(
            "\n".join(
                [
                    "tickTime=500",  # sessions from 1 s (2 ticks) to 30 s (60 ticks)
                    "maxSessionTimeout=30000",
                    f"dataDir={data}",
                    f"clientPort={self.port}",
                    "clientPortAddress=127.0.0.1",
                    "admin.enableServer=false",
                    "4lw.commands.whitelist=ruok",
                ]
            )
            + "\n"
        )
        env = {**os.environ, "ZOO_LOG_DIR": str(self.workdir), "JVMFLAGS": "-Xmx256m"}
        self.proc = subprocess.Popen(
            [ZKSERVER, "start-foreground", str(config)],
            cwd=self.workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not self._ok():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("ZooKeeper did not start")
            time.sleep(0.2)
        return self

    def _ok(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"ruok")
                return s.recv(4) == b"imok"
        except OSError:
            return False

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Postgres:
    """A PostgreSQL server of our own (its own data dir and port), to stop and restart.

    Never the shared server on 5432: an outage test stops this one.  Run as
    the ``postgres`` user when the tests run as root (initdb refuses root).
    """

    def __init__(self) -> None:
        self.port = free_port()
        # Under /tmp itself: the postgres user must reach it (pytest's dirs are root's, 0700).
        self.root = Path(tempfile.mkdtemp(prefix="sync-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        self.bin = bins[-1] if bins else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        assert self.bin is not None
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        # No pipes: the server pg_ctl starts would hold them open.
        subprocess.run(
            command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60
        )

    def start(self) -> Postgres:
        if self.bin is None or not (self.bin / "initdb").exists():
            reason = "no PostgreSQL server binaries (.ci/run installs them)"
            if os.environ.get("CI") == "true":
                pytest.fail(reason)
            pytest.skip(reason)
        for path in (self.data, self.socket_dir):
            path.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self.resume()

    def resume(self) -> Postgres:
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"  # commits reach the WAL: a halt loses none
        )
        log = str(self.socket_dir / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "-t", "30", "start"
        )
        return self

    def halt(self) -> None:
        """Stop the server at once (clients see their connections refused)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.halt()
        shutil.rmtree(self.root, ignore_errors=True)
