"""The Cinder, Neutron, Ironic, Heat and Nagios collectors against the fake cloud.

Real HTTP on loopback: keystoneauth authenticates against the fake Keystone,
finds each endpoint in its catalog and walks every page; Nagios is asked
with basic auth.  Each test changes the fake cloud, lists with the
collector and diffs the listing with :func:`synchronizer.diff.diff_snapshot`
exactly as the collector worker does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from keystoneauth1 import exceptions as ks_exc
from oslo_config import cfg

from synchronizer import timeutil
from synchronizer.diff import diff_snapshot
from synchronizer.errors import PermanentError, TransientError
from synchronizer.model import Ref
from synchronizer.plugin_base import CollectorPlugin
from synchronizer_fakecloud.server import FakeCloud
from synchronizer_plugins import openstack
from synchronizer_plugins.cinder.volumes import VolumeCollector
from synchronizer_plugins.heat.stacks import StackCollector
from synchronizer_plugins.ironic.nodes import NodeCollector
from synchronizer_plugins.nagios.hosts import HostCollector
from synchronizer_plugins.nagios.services import ServiceCollector
from synchronizer_plugins.neutron.collectors import NetworkCollector, PortCollector
from tests.helpers.cloudconf import service_credentials

NET_ID = "6c1f4a3e-0a5b-4c2d-9e8f-7a6b5c4d3e2f"


@dataclasses.dataclass(frozen=True)
class Case:
    """How to drive one collector through the fake cloud."""

    plugin: type[CollectorPlugin]
    kind: str
    service: str
    create: Callable[[int], dict[str, Any]]
    update: dict[str, Any]
    key: Callable[[str], str] = str

    def __str__(self) -> str:
        return self.plugin.name


CASES = [
    Case(VolumeCollector, "volumes", "cinder", lambda i: {"name": f"vol-{i}"}, {"status": "error"}),
    Case(NetworkCollector, "networks", "neutron", lambda i: {"name": f"net-{i}"}, {"mtu": 9000}),
    Case(
        PortCollector,
        "ports",
        "neutron",
        lambda i: {"network_id": NET_ID, "name": f"port-{i}"},
        {"status": "DOWN"},
    ),
    Case(NodeCollector, "nodes", "ironic", lambda i: {"name": f"node-{i}"}, {"maintenance": True}),
    Case(
        StackCollector,
        "stacks",
        "heat",
        lambda i: {"name": f"stack-{i}"},
        {"status": "UPDATE_FAILED"},
    ),
    Case(
        ServiceCollector,
        "nagios_services",
        "nagios",
        lambda i: {"host_name": f"compute-{i}", "description": "load"},
        {"status": "CRITICAL"},
        key=lambda fake_key: fake_key.replace(";", "/", 1),
    ),
]
PAGED = [case for case in CASES if case.service != "nagios"]
CASE = {case.plugin: case for case in CASES}


@pytest.fixture(scope="module")
def cloud() -> Iterator[FakeCloud]:
    with FakeCloud() as fake:
        yield fake


@pytest.fixture(autouse=True)
def fresh(cloud: FakeCloud) -> Iterator[None]:
    """A clean cloud, and no keystoneauth session cached from another test."""
    cloud.reset()
    openstack.OpenStackCollector._session = None
    openstack.OpenStackCollector._sessions.clear()
    yield
    openstack.OpenStackCollector._session = None
    openstack.OpenStackCollector._sessions.clear()


@pytest.fixture
def make(cloud: FakeCloud, tmp_path: Path) -> Callable[..., Any]:
    """Build a collector from a real config file, as the daemon does."""

    def build(
        cls: type[CollectorPlugin],
        password: str = "nagios",  # noqa: S107 - the fake Nagios password
        **options: Any,
    ) -> Any:
        conf_file = tmp_path / "synchronizer.conf"
        system = [
            line.replace("[service_credentials]", "[system_credentials]")
            for line in service_credentials(cloud)
            if not line.startswith(("project_name", "project_domain_id"))
        ]
        if cls is NodeCollector:  # Ironic lists every node only to a system-scoped token
            options.setdefault("credentials", "system_credentials")
        lines = [
            *service_credentials(cloud),
            *system,
            "system_scope = all",
            f"[{cls.name}]",
            f"url = {cloud.nagios_url}",
            "username = nagiosadmin",
            f"password = {password}",
            "timeout = 10",
        ]
        lines += [f"{name} = {value}" for name, value in options.items()]
        conf_file.write_text("\n".join(lines) + "\n")
        conf = cfg.ConfigOpts()
        openstack.register_opts(conf)
        cls.register_options(conf, cls.name)
        conf(args=[], default_config_files=[str(conf_file)])
        return cls(conf)

    return build


def poll(plugin: CollectorPlugin, baseline: dict) -> tuple[set[tuple[str, str]], dict]:
    """One worker cycle: list everything, diff against the baseline."""
    result = diff_snapshot(
        baseline,
        list(plugin.list_all()),
        complete=True,
        now=timeutil.now,
        volatile=plugin.volatile_properties,
    )
    return {(str(c.action), c.key) for c in result.changes}, result.baseline


@pytest.mark.parametrize("case", CASES, ids=str)
def test_creates_updates_and_deletes_become_exactly_those_changes(cloud, make, case):
    """Changes made in the cloud come out of list_all and the diff, and nothing else."""
    plugin = make(case.plugin)
    keys = [cloud.create(case.kind, **case.create(i)) for i in range(3)]
    changes, baseline = poll(plugin, {})
    assert changes == {("create", case.key(k)) for k in keys}

    cloud.update(case.kind, keys[0], **case.update)
    cloud.delete(case.kind, keys[1])
    added = cloud.create(case.kind, **case.create(3))
    changes, baseline = poll(plugin, baseline)
    assert changes == {
        ("update", case.key(keys[0])),
        ("delete", case.key(keys[1])),
        ("create", case.key(added)),
    }

    changes, _ = poll(plugin, baseline)
    assert changes == set()


@pytest.mark.parametrize("case", PAGED, ids=str)
def test_every_page_is_followed(cloud, make, case):
    """A listing walks every page of a small page size and yields each record once."""
    keys = {cloud.create(case.kind, **case.create(i)) for i in range(25)}
    plugin = make(case.plugin, page_size=4)
    entities = list(plugin.list_all())
    assert sorted(e.key for e in entities) == sorted(keys)
    listing_requests = [r for r in cloud.requests(service=case.service) if r.method == "GET"]
    assert len([r for r in listing_requests if "limit" in r.query]) >= 7


@pytest.mark.parametrize("case", PAGED, ids=str)
def test_the_next_page_is_read_ahead(cloud, make, case):
    """Holding the first record of a listing already brings the second page's request."""
    for i in range(10):
        cloud.create(case.kind, **case.create(i))
    listing = make(case.plugin, page_size=4).list_all()
    cloud.reset_stats()
    first = next(listing)

    def pages() -> int:
        return len([r for r in cloud.requests(service=case.service) if "limit" in r.query])

    deadline = time.monotonic() + 10
    while pages() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert pages() == 2
    assert len([first, *listing]) == 10


