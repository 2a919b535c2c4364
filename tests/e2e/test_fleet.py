"""A fleet of three daemons against the real Keystone and Nova: one stream through a failover.

Real parts throughout: the kit's Keystone and Nova (polled, and pushing its
versioned notifications), MariaDB as the shared store (as OpenStack deploys
it), a Redis of the test's own as the tooz backend, RabbitMQ, and a watcher
on the real client.  The Nova partition's owner is SIGKILLed while servers
are stopped and booted; the watcher must end with Nova's own list, told no
false delete and no seq with two contents.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from synchronizer import opts
from synchronizer.dispatch import sql
from synchronizer.outputs import client
from tests.e2e.conftest import RealCloud
from tests.functional.fleet.test_database_down import Deletes
from tests.functional.fleet.test_failover import _cont, wait
from tests.functional.fleet.test_stream import CLEAN, Watcher, _delete_queues, diff
from tests.helpers import fleetparts
from tests.helpers.daemon import Daemon

MEMBERS = ("m1", "m2", "m3")
TIMEOUT = 5  # [coordination] heartbeat_timeout
PERIOD = 10.0  # the Nova collectors' period


def _config(path: Path, member: str, env: dict[str, str], redis, database, u: str) -> Path:
    path.write_text(
        f"""[DEFAULT]
plugins = nova.instance, nova.host, nova.notifications
sinks = message
transport_url = {env["TRANSPORT_URL"]}
message_topic = synchronizer_{u}
rpc_topic = view_{u}
notification_pool = pool-{u}
[coordination]
backend_url = {redis.url}
heartbeat_timeout = {TIMEOUT}
member_id = {member}
[database]
connection = {database}
[service_credentials]
auth_type = password
auth_url = {env["OS_AUTH_URL"]}
username = {env["OS_USERNAME"]}
password = {env["OS_PASSWORD"]}
project_name = {env["OS_PROJECT_NAME"]}
user_domain_id = {env["OS_USER_DOMAIN_ID"]}
project_domain_id = {env["OS_PROJECT_DOMAIN_ID"]}
region_name = {env["OS_REGION_NAME"]}
interface = public
timeout = 30
[nova.instance]
period = {PERIOD}
max_backoff = 5
[nova.host]
period = {PERIOD}
max_backoff = 5
[nova.notifications]
exchange = nova
topics = versioned_notifications
format = versioned
"""
    )
    return path


@pytest.fixture
def fleet(realcloud: RealCloud, tmp_path: Path) -> Iterator[tuple[dict[str, Daemon], str, str]]:
    u = uuid.uuid4().hex[:10]
    redis = fleetparts.Redis(tmp_path).start()
    database = fleetparts.create_database("mysql")
    daemons = {
        m: Daemon(_config(tmp_path / f"{m}.conf", m, realcloud.env, redis, database, u)).start()
        for m in MEMBERS
    }
    try:
        yield daemons, database, u
    finally:
        for d in daemons.values():
            _cont(d)
            d.stop(timeout=15)
        redis.stop()
        fleetparts.drop_database(database)
        _delete_queues(
            [f"view_{u}.fleet-{m}" for m in MEMBERS] + [f"pool-{u}-nova", f"consumer-{u}"]
        )


def nova_servers(realcloud: RealCloud) -> dict[str, str]:
    """Nova's own list, every project: server id → status."""
    from novaclient import client as nova_client

    nova = nova_client.Client("2.1", session=realcloud.session())
    return {s.id: s.status for s in nova.servers.list(search_opts={"all_tenants": True})}


def test_a_killed_nova_owner_is_replaced_and_the_watcher_equals_nova(
    fleet, realcloud: RealCloud, tmp_path: Path
):
    daemons, database, u = fleet
    engine = sql.create_engine(database, create_tables=False)
    owners = lambda: _owners(engine)  # noqa: E731
    wait(lambda: "nova" in owners(), 120, "the nova partition owned")
    conf = opts.parse(["--config-file", str(tmp_path / "m1.conf")], setup_logging=False)
    watcher = Deletes()
    handle = client.watch(conf, ["nova.instance"], watcher, timeout=30, pool=f"consumer-{u}")
    try:
        assert watcher.synced.wait(60), "the watcher never got the fleet's view"
        ids = realcloud.boot(2, f"e2e-fleet-{u}")
        wait(lambda: _equal(watcher, realcloud), 90, "the booted servers in the view")
        owner, term = owners()["nova"]
        victim = daemons[owner]
        for pid in [*victim.worker_pids(), victim.proc.pid]:
            os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        # While nobody owns the partition: one server stopped, one more booted.
        realcloud.stop(ids[0])
        ids += realcloud.boot(1, f"e2e-fleet-{u}-late")
        wait(lambda: owners()["nova"][0] not in (None, owner), 60, "a new nova owner")
        print(f"new owner after {time.monotonic() - killed:.1f} s (lease {TIMEOUT} s)")
        assert owners()["nova"][1] > term
        wait(lambda: _equal(watcher, realcloud), 3 * PERIOD + 30, "the view to equal Nova's")
        assert watcher.view("nova.instance")[ids[0]] == "SHUTOFF"
        assert watcher.deletes == [], "a live server was told deleted"
        assert watcher.conflicts == [], "a seq was told with two contents"
        assert watcher.backwards == []
        # Any surviving member answers get_all from the shared store.
        view = client.get_all(conf, ["nova.instance"], timeout=30)
        assert diff({e.key: e.state for e in view.entities}, nova_servers(realcloud)) == CLEAN
        realcloud.delete(*ids)
        wait(lambda: _equal(watcher, realcloud), 90, "the deletes in the view")
        assert sorted(watcher.deletes) == sorted(ids)
    finally:
        handle.stop()
        engine.dispose()


def _equal(watcher: Watcher, realcloud: RealCloud) -> bool:
    return diff(watcher.view("nova.instance"), nova_servers(realcloud)) == CLEAN


def _owners(engine) -> dict:
    try:
        return sql.owners(engine)
    except Exception:  # noqa: BLE001 - the tables are made by the first claim
        return {}
