"""The notification worker's batch listener, on oslo.messaging's in-memory transport."""

from __future__ import annotations

import threading

import oslo_messaging
import pytest
from oslo_config import cfg

from synchronizer import listener, loader, opts, protocol
from synchronizer.entity import Change
from synchronizer.notifications import Converter

PLUGIN = "tests.helpers.plugins:ThingNotifications"


class Emitted:
    """The emit callback: records each hand-off, through the process protocol."""

    def __init__(self) -> None:
        self.handoffs: list[list[Change]] = []
        self.cond = threading.Condition()

    def __call__(self, changes: list[Change]) -> None:
        crossed = [c for chunk in protocol.chunked(changes, 3) for c in chunk]
        crossed = protocol.decode(protocol.encode(crossed))
        with self.cond:
            self.handoffs.append(crossed)
            self.cond.notify_all()

    def keys(self) -> list[str]:
        return [c.key for batch in self.handoffs for c in batch]

    def wait(self, count: int) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.keys()) >= count, 10)


@pytest.fixture
def worker():
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="synchronizer-test")
    loader.resolve(conf, PLUGIN)
    conf.set_override("transport_url", "fake:/")
    conf.set_override("control_exchange", "testexchange")
    conf.set_override("notification_batch_size", 50)
    conf.set_override("notification_batch_timeout", 0.2)
    plugins = [loader.instantiate(conf, PLUGIN)]
    converter = Converter(plugins, conf.notification_max_bytes)
    emitted = Emitted()
    server = listener.build_listener(conf, plugins, listener.BatchEndpoint(converter, emitted))
    server.start()
    notifier = oslo_messaging.Notifier(
        oslo_messaging.get_notification_transport(conf),
        publisher_id="test.host",
        driver="messagingv2",
        topics=["test_notifications"],
    )
    yield notifier, converter, emitted
    server.stop()
    server.wait()


def test_a_backlog_crosses_in_batches_not_one_hand_off_per_message(worker):
    """Forty queued notifications reach the dispatcher in fewer hand-offs, none lost."""
    notifier, converter, emitted = worker
    for i in range(40):
        notifier.info({}, "test.thing.update", {"key": f"k{i}", "state": "up"})
    assert emitted.wait(40)
    assert sorted(emitted.keys()) == sorted(f"k{i}" for i in range(40))
    assert len(emitted.handoffs) < 40
    assert converter.counts["mapped"] == 40


def test_a_bad_message_is_dropped_alone(worker):
    """Bad notifications in a batch are counted and dropped; the good ones still cross."""
    notifier, converter, emitted = worker
    notifier.info({}, "test.thing.update", {"key": "good-1", "state": "up"})
    notifier.info({}, "test.thing.update", {"no": "key"})
    notifier.info({}, "test.thing.update", "not an object")
    notifier.error({}, "test.thing.update", {"key": "good-2", "state": "down"})
    notifier.info({}, "unrelated.event", {"key": "x"})
    assert emitted.wait(2)
    assert sorted(emitted.keys()) == ["good-1", "good-2"]
    assert converter.counts["received"] == 5
    assert converter.counts["dropped"] == 2
    assert converter.counts["ignored"] == 1


def test_an_endpoint_failure_on_one_message_spares_the_batch():
    """A converter that blows up on one message leaves the rest of the batch handed off."""

    class Flaky(Converter):
        def convert(self, raw, *, topic="", size=None):
            if raw["payload"].get("boom"):
                raise RuntimeError("converter bug")
            return super().convert(raw, topic=topic, size=size)

    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="synchronizer-test")
    loader.resolve(conf, PLUGIN)
    emitted = Emitted()
    endpoint = listener.BatchEndpoint(Flaky([loader.instantiate(conf, PLUGIN)], 4096), emitted)
    messages = [
        {"publisher_id": "p", "event_type": "test.thing.update", "payload": p, "metadata": {}}
        for p in ({"key": "a"}, {"boom": True}, {"key": "b"})
    ]
    assert endpoint.info(messages) == oslo_messaging.NotificationResult.HANDLED
    assert emitted.keys() == ["a", "b"]
    assert len(emitted.handoffs) == 1
