"""The shipped notification plugins on the real RabbitMQ, fed as the services feed them.

Each service's real samples (Nova's versioned and legacy ones, Cinder's,
Neutron's, Ironic's; Heat's notifications built from its real API stacks)
are published with an oslo.messaging ``Notifier`` on the service's own
exchange, with the sample's publisher and upper-case priority, to a
Synchronizer running the plugin in its notification worker.  The subscriber
must receive exactly what the same plugin gives in this process, filtered
by the delivery rules of DESIGN.md (first sight is a create, a repeated
state is not told again, a delete of something never told is not told),
and the worker must count every message as this process does.

Then Nova as it runs: each event sent in both formats reaches the
subscriber once, and a Nova instance collector polling the fake cloud next
to the notification plugin neither repeats a pushed state nor resurrects a
pushed delete.
"""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kombu
import oslo_messaging
import pytest
from amqp import exceptions as amqp_exceptions
from oslo_config import cfg

from synchronizer import Synchronizer, fingerprint, opts, plugin_loader
from synchronizer.model import Action, Change
from synchronizer.workers.converter import Converter
from synchronizer_fakecloud import FakeCloud
from synchronizer_fakecloud.nova_servers import IMAGE_ID, STATUSES
from synchronizer_plugins import openstack
from synchronizer_plugins.heat import shapes as heat_shapes
from synchronizer_plugins.nova.instances import InstanceCollector
from tests.functional.conftest import _delete_queues
from tests.helpers import samples

pytestmark = pytest.mark.broker

AMQP = "amqp://guest:guest@127.0.0.1:5672//"
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")
# The Notifier method sending each priority (oslo.messaging sends it upper-case).
METHODS = {p.upper(): p for p in PRIORITIES} | {"WARNING": "warn"}

# stream -> (plugin, options of its group); the topic is set per test.
STREAMS: dict[str, tuple[str, dict[str, str]]] = {
    "nova": ("nova.notifications", {}),
    "nova-legacy": ("nova.notifications", {"format": "legacy", "volume_relations": "false"}),
    "cinder": ("cinder.notifications", {}),
    "neutron": ("neutron.notifications", {}),
    "ironic": ("ironic.notifications", {}),
    "heat": ("heat.notifications", {}),
}


# -- plumbing ---------------------------------------------------------------------


@pytest.fixture
def topics(unique: str) -> Iterator[Callable[[str], str]]:
    """Unique topic names; their queues (one per priority) are deleted afterwards."""
    made: list[str] = []

    def topic(name: str) -> str:
        made.append(f"{name}_{unique}")
        return made[-1]

    yield topic
    _delete_queues([f"{t}.{p}" for t in made for p in PRIORITIES])