@pytest.mark.parametrize("case", PAGED, ids=str)
def test_a_failing_middle_page_makes_the_listing_raise(cloud, make, case):
    """A 5xx on the third page makes list_all raise, so no delete can be inferred."""
    for i in range(12):
        cloud.create(case.kind, **case.create(i))
    plugin = make(case.plugin, page_size=4)
    _, baseline = poll(plugin, {})
    cloud.fail_page(case.service, page=2, status=503, collection=_collection(case))
    with pytest.raises(ks_exc.HttpError):
        poll(plugin, baseline)
    changes, _ = poll(plugin, baseline)
    assert changes == set()


def _collection(case: Case) -> str:
    return {"volumes": "volumes/detail", "nodes": "nodes/detail"}.get(case.kind, case.kind)


def test_microversions_bring_the_fields_the_shapes_need(cloud, make):
    """Cinder answers in 3.63+ (volume_type_id) and Ironic in 1.65+ (owner, lessee)."""
    cloud.create("volumes", name="v")
    cloud.create("nodes", name="n", owner="p-owner", lessee="p-lessee")
    (volume,) = make(VolumeCollector).list_all()
    (node,) = make(NodeCollector).list_all()
    assert volume.properties["volume_type_id"]
    assert (node.project, node.properties["lessee"]) == ("p-owner", "p-lessee")


