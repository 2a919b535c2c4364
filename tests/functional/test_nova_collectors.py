"""The Nova collectors against the fake cloud, over real HTTP.

keystoneauth authenticates against the fake Keystone and python-novaclient
negotiates its microversion with the fake Nova; nothing in the process is
mocked.  Each test changes the fake cloud, lists with a collector and diffs
the listing with :mod:`synchronizer.diff` exactly as the collector worker
does, and asserts what the collector asked through the cloud's counters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from synchronizer import fingerprint, timeutil, wire
from synchronizer.diff import diff_delta, diff_snapshot
from synchronizer.errors import IncompleteListing, PermanentError, TransientError
from synchronizer.plugin_base import CollectorPlugin
from synchronizer.workers.collector import PollLoop
from synchronizer_fakecloud.server import FakeCloud
from synchronizer_plugins import openstack
from synchronizer_plugins.nova.hosts import HostCollector
from synchronizer_plugins.nova.instances import InstanceCollector
from synchronizer_plugins.nova.zones import ZoneCollector
from tests.helpers.cloudconf import service_credentials

Changes = set[tuple[str, str]]


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        yield fake


@pytest.fixture(autouse=True)
def fresh(cloud: FakeCloud) -> Iterator[None]:
    """A clean cloud, and no keystoneauth session cached from another test."""
    cloud.reset()
    openstack.OpenStackCollector._session = None
    yield
    openstack.OpenStackCollector._session = None


@pytest.fixture
def make(cloud: FakeCloud, tmp_path: Path) -> Callable[..., Any]:
    """Build a Nova collector from a real config file, as the daemon does."""

    def build(cls: type[CollectorPlugin], password: str = "secret", **options: Any) -> Any:  # noqa: S107
        lines = [
            *service_credentials(cloud, password),
            f"[{cls.name}]",
            *(f"{name} = {value}" for name, value in options.items()),
        ]
        conf_file = tmp_path / f"{cls.name}.conf"
        conf_file.write_text("\n".join(lines) + "\n")
        conf = cfg.ConfigOpts()
        openstack.register_opts(conf)
        cls.register_options(conf, cls.name)
        conf(args=[], default_config_files=[str(conf_file)])
        return cls(conf)

    return build


def poll(plugin: CollectorPlugin, baseline: dict) -> tuple[Changes, dict]:
    """One full worker cycle: list everything, diff against the baseline."""
    result = diff_snapshot(
        baseline,
        list(plugin.list_all()),
        complete=True,
        now=timeutil.now,
        volatile=plugin.volatile_properties,
    )
    return {(str(c.action), c.key) for c in result.changes}, result.baseline


def listings(cloud: FakeCloud, where: Callable[[Any], bool] = lambda r: True) -> list[Any]:
    return [r for r in cloud.requests(service="nova", path="/servers/detail") if where(r)]


# -- nova.instance --------------------------------------------------------------


def test_instances_mirror_the_cloud(cloud: FakeCloud, make):
    """Servers of every project become instances parented by their host, with volumes."""
    cloud.populate(servers=30, hosts=3, volumes=5, projects=4)
    entities = {e.key: e for e in make(InstanceCollector).list_all()}
    assert set(entities) == set(cloud.keys("servers"))
    assert len({e.project for e in entities.values()}) == 4
    for key, entity in entities.items():
        doc = cloud.get("servers", key)
        assert entity.state == doc["status"]
        assert entity.parent is not None
        assert entity.parent.key == doc["OS-EXT-SRV-ATTR:host"]
        assert entity.properties["flavor"] == doc["flavor"]["original_name"]
        volumes = [v["id"] for v in doc["os-extended-volumes:volumes_attached"]]
        assert sorted(r.key for r in entity.relations) == sorted(volumes)
    assert sum(bool(e.relations) for e in entities.values()) == 5


def test_create_update_delete_give_exactly_those_changes(cloud: FakeCloud, make):
    """After changes in the cloud, a full listing diffs to exactly those changes."""
    cloud.populate(servers=20, hosts=2)
    plugin = make(InstanceCollector)
    first, baseline = poll(plugin, {})
    assert first == {("create", k) for k in cloud.keys("servers")}
    unchanged, baseline = poll(plugin, baseline)
    assert unchanged == set()
    victim, changed = cloud.keys("servers")[:2]
    cloud.update("servers", changed, status="SHUTOFF")
    cloud.delete("servers", victim)
    new = cloud.create("servers", name="new", host=cloud.keys("hypervisors")[0])
    changes, _ = poll(plugin, baseline)
    assert changes == {("update", changed), ("delete", victim), ("create", new)}


def test_every_page_is_followed(cloud: FakeCloud, make):
    """2,500 servers with pages of 1,000 are listed whole, in three requests."""
    cloud.populate(servers=2500, hosts=10)
    keys = [e.key for e in make(InstanceCollector, page_size=1000).list_all()]
    assert len(keys) == len(set(keys)) == 2500
    walk = listings(cloud)
    assert len(walk) == 3
    assert [("marker" in r.query) for r in walk] == [False, True, True]
    assert all(r.query["all_tenants"] == ["True"] for r in walk)


def test_a_record_is_observed_when_its_page_is_asked_for_not_when_the_listing_began(
    cloud: FakeCloud, make
):
    """A notification older than a record's page never overrides what that page showed.

    The listing begins; while it reads its first pages, a server on its
    last page changes twice (SHUTOFF, whose notification is late, then
    ACTIVE again).  The last page shows ACTIVE.  Stamped with the time the
    listing began, that state looked older than the late SHUTOFF
    notification, and the ledger told SHUTOFF after ACTIVE: an older state
    after a newer one.  Stamped with the time its page was asked for, the
    poll's state is the newer, and the late notification is dropped.
    """
    from synchronizer.dispatch.dispatcher import Dispatcher
    from synchronizer.model import Action, Change, Source

    cloud.populate(servers=250, hosts=3)
    plugin = make(InstanceCollector, page_size=100)
    last = [e.key for e in plugin.list_all()][-1]  # on the third page
    dispatcher = Dispatcher()
    plugin.observed_at = timeutil.now()  # the cycle begins (as PollLoop.cycle does)
    listing = plugin.list_all()
    polled = [next(listing)]  # page 1 read, page 2 asked for ahead; page 3 not yet
    cloud.update("servers", last, status="SHUTOFF")
    time.sleep(0.01)
    stopped = timeutil.now()  # when the cloud stopped it: the late notification's time
    time.sleep(0.01)
    cloud.update("servers", last, status="ACTIVE", name="restarted")
    time.sleep(0.01)
    polled.extend(listing)
    (record,) = [e for e in polled if e.key == last]
    assert record.state == "ACTIVE"
    assert record.timestamp > stopped  # observed after the change it shows
    dispatcher.dispatch([Change(Action.CREATE, e, fingerprint.of(e)) for e in polled])
    late = record.replace(
        state="SHUTOFF",
        properties={**record.properties, "name": record.properties["name"]},
        timestamp=stopped,
        source=Source("push", "nova.notifications"),
    )
    assert dispatcher.dispatch([Change(Action.UPDATE, late, fingerprint.of(late))]) == []
    assert dispatcher.ledger.get("nova.instance", last).entity.state == "ACTIVE"


def _wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_next_page_is_fetched_while_the_caller_converts_this_one(cloud: FakeCloud, make):
    """Read-ahead: holding the first record of page 1 already brings page 2's request."""
    cloud.populate(servers=250, hosts=3)
    listing = make(InstanceCollector, page_size=100).list_all()
    cloud.reset_stats()
    first = next(listing)
    assert first.type == "nova.instance"
    assert _wait_for(lambda: len(listings(cloud)) == 2), listings(cloud)
    time.sleep(0.2)
    assert len(listings(cloud)) == 2, "more than one page was read ahead"
    assert len([first, *listing]) == 250
    assert len(listings(cloud)) == 3


