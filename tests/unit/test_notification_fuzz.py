"""Hostile notifications at the notification worker's endpoint, for every shipped plugin.

Property-based: hypothesis throws malformed messages (payloads that are not
objects, missing or mistyped fields, huge strings, deep nesting, unknown
payload versions, bytes, any unicode, oversized payloads) mixed with valid
ones at :class:`synchronizer.workers.notification.Endpoint` holding a
:class:`~synchronizer.workers.converter.Converter` with the Nova (both formats
in turn), Cinder, Neutron, Ironic and Heat plugins, exactly as the
notification worker builds it.  Whatever comes, no exception escapes, each
message is counted exactly once as mapped, ignored or dropped, what is
emitted crosses the process boundary, and the valid messages still map to
their change.
"""

from __future__ import annotations

import collections
import reprlib
import tempfile
import uuid
from pathlib import Path
from typing import Any

import oslo_messaging
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oslo_config import cfg

from synchronizer import opts, plugin_loader, wire
from synchronizer.cmd import replay
from synchronizer.model import Change
from synchronizer.workers.converter import Converter
from synchronizer.workers.notification import Endpoint
from synchronizer_plugins.nova import shapes as nova_shapes

MAX_BYTES = 16 * 1024
OUTCOMES = ("mapped", "ignored", "dropped")
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")
PLUGINS = (
    "nova.notifications",
    "cinder.notifications",
    "neutron.notifications",
    "ironic.notifications",
    "heat.notifications",
)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def build_converter(nova_format: str) -> Converter:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="synchronizer-test")
    plugins = []
    for name in PLUGINS:
        plugin_loader.resolve(conf, name)
        if name == "nova.notifications":
            conf.set_override("format", nova_format, group=name)
        plugins.append(plugin_loader.instantiate(conf, name))
    return Converter(plugins, max_bytes=MAX_BYTES)


@pytest.fixture(scope="module", params=["versioned", "legacy"])
def worker(request) -> Worker:
    return Worker(build_converter(request.param))


class Worker:
    """The notification worker's endpoint, emitting through the process wire."""

    def __init__(self, converter: Converter) -> None:
        self.converter = converter
        self.emitted: list[Change] = []
        self.endpoint = Endpoint(converter, self._emit)

    def _emit(self, changes: list[Change]) -> None:
        for chunk in wire.chunked(changes, 64):
            self.emitted.extend(wire.decode(wire.encode(chunk)))

    def deliver(self, message: Message) -> tuple[list[Change], dict[str, int]]:
        """Hand one message to the endpoint; return its changes and counter deltas."""
        before = collections.Counter(self.converter.counts)
        self.emitted = []
        handler = getattr(self.endpoint, message.priority)
        result = handler({}, message.publisher, message.event_type, message.payload, message.md)
        assert result == oslo_messaging.NotificationResult.HANDLED
        delta = {k: self.converter.counts[k] - before[k] for k in ("received", *OUTCOMES)}
        return self.emitted, delta


class Message:
    """One notification as the listener hands it to the endpoint, and what it should give."""

    def __init__(
        self,
        event_type: Any,
        payload: Any,
        publisher: Any,
        *,
        priority: str = "info",
        md: Any = None,
        expect: tuple | None = None,
        outcome: str | None = None,
    ) -> None:
        self.event_type, self.payload, self.publisher = event_type, payload, publisher
        self.priority = priority
        self.md = md if md is not None else {"message_id": str(uuid.uuid4())}
        self.expect = expect  # (type, key, state) of the one change a valid message gives
        self.outcome = outcome  # the counter it must land in, when known

    def __repr__(self) -> str:
        parts = (self.event_type, self.publisher, self.payload, self.md)
        return "Message({})".format(", ".join(reprlib.repr(p) for p in parts))


# -- valid notifications -------------------------------------------------------------

ids = st.uuids().map(str)
names = st.text(max_size=30)
projects = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)


def nova_object(name: str, data: dict[str, Any], version: str) -> dict[str, Any]:
    return {
        "nova_object.name": name,
        "nova_object.namespace": "nova",
        "nova_object.version": version,
        "nova_object.data": data,
    }


