"""The notification worker's listeners and hand-off, on oslo.messaging's in-memory transport."""

from __future__ import annotations

import threading
import time

import oslo_messaging
import pytest
from oslo_config import cfg
from oslo_messaging._drivers import impl_fake

from synchronizer import opts, plugin_loader, wire
from synchronizer.model import Change
from synchronizer.workers import notification
from synchronizer.workers.converter import Converter

PLUGIN = "tests.helpers.plugins:ThingNotifications"
TOPIC = "test_notifications"


class Emitted:
    """The emit callback: records each hand-off, through the process wire."""

    def __init__(self) -> None:
        self.handoffs: list[list[Change]] = []
        self.cond = threading.Condition()

    def __call__(self, changes: list[Change]) -> None:
        crossed = [c for chunk in wire.chunked(changes, 3) for c in chunk]
        crossed = wire.decode(wire.encode(crossed))
        with self.cond:
            self.handoffs.append(crossed)
            self.cond.notify_all()

    def keys(self) -> list[str]:
        return [c.key for batch in self.handoffs for c in batch]

    def wait(self, count: int) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: len(self.keys()) >= count, 10)


class Acks:
    """Every message the in-memory transport's server acknowledges or requeues."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.acked: list[str] = []
        self.requeued: list[str] = []
        cls = impl_fake.FakeIncomingMessage
        ack, requeue = cls.acknowledge, cls.requeue

        def acknowledge(message):
            self.acked.append(message.message["event_type"])
            return ack(message)

        def requeue_(message):
            self.requeued.append(message.message["event_type"])
            return requeue(message)

        monkeypatch.setattr(cls, "acknowledge", acknowledge)
        monkeypatch.setattr(cls, "requeue", requeue_)


def make_conf(**overrides) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="synchronizer-test")
    plugin_loader.resolve(conf, PLUGIN)
    conf.set_override("transport_url", "fake:/")
    conf.set_override("control_exchange", "testexchange")
    for name, value in overrides.items():
        conf.set_override(name, value)
    return conf


class Worker:
    """A listener of the worker, its converter and what it emitted."""

    def __init__(self, conf: cfg.ConfigOpts, converter_cls: type[Converter] = Converter) -> None:
        plugins = [plugin_loader.instantiate(conf, PLUGIN)]
        self.converter = converter_cls(plugins, conf.notification_max_bytes)
        self.emitted = Emitted()
        self.server = notification.build_listener(conf, plugins, self.converter, self.emitted)
        self.notifier = oslo_messaging.Notifier(
            oslo_messaging.get_notification_transport(conf),
            publisher_id="test.host",
            driver="messagingv2",
            topics=[TOPIC],
        )
        self.server.start(override_pool_size=conf.notification_executor_threads)

    def stop(self) -> None:
        self.server.stop()
        self.server.wait()


@pytest.fixture
def worker():
    w = Worker(make_conf(notification_batch_size=50, notification_batch_timeout=0.2))
    yield w
    w.stop()


@pytest.fixture
def plain(monkeypatch):
    acks = Acks(monkeypatch)
    w = Worker(make_conf(notification_batch_size=1), Flaky)
    yield w, acks
    w.stop()


class Flaky(Converter):
    """A converter with a bug: it raises on payloads carrying ``boom``."""

    def convert(self, raw, *, topic="", size=None):
        if isinstance(raw["payload"], dict) and raw["payload"].get("boom"):
            raise RuntimeError("converter bug")
        return super().convert(raw, topic=topic, size=size)


def test_the_default_listener_is_the_batch_one_and_a_size_of_one_the_plain_one():
    """By default a call takes a batch (one commit wait for all); size 1: one message a call."""
    conf = make_conf()
    plugins = [plugin_loader.instantiate(conf, PLUGIN)]
    server = notification.build_listener(conf, plugins, Converter([], 4096), Emitted())
    assert isinstance(server, oslo_messaging.notify.listener.BatchNotificationServer)
    plain = notification.build_listener(
        make_conf(notification_batch_size=1), plugins, Converter([], 4096), Emitted()
    )
    assert not isinstance(plain, oslo_messaging.notify.listener.BatchNotificationServer)


def test_plain_listener_delivers_the_good_and_acknowledges_every_message(plain):
    """Bad input and a converter bug among good messages: the rest cross, all are acked."""
    w, acks = plain
    sent = [
        ("info", {"key": "good-1", "state": "up"}),
        ("info", {"no": "key"}),
        ("info", "not an object"),
        ("info", {"boom": True}),
        ("error", {"key": "good-2", "state": "down"}),
    ]
    for priority, body in sent:
        getattr(w.notifier, priority)({}, "test.thing.update", body)
    w.notifier.info({}, "unrelated.event", {"key": "x"})
    for i in range(20):
        w.notifier.info({}, "test.thing.update", {"key": f"k{i}", "state": "up"})
    assert w.emitted.wait(22)
    w.stop()
    assert sorted(w.emitted.keys()) == sorted(["good-1", "good-2", *(f"k{i}" for i in range(20))])
    assert w.converter.counts["received"] == 25  # the one that blew up never got counted
    assert w.converter.counts["dropped"] == 2
    assert w.converter.counts["ignored"] == 1
    assert len(acks.acked) == 26
    assert acks.requeued == []


class Pipe:
    """A ``send_chunk`` that can be held mid-send, like a full pipe."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.chunks: list[list[str]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail_on = fail_on

    def __call__(self, chunk: list[str], start: int = 0, through: int = 0) -> None:
        self.entered.set()
        self.release.wait(10)
        if self.fail_on in chunk:
            raise BrokenPipeError("the pipe is gone")
        self.chunks.append(list(chunk))