def write_conf(
    path: Path,
    transport_url: str,
    unique: str,
    plugins: dict[str, dict[str, str]],
    **sections: dict[str, str],
) -> Path:
    """A config file enabling ``plugins`` (name: options), on the bus, in a unique pool."""
    default = {
        "plugins": ", ".join(plugins),
        "transport_url": transport_url,
        "notification_pool": f"pool-{unique}",
        "sinks": "",
    }
    lines = []
    for group, options in {"DEFAULT": default, **plugins, **sections}.items():
        lines += [f"[{group}]", *(f"{k} = {v}" for k, v in options.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


class Publisher:
    """A service's notifier: its exchange, one topic, any publisher and priority."""

    def __init__(self, transport_url: str, exchange: str, topic: str) -> None:
        conf = cfg.ConfigOpts()
        opts.register_opts(conf)
        conf([], project="publisher")
        conf.set_override("control_exchange", exchange)
        self.transport = oslo_messaging.get_notification_transport(conf, url=transport_url)
        self.notifier = oslo_messaging.Notifier(
            self.transport, driver="messagingv2", topics=[topic]
        )

    def send(self, raw: dict[str, Any]) -> None:
        notifier = self.notifier.prepare(publisher_id=raw["publisher_id"])
        method = METHODS[(raw.get("priority") or "INFO").upper()]
        getattr(notifier, method)({}, raw["event_type"], raw["payload"])

    def close(self) -> None:
        self.transport.cleanup()


def start(conf_path: Path, types: list[str]) -> tuple[Synchronizer, queue.Queue]:
    """A started Synchronizer and a queue subscribed to ``types`` (live changes only)."""
    sync = Synchronizer(opts.parse(["--config-file", str(conf_path)], setup_logging=False))
    got: queue.Queue = queue.Queue()
    sync.register(types, got.put, snapshot=False)
    sync.start()
    return sync, got


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def consuming(pool: str) -> None:
    """Wait until the notification worker consumes its pool queue.

    The listener binds every target and priority before it starts consuming,
    so a consumer on the queue means nothing published from now on is lost.
    """

    def consumers() -> int:
        with kombu.Connection(AMQP) as conn:
            channel = conn.channel()
            try:
                return channel.queue_declare(queue=pool, passive=True).consumer_count
            except amqp_exceptions.NotFound:
                return 0

    wait_until(consumers, f"a consumer on queue {pool}")


def take(got: queue.Queue, n: int, timeout: float = 30.0) -> list[Change]:
    """The next ``n`` changes."""
    items = []
    deadline = time.monotonic() + timeout
    while len(items) < n:
        try:
            items.append(got.get(timeout=max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            raise AssertionError(f"got {len(items)} of {n} changes: {items}") from None
    return items


def assert_quiet(got: queue.Queue) -> None:
    """Nothing more arrives within a second."""
    try:
        extra = got.get(timeout=1.0)
    except queue.Empty:
        return
    raise AssertionError(f"unexpected change {extra}")


def worker_counts(sync: Synchronizer, received: int) -> dict[str, int]:
    """The notification worker's counters once it has received ``received`` messages."""

    def counts() -> dict[str, int] | None:
        c = sync.status.notifications_snapshot()
        return c.by_outcome() if c.received >= received else None

    return wait_until(counts, f"{received} notifications counted by the worker")


# -- what the subscriber must see ---------------------------------------------------


class Teller:
    """What a subscriber is told of each change, by DESIGN.md's rules.

    First sight (or first after a delete) is a create, a new state of a known
    entity an update, a repeated state nothing; a delete of an entity never
    told (or already deleted) is nothing, and one without a state carries
    the last known one.  Changes are given in the order they happen.
    """

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], Change] = {}

    def tell(self, change: Change) -> tuple | None:
        k = (change.type, change.key)
        prev = self.last.get(k)
        known = prev is not None and prev.action is not Action.DELETE
        if change.action is Action.DELETE:
            if not known:
                return None
            entity = change.entity if change.entity.state is not None else prev.entity
            told = _brief(Action.DELETE, entity, 0)
        elif known and prev.fingerprint == change.fingerprint:
            return None
        else:
            action = Action.UPDATE if known else Action.CREATE
            told = _brief(action, change.entity, change.fingerprint)
        self.last[k] = change
        return told


def _brief(action: Action, entity: Any, fp: int) -> tuple:
    return (entity.type, entity.key, str(action), entity.state, entity.project, fp)


def observed(change: Change) -> tuple:
    fp = 0 if change.action is Action.DELETE else change.fingerprint
    return _brief(change.action, change.entity, fp)


# -- every service's samples --------------------------------------------------------


def heat_stream(plugin: Any) -> list[dict[str, Any]]:
    """Heat's notifications of each real API stack: its state, then its deletion."""
    out = []
    for record in samples.heat_stacks():
        project = heat_shapes.from_api(plugin, record).project
        body = samples.heat_notification_body(record, project)
        for event, state in (("create", record["stack_status"]), ("delete", "DELETE_COMPLETE")):
            out.append(
                {
                    "event_type": f"orchestration.stack.{event}.end",
                    "publisher_id": "orchestration.node1",
                    "priority": "INFO",
                    "payload": {**body, "state": state},
                }
            )
    return out


@pytest.mark.parametrize("stream", sorted(STREAMS))
def test_service_samples_reach_the_subscriber(tmp_path, transport_url, unique, topics, stream):
    """Every sample goes over the service's exchange and reaches the subscriber as mapped."""
    samples.require()
    name, options = STREAMS[stream]
    topic = topics("svc_notifications")
    conf_path = write_conf(
        tmp_path / "s.conf", transport_url, unique, {name: {**options, "topics": topic}}
    )
    conf = opts.parse(["--config-file", str(conf_path)], setup_logging=False)
    plugin = plugin_loader.instantiate(conf, name)
    raws = heat_stream(plugin) if stream == "heat" else samples.stream(stream)
    assert raws
    converter, teller = Converter([plugin], conf.notification_max_bytes), Teller()
    expected = [[t for c in converter.convert(raw) if (t := teller.tell(c))] for raw in raws]
    assert any(expected), "the stream maps nothing"

    sync, got = start(conf_path, list(plugin.entity_types))
    publisher = Publisher(transport_url, plugin.exchange, topic)
    received = []
    try:
        consuming(f"pool-{unique}")
        for raw, told in zip(raws, expected, strict=True):
            publisher.send(raw)
            # Waiting for what a sample tells before sending the next keeps the
            # subscriber from lagging, so no change is coalesced into a later one.
            received.append([observed(c) for c in take(got, len(told))])
        assert_quiet(got)
        counts = worker_counts(sync, len(raws))
    finally:
        sync.stop()
        publisher.close()
    assert received == expected
    outcomes = {o: counts.get(o, 0) for o in ("mapped", "ignored", "dropped")}
    assert outcomes == {o: converter.counts[o] for o in outcomes}
    assert outcomes["dropped"] == 0


# -- Nova sends each event twice ----------------------------------------------------


def wrap(name: str, data: dict[str, Any], version: str) -> dict[str, Any]:
    return {
        "nova_object.name": name,
        "nova_object.namespace": "nova",
        "nova_object.version": version,
        "nova_object.data": data,
    }


def versioned_payload(state: dict[str, Any]) -> dict[str, Any]:
    """The InstanceActionPayload Nova sends for an instance state."""
    flavor = {"name": state["flavor"], "flavorid": "2", "vcpus": 1, "memory_mb": 2048}
    data = {
        **{k: state[k] for k in ("uuid", "tenant_id", "user_id", "display_name", "host")},
        **{k: state[k] for k in ("node", "availability_zone", "task_state", "metadata")},
        "state": state["vm_state"],
        "power_state": "running" if state["vm_state"] == "active" else "shutdown",
        "image_uuid": state["image"],
        "created_at": state["created_at"],
        "locked": False,
        "flavor": wrap("FlavorPayload", flavor, "1.4"),
        "block_devices": [
            wrap("BlockDevicePayload", {"volume_id": v, "boot_index": None}, "1.0")
            for v in state["volumes"]
        ],
        "fault": None,
    }
    return wrap("InstanceActionPayload", data, "1.9")


def legacy_payload(state: dict[str, Any]) -> dict[str, Any]:
    """The payload of the same state in Nova's legacy (unversioned) format."""
    return {
        "instance_id": state["uuid"],
        "tenant_id": state["tenant_id"],
        "user_id": state["user_id"],
        "display_name": state["display_name"],
        "host": state["host"],
        "node": state["node"],
        "availability_zone": state["availability_zone"],
        "state": state["vm_state"],
        "state_description": state["task_state"] or "",
        "instance_type": state["flavor"],
        "image_ref_url": f"http://glance.example:9292/images/{state['image']}",
        "created_at": state["created_at"].replace("T", " ").replace("Z", "+00:00"),
        "metadata": state["metadata"],
        "memory_mb": 2048,
        "vcpus": 1,
    }


def instance_state(**changes: Any) -> dict[str, Any]:
    state = {
        "uuid": str(uuid.uuid4()),
        "tenant_id": "6f70656e737461636b20342065766572",
        "user_id": "fake",
        "display_name": "web-1",
        "host": "compute-1",
        "node": "compute-1.example",
        "availability_zone": "nova",
        "vm_state": "active",
        "task_state": None,
        "flavor": "m1.small",
        "image": IMAGE_ID,
        "created_at": "2024-05-06T07:08:09Z",
        "metadata": {"role": "web"},
        "volumes": [],
    }
    state.update(changes)
    return state


def test_nova_events_in_both_formats_reach_the_subscriber_once(
    tmp_path, transport_url, unique, topics
):
    """With notification_format = both, each event (sent twice) is told once."""
    versioned_topic, legacy_topic = topics("svc_versioned"), topics("svc_legacy")
    conf_path = write_conf(
        tmp_path / "s.conf",
        transport_url,
        unique,
        {"nova.notifications": {"topics": f"{versioned_topic}, {legacy_topic}"}},
    )
    base = instance_state()
    events = [
        ("create.end", base, "create", "ACTIVE"),
        ("power_off.start", {**base, "task_state": "powering-off"}, "update", "ACTIVE"),
        ("power_off.end", {**base, "vm_state": "stopped"}, "update", "SHUTOFF"),
        ("power_on.end", base, "update", "ACTIVE"),
        ("delete.end", {**base, "vm_state": "deleted"}, "delete", "DELETED"),
    ]
    sync, got = start(conf_path, ["nova.instance"])
    versioned = Publisher(transport_url, "nova", versioned_topic)
    legacy = Publisher(transport_url, "nova", legacy_topic)
    received = []
    try:
        consuming(f"pool-{unique}")
        for event, state, _, _ in events:
            versioned.send(
                {
                    "event_type": f"instance.{event}",
                    "publisher_id": "nova-compute:compute-1",
                    "payload": versioned_payload(state),
                }
            )
            legacy.send(
                {
                    "event_type": f"compute.instance.{event}",
                    "publisher_id": "compute.compute-1",
                    "payload": legacy_payload(state),
                }
            )
            received.append(take(got, 1)[0])
        assert_quiet(got)
        counts = worker_counts(sync, 2 * len(events))
    finally:
        sync.stop()
        versioned.close()
        legacy.close()
    assert [(str(c.action), c.key, c.entity.state) for c in received] == [
        (action, base["uuid"], state) for _, _, action, state in events
    ]
    assert (counts["mapped"], counts["ignored"], counts.get("dropped", 0)) == (
        len(events),
        len(events),
        0,
    )
    by_event = sync.status.notifications_snapshot().by_event
    ignored = {e.event_type for e in by_event if e.outcome == "ignored"}
    assert ignored == {f"compute.instance.{event}" for event, *_ in events}


# -- poll and push together ---------------------------------------------------------


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        yield fake


def server_state(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The state of a fake-cloud server, in the terms of the payload builders."""
    state = {
        "uuid": doc["id"],
        "tenant_id": doc["tenant_id"],
        "user_id": doc["user_id"],
        "display_name": doc["name"],
        "host": doc["OS-EXT-SRV-ATTR:host"],
        "node": doc["OS-EXT-SRV-ATTR:hypervisor_hostname"],
        "availability_zone": doc["OS-EXT-AZ:availability_zone"],
        "vm_state": doc["OS-EXT-STS:vm_state"],
        "task_state": doc["OS-EXT-STS:task_state"],
        "flavor": doc["flavor"]["original_name"],
        "image": IMAGE_ID,  # the fake cloud boots every server from this image
        "created_at": doc["created"],
        "metadata": doc["metadata"],
        "volumes": [v["id"] for v in doc["os-extended-volumes:volumes_attached"]],
    }
    state.update(changes)
    return state


def credentials(cloud: FakeCloud) -> dict[str, str]:
    return {
        "auth_type": "password",
        "auth_url": cloud.auth_url,
        "username": cloud.credentials.username,
        "password": cloud.credentials.password,
        "project_name": cloud.credentials.project_name,
        "user_domain_id": "default",
        "project_domain_id": "default",
        "region_name": cloud.credentials.region,
        "interface": "public",
        "timeout": "10",
    }


def polled(cloud: FakeCloud, conf_path: Path, key: str) -> Any:
    """The instance as the collector lists it from the cloud right now, in this process."""
    conf = cfg.ConfigOpts()
    openstack.register_opts(conf)
    InstanceCollector.register_options(conf, InstanceCollector.name)
    conf(args=[], default_config_files=[str(conf_path)])
    openstack.OpenStackCollector._session = None
    try:
        entities = {e.key: e for e in InstanceCollector(conf).list_all()}
    finally:
        openstack.OpenStackCollector._session = None
    return entities[key]


class Polls:
    """Counts of the collector's completed cycles and the changes they reported."""

    def __init__(self, sync: Synchronizer, plugin: str) -> None:
        self.sync, self.plugin = sync, plugin

    def reported(self, action: str) -> int:
        return self.sync.status.changes_snapshot().get((self.plugin, action), 0)

    def wait(self, action: str, more_than: int) -> None:
        """Wait for a cycle reporting a change of ``action`` beyond ``more_than`` so far.

        A cycle's changes reach the dispatcher before its end does, so they
        have been admitted or dropped when this returns.
        """
        wait_until(lambda: self.reported(action) > more_than, f"a polled {action}")


def test_poll_and_push_of_one_instance_agree(tmp_path, transport_url, unique, topics, cloud):
    """A pushed state is not repeated by the poll, and a pushed delete is not undone by it."""
    cloud.reset()
    cloud.populate(hosts=1)
    key = cloud.create("servers", name="web-1", host=cloud.keys("hypervisors")[0])
    topic = topics("svc_versioned")
    conf_path = write_conf(
        tmp_path / "s.conf",
        transport_url,
        unique,
        {
            "nova.instance": {"period": "0.3", "snapshot_interval": "0"},
            "nova.notifications": {"topics": topic},
        },
        service_credentials=credentials(cloud),
    )
    sync, got = start(conf_path, ["nova.instance"])
    publisher = Publisher(transport_url, "nova", topic)
    polls = Polls(sync, "nova.instance")

    def push(event: str, state: dict[str, Any]) -> None:
        publisher.send(
            {
                "event_type": f"instance.{event}",
                "publisher_id": f"nova-compute:{state['host']}",
                "payload": versioned_payload(state),
            }
        )

    try:
        assert sync.wait_ready(30), sync.status.text()
        (created,) = take(got, 1)
        assert (created.action, created.key, created.entity.state) == ("create", key, "ACTIVE")
        assert created.entity.source.kind == "poll"
        consuming(f"pool-{unique}")

        # Push a new state, then let the cloud show it: the poll tells nothing new.
        vm_state, _power = STATUSES["SHUTOFF"]
        push("power_off.end", server_state(cloud.get("servers", key), vm_state=vm_state))
        (pushed,) = take(got, 1)
        assert (pushed.action, pushed.entity.state) == ("update", "SHUTOFF")
        assert pushed.entity.source.kind == "push"
        updates, dropped = polls.reported("update"), sync.dispatcher.counts["dropped"]
        cloud.update("servers", key, status="SHUTOFF")
        assert fingerprint.of(polled(cloud, conf_path, key)) == pushed.fingerprint
        polls.wait("update", more_than=updates)
        assert_quiet(got)
        assert sync.dispatcher.counts["dropped"] > dropped
        (current,) = sync.get_all(["nova.instance"])
        assert (current.state, current.source.kind) == ("SHUTOFF", "push")

        # Push the delete while the listing still shows the server: no resurrection.
        push("delete.end", server_state(cloud.get("servers", key), vm_state="deleted"))
        (deleted,) = take(got, 1)
        assert (deleted.action, deleted.key) == ("delete", key)
        updates = polls.reported("update")
        cloud.update("servers", key, task_state="deleting")  # a stale listing moves on
        polls.wait("update", more_than=updates)
        assert_quiet(got)
        assert sync.get_all(["nova.instance"]) == []

        # The full snapshot that confirms the deletion tells nothing more.
        deletes = polls.reported("delete")
        cloud.delete("servers", key)
        polls.wait("delete", more_than=deletes)
        assert_quiet(got)
        assert sync.get_all(["nova.instance"]) == []
    finally:
        sync.stop()
        publisher.close()