@st.composite
def nova_versioned(draw: st.DrawFn) -> Message:
    key, project = draw(ids), draw(projects)
    vm_state = draw(st.sampled_from(["active", "stopped", "paused", "error", "building"]))
    data = {
        "uuid": key,
        "tenant_id": project,
        "user_id": "fake",
        "display_name": draw(names),
        "host": "compute-1",
        "node": "node-1",
        "availability_zone": "nova",
        "state": vm_state,
        "task_state": None,
        "image_uuid": draw(ids),
        "created_at": "2024-05-06T07:08:09Z",
        "metadata": draw(st.dictionaries(names, names, max_size=3)),
        "flavor": nova_object("FlavorPayload", {"name": "m1.small"}, "1.4"),
        "block_devices": [],
    }
    event = draw(st.sampled_from(["instance.update", "instance.power_off.end", "instance.exists"]))
    payload = nova_object("InstanceActionPayload", data, "1.9")
    state = nova_shapes.instance_status(vm_state, None)
    return Message(event, payload, "nova-compute:compute-1", expect=("nova.instance", key, state))


@st.composite
def nova_legacy(draw: st.DrawFn) -> Message:
    key, project = draw(ids), draw(projects)
    vm_state = draw(st.sampled_from(["active", "stopped", "paused", "error", "building"]))
    payload = {
        "instance_id": key,
        "tenant_id": project,
        "user_id": "fake",
        "display_name": draw(names),
        "host": "compute-1",
        "node": "node-1",
        "availability_zone": "nova",
        "state": vm_state,
        "state_description": "",
        "instance_type": "m1.small",
        "image_ref_url": f"http://glance:9292/images/{draw(ids)}",
        "created_at": "2024-05-06 07:08:09+00:00",
        "metadata": {},
    }
    event = draw(st.sampled_from(["compute.instance.update", "compute.instance.power_off.end"]))
    state = nova_shapes.instance_status(vm_state, None)
    return Message(event, payload, "compute.compute-1", expect=("nova.instance", key, state))


@st.composite
def cinder(draw: st.DrawFn) -> Message:
    key, status = draw(ids), draw(st.sampled_from(["available", "in-use", "error"]))
    payload = {
        "volume_id": key,
        "tenant_id": draw(projects),
        "status": status,
        "display_name": draw(names),
        "size": draw(st.integers(1, 10_000)),
        "availability_zone": "nova",
        "host": "node1@lvm#pool",
        "created_at": "2024-05-06T07:08:09+00:00",
        "volume_attachment": [],
    }
    event = draw(st.sampled_from(["volume.update.end", "volume.attach.end", "volume.exists"]))
    return Message(event, payload, "volume.node1@lvm", expect=("cinder.volume", key, status))


@st.composite
def neutron(draw: st.DrawFn) -> Message:
    key, status = draw(ids), draw(st.sampled_from(["ACTIVE", "DOWN", "BUILD"]))
    port = {
        "id": key,
        "name": draw(names),
        "status": status,
        "network_id": draw(ids),
        "tenant_id": draw(projects),
        "device_owner": "compute:nova",
        "device_id": draw(ids),
        "fixed_ips": [{"subnet_id": draw(ids), "ip_address": "10.0.0.5"}],
        "security_groups": [],
        "created_at": "2024-03-21T16:36:56Z",
        "revision_number": draw(st.integers(0, 1000)),
    }
    event = draw(st.sampled_from(["port.create.end", "port.update.end"]))
    payload = {"port": port}
    return Message(event, payload, "network.node1", expect=("neutron.port", key, status))


@st.composite
def ironic(draw: st.DrawFn) -> Message:
    key, state = draw(ids), draw(st.sampled_from(["active", "available", "deploying"]))
    data = {
        "uuid": key,
        "name": draw(names),
        "provision_state": state,
        "power_state": "power on",
        "maintenance": False,
        "owner": draw(projects),
        "instance_uuid": None,
        "traits": [],
        "properties": {"cpus": 8},
        "created_at": "2024-01-26T20:41:03+00:00",
    }
    payload = {
        "ironic_object.namespace": "ironic",
        "ironic_object.name": "NodePayload",
        "ironic_object.version": "1.15",
        "ironic_object.data": data,
    }
    event = draw(st.sampled_from(["baremetal.node.update.end", "baremetal.node.power_set.end"]))
    return Message(event, payload, "ironic-api.host1", expect=("ironic.node", key, state))


