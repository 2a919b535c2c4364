"""The real daemon against a real Keystone and Nova, with Nova's own notifications.

One daemon runs for the module: the Nova collectors (instances, hosts, zones)
poll the real APIs through ``[service_credentials]``, the Nova notification
plugin listens to Nova's versioned notifications on exchange ``nova``, and
the ``message`` sink streams to a consumer in this process that uses only
``synchronizer.outputs.client``.  The tests run in order and share the servers they
boot, like an operator's day.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from synchronizer import opts
from synchronizer.outputs import client
from tests.e2e.conftest import RealCloud
from tests.e2e.stream import Received, Stream, brief, of
from tests.functional.conftest import QUEUE_PATTERNS, _delete_queues
from tests.helpers.broker import cut_connections, find_node, process_tree
from tests.helpers.daemon import Daemon

TYPES = ("nova.instance", "nova.host", "nova.zone")
PERIOD = 20.0  # the instance collector's poll period
SNAPSHOT_INTERVAL = 60.0
PUSH_PLUGINS = "nova.instance, nova.host, nova.zone, nova.notifications"
POLL_PLUGINS = "nova.instance, nova.host, nova.zone"


def instance_cycles(daemon: Daemon) -> int:
    return daemon.count_logs("nova.instance: full cycle") + daemon.count_logs(
        "nova.instance: delta cycle"
    )


@dataclasses.dataclass
class Stack:
    cloud: RealCloud
    daemon: Daemon
    stream: Stream
    conf_path: Path
    unique: str
    servers: list[str] = dataclasses.field(default_factory=list)

    def write_config(self, plugins: str) -> None:
        env = self.cloud.env
        u = self.unique
        self.conf_path.write_text(
            "[DEFAULT]\n"
            f"plugins = {plugins}\n"
            "sinks = message\n"
            f"transport_url = {env['TRANSPORT_URL']}\n"
            f"message_topic = synchronizer_{u}\n"
            f"rpc_topic = view_{u}\n"
            f"notification_pool = pool-{u}\n"
            "[service_credentials]\n"
            "auth_type = password\n"
            f"auth_url = {env['OS_AUTH_URL']}\n"
            f"username = {env['OS_USERNAME']}\n"
            f"password = {env['OS_PASSWORD']}\n"
            f"project_name = {env['OS_PROJECT_NAME']}\n"
            f"user_domain_id = {env['OS_USER_DOMAIN_ID']}\n"
            f"project_domain_id = {env['OS_PROJECT_DOMAIN_ID']}\n"
            f"region_name = {env['OS_REGION_NAME']}\n"
            "interface = public\n"
            "timeout = 30\n"
            "[nova.instance]\n"
            f"period = {PERIOD}\n"
            f"snapshot_interval = {SNAPSHOT_INTERVAL}\n"
            "max_backoff = 5\n"
            "[nova.host]\nperiod = 10\nmax_backoff = 5\n"
            "[nova.zone]\nperiod = 10\nmax_backoff = 5\n"
            "[nova.notifications]\n"
            "exchange = nova\n"
            "topics = versioned_notifications\n"
            "format = versioned\n"
        )

    def ensure_servers(self, count: int) -> list[str]:
        """At least ``count`` ACTIVE servers of this module (boots what is missing)."""
        missing = count - len(self.servers)
        if missing > 0:
            mark = self.stream.mark()
            ids = self.cloud.boot(missing, f"e2e-{self.unique}")
            self.stream.wait_for(
                lambda items: all(
                    any(r.change.entity.state == "ACTIVE" for r in of(items, i)) for i in ids
                ),
                mark,
            )
            self.servers.extend(ids)
        return self.servers[:count]

    def right_after_a_cycle(self) -> None:
        """Wait for the next instance poll cycle, so a change made now has a full period."""
        n = instance_cycles(self.daemon)
        assert self.daemon.wait_until(lambda: instance_cycles(self.daemon) > n, PERIOD * 3)

    def next_cycles(self, count: int = 1) -> None:
        n = instance_cycles(self.daemon)
        assert self.daemon.wait_until(
            lambda: instance_cycles(self.daemon) >= n + count, PERIOD * (count + 2)
        )


@pytest.fixture(scope="module")
def stack(realcloud: RealCloud, tmp_path_factory) -> Iterator[Stack]:
    u = uuid.uuid4().hex[:10]
    conf_path = tmp_path_factory.mktemp("e2e") / "synchronizer.conf"
    daemon = Daemon(conf_path)
    s = Stack(
        realcloud,
        daemon,
        Stream(daemon, {"nova.instance": "nova.instance"}, {}, lambda d, _: instance_cycles(d)),
        conf_path,
        u,
    )
    s.write_config(PUSH_PLUGINS)
    daemon.start()
    handle = None
    try:
        daemon.wait_log("nova.instance: full cycle", timeout=120)
        daemon.wait_log("Listening for nova/versioned_notifications", timeout=60)
        consumer_conf = opts.parse(["--config-file", str(conf_path)], setup_logging=False)
        handle = client.watch(consumer_conf, TYPES, s.stream.on_item, pool=f"consumer-{u}")
        assert s.stream.synced.wait(60), "the consumer never got the daemon's view"
        yield s
    finally:
        if handle is not None:
            handle.stop()
        daemon.stop()
        _delete_queues([p.format(u=u) for p in QUEUE_PATTERNS])


def test_microversion_is_negotiated_with_the_real_nova(stack: Stack, realcloud: RealCloud):
    """The collectors use the newest microversion both the server and novaclient speak."""
    import novaclient
    from novaclient import api_versions

    from synchronizer_plugins.nova import PLUGIN_MAX_MICROVERSION

    server_max = realcloud.compute_max_version()
    expected = min(
        api_versions.APIVersion(server_max),
        novaclient.API_MAX_VERSION,
        api_versions.APIVersion(PLUGIN_MAX_MICROVERSION),
    ).get_string()
    negotiated = [
        line for line in stack.daemon.logs if "negotiated compute API microversion" in line
    ]
    assert negotiated, "no collector logged its microversion"
    used = {re.search(r"microversion (2\.\d+)", line).group(1) for line in negotiated}
    print(f"Nova offers up to {server_max}; the collectors use {sorted(used)}")
    assert used == {expected}


def test_booted_servers_arrive_by_push_and_the_poll_adds_nothing(stack: Stack):
    cloud, stream = stack.cloud, stack.stream
    project = cloud.session().get_project_id()
    stack.right_after_a_cycle()
    cycles_at_boot = instance_cycles(stack.daemon)
    mark = stream.mark()
    ids = cloud.boot(5, f"e2e-{stack.unique}")
    stack.servers.extend(ids)
    assert len(ids) == 5

    def all_active(items: list[Received]) -> bool:
        return all(any(r.change.entity.state == "ACTIVE" for r in of(items, i)) for i in ids)

    items = stream.wait_for(all_active, mark)
    for server in ids:
        mine = of(items, server)
        first = mine[0]
        assert first.change.action == "create"
        assert first.change.entity.source.kind == "push", brief(mine)
        assert first.cycles == cycles_at_boot, "the create came after a poll cycle"
        active = next(r.change.entity for r in mine if r.change.entity.state == "ACTIVE")
        assert active.project == project
        assert active.parent is not None
        assert (active.parent.type, active.parent.key) == ("nova.host", "fakehost1")
        assert sum(r.change.action == "create" for r in mine) == 1

    # The next poll cycles list the same states: nothing more for these servers.
    settled = stream.mark()
    stack.next_cycles(2)
    extra = [r for r in stream.since(settled) if r.change.key in ids]
    assert extra == [], brief(extra)


def test_stop_and_start_give_one_update_each(stack: Stack):
    cloud, stream = stack.cloud, stack.stream
    [server] = stack.ensure_servers(1)
    mark = stream.mark()
    cloud.stop(server)
    stream.wait_for(
        lambda items: any(r.change.entity.state == "SHUTOFF" for r in of(items, server)), mark
    )
    stack.next_cycles(1)
    stopped = of(stream.since(mark), server)
    shutoff = [r for r in stopped if r.change.entity.state == "SHUTOFF"]
    assert len(shutoff) == 1, brief(stopped)
    assert shutoff[0].change.action == "update"

    mark = stream.mark()
    cloud.start(server)
    stream.wait_for(
        lambda items: any(r.change.entity.state == "ACTIVE" for r in of(items, server)), mark
    )
    stack.next_cycles(1)
    started = of(stream.since(mark), server)
    active = [r for r in started if r.change.entity.state == "ACTIVE"]
    assert len(active) == 1, brief(started)
    assert active[0].change.action == "update"
    assert stream.live()[("nova.instance", server)].entity.state == "ACTIVE"


def test_deleted_servers_give_one_delete_and_stay_deleted(stack: Stack):
    cloud, stream = stack.cloud, stack.stream
    gone = stack.ensure_servers(3)[-2:]
    mark = stream.mark()
    cloud.delete(*gone)
    for server in gone:
        stack.servers.remove(server)
    stream.wait_for(lambda items: all(of(items, s, "delete") for s in gone), mark)
    # Through the next full snapshot (and the delta cycles before it).
    full = stack.daemon.count_logs("nova.instance: full cycle")
    assert stack.daemon.wait_until(
        lambda: stack.daemon.count_logs("nova.instance: full cycle") > full,
        SNAPSHOT_INTERVAL + PERIOD * 3,
    )
    for server in gone:
        mine = of(stream.since(mark), server)
        deletes = [r for r in mine if r.change.action == "delete"]
        assert len(deletes) == 1, brief(mine)
        assert mine[-1].change.action == "delete", f"resurrected: {brief(mine)}"
        assert ("nova.instance", server) not in stream.live()


def test_hosts_and_zones_match_the_real_apis(stack: Stack, realcloud: RealCloud):
    from novaclient import client as nova_client

    nova = nova_client.Client("2.53", session=realcloud.session())
    services = list(nova.services.list(binary="nova-compute"))
    zones = [z for z in nova.availability_zones.list(detailed=True) if z.zoneName != "internal"]
    view = client.get_all(
        opts.parse(["--config-file", str(stack.conf_path)], setup_logging=False),
        ["nova.host", "nova.zone"],
    )
    hosts = {e.key: e for e in view.entities if e.type == "nova.host"}
    got_zones = {e.key: e for e in view.entities if e.type == "nova.zone"}
    assert set(hosts) == {s.host for s in services} == {"fakehost1"}
    for s in services:
        assert hosts[s.host].state == ("up" if s.state == "up" else "down") + (
            "-disabled" if s.status == "disabled" else ""
        )
        assert (hosts[s.host].parent.type, hosts[s.host].parent.key) == ("nova.zone", s.zone)
    # Nova's services heartbeat every 10 s: the host polls (every 10 s for
    # this whole module) must not turn that into updates.
    host_updates = [
        r
        for r in stack.stream.items
        if r.change.entity.type == "nova.host" and r.change.action in ("update", "delete")
    ]
    assert host_updates == [], brief(host_updates)
    assert set(got_zones) == {z.zoneName for z in zones}
    for z in zones:
        expected = "available" if z.zoneState["available"] else "unavailable"
        assert got_zones[z.zoneName].state == expected
        assert got_zones[z.zoneName].properties["hosts"] == sorted(z.hosts or {})


def test_notifications_arrive_again_after_the_broker_cuts_the_daemons_connections(stack: Stack):
    cloud, stream = stack.cloud, stack.stream
    [server] = stack.ensure_servers(1)
    # The daemon's connections only: the broker is shared, its other clients keep theirs.
    daemon = process_tree(stack.daemon.proc.pid)
    assert cut_connections(daemon, "e2e test", node=rabbit_node()) >= 1
    # The daemon's listener reconnects by itself; wait until a consumer is back
    # on its pool queue.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and consumers(f"pool-{stack.unique}") < 1:
        time.sleep(0.5)
    assert consumers(f"pool-{stack.unique}") >= 1, "the daemon's listener did not come back"
    stack.right_after_a_cycle()
    mark = stream.mark()
    cycles = instance_cycles(stack.daemon)
    cloud.stop(server)
    items = stream.wait_for(
        lambda items: any(r.change.entity.state == "SHUTOFF" for r in of(items, server)), mark
    )
    shutoff = next(r for r in of(items, server) if r.change.entity.state == "SHUTOFF")
    assert shutoff.change.entity.source.kind == "push"
    assert shutoff.cycles == cycles
    assert stack.daemon.proc.poll() is None


def test_polling_alone_catches_up_without_notifications(stack: Stack):
    cloud, stream, daemon = stack.cloud, stack.stream, stack.daemon
    started_server, victim = stack.ensure_servers(2)
    if stream.live()[("nova.instance", started_server)].entity.state != "SHUTOFF":
        mark = stream.mark()
        cloud.stop(started_server)
        stream.wait_for(
            lambda items: any(
                r.change.entity.state == "SHUTOFF" for r in of(items, started_server)
            ),
            mark,
        )
    stack.write_config(POLL_PLUGINS)
    reloads = daemon.count_logs("Reloading the plugin list")
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("Reloading the plugin list", count=reloads + 1, timeout=30)
    # The listener is gone: nothing consumes the pool queue any more.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and consumers(f"pool-{stack.unique}") > 0:
        time.sleep(0.5)
    assert consumers(f"pool-{stack.unique}") == 0

    # Right after a full snapshot, so the next cycles are delta cycles.
    fulls = daemon.count_logs("nova.instance: full cycle")
    assert daemon.wait_until(
        lambda: daemon.count_logs("nova.instance: full cycle") > fulls,
        SNAPSHOT_INTERVAL + PERIOD * 2,
    )
    fulls += 1
    logs_mark = len(daemon.logs)
    mark = stream.mark()
    cloud.start(started_server)
    cloud.delete(victim)
    stack.servers.remove(victim)
    [booted] = cloud.boot(1, f"e2e-late-{stack.unique}")
    stack.servers.append(booted)
    last_change = time.monotonic()
    keys = (started_server, victim, booted)

    def caught_up(items: list[Received]) -> bool:
        return (
            any(r.change.entity.state == "ACTIVE" for r in of(items, started_server))
            and bool(of(items, victim, "delete"))
            and any(r.change.entity.state == "ACTIVE" for r in of(items, booted))
        )

    items = [
        r for r in stream.wait_for(caught_up, mark, timeout=PERIOD * 3) if r.change.key in keys
    ]
    kinds = {r.change.entity.source.kind for r in items if r.change.action != "delete"}
    assert kinds == {"poll"}, brief(items)
    # Within one period of the last change, plus the cycle's own time.
    assert max(r.at for r in items) - last_change <= PERIOD + 10
    # Delta cycles saw them, and the full snapshot still runs at its interval.
    delta_lines = [
        line
        for line in daemon.logs[logs_mark:]
        if "nova.instance: delta cycle" in line
        and not re.search(r"0 created, 0 updated, 0 deleted", line)
    ]
    assert delta_lines, "no delta cycle saw the changes"
    assert daemon.wait_until(
        lambda: daemon.count_logs("nova.instance: full cycle") > fulls,
        SNAPSHOT_INTERVAL + PERIOD * 2,
    )
    world = stream.live()
    assert world[("nova.instance", started_server)].entity.state == "ACTIVE"
    assert ("nova.instance", victim) not in world
    assert world[("nova.instance", booted)].entity.state == "ACTIVE"


@functools.cache
def rabbit_node() -> str | None:
    """The node name rabbitmqctl reaches the broker by (None: its default), found once."""
    found, node, error = find_node()
    assert found, f"rabbitmqctl reaches no broker node: {error}"
    return node


def rabbitmqctl(*args: str) -> str:
    node = rabbit_node()
    result = subprocess.run(
        ["rabbitmqctl", *(["-n", node] if node else []), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if result.returncode != 0:
        raise AssertionError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def consumers(queue: str) -> int:
    for line in rabbitmqctl("list_queues", "-q", "name", "consumers").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == queue:
            return int(parts[1])
    return 0
