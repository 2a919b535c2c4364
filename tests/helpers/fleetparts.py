"""The fleet's real parts for tests: a SQL database, a Redis and a ZooKeeper of our own.

The servers themselves are :mod:`synchronizer_fakecloud.testbed`'s (the
benchmarks start them too); this module adds pytest's skip.

Each is skipped with a reason on a developer's machine without it, and a
failure under CI (``.ci/run`` starts them).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pytest

from synchronizer_fakecloud import testbed
from synchronizer_fakecloud.testbed import free_port, reachable

__all__ = [
    "Postgres",
    "Redis",
    "ZooKeeper",
    "create_database",
    "drop_database",
    "free_port",
    "history_gaps",
    "reachable",
    "require",
]

POSTGRES = ("127.0.0.1", 5432)
MARIADB = ("127.0.0.1", 3306)
REDIS = ("127.0.0.1", 6379)


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


def history_gaps(streams: Mapping[str, int], seqs: Iterable[tuple[str, int]]) -> list[str]:
    """Each partition's history against its stream: what is not exactly seq 1..N, said.

    ``streams``: partition → its last seq; ``seqs``: the ``(partition, seq)``
    its history holds.  Empty when every partition holds each of 1..N once.
    """
    have: dict[str, list[int]] = {}
    for partition, seq in seqs:
        have.setdefault(partition, []).append(int(seq))
    gaps = []
    for partition, last in sorted(streams.items()):
        held = sorted(have.get(partition, []))
        if held != list(range(1, int(last) + 1)):
            missing = sorted(set(range(1, int(last) + 1)) - set(held))
            gaps.append(
                f"{partition}: {len(held)} changes for seq {last}, "
                f"{len(missing)} missing (e.g. {missing[:5]})"
            )
    return gaps


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


class Redis(testbed.Redis):
    """:class:`synchronizer_fakecloud.testbed.Redis`, skipped (or failed under CI) if absent."""

    def start(self) -> Redis:
        with _skip_unavailable():
            super().start()
        return self


class Postgres(testbed.Postgres):
    """:class:`synchronizer_fakecloud.testbed.Postgres`, skipped (or failed under CI) if absent."""

    def start(self) -> Postgres:
        with _skip_unavailable():
            super().start()
        return self


@contextlib.contextmanager
def _skip_unavailable() -> Iterator[None]:
    try:
        yield
    except testbed.Unavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


ZKSERVER = "/usr/share/zookeeper/bin/zkServer.sh"  # Debian's zookeeper package


class ZooKeeper(testbed.ServerProcess):
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
