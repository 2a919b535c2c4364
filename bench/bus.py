"""B6 (latency) and B7 (throughput) of the ``message`` sink over RabbitMQ.

A change goes through :class:`synchronizer.sinks.MessageSink` (oslo.messaging
notifier) to a notification listener on the same topic.  The baseline is a
bare oslo.messaging notification with an empty payload on the same broker.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import oslo_messaging
from oslo_config import cfg

from bench import common
from synchronizer import fingerprint, opts
from synchronizer.entity import Action, Change
from synchronizer.sinks import MessageSink

URL = "rabbit://guest:guest@127.0.0.1:5672/"


def available() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


class _Endpoint:
    def __init__(self) -> None:
        self.received: list[float] = []
        self.cond = threading.Condition()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any):
        with self.cond:
            self.received.append(time.perf_counter())
            self.cond.notify_all()

    def wait(self, count: int, timeout: float = 60.0) -> None:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.received) >= count, timeout):
                raise RuntimeError(f"only {len(self.received)}/{count} notifications arrived")


def _conf(topic: str) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="synchronizer-bench")
    conf.set_override("transport_url", URL)
    conf.set_override("message_topic", topic)
    return conf


def _setup(topic: str) -> tuple[cfg.ConfigOpts, _Endpoint, Any]:
    conf = _conf(topic)
    transport = oslo_messaging.get_notification_transport(conf)
    endpoint = _Endpoint()
    targets = [oslo_messaging.Target(topic=topic)]
    listener = oslo_messaging.get_notification_listener(
        transport, targets, [endpoint], executor="threading"
    )
    listener.start()
    return conf, endpoint, listener


def _bare(conf: cfg.ConfigOpts, topic: str) -> Callable[[Any], None]:
    notifier = oslo_messaging.Notifier(
        oslo_messaging.get_notification_transport(conf),
        publisher_id="bench",
        driver="messagingv2",
        topics=[topic],
    )
    return lambda _item: notifier.info({}, "bench.empty", {})


def _latency(send: Callable[[Any], None], item: Any, endpoint: _Endpoint, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = len(endpoint.received)
        t0 = time.perf_counter()
        send(item)
        endpoint.wait(start + 1)
        out.append(endpoint.received[start] - t0)
    return out


def _throughput(send: Callable[[Any], None], items: list[Any], endpoint: _Endpoint) -> float:
    start = len(endpoint.received)
    t0 = time.perf_counter()
    for item in items:
        send(item)
    endpoint.wait(start + len(items))
    return len(items) / (endpoint.received[-1] - t0)


def b6_b7(latency_n: int, throughput_n: int) -> dict[str, dict[str, Any]]:
    if not available():
        note = "not run: no RabbitMQ broker on 127.0.0.1:5672"
        return {"B6": common.skipped(note), "B7": common.skipped(note)}
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    conf, endpoint, listener = _setup(topic)
    try:
        sink, bare = MessageSink(conf), _bare(conf, topic)
        changes = [Change(Action.UPDATE, e, fingerprint.of(e)) for e in common.population(200)]
        _latency(sink, changes[0], endpoint, 5)  # warm up connections
        ours = _latency(sink, changes[0], endpoint, latency_n)
        base = _latency(bare, None, endpoint, latency_n)
        items = (changes * (throughput_n // len(changes) + 1))[:throughput_n]
        tput = [_throughput(sink, items, endpoint) for _ in range(3)]
        tput_base = [_throughput(bare, [None] * throughput_n, endpoint) for _ in range(3)]
    finally:
        listener.stop()
        listener.wait()
    return {"B6": _fig(ours, base, "s"), "B7": _fig(tput, tput_base, "changes/s")}


def _fig(ours: list[float], base: list[float], unit: str) -> dict[str, Any]:
    value, spread = common.median_spread(ours)
    b, b_spread = common.median_spread(base)
    return common.figure(
        value,
        unit,
        b,
        "none given in the brief",
        None,
        spread=spread,
        baseline_spread=b_spread,
        samples=len(ours),
        note="message sink -> RabbitMQ -> notification listener; baseline: bare "
        "oslo.messaging notification with an empty payload",
    )
