"""The real daemon against a real Neutron, Cinder, Ironic and Heat, with their notifications.

One daemon runs for the module: the collectors (``neutron.network``,
``neutron.port``, ``cinder.volume``, ``ironic.node`` with system-scoped
credentials of its own, ``heat.stack``) poll the kit's services, the four
notification plugins listen to their exchanges, and the ``message`` sink
streams to a consumer in this process that uses only
``synchronizer.outputs.client``.  For each service, resources are created,
changed and deleted: each state arrives once, by push before the next poll
of its collector; the polls after it add nothing and bring nothing back.
Then the notification plugins are turned off (SIGHUP) and the same happens
by poll alone.  Finally ``synchronizer-snapshot`` is compared with each
service's own listing, key by key.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from synchronizer import opts
from synchronizer.outputs import client
from synchronizer_plugins.cinder import shapes as cinder_shapes
from synchronizer_plugins.heat import shapes as heat_shapes
from synchronizer_plugins.ironic import shapes as ironic_shapes
from synchronizer_plugins.neutron import shapes as neutron_shapes
from tests.e2e.conftest import RealCloud
from tests.e2e.services import Services, unique_name
from tests.e2e.stream import Received, Stream, brief, cycles, has_state, of
from tests.e2e.test_nova import consumers
from tests.functional.conftest import QUEUE_PATTERNS, _delete_queues
from tests.helpers.daemon import Daemon, script

PERIOD = 10.0
COLLECTORS = {
    "neutron.network": "neutron.network",
    "neutron.port": "neutron.port",
    "cinder.volume": "cinder.volume",
    "ironic.node": "ironic.node",
    "heat.stack": "heat.stack",
}
VOLATILE = {
    "neutron.network": neutron_shapes.VOLATILE,
    "neutron.port": neutron_shapes.VOLATILE,
    "cinder.volume": cinder_shapes.VOLATILE,
    "ironic.node": ironic_shapes.VOLATILE,
    "heat.stack": heat_shapes.VOLATILE,
}
TYPES = tuple(COLLECTORS)
NOTIFIERS = "neutron.notifications, cinder.notifications, ironic.notifications, heat.notifications"
POLL_PLUGINS = ", ".join(COLLECTORS.values())
PUSH_PLUGINS = f"{POLL_PLUGINS}, {NOTIFIERS}"


@dataclasses.dataclass
class Stack:
    cloud: RealCloud
    services: Services
    daemon: Daemon
    stream: Stream
    conf_path: Path
    unique: str

    def write_config(self, plugins: str) -> None:
        env = self.cloud.env
        u = self.unique
        creds = (
            "auth_type = password\n"
            f"auth_url = {env['OS_AUTH_URL']}\n"
            f"username = {env['OS_USERNAME']}\n"
            f"password = {env['OS_PASSWORD']}\n"
            f"user_domain_id = {env['OS_USER_DOMAIN_ID']}\n"
            f"region_name = {env['OS_REGION_NAME']}\n"
            "interface = public\n"
            "timeout = 30\n"
        )
        # Ironic lists every node only to a system-scoped token: its own credentials.
        extra = {"ironic.node": "credentials = system_credentials\n"}
        groups = "".join(
            f"[{plugin}]\nperiod = {PERIOD}\nmax_backoff = 5\n{extra.get(plugin, '')}"
            for plugin in COLLECTORS.values()
        )
        self.conf_path.write_text(
            "[DEFAULT]\n"
            f"plugins = {plugins}\n"
            "sinks = message\n"
            f"transport_url = {env['TRANSPORT_URL']}\n"
            f"message_topic = synchronizer_{u}\n"
            f"rpc_topic = view_{u}\n"
            f"notification_pool = pool-{u}\n"
            "[service_credentials]\n"
            f"{creds}"
            f"project_name = {env['OS_PROJECT_NAME']}\n"
            f"project_domain_id = {env['OS_PROJECT_DOMAIN_ID']}\n"
            "[system_credentials]\n"
            f"{creds}"
            "system_scope = all\n"
            f"{groups}"
        )

    def right_after_a_cycle(self, plugin: str) -> int:
        """Wait for ``plugin``'s next poll cycle; its count then."""
        n = cycles(self.daemon, plugin)
        assert self.daemon.wait_until(lambda: cycles(self.daemon, plugin) > n, PERIOD * 3)
        return cycles(self.daemon, plugin)

    def next_cycles(self, plugin: str, count: int = 1) -> None:
        n = cycles(self.daemon, plugin)
        assert self.daemon.wait_until(
            lambda: cycles(self.daemon, plugin) >= n + count, PERIOD * (count + 2)
        )


