"""Nova API records (servers, services, hypervisors, zones) → entity facts."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from oslo_config import cfg

from synchronizer import fingerprint
from synchronizer.errors import ConfigError, PermanentError, TransientError
from synchronizer_plugins import openstack
from synchronizer_plugins.nova import shapes
from synchronizer_plugins.nova.collector import translate_error
from synchronizer_plugins.nova.hosts import HostCollector, host_facts
from synchronizer_plugins.nova.instances import (
    InstanceCollector,
    is_partial,
    server_entity,
    server_instance,
)
from synchronizer_plugins.nova.zones import zone_facts
from synchronizer_plugins.paging import next_marker

SERVER_247: dict[str, Any] = {
    "id": "f5dc173b-6804-445a-a6d8-c705dad5b5eb",
    "name": "new-server-test",
    "tenant_id": "6f70656e737461636b20342065766572",
    "user_id": "admin",
    "status": "ACTIVE",
    "created": "2013-09-03T04:01:32Z",
    "updated": "2013-09-03T04:01:33Z",
    "flavor": {"original_name": "m1.tiny", "ram": 512, "vcpus": 1, "disk": 1},
    "image": {"id": "70a599e0-31e7-49b7-b260-868f441e862b", "links": []},
    "metadata": {"My Server Name": "Apache1"},
    "OS-EXT-AZ:availability_zone": "us-west",
    "OS-EXT-SRV-ATTR:host": "compute-1",
    "OS-EXT-SRV-ATTR:hypervisor_hostname": "compute-1.example.org",
    "OS-EXT-STS:power_state": 1,
    "OS-EXT-STS:task_state": None,
    "OS-EXT-STS:vm_state": "active",
    "OS-SRV-USG:launched_at": "2013-09-23T13:53:12.774549",
    "os-extended-volumes:volumes_attached": [{"id": "volume_id2"}, {"id": "volume_id1"}],
    "locked": False,
}


def make(cls: type, **overrides: Any) -> Any:
    conf = cfg.ConfigOpts()
    openstack.register_opts(conf)
    cls.register_options(conf, cls.name)
    conf(args=[], default_config_files=[])
    for name, value in overrides.items():
        conf.set_override(name, value, group=cls.name)
    return cls(conf)


def server(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(SERVER_247)
    record.update(changes)
    return record


def test_server_record_becomes_the_normalised_instance():
    """A 2.47+ servers-detail record gives every property of the shape."""
    entity = server_instance(SERVER_247, "m1.tiny").entity(
        make(InstanceCollector), volume_relations=True
    )
    assert (entity.type, entity.key, entity.state) == ("nova.instance", SERVER_247["id"], "ACTIVE")
    assert entity.project == SERVER_247["tenant_id"]
    assert entity.parent is not None
    assert entity.parent.to_dict() == {
        "type": "nova.host",
        "key": "compute-1",
    }
    assert [(r.relation, r.type, r.key) for r in entity.relations] == [
        ("attached", "cinder.volume", "volume_id1"),
        ("attached", "cinder.volume", "volume_id2"),
    ]
    assert entity.properties == {
        "name": "new-server-test",
        "host": "compute-1",
        "node": "compute-1.example.org",
        "availability_zone": "us-west",
        "flavor": "m1.tiny",
        "image": "70a599e0-31e7-49b7-b260-868f441e862b",
        "vm_state": "active",
        "task_state": None,
        "user_id": "admin",
        "created_at": "2013-09-03T04:01:32.000000Z",
        "metadata": {"My Server Name": "Apache1"},
    }


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"image": ""}, "image", None),
        ({"OS-EXT-AZ:availability_zone": ""}, "availability_zone", None),
        ({"OS-EXT-STS:task_state": "powering-off"}, "task_state", "powering-off"),
        ({"metadata": {}}, "metadata", {}),
        (
            {"updated": "2030-01-01T00:00:00Z", "OS-EXT-STS:power_state": 4},
            "name",
            "new-server-test",
        ),
    ],
    ids=["boot-from-volume", "no-zone", "task", "no-metadata", "ignored-fields"],
)
def test_server_fields_normalise(changes, field, expected):
    """Blank API values read as None, and fields outside the shape change nothing."""
    instance = server_instance(server(**changes), "m1.tiny")
    assert instance.properties()[field] == expected


def test_fields_outside_the_shape_do_not_move_the_fingerprint():
    """updated, power_state, locked and launched_at are not part of the fingerprint."""
    plugin = make(InstanceCollector)
    other = server(
        updated="2031-01-01T00:00:00Z",
        locked=True,
        **{"OS-EXT-STS:power_state": 4, "OS-SRV-USG:launched_at": "2031-01-01T00:00:00Z"},
    )
    a = server_instance(SERVER_247, "m1.tiny").entity(plugin, volume_relations=True)
    b = server_instance(other, "m1.tiny").entity(plugin, volume_relations=True)
    assert fingerprint.of(a) == fingerprint.of(b)


@pytest.mark.parametrize(
    ("vm_state", "task_state", "status", "deleted"),
    [
        ("deleted", None, "DELETED", True),
        ("soft-delete", None, "SOFT_DELETED", False),
        ("stopped", "resize_prep", "RESIZE", False),
    ],
)
def test_server_status_and_deletion_rule(vm_state, task_state, status, deleted):
    """Only vm_state deleted is a deletion; soft-deleted servers stay entities."""
    instance = server_instance(
        server(**{"OS-EXT-STS:vm_state": vm_state, "OS-EXT-STS:task_state": task_state}), None
    )
    assert (instance.status, instance.deleted) == (status, deleted)


@pytest.mark.parametrize(
    "changes",
    [
        {"id": None},
        {"OS-EXT-STS:vm_state": None},
        {"name": True},
        {"metadata": []},
        {"os-extended-volumes:volumes_attached": [{"id": None}]},
        {"created": "never"},
    ],
    ids=["no-id", "no-vm-state", "bool-name", "list-metadata", "volume-without-id", "bad-time"],
)
def test_unusable_server_records_raise(changes):
    """A record missing its id or vm_state, or with mistyped fields, raises ValueError."""
    with pytest.raises(ValueError):  # noqa: PT011 - the documented error
        server_instance(server(**changes), None)


@pytest.mark.parametrize(("name", "text"), [(12345, "12345"), (1.5, "1.5")])
def test_a_number_where_a_string_belongs_is_normalised(name, text):
    """A server whose name arrives as a JSON number converts, with the name as text."""
    assert server_instance(server(name=name), None).name == text


class _Mapping(dict):
    """A record that is a dict subclass, as some JSON decoders give."""


@pytest.mark.parametrize(
    ("changes", "volume_relations"),
    [
        ({}, True),
        ({}, False),
        ({"os-extended-volumes:volumes_attached": []}, True),
        ({"os-extended-volumes:volumes_attached": [{"id": "v1"}, {"id": "v1"}]}, True),
        ({"image": ""}, True),
        ({"image": None, "metadata": None}, True),
        ({"OS-EXT-SRV-ATTR:host": "", "OS-EXT-AZ:availability_zone": None}, True),
        ({"tenant_id": "", "user_id": "", "name": ""}, True),
        ({"OS-EXT-STS:task_state": "rebooting"}, True),
        ({"OS-EXT-STS:vm_state": "deleted"}, True),
        ({"created": "2013-09-03T04:01:32.123456+00:00"}, True),
        ({"created": "2013-09-03 06:01:32+02:00"}, True),
    ],
    ids=[
        "2.47",
        "no-relations",
        "no-volumes",
        "repeated-volume",
        "boot-from-volume",
        "null-image-metadata",
        "unscheduled",
        "blank-ids",
        "task",
        "deleted",
        "fraction",
        "offset",
    ],
)
def test_fast_conversion_is_the_validated_one(changes, volume_relations):
    """The poll's direct record->entity path builds exactly what server_instance does."""
    plugin = make(InstanceCollector)
    record = server(**changes)
    fast = server_entity(record, "m1.tiny", plugin, volume_relations)
    slow = server_instance(record, "m1.tiny").entity(plugin, volume_relations=volume_relations)
    assert fast == slow
    assert fingerprint.of(fast) == fingerprint.of(slow)
    assert server_entity(_Mapping(record), "m1.tiny", plugin, volume_relations) == slow


