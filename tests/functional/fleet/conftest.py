"""The fleet's real parts, shared by its tests: the fake cloud, a coordinator, a database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from synchronizer_fakecloud.server import FakeCloud
from tests.helpers import fleetparts


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        yield fake


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[fleetparts.Redis]:
    server = fleetparts.Redis(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(params=["redis", "zookeeper"])
def coordinator(request, tmp_path: Path) -> Iterator[fleetparts.Redis | fleetparts.ZooKeeper]:
    """The tooz backend of the failover tests: each test runs on Redis and on ZooKeeper."""
    kind = fleetparts.Redis if request.param == "redis" else fleetparts.ZooKeeper
    server = kind(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def database() -> Iterator[str]:
    url = fleetparts.create_database("postgresql")
    yield url
    fleetparts.drop_database(url)
