"""The fleet's real parts for tests: a SQL database of our own, a Redis of our own.

The servers themselves are :mod:`synchronizer_fakecloud.testbed`'s (the
benchmarks start them too); this module adds pytest's skip.

Each is skipped with a reason on a developer's machine without it, and a
failure under CI (``.ci/run`` starts them).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

from synchronizer_fakecloud import testbed
from synchronizer_fakecloud.testbed import free_port, reachable

__all__ = [
    "Postgres",
    "Redis",
    "create_database",
    "drop_database",
    "free_port",
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
