"""Fixtures of the functional suite: the real broker, config files."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from synchronizer_fakecloud import testbed

BROKER = ("127.0.0.1", 5672)


def broker_reachable() -> bool:
    try:
        with socket.create_connection(BROKER, timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def transport_url() -> str:
    """The real RabbitMQ; skipped with a reason off CI, a failure under CI."""
    if not broker_reachable():
        reason = "no RabbitMQ broker on 127.0.0.1:5672 (start it: rabbitmq-server -detached)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " - the functional suite must not skip under CI")
        pytest.skip(reason)
    return "rabbit://guest:guest@127.0.0.1:5672/"


QUEUE_PATTERNS = (
    "pool-{u}",
    "other-{u}",
    "consumer-{u}",
    "view_{u}",
    "view_{u}." + socket.gethostname(),  # the daemon's RPC server queue
    "test_notifications_{u}.info",
    "synchronizer_{u}.info",
)


@pytest.fixture
def unique():
    """A suffix for topics and pools; the test's queues are deleted afterwards."""
    u = uuid.uuid4().hex[:10]
    yield u
    if broker_reachable():
        _delete_queues([p.format(u=u) for p in QUEUE_PATTERNS])


_delete_queues = testbed.delete_queues  # tests import it from here