@pytest.mark.parametrize(
    ("case", "refusal"),
    [
        (CASE[VolumeCollector], r"Cinder does not support microversion 3\.63 \(Wallaby"),
        (CASE[NodeCollector], r"Ironic does not support API version 1\.65 \(Ussuri"),
    ],
    ids=str,
)
def test_a_refused_pinned_version_disables_the_plugin(cloud, make, case, refusal):
    """A 406 to the version Cinder or Ironic pins is permanent, and says which release is needed."""
    cloud.create(case.kind, **case.create(0))
    cloud.fail(case.service, status=406, times=1)
    with pytest.raises(PermanentError, match=refusal):
        list(make(case.plugin).list_all())


@pytest.mark.parametrize("case", [CASE[NetworkCollector], CASE[StackCollector]], ids=str)
def test_a_406_without_a_pinned_version_stays_an_http_error(cloud, make, case):
    """Neutron and Heat pin no version: their 406 is the HTTP error, classified transient."""
    cloud.create(case.kind, **case.create(0))
    cloud.fail(case.service, status=406, times=1)
    plugin = make(case.plugin)
    with pytest.raises(ks_exc.NotAcceptable) as info:
        list(plugin.list_all())
    assert isinstance(plugin.classify_error(info.value), TransientError)


def test_volume_attachments_and_port_bindings_relate_to_instances(cloud, make):
    """An attached volume and a compute port both relate to their server."""
    cloud.populate(hosts=1, servers=1, ports=1, networks=1, volumes=1)
    (server,) = cloud.keys("servers")
    (volume,) = make(VolumeCollector).list_all()
    (port,) = make(PortCollector).list_all()
    assert volume.state == "in-use"
    assert [(r.relation, r.type, r.key) for r in volume.relations] == [
        ("attached", "nova.instance", server)
    ]
    assert [(r.relation, r.key) for r in port.relations] == [("attached", server)]
    assert port.parent is not None
    assert port.parent.type == "neutron.network"


def test_revision_bumps_alone_cause_no_update(cloud, make):
    """A Neutron write that changes nothing but revision_number and updated_at is no change."""
    net = cloud.create("networks", name="quiet")
    plugin = make(NetworkCollector)
    _, baseline = poll(plugin, {})
    cloud.update("networks", net)
    changes, _ = poll(plugin, baseline)
    assert changes == set()


@pytest.mark.parametrize(("show_nested", "listed"), [(True, 2), (False, 1)])
def test_nested_stacks_follow_show_nested(cloud, make, show_nested, listed):
    """Nested stacks are listed when show_nested is on, and only then."""
    parent = cloud.create("stacks", name="outer")
    cloud.create("stacks", name="inner", parent=parent)
    assert len(list(make(StackCollector, show_nested=show_nested).list_all())) == listed


def test_nagios_timers_and_output_cause_no_update(cloud, make):
    """Two polls of an unchanged service, timers and output moving, give no change."""
    key = cloud.create("nagios_services", host_name="compute-1", description="load")
    plugin = make(ServiceCollector)
    (first,) = plugin.list_all()
    _, baseline = poll(plugin, {})
    time.sleep(1.1)  # statusjson times have second resolution
    cloud.update("nagios_services", key, output="OK - load average: 0.42")
    (second,) = plugin.list_all()
    changes, baseline = poll(plugin, baseline)
    assert second.properties["last_update"] != first.properties["last_update"]
    assert second.properties["plugin_output"] != first.properties["plugin_output"]
    assert changes == set()

    cloud.update("nagios_services", key, status="WARNING")
    changes, _ = poll(plugin, baseline)
    assert changes == {("update", "compute-1/load")}


def test_nagios_service_shape_from_the_cgi(cloud, make):
    """A Nagios service comes out keyed host/description, under its configured host type."""
    cloud.create("nagios_services", host_name="compute-7", description="ssh", status="CRITICAL")
    (entity,) = make(ServiceCollector, host_type="ironic.node").list_all()
    assert (entity.key, entity.state) == ("compute-7/ssh", "CRITICAL")
    assert entity.parent == Ref("ironic.node", "compute-7")