@st.composite
def heat(draw: st.DrawFn) -> Message:
    key, project = draw(ids), draw(projects)
    state = draw(st.sampled_from(["CREATE_COMPLETE", "UPDATE_IN_PROGRESS", "UPDATE_FAILED"]))
    payload = {
        "tenant_id": project,
        "stack_identity": f"arn:openstack:heat::{project}:stacks/web/{key}",
        "stack_name": "web",
        "state": state,
        "state_reason": draw(names),
        "create_at": "2024-06-03T20:59:46",
        "tags": [],
        "description": draw(names),
    }
    event = draw(
        st.sampled_from(["orchestration.stack.update.end", "orchestration.stack.check.end"])
    )
    return Message(event, payload, "orchestration.node1", expect=("heat.stack", key, state))


VALID = {
    "versioned": st.one_of(nova_versioned(), cinder(), neutron(), ironic(), heat()),
    "legacy": st.one_of(nova_legacy(), cinder(), neutron(), ironic(), heat()),
}


# -- hostile notifications -------------------------------------------------------------

# Any unicode, lone surrogates included (a JSON string on the wire may hold them).
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded, as Python's json parses them
    st.floats(),  # NaN and Infinity too, as Python's json parses them
    any_text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(any_text, inner, max_size=5)
    ),
    max_leaves=20,
)


def nested(depth: int, leaf: Any) -> Any:
    for i in range(depth):
        leaf = [leaf] if i % 2 else {"a": leaf}
    return leaf


oddities = st.one_of(
    json_values,
    st.binary(max_size=64),  # bytes that are not JSON
    st.integers(10, 5000).map(lambda n: nested(n, "deep")),
    st.integers(MAX_BYTES, 4 * MAX_BYTES).map(lambda n: "x" * n),  # over the size limit
    st.sampled_from([float("nan"), float("inf"), 2**80, -(2**70)]),
)


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[Message]) -> Message:
    """A valid message with one part broken: a field dropped, retyped, or the envelope."""
    message = draw(valid)
    message.expect = None
    how = draw(st.sampled_from(["drop", "retype", "version", "payload", "envelope"]))
    if how == "payload":
        message.payload = draw(oddities)
    elif how == "envelope":
        field = draw(st.sampled_from(["event_type", "publisher", "md", "priority"]))
        if field == "priority":
            message.priority = draw(st.sampled_from(PRIORITIES))
        else:
            setattr(message, field, draw(oddities))
    else:
        _mutate_inside(draw, message.payload, how)
    return message


def _mutate_inside(draw: st.DrawFn, payload: Any, how: str) -> None:
    target = payload
    for wrapper in ("nova_object.data", "ironic_object.data", "port"):
        if isinstance(target, dict) and wrapper in target and how != "version":
            target = target[wrapper]
    if how == "version":
        for field in ("nova_object.version", "ironic_object.version"):
            if field in target:
                target[field] = draw(
                    st.one_of(st.from_regex(r"\A\d{1,3}\.\d{1,3}\Z"), any_text, json_values)
                )
                return
        how = "retype"
    field = draw(st.sampled_from(sorted(target)))
    if how == "drop":
        del target[field]
    else:
        target[field] = draw(oddities)


@st.composite
def random_message(draw: st.DrawFn) -> Message:
    """Anything at all, with the event type sometimes one a plugin takes."""
    event = draw(
        st.one_of(
            st.sampled_from(
                [
                    "instance.update",
                    "service.delete",
                    "compute.instance.delete.end",
                    "volume.delete.end",
                    "port.delete.end",
                    "network.update.end",
                    "baremetal.node.delete.end",
                    "orchestration.stack.delete.end",
                ]
            ),
            any_text,
            oddities,
        )
    )
    publisher = draw(
        st.one_of(
            st.sampled_from(["volume.h", "network.h", "ironic-api.h", "orchestration.h"]),
            any_text,
        )
    )
    timestamp = draw(st.one_of(st.none(), any_text, st.just("2024-05-06 07:08:09.123456")))
    md = draw(st.one_of(st.just({"timestamp": timestamp, "message_id": "m"}), json_values))
    priority = draw(st.sampled_from(PRIORITIES))
    return Message(event, draw(oddities), publisher, priority=priority, md=md)


def oversized(valid: st.SearchStrategy[Message]) -> st.SearchStrategy[Message]:
    """A valid message whose payload is padded past the size limit: always dropped."""

    def pad(message: Message) -> Message:
        message.payload = {**message.payload, "padding": "x" * MAX_BYTES}
        message.expect, message.outcome = None, "dropped"
        return message

    return valid.map(pad)