def test_an_abandoned_listing_leaves_no_thread(cloud: FakeCloud, make):
    """Closing a listing mid-way waits for the page in flight and ends its thread."""
    cloud.populate(servers=300, hosts=3)
    listing = make(InstanceCollector, page_size=100).list_all()
    next(listing)
    listing.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("read-ahead")]


def test_a_failed_page_makes_the_listing_raise(cloud: FakeCloud, make):
    """A 500 on page 3 of 5 raises, so the worker infers no delete."""
    cloud.populate(servers=500, hosts=2)
    plugin = make(InstanceCollector, page_size=100)
    _, baseline = poll(plugin, {})
    cloud.reset_stats()
    cloud.fail_page("nova", page=2, status=500)
    seen = []
    with pytest.raises(TransientError, match="500"):
        seen.extend(plugin.list_all())
    assert len(seen) == 200
    result = diff_snapshot(baseline, seen, complete=False)
    assert result.changes == []
    assert result.baseline == baseline


def test_delta_listing_reports_an_update_and_a_delete(cloud: FakeCloud, make):
    """changes-since picks up an update and a delete without a full listing."""
    cloud.populate(servers=50, hosts=2)
    plugin = make(InstanceCollector)
    _, baseline = poll(plugin, {})
    since = timeutil.now()
    time.sleep(0.01)
    updated, deleted = cloud.keys("servers")[:2]
    cloud.update("servers", updated, status="PAUSED")
    cloud.delete("servers", deleted)
    cloud.reset_stats()
    delta = plugin.list_changes(since)
    assert [e.key for e in delta.entities] == [updated]
    assert [(e.key, e.state) for e in delta.deleted] == [(deleted, "DELETED")]
    walk = listings(cloud)
    assert len(walk) == 1
    assert walk[0].query["changes-since"] == [since]
    result = diff_delta(baseline, delta.entities, delta.deleted)
    assert {(str(c.action), c.key) for c in result.changes} == {
        ("update", updated),
        ("delete", deleted),
    }
    assert len(result.baseline) == 49