@pytest.fixture(scope="module")
def stack(realcloud: RealCloud, services: Services, tmp_path_factory) -> Iterator[Stack]:
    u = uuid.uuid4().hex[:10]
    conf_path = tmp_path_factory.mktemp("e2e-services") / "synchronizer.conf"
    daemon = Daemon(conf_path)
    s = Stack(realcloud, services, daemon, Stream(daemon, COLLECTORS, VOLATILE), conf_path, u)
    s.write_config(PUSH_PLUGINS)
    daemon.start()
    handle = None
    try:
        for plugin in COLLECTORS.values():
            daemon.wait_log(f"{plugin}: full cycle", timeout=120)
        daemon.wait_log("Listening for", timeout=60)
        consumer_conf = opts.parse(["--config-file", str(conf_path)], setup_logging=False)
        handle = client.watch(consumer_conf, TYPES, s.stream.on_item, pool=f"consumer-{u}")
        assert s.stream.synced.wait(60), "the consumer never got the daemon's view"
        yield s
    finally:
        if handle is not None:
            handle.stop()
        daemon.stop()
        _delete_queues([p.format(u=u) for p in QUEUE_PATTERNS])


def assert_once(stream: Stream, items: list[Received], key: str) -> None:
    """No state of ``key`` was told twice in a row, and it was created at most once."""
    mine = of(items, key)
    assert sum(r.change.action == "create" for r in mine) <= 1, brief(mine)
    assert sum(r.change.action == "delete" for r in mine) <= 1, brief(mine)
    told = [stream.fingerprint(r) for r in mine if r.change.action != "delete"]
    repeats = [a for a, b in itertools.pairwise(told) if a == b]
    assert not repeats, f"a state was told twice: {brief(mine)}"


def by_push(
    stack: Stack,
    plugin: str,
    act: Callable[[], None],
    arrived: Callable[[list[Received]], bool],
) -> list[Received]:
    """Act right after a poll cycle: what completes ``arrived`` must be a push.

    It must come before any poll cycle that started after the action ended;
    a poll that ran while the action did (an API call taking longer than
    the rest of a period) may have seen an intermediate state, but nothing
    may arrive by poll when no poll ran meanwhile.
    """
    n = stack.right_after_a_cycle(plugin)
    mark = stack.stream.mark()
    act()
    done = cycles(stack.daemon, plugin)
    items = stack.stream.wait_for(arrived, mark, timeout=PERIOD * 3)
    prefix = next(items[:i] for i in range(1, len(items) + 1) if arrived(items[:i]))
    last = prefix[-1]
    assert last.kind == "push", f"completed by a poll, not a push: {brief(prefix)}"
    assert last.cycles <= done, f"pushed after a later poll cycle: {brief(prefix)}"
    if done == n:
        polled = [r for r in prefix if r.kind == "poll" and r.change.entity.type in TYPES]
        assert not polled, f"arrived by poll: {brief(polled)}"
    return items