def not_an_object(valid: st.SearchStrategy[Message], values: Any) -> st.SearchStrategy[Message]:
    """A message a plugin takes whose payload is not an object: always dropped."""

    def replace(pair: tuple[Message, Any]) -> Message:
        message, value = pair
        message.payload, message.expect, message.outcome = value, None, "dropped"
        return message

    return st.tuples(valid, values).map(replace)


@st.composite
def unknown_major(draw: st.DrawFn, valid: st.SearchStrategy[Message]) -> Message:
    """A Nova or Ironic object payload of a major version the plugin cannot read: dropped."""
    message = draw(valid)
    major = draw(st.one_of(st.just(0), st.integers(2, 999)))
    version = f"{major}.{draw(st.integers(0, 99))}"
    for field in ("nova_object.version", "ironic_object.version"):
        if field in message.payload:
            message.payload[field] = version
    message.expect, message.outcome = None, "dropped"
    return message


def messages(fmt: str) -> st.SearchStrategy[list[Message]]:
    valid = VALID[fmt]
    non_objects = st.one_of(scalars, st.lists(json_values, max_size=3), st.binary(max_size=16))
    hostile = st.one_of(
        mutated(valid),
        random_message(),
        oversized(valid),
        not_an_object(valid, non_objects),
        unknown_major(nova_versioned() if fmt == "versioned" else ironic()),
    )
    return st.lists(st.one_of(valid, hostile, hostile), min_size=1, max_size=12)


# -- properties -----------------------------------------------------------------------


def check(worker: Worker, message: Message) -> None:
    changes, delta = worker.deliver(message)
    assert delta["received"] == 1, message
    assert sum(delta[o] for o in OUTCOMES) == 1, (delta, message)
    outcome = next(o for o in OUTCOMES if delta[o])
    assert bool(changes) == (outcome == "mapped"), (outcome, changes)
    if message.outcome is not None:
        assert outcome == message.outcome, message
    if message.expect is not None:
        assert [(c.type, c.key, c.entity.state) for c in changes] == [message.expect]
    for change in changes:
        assert isinstance(change.entity.state, str | None), change
        assert isinstance(change.entity.project, str | None), change
        assert change.entity.source.kind == "push"


@FUZZ
@given(data=st.data())
def test_no_message_escapes_or_is_counted_twice(worker, data):
    """Valid, broken and hostile messages: each counted once, valid ones still mapped."""
    fmt = worker.converter.plugins[0].format
    for message in data.draw(messages(fmt)):
        check(worker, message)


@FUZZ
@given(raw=st.one_of(oddities, st.dictionaries(any_text, json_values, max_size=6)))
def test_raw_envelopes_that_are_not_notifications_are_dropped(worker, raw):
    """What the bus hands over need not even be an object: it is counted, never raised."""
    before = collections.Counter(worker.converter.counts)
    changes = worker.converter.convert(raw)
    delta = {k: worker.converter.counts[k] - before[k] for k in ("received", *OUTCOMES)}
    assert delta["received"] == 1
    assert sum(delta[o] for o in OUTCOMES) == 1
    if not isinstance(raw, dict) or not isinstance(raw.get("event_type"), str):
        assert delta["dropped"] == 1
    assert all(isinstance(c, Change) for c in changes)


@FUZZ
@given(
    content=st.one_of(
        st.binary(max_size=200),
        json_values.map(repr).map(str.encode),
        # around both the parser's nesting limit and the interpreter's recursion limit
        st.integers(900, 1100).map(lambda n: b"[" * n + b"]" * n),
    )
)
def test_replay_reads_any_file_or_says_it_cannot(content):
    """synchronizer-replay's reader returns notifications or refuses the file, nothing else."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "n.json"
        path.write_bytes(content)
        try:
            items = replay.read(path)
        except replay.UnreadableFile:
            return
    assert isinstance(items, list)


def test_replay_refuses_a_reference_cycle(tmp_path):
    """A "$ref" chain that comes back to a file it left is refused, not followed forever."""
    (tmp_path / "a.json").write_text('{"event_type": "x", "payload": {"$ref": "b.json"}}')
    (tmp_path / "b.json").write_text('{"$ref": "a.json"}')
    with pytest.raises(replay.UnreadableFile, match="cycle"):
        replay.read(tmp_path / "a.json")