def test_soft_deleted_servers_stay_entities(cloud: FakeCloud, make):
    """A soft-deleted server is listed as SOFT_DELETED, not deleted."""
    cloud.populate(servers=3, hosts=1)
    key = cloud.keys("servers")[0]
    cloud.update("servers", key, status="SOFT_DELETED")
    states = {e.key: e.state for e in make(InstanceCollector).list_all()}
    assert states[key] == "SOFT_DELETED"


def test_microversion_is_negotiated_and_logged(cloud: FakeCloud, make, caplog):
    """The client asks for the newest version both sides offer and logs it at INFO."""
    cloud.populate(servers=2, hosts=1)
    plugin = make(InstanceCollector)
    with caplog.at_level(logging.INFO, logger="synchronizer_plugins.nova"):
        list(plugin.list_all())
    assert plugin.api_version.get_string() == "2.96"
    assert any("negotiated compute API microversion 2.96" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("cap", ["2.47", "2.53", "2.69", "2.90"])
def test_capped_microversion_gives_the_same_instances(cloud: FakeCloud, make, cap):
    """A lower max_microversion is what gets used, and lists the same entities."""
    cloud.populate(servers=10, hosts=2, volumes=3)
    newest = {e.key: fingerprint.of(e) for e in make(InstanceCollector).list_all()}
    openstack.OpenStackCollector._session = None
    capped = make(InstanceCollector, max_microversion=cap)
    assert {e.key: fingerprint.of(e) for e in capped.list_all()} == newest
    assert capped.api_version.get_string() == cap


def test_expired_tokens_are_renewed_transparently(cloud: FakeCloud, make):
    """Expired and revoked tokens are replaced by keystoneauth without failing a listing."""
    cloud.populate(servers=5, hosts=1)
    cloud.token_expiry(1.0)
    plugin = make(InstanceCollector)
    assert len(list(plugin.list_all())) == 5
    issued = cloud.tokens_issued
    time.sleep(1.2)
    assert len(list(plugin.list_all())) == 5
    cloud.revoke_tokens()
    assert len(list(plugin.list_all())) == 5
    assert cloud.tokens_issued >= issued + 2


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (lambda c: c.fail("nova", 503), TransientError),
        (lambda c: c.fail("nova", 403), PermanentError),
        (lambda c: c.keystone_down(True, "503"), TransientError),
        (lambda c: c.corrupt("nova", "malformed", times=None), TransientError),
        (lambda c: c.corrupt("nova", "truncate", times=None), TransientError),
        (lambda c: c.corrupt("nova", "disconnect", times=None), TransientError),
        (lambda c: c.keystone_down(True, "refuse"), TransientError),
    ],
    ids=[
        "nova-503",
        "nova-403",
        "keystone-503",
        "html-body",
        "truncated",
        "disconnect",
        "keystone-refuses",
    ],
)
def test_errors_are_transient_or_permanent(cloud: FakeCloud, make, fault, error):
    """Outages are transient; a refusal with a correct endpoint is permanent."""
    cloud.populate(servers=3, hosts=1)
    fault(cloud)
    with pytest.raises(error):
        list(make(InstanceCollector).list_all())