@pytest.mark.parametrize(
    "changes",
    [
        {"id": None},
        {"id": ""},
        {"OS-EXT-STS:vm_state": 3},
        {"name": True},
        {"OS-EXT-STS:task_state": ["x"]},
        {"metadata": []},
        {"image": "abc"},
        {"image": {"id": 5}},
        {"os-extended-volumes:volumes_attached": {"id": "v"}},
        {"created": "never"},
    ],
    ids=[
        "no-id",
        "blank-id",
        "int-vm-state",
        "bool-name",
        "list-task",
        "list-metadata",
        "string-image",
        "int-image-id",
        "volumes-not-a-list",
        "bad-time",
    ],
)
def test_fast_conversion_rejects_what_the_validated_one_rejects(changes):
    """A record unusable for server_instance raises ValueError on the fast path too."""
    plugin = make(InstanceCollector)
    with pytest.raises(ValueError):  # noqa: PT011 - the documented error
        server_entity(server(**changes), None, plugin, True)


def test_down_cell_stub_is_recognised():
    """A 2.69+ stub of a down cell (status UNKNOWN, no vm_state) is partial."""
    stub = {
        "id": "x",
        "status": "UNKNOWN",
        "tenant_id": "p",
        "created": "2013-09-03T04:01:32Z",
        "links": [],
    }
    assert is_partial(stub)
    assert not is_partial(SERVER_247)