def settles(stack: Stack, plugin: str, keys: list[str], mark: int) -> None:
    """The next full poll cycle of ``plugin`` tells nothing new about ``keys``."""
    settled = stack.stream.mark()
    stack.next_cycles(plugin, 2)  # the first may have started before the last push
    extra = [r for r in stack.stream.since(settled) if r.change.key in keys]
    assert extra == [], f"the polls after the pushes told: {brief(extra)}"
    for key in keys:
        assert_once(stack.stream, stack.stream.since(mark), key)


def gone(stack: Stack, plugin: str, keys: list[str], type_: str, mark: int) -> None:
    """One delete each, and no poll brings them back."""
    stack.next_cycles(plugin, 2)
    for key in keys:
        mine = of(stack.stream.since(mark), key)
        assert [r.change.action for r in mine].count("delete") == 1, brief(mine)
        assert mine[-1].change.action == "delete", f"resurrected: {brief(mine)}"
        assert (type_, key) not in stack.stream.live()


# -- by push ------------------------------------------------------------------


def test_networks_and_ports_arrive_by_push_once(stack: Stack):
    svc, stream = stack.services, stack.stream
    mark = stream.mark()
    ids: dict[str, str] = {}

    def create() -> None:
        ids["net"] = svc.network_create(unique_name("e2e-net"))
        ids["port"] = svc.port_create(ids["net"], unique_name("e2e-port"))

    by_push(
        stack,
        "neutron.port",
        create,
        lambda items: (
            bool(of(items, ids.get("net", "?"))) and bool(of(items, ids.get("port", "?")))
        ),
    )
    net, port = ids["net"], ids["port"]
    assert of(stream.since(mark), net)[0].change.action == "create"
    assert of(stream.since(mark), port)[0].change.action == "create"
    port_entity = of(stream.since(mark), port)[-1].change.entity
    assert (port_entity.parent.type, port_entity.parent.key) == ("neutron.network", net)

    by_push(
        stack,
        "neutron.port",
        lambda: (svc.network_update(net, mtu=1400), svc.port_update(port, name="renamed")),
        lambda items: (
            any(r.change.entity.properties.get("mtu") == 1400 for r in of(items, net))
            and any(r.change.entity.properties.get("name") == "renamed" for r in of(items, port))
        ),
    )
    settles(stack, "neutron.network", [net, port], mark)

    mark_delete = stream.mark()
    by_push(
        stack,
        "neutron.port",
        lambda: (svc.port_delete(port), svc.network_delete(net)),
        lambda items: bool(of(items, port, "delete")) and bool(of(items, net, "delete")),
    )
    gone(stack, "neutron.network", [port], "neutron.port", mark_delete)
    gone(stack, "neutron.network", [net], "neutron.network", mark_delete)


def test_volumes_created_extended_retyped_deleted_arrive_by_push_once(stack: Stack):
    svc, stream = stack.services, stack.stream
    svc.ensure_volume_type("e2e-other")
    mark = stream.mark()
    ids: dict[str, str] = {}

    def create() -> None:
        ids["vol"] = svc.volume_create(unique_name("e2e-vol"))

    by_push(
        stack,
        "cinder.volume",
        create,
        lambda items: "vol" in ids and has_state(items, ids["vol"], "available"),
    )
    vol = ids["vol"]
    first = of(stream.since(mark), vol)[0]
    assert first.change.action == "create"

    by_push(
        stack,
        "cinder.volume",
        lambda: svc.volume_extend(vol, 2),
        lambda items: has_state(items, vol, "available", size=2),
    )
    before = of(stream.since(mark), vol)[-1].change.entity.properties["volume_type_id"]
    by_push(
        stack,
        "cinder.volume",
        lambda: svc.volume_retype(vol),
        lambda items: any(
            r.change.entity.state == "available"
            and r.change.entity.properties.get("volume_type_id") not in (None, before)
            for r in of(items, vol)
        ),
    )
    settles(stack, "cinder.volume", [vol], mark)

    mark_delete = stream.mark()
    by_push(
        stack,
        "cinder.volume",
        lambda: svc.volume_delete(vol),
        lambda items: bool(of(items, vol, "delete")),
    )
    gone(stack, "cinder.volume", [vol], "cinder.volume", mark_delete)


