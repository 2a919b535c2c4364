"""Cinder, Neutron, Ironic, Heat and Nagios of the fake cloud over HTTP."""

from __future__ import annotations

import json
import re

import pytest
import requests


def _walk(get, service_type, path, links_key, version=None):
    """Every page of a listing, following its next links."""
    pages, url = [], path
    while url:
        body = get(service_type, url, version).json()
        pages.append(body)
        links = body.get(links_key)
        if isinstance(links, str):
            url = links
        else:
            url = next((link["href"] for link in links or [] if link["rel"] == "next"), None)
    return pages


def test_cinder_pages_volumes_of_all_tenants(populated, get):
    """Cinder's volumes/detail pages by limit and marker with volumes_links."""
    pages = _walk(get, "volumev3", "/volumes/detail?all_tenants=1&limit=4", "volumes_links")
    ids = [v["id"] for page in pages for v in page["volumes"]]
    assert [len(p["volumes"]) for p in pages] == [4, 4, 2]
    assert len(set(ids)) == 10
    own = get("volumev3", "/volumes/detail").json()["volumes"]
    assert {v["os-vol-tenant-attr:tenant_id"] for v in own} == {populated.credentials.project_id}


def test_cinder_attachment_shape(populated, get):
    """An attached volume is in-use with an attachment naming server, host and device."""
    volumes = get("volumev3", "/volumes/detail?all_tenants=1").json()["volumes"]
    volume = next(v for v in volumes if v["attachments"])
    attachment = volume["attachments"][0]
    assert volume["status"] == "in-use"
    assert set(attachment) == {
        "id",
        "attachment_id",
        "volume_id",
        "server_id",
        "host_name",
        "device",
        "attached_at",
    }
    server = populated.get("servers", attachment["server_id"])
    assert attachment["host_name"] == server["OS-EXT-SRV-ATTR:host"]
    assert {"id": volume["id"], "delete_on_termination": False} in server[
        "os-extended-volumes:volumes_attached"
    ]


def test_cinder_microversion_fields(populated, get):
    """Cinder volume keys follow the volume microversion, echoed in the response."""
    old = get("volumev3", "/volumes/detail?all_tenants=1&limit=1", "3.0")
    new = get("volumev3", "/volumes/detail?all_tenants=1&limit=1", "3.65")
    assert new.headers["OpenStack-API-Version"] == "volume 3.65"
    assert "group_id" not in old.json()["volumes"][0]
    assert {
        "group_id",
        "provider_id",
        "service_uuid",
        "shared_targets",
        "cluster_name",
        "volume_type_id",
        "consumes_quota",
    } <= set(new.json()["volumes"][0])


def test_deleting_a_server_detaches_its_volumes_and_ports(populated, get):
    """Deleting a server detaches its volumes and deletes its ports, as Nova does."""
    volume = next(
        k for k in populated.keys("volumes") if populated.get("volumes", k)["attachments"]
    )
    server = populated.get("volumes", volume)["attachments"][0]["server_id"]
    populated.delete("servers", server)
    assert populated.get("volumes", volume)["status"] == "available"
    ports = get("network", f"/v2.0/ports?device_id={server}").json()["ports"]
    assert ports == []


def test_neutron_lists_everything_without_limit(populated, get):
    """Neutron without a limit returns every record and no links."""
    body = get("network", "/v2.0/ports").json()
    assert len(body["ports"]) == 10
    assert "ports_links" not in body


def test_neutron_pages_with_next_and_previous_links(populated, get):
    """With a limit Neutron pages by marker; next appears on full pages, previous always."""
    pages = _walk(get, "network", "/v2.0/ports?limit=4", "ports_links")
    assert [len(p["ports"]) for p in pages] == [4, 4, 2]
    rels = [[link["rel"] for link in p["ports_links"]] for p in pages]
    assert rels == [["next", "previous"], ["next", "previous"], ["previous"]]
    nets = _walk(get, "network", "/v2.0/networks?limit=3", "networks_links")
    assert [len(p["networks"]) for p in nets] == [3, 0]


def test_neutron_port_shape_and_revision(populated, get):
    """A port bound to a server names its device, owner and host; updates bump revision_number."""
    port = next(p for p in get("network", "/v2.0/ports").json()["ports"] if p["device_id"])
    server = populated.get("servers", port["device_id"])
    assert port["device_owner"] == "compute:" + server["OS-EXT-AZ:availability_zone"]
    assert port["binding:host_id"] == server["OS-EXT-SRV-ATTR:host"]
    assert port["project_id"] == port["tenant_id"]
    populated.update("ports", port["id"], status="DOWN")
    again = get("network", f"/v2.0/ports/{port['id']}").json()["port"]
    assert (again["status"], again["revision_number"]) == ("DOWN", port["revision_number"] + 1)


def test_neutron_unknown_marker_is_404(populated, get):
    """Neutron answers 404 NetworkNotFound for an unknown marker."""
    resp = get("network", "/v2.0/networks?limit=1&marker=nope", raise_exc=False)
    assert resp.status_code == 404
    assert resp.json()["NeutronError"]["type"] == "NetworkNotFound"