def _put_in_thread(handoff: notification.Handoff, changes: list[str]) -> threading.Thread:
    thread = threading.Thread(target=handoff.put, args=(changes,))
    thread.start()
    return thread


def test_a_lone_change_is_sent_at_once():
    """On a quiet bus each put is sent before put() returns: no timer, no wait."""
    pipe = Pipe()
    handoff = notification.Handoff(pipe, chunk_size=10)
    handoff.put(["a"])
    assert pipe.chunks == [["a"]]
    handoff.put(["b", "c"])
    assert pipe.chunks == [["a"], ["b", "c"]]


def test_changes_put_during_a_send_go_out_together_in_order():
    """What arrives while a send is in flight crosses in the next chunk, in put order."""
    pipe = Pipe()
    pipe.release.clear()
    handoff = notification.Handoff(pipe, chunk_size=3)
    first = _put_in_thread(handoff, ["a"])
    assert pipe.entered.wait(10)
    for change in ("b", "c", "d", "e"):
        handoff.put([change])  # returns at once: a send is in flight
    assert not handoff.flush(timeout=0.05)
    pipe.release.set()
    first.join(10)
    assert handoff.flush(timeout=10)
    assert pipe.chunks == [["a"], ["b", "c", "d"], ["e"]]


def test_stopping_the_listener_sends_everything_acknowledged(monkeypatch):
    """After stop() and wait(), every consumed message's changes have crossed.

    With several executor threads of the plain listener, messages converted while another thread
    sends are acknowledged before their changes cross.
    """
    acks = Acks(monkeypatch)
    conf = make_conf(notification_executor_threads=4, notification_batch_size=1)
    plugins = [plugin_loader.instantiate(conf, PLUGIN)]
    converter = Converter(plugins, conf.notification_max_bytes)
    pipe = Pipe()
    pipe.release.clear()
    handoff = notification.Handoff(pipe, chunk_size=1000)
    server = notification.build_listener(conf, plugins, converter, handoff.put)
    notifier = oslo_messaging.Notifier(
        oslo_messaging.get_notification_transport(conf),
        publisher_id="test.host",
        driver="messagingv2",
        topics=[TOPIC],
    )
    for i in range(30):
        notifier.info({}, "test.thing.update", {"key": f"k{i}", "state": "up"})
    server.start(override_pool_size=conf.notification_executor_threads)
    assert pipe.entered.wait(10)  # the first send is held: the rest pile up
    deadline = time.monotonic() + 10
    while len(acks.acked) < 29 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(acks.acked) == 29  # all but the sender's: acknowledged, not yet sent
    assert pipe.chunks == []
    stopper = threading.Thread(target=lambda: (server.stop(), server.wait()))
    stopper.start()
    pipe.release.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert handoff.flush(timeout=0)
    assert sorted(c.key for chunk in pipe.chunks for c in chunk) == sorted(
        f"k{i}" for i in range(30)
    )
    assert len(acks.acked) == 30


def test_a_failed_send_loses_only_its_chunk():
    """A send that raises is logged; the changes after it are still sent."""
    pipe = Pipe(fail_on="b")
    handoff = notification.Handoff(pipe, chunk_size=1)
    handoff.put(["a", "b", "c"])
    assert handoff.flush(timeout=1)
    assert pipe.chunks == [["a"], ["c"]]


def test_a_backlog_crosses_in_batches_not_one_hand_off_per_message(worker):
    """Batch listener: forty queued notifications reach the dispatcher in fewer hand-offs."""
    for i in range(40):
        worker.notifier.info({}, "test.thing.update", {"key": f"k{i}", "state": "up"})
    assert worker.emitted.wait(40)
    assert sorted(worker.emitted.keys()) == sorted(f"k{i}" for i in range(40))
    assert len(worker.emitted.handoffs) < 40
    assert worker.converter.counts["mapped"] == 40


def test_a_bad_message_is_dropped_alone(worker):
    """Batch listener: bad notifications are counted and dropped; the good ones still cross."""
    notifier, converter, emitted = worker.notifier, worker.converter, worker.emitted
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
    conf = make_conf()
    emitted = Emitted()
    endpoint = notification.BatchEndpoint(
        Flaky([plugin_loader.instantiate(conf, PLUGIN)], 4096), emitted
    )
    messages = [
        {"publisher_id": "p", "event_type": "test.thing.update", "payload": p, "metadata": {}}
        for p in ({"key": "a"}, {"boom": True}, {"key": "b"})
    ]
    assert endpoint.info(messages) == oslo_messaging.NotificationResult.HANDLED
    assert emitted.keys() == ["a", "b"]
    assert len(emitted.handoffs) == 1