def test_nagios_wrong_password_is_retried_and_never_shown(cloud, make, caplog):
    """Refused basic auth is a transient (retried) error whose message hides the password."""
    plugin = make(ServiceCollector, password="Wr0ng-S3cret")
    with pytest.raises(TransientError) as info:
        list(plugin.list_all())
    assert "401" in str(info.value)
    assert "Wr0ng-S3cret" not in str(info.value) + caplog.text


def test_nagios_outage_makes_the_listing_raise(cloud, make):
    """A Nagios answering 503 makes list_all raise a transient error."""
    cloud.create("nagios_services", host_name="compute-1", description="load")
    cloud.fail("nagios", status=503, times=1)
    with pytest.raises(TransientError, match="503"):
        list(make(ServiceCollector).list_all())


def test_ironic_with_a_project_scoped_token_refuses_to_list(cloud, make):
    """Ironic shows a project scope its own nodes only (200): never a complete listing."""
    cloud.create("nodes", name="node-0")
    plugin = make(NodeCollector, credentials="service_credentials")
    verdict = plugin.available()
    assert isinstance(verdict, str)
    assert "system-scoped" in verdict
    assert "system_scope = all" in verdict
    assert "project-scoped" in verdict
    with pytest.raises(PermanentError, match="system_scope = all"):
        list(plugin.list_all())
    assert cloud.request_count(service="ironic") == 0, "it listed before checking its scope"


def test_ironic_with_its_own_system_scoped_credentials_lists_every_node(cloud, make):
    """A credentials group with system_scope = all sees nodes no project owns."""
    keys = {cloud.create("nodes", name=f"node-{i}") for i in range(3)}
    plugin = make(NodeCollector)
    assert plugin.available() is True
    assert {e.key for e in plugin.list_all()} == keys


def test_heat_without_the_global_index_policy_names_it(cloud, make):
    """A 403 on the all-projects listing: available() names stacks:global_index in one line."""
    cloud.fail("heat", status=403)
    plugin = make(StackCollector)
    verdict = plugin.available()
    assert isinstance(verdict, str)
    assert "stacks:global_index" in verdict
    assert "\n" not in verdict
    with pytest.raises(ks_exc.Forbidden) as info:
        list(plugin.list_all())
    permanent = plugin.classify_error(info.value)
    assert isinstance(permanent, PermanentError)
    assert "stacks:global_index" in str(permanent)


def test_heat_down_is_not_called_unavailable(cloud, make):
    """available() says no only for the policy: an outage is the listing's to retry."""
    cloud.fail("heat", status=503)
    assert make(StackCollector).available() is True


def test_nagios_hosts_go_down_and_up_as_updates_and_rechecks_tell_nothing(cloud, make):
    """nagios.host: one update per status change; new output and timers change nothing."""
    for name in ("compute-a", "compute-b"):
        cloud.create("nagios_hosts", name=name)
    plugin = make(HostCollector)
    changes, baseline = poll(plugin, {})
    assert changes == {("create", "compute-a"), ("create", "compute-b")}
    cloud.update("nagios_hosts", "compute-b", status="DOWN")
    changes, baseline = poll(plugin, baseline)
    assert changes == {("update", "compute-b")}
    entity = next(e for e in plugin.list_all() if e.key == "compute-b")
    assert (entity.state, entity.parent) == ("DOWN", Ref("nova.host", "compute-b"))
    cloud.update("nagios_hosts", "compute-a", output="UP - rechecked")
    changes, baseline = poll(plugin, baseline)
    assert changes == set()
    cloud.delete("nagios_hosts", "compute-a")
    changes, _ = poll(plugin, baseline)
    assert changes == {("delete", "compute-a")}


@pytest.mark.parametrize("plugin", [VolumeCollector, NetworkCollector, PortCollector], ids=str)
def test_a_token_without_the_all_projects_role_refuses_to_list(cloud, make, plugin):
    """Cinder and Neutron answer a non-admin with its own projects (200): never complete."""
    collector = make(plugin, all_projects_role="synchronizer-auditor")
    verdict = collector.available()
    assert isinstance(verdict, str)
    assert "synchronizer-auditor" in verdict
    assert "\n" not in verdict
    cloud.reset_stats()
    with pytest.raises(PermanentError, match="synchronizer-auditor"):
        list(collector.list_all())
    assert cloud.request_count(service=CASE[plugin].service) == 0
    assert make(plugin).available() is True  # the fake's admin has the admin role