def test_ironic_headers_and_next_link(populated, get):
    """Ironic answers with its version headers and a top-level next URL on full pages."""
    pages = _walk(get, "baremetal", "/v1/nodes/detail?limit=2", "next", "1.65")
    assert [len(p["nodes"]) for p in pages] == [2, 2, 1]
    resp = get("baremetal", "/v1/nodes/detail?limit=1", "1.65")
    assert resp.headers["X-OpenStack-Ironic-API-Version"] == "1.65"
    assert resp.headers["X-OpenStack-Ironic-API-Minimum-Version"] == "1.1"
    node = resp.json()["nodes"][0]
    assert {
        "uuid",
        "name",
        "power_state",
        "provision_state",
        "maintenance",
        "instance_uuid",
        "owner",
        "lessee",
        "driver",
        "updated_at",
        "conductor_group",
    } <= set(node)


def test_ironic_fields_follow_version(populated, get):
    """Ironic hides fields newer than the requested version (1.1 by default)."""
    default = get("baremetal", "/v1/nodes/detail?limit=1").json()["nodes"][0]
    assert "name" not in default
    assert "owner" not in default
    assert "lessee" not in get("baremetal", "/v1/nodes/detail?limit=1", "1.64").json()["nodes"][0]


def test_ironic_error_body(populated, get):
    """Ironic's errors carry a JSON document inside the error_message string."""
    resp = get("baremetal", "/v1/nodes/nope", "1.65", raise_exc=False)
    assert resp.status_code == 404
    fault = json.loads(resp.json()["error_message"])
    assert fault["faultstring"] == "Node nope could not be found."


def test_heat_global_tenant_with_links(populated, get):
    """Heat lists every project's stacks with global_tenant and pages only when asked."""
    stacks = get("orchestration", "/stacks?global_tenant=true").json()
    assert len(stacks["stacks"]) == 4
    assert "links" not in stacks
    assert all("project" in s for s in stacks["stacks"])
    pages = _walk(get, "orchestration", "/stacks?global_tenant=true&limit=3", "links")
    assert [len(p["stacks"]) for p in pages] == [3, 1]
    own = get("orchestration", "/stacks").json()["stacks"]
    assert len(own) == 1
    assert "project" not in own[0]


def test_heat_unknown_marker_restarts_listing(populated, get):
    """Heat ignores an unknown marker and lists from the start, as real Heat does."""
    everything = get("orchestration", "/stacks?global_tenant=true").json()["stacks"]
    restarted = get("orchestration", "/stacks?global_tenant=true&marker=gone").json()["stacks"]
    assert restarted == everything


def test_heat_hides_nested_stacks_unless_asked(populated, get):
    """Nested stacks (with a parent) are listed only with show_nested=true."""
    parent = populated.keys("stacks")[0]
    populated.create("stacks", name="child", parent=parent)
    names = {
        s["stack_name"] for s in get("orchestration", "/stacks?global_tenant=true").json()["stacks"]
    }
    nested = {
        s["stack_name"]
        for s in get("orchestration", "/stacks?global_tenant=true&show_nested=true").json()[
            "stacks"
        ]
    }
    assert "child" not in names
    assert "child" in nested


def test_nagios_requires_basic_auth(populated):
    """statusjson.cgi answers 401 with a Basic challenge without the right credentials."""
    url = populated.nagios_url + "?query=servicelist&details=true"
    assert requests.get(url, timeout=5).status_code == 401
    bad = requests.get(url, auth=("nagiosadmin", "wrong"), timeout=5)
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"] == 'Basic realm="Nagios Access"'


def test_nagios_servicelist_shape(populated):
    """The service list has Nagios' envelope, host->service nesting and status bits."""
    populated.update(
        "nagios_services",
        "compute-0001;ssh",
        status="CRITICAL",
        output="CRITICAL - connection refused",
    )
    url = populated.nagios_url + "?query=servicelist&details=true"
    body = requests.get(url, auth=("nagiosadmin", "nagios"), timeout=5).json()
    assert body["format_version"] == 0
    assert body["result"]["type_text"] == "Success"
    assert body["result"]["cgi"] == "statusjson.cgi"
    services = body["data"]["servicelist"]
    assert set(services) == {"compute-0001", "compute-0002", "compute-0003", "compute-0004"}
    ssh = services["compute-0001"]["ssh"]
    assert (ssh["status"], ssh["last_hard_state"]) == (16, 2)
    assert ssh["plugin_output"] == "CRITICAL - connection refused"
    assert services["compute-0002"]["ssh"]["status"] == 2


def test_nagios_timers_advance(populated, manual_time):
    """last_check and next_check move between requests; last_state_change does not."""
    url = populated.nagios_url + "?query=service&hostname=compute-0001&servicedescription=ssh"
    first = requests.get(url, auth=("nagiosadmin", "nagios"), timeout=5).json()
    manual_time.advance(7)
    second = requests.get(url, auth=("nagiosadmin", "nagios"), timeout=5).json()
    one, two = first["data"]["service"], second["data"]["service"]
    assert two["last_check"] > one["last_check"]
    assert two["next_check"] > one["next_check"]
    assert two["last_state_change"] == one["last_state_change"]