def test_wrong_password_is_retried_and_says_so(cloud: FakeCloud, make):
    """Credentials Keystone refuses are a transient error (retried) that says what to check."""
    with pytest.raises(TransientError, match=r"credentials refused .*Unauthorized"):
        list(make(InstanceCollector, password="wrong").list_all())


# -- nova.host and nova.zone --------------------------------------------------------


@pytest.mark.parametrize("cap", ["2.32", "2.52", "2.53", "2.87", "2.96"])
def test_host_entities_do_not_depend_on_the_hypervisor_id_form(cloud: FakeCloud, make, cap):
    """Integer ids (<2.53), UUIDs (2.53+), unpaged (<2.33) and 2.88+ records give the same hosts."""
    cloud.populate(servers=0, hosts=5, zones=2)
    newest = {e.key: fingerprint.of(e) for e in make(HostCollector).list_all()}
    openstack.OpenStackCollector._session = None
    capped = make(HostCollector, max_microversion=cap, page_size=2)
    assert {e.key: fingerprint.of(e) for e in capped.list_all()} == newest
    paged = len(cloud.requests(service="nova", path="/os-hypervisors/detail"))
    assert paged == (1 if cap == "2.32" else 3) + 1


def test_hosts_have_zone_parents_and_service_state(cloud: FakeCloud, make):
    """A host is parented by its zone; disabling or losing its service changes its state."""
    cloud.populate(servers=0, hosts=3, zones=2)
    plugin = make(HostCollector)
    first, baseline = poll(plugin, {})
    hosts = cloud.keys("hypervisors")
    assert first == {("create", h) for h in hosts}
    entities = {e.key: e for e in plugin.list_all()}
    assert {e.parent.key for e in entities.values() if e.parent} == {"zone-0", "zone-1"}
    assert entities[hosts[0]].properties["nodes"] == [f"{hosts[0]}.cloud.local"]
    cloud.update("hypervisors", hosts[0], status="disabled", disabled_reason="maintenance")
    cloud.update("hypervisors", hosts[1], state="down")
    changes, _ = poll(plugin, baseline)
    assert changes == {("update", hosts[0]), ("update", hosts[1])}
    states = {e.key: e.state for e in plugin.list_all()}
    assert (states[hosts[0]], states[hosts[1]], states[hosts[2]]) == ("up-disabled", "down", "up")


def test_zones_exclude_internal_and_follow_availability(cloud: FakeCloud, make):
    """Zones list their hosts; a zone whose hosts are all disabled is unavailable."""
    cloud.populate(servers=0, hosts=4, zones=2)
    plugin = make(ZoneCollector)
    zones = {e.key: e for e in plugin.list_all()}
    assert set(zones) == {"zone-0", "zone-1"}
    assert all(e.state == "available" and len(e.properties["hosts"]) == 2 for e in zones.values())
    for host in zones["zone-0"].properties["hosts"]:
        cloud.update("hypervisors", host, status="disabled")
    zones = {e.key: e for e in plugin.list_all()}
    assert (zones["zone-0"].state, zones["zone-0"].properties["hosts"]) == ("unavailable", [])


def test_the_graph_is_connected(cloud: FakeCloud, make):
    """Every instance's parent is a listed host and every host's parent a listed zone."""
    cloud.populate(servers=40, hosts=4, zones=2)
    instances = list(make(InstanceCollector).list_all())
    hosts = {e.key: e for e in make(HostCollector).list_all()}
    zones = {e.key for e in make(ZoneCollector).list_all()}
    assert all(e.parent is not None and e.parent.key in hosts for e in instances)
    assert all(e.parent is not None and e.parent.key in zones for e in hosts.values())


def test_an_unusable_server_is_skipped_and_the_listing_stays_complete(cloud: FakeCloud, make):
    """A server without vm_state is reported skipped (it keeps its state); the rest is listed."""
    cloud.populate(servers=10, hosts=1)
    broken, numbered = cloud.keys("servers")[:2]
    cloud.update("servers", broken, vm_state=None)
    cloud.update("servers", numbered, name=12345)
    plugin = make(InstanceCollector)
    seen = {e.key: e for e in plugin.list_all()}
    assert len(seen) == 9
    assert broken not in seen
    assert seen[numbered].properties["name"] == "12345"
    assert list(plugin.skipped) == [("nova.instance", broken)]
    assert "vm_state" in plugin.skipped[("nova.instance", broken)]