@pytest.mark.parametrize(
    ("links", "records", "marker"),
    [
        (
            [{"rel": "next", "href": "http://x/v2.1/servers/detail?limit=2&marker=m2"}],
            [{"id": "m1"}, {"id": "m2"}],
            "m2",
        ),
        ([{"rel": "next", "href": "http://x/v2.1/servers/detail?limit=2"}], [{"id": "m9"}], "m9"),
        ([{"rel": "self", "href": "http://x"}], [{"id": "m1"}], None),
        (None, [{"id": "m1"}], None),
        ([{"rel": "next", "href": "http://x/?marker=m1"}], [], None),
    ],
    ids=["marker-in-link", "marker-from-last-record", "no-next", "no-links", "empty-page"],
)
def test_next_marker(links, records, marker):
    """The next page's marker comes from the next link, else the last record; none at the end."""
    assert next_marker(links, records) == marker


SERVICE = {
    "binary": "nova-compute",
    "host": "host1",
    "zone": "az1",
    "status": "enabled",
    "state": "up",
    "disabled_reason": None,
    "forced_down": False,
    "updated_at": "2012-10-29T13:42:05.000000",
    "id": 1,
}


def _hypervisor(hv_id: Any, node: str, host: str = "host1") -> dict[str, Any]:
    return {
        "id": hv_id,
        "hypervisor_hostname": node,
        "hypervisor_type": "QEMU",
        "host_ip": "192.168.1.135",
        "state": "up",
        "status": "enabled",
        "service": {"host": host, "id": 2, "disabled_reason": None},
    }


def test_hypervisor_id_forms_and_removed_fields_give_the_same_host():
    """Integer (<2.53) or UUID (2.53+) ids, with or without pre-2.88 counters: same entity."""
    plugin = make(HostCollector)
    old = dict(_hypervisor(1, "node1"), vcpus=8, memory_mb=8192, running_vms=3, free_ram_mb=1)
    new = dict(_hypervisor("f6d28711-9c10-470e-8b31-c03f498b0032", "node1"), uptime=None)
    a = host_facts("host1", SERVICE, [old]).entity(plugin)
    b = host_facts("host1", dict(SERVICE, id="21bbb5fb-ec98-48b3-89cf-c94402c55611"), [new]).entity(
        plugin
    )
    assert fingerprint.of(a) == fingerprint.of(b)
    assert (a.key, a.state, a.parent.key if a.parent else None) == ("host1", "up", "az1")
    assert a.properties == {
        "status": "enabled",
        "disabled_reason": None,
        "forced_down": False,
        "nodes": ["node1"],
        "hypervisor_type": "QEMU",
        "host_ip": "192.168.1.135",
    }


@pytest.mark.parametrize(
    ("changes", "state"),
    [
        ({}, "up"),
        ({"state": "down"}, "down"),
        ({"status": "disabled", "disabled_reason": "maintenance"}, "up-disabled"),
        ({"state": "down", "status": "disabled", "forced_down": True}, "down-disabled"),
    ],
)
def test_host_state_comes_from_the_service(changes, state):
    """The service's state and status give the host's state."""
    entity = host_facts("host1", dict(SERVICE, **changes), []).entity(make(HostCollector))
    assert entity.state == state