@pytest.mark.parametrize(
    ("service_type", "path"),
    [
        ("volumev3", "/volumes/detail?all_tenants=1"),
        ("network", "/v2.0/networks"),
        ("baremetal", "/v1/nodes/detail"),
        ("orchestration", "/stacks?global_tenant=1"),
    ],
)
def test_updated_times_move_on_change(populated, get, manual_time, service_type, path):
    """Every kind's updated time moves when the record changes."""
    kind, field, change = {
        "volumev3": ("volumes", "updated_at", {"name": "renamed"}),
        "network": ("networks", "updated_at", {"name": "renamed"}),
        "baremetal": ("nodes", "updated_at", {"maintenance": True}),
        "orchestration": ("stacks", "updated_time", {"status": "UPDATE_COMPLETE"}),
    }[service_type]
    key = populated.keys(kind)[0]
    before = populated.record(kind, key)
    manual_time.advance(1.5)  # some APIs print whole seconds
    populated.update(kind, key, **change)
    after = populated.record(kind, key)
    assert after.updated > before.updated
    assert after.doc[field] != before.doc[field]
    listed = get(service_type, path, "1.65" if service_type == "baremetal" else None).json()
    collection = next(v for v in listed.values() if isinstance(v, list))
    record = next(r for r in collection if key in (r.get("id"), r.get("uuid")))
    assert record[field] == after.doc[field]


def test_ironic_shows_a_project_scoped_token_only_its_projects_nodes(populated, session, get):
    """As Ironic 39: a project-scoped admin gets 200 with the nodes its project owns or leases."""
    project = populated.credentials.project_id
    owned = populated.create("nodes", name="owned", owner=project)
    leased = populated.create("nodes", name="leased", lessee=project)
    headers = {"OpenStack-API-Version": "baremetal 1.65"}
    url = "/v1/nodes/detail"
    resp = session.get(url, endpoint_filter={"service_type": "baremetal"}, headers=headers)
    assert resp.status_code == 200
    assert {n["uuid"] for n in resp.json()["nodes"]} == {owned, leased}
    every = {n["uuid"] for n in get("baremetal", url, "1.65").json()["nodes"]}
    assert {owned, leased} < every  # the system-scoped token sees them all
    other = next(k for k in populated.keys("nodes") if k not in (owned, leased))
    hidden = session.get(
        f"/v1/nodes/{other}",
        endpoint_filter={"service_type": "baremetal"},
        headers=headers,
        raise_exc=False,
    )
    assert hidden.status_code == 404


def test_ironic_and_cinder_times_are_whole_seconds(populated, get):
    """Both store times without fractions (MySQL): Cinder prints .000000, Ironic no fraction."""
    node = get("baremetal", "/v1/nodes/detail?limit=1", "1.65").json()["nodes"][0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", node["created_at"])
    volume = get("volumev3", "/volumes/detail?all_tenants=1&limit=1").json()["volumes"][0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000000", volume["created_at"])


def test_ironic_answers_in_its_own_version_header_only(populated, get):
    """Ironic 39 echoes the version in X-OpenStack-Ironic-API-Version, not OpenStack-API-Version."""
    resp = get("baremetal", "/v1/nodes/detail?limit=1", "1.65")
    assert resp.headers["X-OpenStack-Ironic-API-Version"] == "1.65"
    assert "OpenStack-API-Version" not in resp.headers


def test_heat_stack_owner_is_the_creators_name(populated, get):
    """Heat lists stack_owner as the user name of whoever created the stack."""
    stacks = get("orchestration", "/stacks?global_tenant=1").json()["stacks"]
    assert {s["stack_owner"] for s in stacks} == {populated.credentials.username}


def test_nagios_hostlist_shape(cloud):
    """The host list, as Nagios 4.4 prints it: records named by ``name``, host status bits."""
    cloud.create("nagios_hosts", name="compute-a")
    cloud.create("nagios_hosts", name="compute-b", status="DOWN", output="DOWN - unplugged")
    url = cloud.nagios_url + "?query=hostlist&details=true"
    body = requests.get(url, auth=("nagiosadmin", "nagios"), timeout=5).json()
    assert body["result"]["query"] == "hostlist"
    hosts = body["data"]["hostlist"]
    assert set(hosts) == {"compute-a", "compute-b"}
    down = hosts["compute-b"]
    assert (down["name"], down["status"], down["last_hard_state"]) == ("compute-b", 4, 1)
    assert "host_name" not in down
    assert down["plugin_output"] == "DOWN - unplugged"
    assert hosts["compute-a"]["status"] == 2
    brief = requests.get(
        cloud.nagios_url + "?query=hostlist", auth=("nagiosadmin", "nagios"), timeout=5
    ).json()
    assert brief["data"]["hostlist"] == {"compute-a": 2, "compute-b": 4}
    one = requests.get(
        cloud.nagios_url + "?query=host&hostname=compute-b",
        auth=("nagiosadmin", "nagios"),
        timeout=5,
    ).json()
    assert one["data"]["host"]["status"] == 4