def test_nodes_enroll_manageable_available_and_back_arrive_by_push_once(stack: Stack):
    svc, stream = stack.services, stack.stream
    mark = stream.mark()
    ids: dict[str, str] = {}

    def create() -> None:
        ids["node"] = svc.node_create(unique_name("e2e-node"))

    by_push(
        stack,
        "ironic.node",
        create,
        lambda items: "node" in ids and has_state(items, ids["node"], "enroll"),
    )
    node = ids["node"]
    assert of(stream.since(mark), node)[0].change.action == "create"
    # enroll -> manageable: Ironic 39 notifies provision_set.start (verifying,
    # target manageable) and, in every capture, nothing when verifying ends:
    # manageable comes by poll (once, within a period; by push if Ironic says it).
    step = stream.mark()
    by_push(
        stack,
        "ironic.node",
        lambda: svc.node_move(node, "manage", "manageable"),
        lambda items: has_state(items, node, "verifying"),
    )
    polled = stream.wait_for(
        lambda items: has_state(items, node, "manageable"), step, timeout=PERIOD * 3
    )
    manageable = [r for r in of(polled, node) if r.change.entity.state == "manageable"]
    assert len(manageable) == 1, brief(of(polled, node))
    print(f"ironic enroll -> manageable: 'manageable' came by {manageable[0].kind}")
    # manageable -> available (provision_set.start cleaning, .end available) and
    # back (provision_set.success manageable): both notified.
    for verb, state in (("provide", "available"), ("manage", "manageable")):
        by_push(
            stack,
            "ironic.node",
            lambda verb=verb, state=state: svc.node_move(node, verb, state),
            lambda items, state=state: any(
                r.change.entity.state == state
                and r.change.entity.properties.get("target_provision_state") is None
                for r in of(items, node)
            ),
        )
    settles(stack, "ironic.node", [node], mark)
    assert stream.live()[("ironic.node", node)].entity.state == "manageable"

    mark_delete = stream.mark()
    by_push(
        stack,
        "ironic.node",
        lambda: svc.node_delete(node),
        lambda items: bool(of(items, node, "delete")),
    )
    gone(stack, "ironic.node", [node], "ironic.node", mark_delete)


def test_stacks_created_updated_deleted_arrive_by_push_once(stack: Stack):
    svc, stream = stack.services, stack.stream
    mark = stream.mark()
    name = unique_name("e2e-stack")
    ids: dict[str, str] = {}

    def create() -> None:
        ids["stack"] = svc.stack_create(name)

    by_push(
        stack,
        "heat.stack",
        create,
        lambda items: "stack" in ids and has_state(items, ids["stack"], "CREATE_COMPLETE"),
    )
    key = ids["stack"]
    assert of(stream.since(mark), key)[0].change.action == "create"
    by_push(
        stack,
        "heat.stack",
        lambda: svc.stack_update(key, name),
        lambda items: has_state(items, key, "UPDATE_COMPLETE"),
    )
    settles(stack, "heat.stack", [key], mark)

    mark_delete = stream.mark()
    by_push(
        stack,
        "heat.stack",
        lambda: svc.stack_delete(key),
        lambda items: bool(of(items, key, "delete")),
    )
    gone(stack, "heat.stack", [key], "heat.stack", mark_delete)


# -- by poll alone -------------------------------------------------------------


