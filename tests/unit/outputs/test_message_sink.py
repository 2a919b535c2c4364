"""The message sink with its broker away: it waits and retries, logs no payload, stops at once."""

from __future__ import annotations

import logging
import socket
import threading
import time

from synchronizer.errors import Undelivered
from synchronizer.outputs import sinks
from tests.unit.outputs.common import bus_conf, change


def _refused_port() -> int:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_broker_is_retried_logged_once_without_payload_and_close_stops_it(
    tmp_path, caplog
):
    """A change the broker cannot take is retried until close() (then Undelivered), logged once."""
    port = _refused_port()
    conf = bus_conf(tmp_path, f"transport_url = rabbit://guest:s3cr3t-pw@127.0.0.1:{port}/")
    sink = sinks.MessageSink(conf)
    secret_metadata = change("vm-1").replace(
        entity=change("vm-1").entity.replace(properties={"metadata": {"note": "user-data-xyz"}})
    )
    caplog.set_level(logging.INFO)
    outcome: list[BaseException] = []

    def send() -> None:
        try:
            sink(secret_metadata)
        except Undelivered as exc:
            outcome.append(exc)

    worker = threading.Thread(target=send, daemon=True)
    worker.start()
    time.sleep(2.0)
    assert worker.is_alive(), "the sink dropped the change instead of retrying"
    assert sink.failures >= 2
    t0 = time.monotonic()
    sink.close()
    worker.join(5)
    assert not worker.is_alive()
    assert time.monotonic() - t0 < 2.0
    assert len(outcome) == 1, "close() must leave the change undelivered, not sent nor lost"
    ours = [r.getMessage() for r in caplog.records if r.name == "synchronizer.outputs.sinks"]
    assert len(ours) == 1, ours
    assert f"127.0.0.1:{port}" in ours[0]
    assert "vm-1" in ours[0]
    text = caplog.text
    assert "s3cr3t-pw" not in text
    assert "user-data-xyz" not in text