def test_a_server_without_a_usable_id_makes_the_listing_incomplete(cloud: FakeCloud, make):
    """A record naming no server could hide a delete: the listing raises after the rest."""
    cloud.populate(servers=10, hosts=1)
    cloud.update("servers", cloud.keys("servers")[0], id=None)
    seen = []
    with pytest.raises(IncompleteListing, match="1 server record"):
        seen.extend(make(InstanceCollector).list_all())
    assert len(seen) == 9


def test_worker_runs_delta_cycles_between_snapshots(cloud: FakeCloud, make):
    """The collector worker's second cycle is a changes-since listing that sends the update."""
    cloud.populate(servers=20, hosts=2)
    plugin = make(InstanceCollector, period=1, snapshot_interval=3600)
    sent: list[Any] = []
    loop = PollLoop(plugin, "nova.instance", sent.append, chunk_size=100)
    assert loop.cycle()
    time.sleep(0.01)
    key = cloud.keys("servers")[3]
    cloud.update("servers", key, status="SUSPENDED")
    cloud.reset_stats()
    sent.clear()
    assert loop.cycle()
    walk = listings(cloud)
    assert len(walk) == 1
    assert "changes-since" in walk[0].query
    changes = [c for m in sent if isinstance(m, wire.Changes) for c in m.decode()]
    assert [(str(c.action), c.key, c.entity.state) for c in changes] == [
        ("update", key, "SUSPENDED")
    ]


# -- flavor names below microversion 2.47 ---------------------------------------------


def flavor_listings(cloud: FakeCloud) -> list[Any]:
    """The walks over /flavors/detail (their first pages)."""
    pages = cloud.requests(service="nova", path="/flavors/detail")
    return [r for r in pages if "marker" not in r.query]


@pytest.mark.parametrize("cap", ["2.1", "2.46"])
def test_flavor_ids_below_247_give_the_same_instances(cloud: FakeCloud, make, cap):
    """Servers with only a flavor id become the same entities, with one flavor listing."""
    cloud.populate(servers=12, hosts=2, volumes=3)
    cloud.create("flavors", id="p1", name="private.numa", is_public=False, extra_specs={"a": "b"})
    cloud.create("servers", flavor="private.numa", host=cloud.keys("hypervisors")[0])
    newest = {e.key: fingerprint.of(e) for e in make(InstanceCollector).list_all()}
    openstack.OpenStackCollector._session = None
    cloud.reset_stats()
    capped = make(InstanceCollector, max_microversion=cap)
    entities = list(capped.list_all())
    assert capped.api_version.get_string() == cap
    assert {e.key: fingerprint.of(e) for e in entities} == newest
    assert "private.numa" in {e.properties["flavor"] for e in entities}
    walk = flavor_listings(cloud)
    assert len(walk) == 1
    assert walk[0].query["is_public"] == ["None"]


def test_flavors_are_listed_only_when_an_unknown_id_shows_up(cloud: FakeCloud, make):
    """Known flavors cost no request; a new flavor costs one listing in that cycle."""
    cloud.populate(servers=6, hosts=1)
    plugin = make(InstanceCollector, max_microversion="2.46", page_size=2)
    _, baseline = poll(plugin, {})
    assert len(flavor_listings(cloud)) == 1
    assert len(cloud.requests(service="nova", path="/flavors/detail")) == 3  # 5 by 2
    cloud.reset_stats()
    unchanged, baseline = poll(plugin, baseline)
    assert (unchanged, flavor_listings(cloud)) == (set(), [])
    cloud.create("flavors", id="42", name="m1.answer")
    new = cloud.create("servers", flavor="m1.answer", host=cloud.keys("hypervisors")[0])
    changes, _ = poll(plugin, baseline)
    assert changes == {("create", new)}
    assert len(flavor_listings(cloud)) == 1
    assert {e.key: e.properties["flavor"] for e in plugin.list_all()}[new] == "m1.answer"


def test_a_failed_flavor_listing_makes_the_listing_incomplete(cloud: FakeCloud, make):
    """A 503 on /flavors/detail fails the cycle below 2.47, so no delete can follow."""
    cloud.populate(servers=3, hosts=1)
    plugin = make(InstanceCollector, max_microversion="2.46")
    plugin.api_version  # noqa: B018 - negotiate before arming the fault
    cloud.fail_page("nova", page=0, status=503, collection="flavors/detail")
    with pytest.raises(TransientError, match="503"):
        list(plugin.list_all())
    assert len(list(plugin.list_all())) == 3