def test_polling_alone_sees_every_change_once(stack: Stack):
    """With the notification plugins off, the polls bring each change within one period."""
    svc, stream, daemon = stack.services, stack.stream, stack.daemon
    stack.write_config(POLL_PLUGINS)
    reloads = daemon.count_logs("Reloading the plugin list")
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("Reloading the plugin list", count=reloads + 1, timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and consumers(f"pool-{stack.unique}") > 0:
        time.sleep(0.5)
    assert consumers(f"pool-{stack.unique}") == 0, "the notification listener is still there"

    # Resources that live through the polls, then change, then go.
    mark = stream.mark()
    net = svc.network_create(unique_name("e2e-poll-net"))
    port = svc.port_create(net, unique_name("e2e-poll-port"))
    vol = svc.volume_create(unique_name("e2e-poll-vol"))
    node = svc.node_create(unique_name("e2e-poll-node"))
    stack_name = unique_name("e2e-poll-stack")
    heat_stack = svc.stack_create(stack_name)
    created_at = time.monotonic()
    items = stream.wait_for(
        lambda items: (
            all(of(items, k) for k in (net, port, vol, node))
            and has_state(items, heat_stack, "CREATE_COMPLETE")
        ),
        mark,
        timeout=PERIOD * 3,
    )
    assert max(r.at for r in items) - created_at <= PERIOD + 10
    assert {r.kind for r in items} == {"poll"}, brief(items)

    changed = stream.mark()
    svc.network_update(net, mtu=1300)
    svc.port_update(port, name="poll-renamed")
    svc.volume_extend(vol, 3)
    svc.node_move(node, "manage", "manageable")
    svc.stack_update(heat_stack, stack_name)
    changed_at = time.monotonic()
    items = stream.wait_for(
        lambda items: (
            any(r.change.entity.properties.get("mtu") == 1300 for r in of(items, net))
            and any(
                r.change.entity.properties.get("name") == "poll-renamed" for r in of(items, port)
            )
            and has_state(items, vol, "available", size=3)
            and has_state(items, node, "manageable")
            and has_state(items, heat_stack, "UPDATE_COMPLETE")
        ),
        changed,
        timeout=PERIOD * 3,
    )
    assert max(r.at for r in items) - changed_at <= PERIOD + 10
    assert {r.kind for r in items} == {"poll"}, brief(items)

    deleted = stream.mark()
    svc.port_delete(port)
    svc.network_delete(net)
    svc.volume_delete(vol)
    svc.node_delete(node)
    svc.stack_delete(heat_stack)
    keys = [net, port, vol, node, heat_stack]
    stream.wait_for(
        lambda items: all(of(items, k, "delete") for k in keys), deleted, timeout=PERIOD * 3
    )
    for plugin in ("neutron.port", "cinder.volume", "ironic.node", "heat.stack"):
        stack.next_cycles(plugin, 1)
    for key in keys:
        assert_once(stream, stream.since(mark), key)
        mine = of(stream.since(mark), key)
        assert mine[-1].change.action == "delete", f"resurrected: {brief(mine)}"


# -- the snapshot command --------------------------------------------------------


def test_snapshot_equals_each_service_listing_key_by_key(stack: Stack):
    svc = stack.services
    # Something of each kind, so no listing compares empty with empty.
    net = svc.network_create(unique_name("e2e-snap-net"))
    port = svc.port_create(net, unique_name("e2e-snap-port"))
    vol = svc.volume_create(unique_name("e2e-snap-vol"))
    node = svc.node_create(unique_name("e2e-snap-node"))
    try:
        result = subprocess.run(
            [script("synchronizer-snapshot"), "--config-file", str(stack.conf_path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        got: dict[str, dict[str, str | None]] = {t: {} for t in TYPES}
        for line in result.stdout.splitlines():
            record = json.loads(line)
            got[record["type"]][record["key"]] = record["state"]
        for entity_type in TYPES:
            expected = svc.listing(entity_type)
            assert got[entity_type] == expected, entity_type
        assert {net, port, vol, node} <= {k for t in TYPES for k in got[t]}
    finally:
        svc.port_delete(port)
        svc.network_delete(net)
        svc.volume_delete(vol)
        svc.node_delete(node)
