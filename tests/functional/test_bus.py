"""The notification path and the message sink on the real RabbitMQ."""

from __future__ import annotations

import contextlib
import queue
import time
from pathlib import Path

import oslo_messaging
import pytest
from oslo_config import cfg

from synchronizer import Synchronizer, opts
from synchronizer.model import Change, Synced

pytestmark = pytest.mark.broker


def write_conf(path: Path, transport_url: str, pool: str, topic: str, **extra: str) -> Path:
    lines = [
        "[DEFAULT]",
        "plugins = tests.helpers.plugins:ThingNotifications",
        f"transport_url = {transport_url}",
        f"notification_pool = {pool}",
        f"sinks = {extra.get('sinks', 'log')}",
        f"message_topic = {extra.pop('message_topic', 'synchronizer')}",
        *(f"{name} = {value}" for name, value in extra.items() if name != "sinks"),
        "[thingnotifications]",
        "exchange = testexchange",
        f"topics = {topic}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def notifier(transport_url: str, topic: str, exchange: str = "testexchange"):
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="publisher")
    conf.set_override("control_exchange", exchange)
    transport = oslo_messaging.get_notification_transport(conf, url=transport_url)
    return oslo_messaging.Notifier(
        transport, publisher_id="test.host1", driver="messagingv2", topics=[topic]
    ), transport


class Collector:
    """An independent oslo.messaging listener in its own pool."""

    def __init__(self, transport_url: str, topic: str, exchange: str, pool: str) -> None:
        conf = cfg.ConfigOpts()
        conf([], project="consumer")
        self.transport = oslo_messaging.get_notification_transport(conf, url=transport_url)
        self.got: queue.Queue = queue.Queue()
        target = oslo_messaging.Target(topic=topic, exchange=exchange)
        self.listener = oslo_messaging.get_notification_listener(
            self.transport, [target], [self], executor="threading", pool=pool
        )

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.got.put((event_type, payload))

    def __enter__(self):
        self.listener.start()
        return self

    def __exit__(self, *exc):
        self.listener.stop()
        self.listener.wait()
        self.transport.cleanup()


def start_sync(conf_path: Path) -> Synchronizer:
    conf = opts.parse(["--config-file", str(conf_path)], setup_logging=False)
    sync = Synchronizer(conf)
    return sync