def test_ironic_host_lists_every_node_sorted():
    """A compute host with several hypervisor nodes is one host listing all nodes."""
    nodes = [_hypervisor(i, f"node-{n}") for i, n in enumerate("cab")]
    entity = host_facts("host1", SERVICE, nodes).entity(make(HostCollector))
    assert entity.properties["nodes"] == ["node-a", "node-b", "node-c"]


def test_host_without_service_record_uses_its_node():
    """Hypervisors whose service is not listed still make a host, without a zone."""
    hv = dict(_hypervisor(1, "n1"), status="disabled")
    entity = host_facts("host1", None, [hv]).entity(make(HostCollector))
    assert (entity.state, entity.parent) == ("up-disabled", None)


@pytest.mark.parametrize(
    ("record", "state", "hosts"),
    [
        (
            {
                "zoneName": "nova",
                "zoneState": {"available": True},
                "hosts": {"c2": {"nova-compute": {}}, "c1": {"nova-compute": {}}},
            },
            "available",
            ["c1", "c2"],
        ),
        ({"zoneName": "az9", "zoneState": {"available": False}, "hosts": None}, "unavailable", []),
    ],
)
def test_zone_record(record, state, hosts):
    """A zone's state is available/unavailable and its hosts are sorted."""
    facts = zone_facts(record)
    assert (facts.available, sorted(facts.hosts)) == (state == "available", hosts)


def test_zone_record_without_state_raises():
    """A zone record without zoneState.available is unusable."""
    with pytest.raises(ValueError, match="available"):
        zone_facts({"zoneName": "nova", "zoneState": {}})


@pytest.mark.parametrize("value", ["2.0", "2.97"])
def test_max_microversion_out_of_range_is_a_config_error(value):
    """max_microversion must lie between 2.1 and the plugin's newest, 2.96."""
    with pytest.raises(ConfigError, match="max_microversion"):
        make(InstanceCollector, max_microversion=value)


def test_max_microversion_must_be_a_compute_microversion():
    """A value that is not 2.N is refused by the option itself."""
    with pytest.raises(ValueError, match="regex"):
        make(InstanceCollector, max_microversion="3.1")


def _http_error(code: int) -> Exception:
    from novaclient import exceptions as nova_exc

    return nova_exc.from_response(
        type("R", (), {"status_code": code, "headers": {}})(), {}, "/x", "GET"
    )


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (400, PermanentError),
        (401, TransientError),
        (403, PermanentError),
        (406, TransientError),
        (404, TransientError),
        (409, TransientError),
        (429, TransientError),
        (500, TransientError),
        (503, TransientError),
    ],
)
def test_nova_http_errors_are_classified(code, kind):
    """Bad requests and refused roles are permanent; refused credentials and the rest retried."""
    assert type(translate_error(_http_error(code))) is kind


def test_a_marker_deleted_under_the_walk_is_retried():
    """Nova's 400 for a marker deleted while paging is transient: the next cycle walks again."""
    from novaclient import exceptions as nova_exc

    exc = nova_exc.from_response(
        type("R", (), {"status_code": 400, "headers": {}})(),
        {"badRequest": {"message": "marker [7d4d] not found", "code": 400}},
        "/os-hypervisors/detail",
        "GET",
    )
    assert type(translate_error(exc)) is TransientError
    assert "deleted while the listing walked past it" in str(translate_error(exc))


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("EndpointNotFound", PermanentError),
        ("Unauthorized", TransientError),
        ("ConnectFailure", TransientError),
        ("ConnectTimeout", TransientError),
        ("ServiceUnavailable", TransientError),
    ],
)
def test_keystoneauth_errors_are_classified(error, kind):
    """A missing endpoint is permanent; refused credentials and outages are retried."""
    from keystoneauth1 import exceptions as ks_exc

    assert type(translate_error(getattr(ks_exc, error)("boom"))) is kind


def test_instance_properties_are_exactly_the_shape():
    """The instance shape carries exactly its eleven documented properties."""
    assert sorted(server_instance(SERVER_247, None).properties()) == sorted(
        [
            "name",
            "host",
            "node",
            "availability_zone",
            "flavor",
            "image",
            "vm_state",
            "task_state",
            "user_id",
            "created_at",
            "metadata",
        ]
    )
    assert frozenset() == shapes.VOLATILE