def wait_for(q: queue.Queue, predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = q.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if predicate(item):
            return item
    raise AssertionError("expected item did not arrive")


def listening(sync: Synchronizer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sync.status.states.get("tests.helpers.plugins:ThingNotifications", ("",))[0] == (
            "running"
        ):
            time.sleep(1.0)  # the listener declares its queues right after loading
            return
        time.sleep(0.05)
    raise AssertionError("notification worker did not start")


def test_notification_reaches_a_registered_callback(tmp_path, transport_url, unique):
    """A notification published with a Notifier arrives at a callback as an entity."""
    topic = f"test_notifications_{unique}"
    sync = start_sync(write_conf(tmp_path / "s.conf", transport_url, f"pool-{unique}", topic))
    got: queue.Queue = queue.Queue()
    sync.register(["test.thing"], got.put)
    sync.start()
    pub, transport = notifier(transport_url, topic)
    try:
        listening(sync)
        pub.info({}, "test.thing.update", {"key": "a1", "state": "up"})
        assert isinstance(got.get(timeout=5), Synced)
        change = wait_for(got, lambda c: isinstance(c, Change))
        assert (change.type, change.key, change.entity.state) == ("test.thing", "a1", "up")
        assert change.action == "create"
        assert change.entity.source.kind == "push"
        assert [e.key for e in sync.get_all(["test.thing"])] == ["a1"]
    finally:
        sync.stop()
        transport.cleanup()


def test_another_pool_on_the_same_topic_still_receives(tmp_path, transport_url, unique):
    """The synchronizer's pool does not steal messages from another pool's consumer."""
    topic = f"test_notifications_{unique}"
    sync = start_sync(write_conf(tmp_path / "s.conf", transport_url, f"pool-{unique}", topic))
    got: queue.Queue = queue.Queue()
    sync.register(["test.thing"], got.put, snapshot=False)
    sync.start()
    pub, transport = notifier(transport_url, topic)
    try:
        listening(sync)
        with Collector(transport_url, topic, "testexchange", f"other-{unique}") as other:
            time.sleep(1.0)
            for i in range(5):
                pub.info({}, "test.thing.update", {"key": f"k{i}", "state": "up"})
            keys = {other.got.get(timeout=10)[1]["key"] for _ in range(5)}
            assert keys == {f"k{i}" for i in range(5)}
            mine = {wait_for(got, lambda c: True).key for _ in range(5)}
            assert mine == keys
    finally:
        sync.stop()
        transport.cleanup()


def test_message_sink_is_received_by_an_independent_listener(tmp_path, transport_url, unique):
    """Each change is published by the message sink and an oslo.messaging listener gets it."""
    topic = f"test_notifications_{unique}"
    out_topic = f"synchronizer_{unique}"
    path = write_conf(
        tmp_path / "s.conf",
        transport_url,
        f"pool-{unique}",
        topic,
        sinks="message",
        message_topic=out_topic,
    )
    sync = start_sync(path)
    pub, transport = notifier(transport_url, topic)
    with Collector(transport_url, out_topic, "openstack", f"consumer-{unique}") as consumer:
        sync.start()
        try:
            listening(sync)
            pub.info({}, "test.thing.update", {"key": "m1", "state": "up"})
            # Wait for the create before deleting: a sink that has not sent the
            # create yet would rightly coalesce create+delete into nothing.
            first = consumer.got.get(timeout=10)
            pub.info({}, "test.thing.delete", {"key": "m1"})
            second = consumer.got.get(timeout=10)
        finally:
            sync.stop()
            transport.cleanup()
    assert first[0] == "entity.create"
    assert first[1]["key"] == "m1"
    assert first[1]["state"] == "up"
    assert second[0] == "entity.delete"
    assert second[1]["state"] == "up"
    assert {"type", "key", "action", "timestamp", "parent", "relations"} <= set(first[1])


def test_repeated_notification_is_delivered_once(tmp_path, transport_url, unique):
    """The same state notified twice (legacy and versioned copies) reaches subscribers once."""
    topic = f"test_notifications_{unique}"
    sync = start_sync(write_conf(tmp_path / "s.conf", transport_url, f"pool-{unique}", topic))
    got: queue.Queue = queue.Queue()
    sync.register(["test.thing"], got.put, snapshot=False)
    sync.start()
    pub, transport = notifier(transport_url, topic)
    try:
        listening(sync)
        for _ in range(3):
            pub.info({}, "test.thing.update", {"key": "d1", "state": "up"})
        first = got.get(timeout=10)
        # Sent once the first is in: otherwise the subscriber's queue may
        # rightly coalesce both into one create of the latest state.
        pub.info({}, "test.thing.update", {"key": "d1", "state": "down"})
        second = got.get(timeout=10)
        with pytest.raises(queue.Empty):
            got.get(timeout=1.0)
    finally:
        sync.stop()
        transport.cleanup()
    assert [(first.action, first.entity.state), (second.action, second.entity.state)] == [
        ("create", "up"),
        ("update", "down"),
    ]


def test_workers_share_the_pool_and_keep_each_entity_in_order(tmp_path, transport_url, unique):
    """Two notification workers split the pool's queue; per entity, no older state follows
    a newer one, the last state arrives, and no state is told twice."""
    topic = f"test_notifications_{unique}"
    path = write_conf(
        tmp_path / "s.conf", transport_url, f"pool-{unique}", topic, notification_workers="2"
    )
    sync = start_sync(path)
    got: queue.Queue = queue.Queue()
    sync.register(["test.thing"], got.put, snapshot=False)
    sync.start()
    pub, transport = notifier(transport_url, topic)
    try:
        listening(sync)
        # Each worker reports its counters, under its own name, once its listener runs.
        deadline = time.monotonic() + 20
        while len(sync.status.notifications) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(sync.status.notifications) == ["notifications-1", "notifications-2"]
        keys, rounds = 20, 30
        for state in range(rounds):
            for k in range(keys):
                pub.info({}, "test.thing.update", {"key": f"k{k}", "state": str(state)})
        seen: dict[str, list[int]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(v and v[-1] == rounds - 1 for v in seen.values()) and len(seen) == keys:
                break
            with contextlib.suppress(queue.Empty):
                change = got.get(timeout=0.5)
                seen.setdefault(change.key, []).append(int(change.entity.state))
        time.sleep(1.0)
        while not got.empty():
            change = got.get()
            seen.setdefault(change.key, []).append(int(change.entity.state))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            received = [r.received for r in sync.status.notifications.values()]
            if len(received) == 2 and sum(received) == keys * rounds:
                break
            time.sleep(0.2)
    finally:
        sync.stop()
        transport.cleanup()
    assert len(seen) == keys
    for key, states in seen.items():
        assert states == sorted(set(states)), f"{key}: out of order or repeated: {states}"
        assert states[-1] == rounds - 1, key
    assert len(received) == 2, received
    assert sum(received) == keys * rounds, received
    assert min(received) > 0, f"one worker took every message: {received}"
    total = sync.status.notifications_snapshot().received
    assert total == keys * rounds
