"""Nova of the fake cloud, driven by python-novaclient and keystoneauth."""

from __future__ import annotations

import datetime

import pytest
import requests
from novaclient import api_versions, client
from novaclient import exceptions as nova_exc


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat()


def _walk(get, path, version=None):
    """Every page of a Nova listing, following the next links."""
    pages, url = [], path
    while url:
        body = get("compute", url, version).json()
        pages.append(body)
        links = body.get("servers_links") or body.get("hypervisors_links") or []
        url = links[0]["href"] if links else None
    return pages


def test_novaclient_negotiates_latest_microversion(populated, session):
    """novaclient's discover_version settles on 2.96, the fake's and novaclient's maximum."""
    nova = client.Client("2.1", session=session)
    version = api_versions.discover_version(nova, api_versions.APIVersion("2.latest"))
    assert version == api_versions.APIVersion("2.96")
    servers = client.Client(version, session=session).servers.list(limit=5)
    assert len(servers) == 5


def test_microversion_headers_are_echoed(populated, get):
    """Both microversion headers are echoed back, whichever the client sent."""
    resp = get("compute", "/servers/detail?limit=1", "2.53")
    assert resp.headers["OpenStack-API-Version"] == "compute 2.53"
    assert resp.headers["X-OpenStack-Nova-API-Version"] == "2.53"
    legacy = get(
        "compute", "/servers/detail?limit=1", headers={"X-OpenStack-Nova-API-Version": "2.19"}
    )
    assert legacy.headers["OpenStack-API-Version"] == "compute 2.19"
    plain = get("compute", "/servers/detail?limit=1")
    assert plain.headers["X-OpenStack-Nova-API-Version"] == "2.1"


@pytest.mark.parametrize("version", ["2.97", "3.0", "2.0"])
def test_out_of_range_microversion_is_406(populated, session, token, version):
    """A microversion outside 2.1-2.96 is refused with 406."""
    url = session.get_endpoint(service_type="compute") + "/servers/detail"
    resp = requests.get(
        url,
        headers={"X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"},
        timeout=5,
    )
    assert resp.status_code == 406


def test_novaclient_lists_all_pages_of_all_tenants(populated, session):
    """novaclient with limit=-1 walks every page and gets each server exactly once."""
    nova = client.Client("2.96", session=session)
    servers = nova.servers.list(search_opts={"all_tenants": True}, limit=-1)
    assert len({s.id for s in servers}) == len(servers) == 120
    own = nova.servers.list(limit=-1)
    assert {s.tenant_id for s in own} == {populated.credentials.project_id}
    assert 0 < len(own) < 120


def test_pages_are_full_with_next_links(populated, get):
    """Full pages carry an absolute next link with limit and marker; the last page does not."""
    pages = _walk(get, "/servers/detail?all_tenants=1&limit=50")
    assert [len(p["servers"]) for p in pages] == [50, 50, 20]
    href = pages[0]["servers_links"][0]["href"]
    assert href.startswith(populated.url + "/compute/v2.1/servers/detail?")
    assert "limit=50" in href
    assert f"marker={pages[0]['servers'][-1]['id']}" in href
    assert "servers_links" not in pages[-1]


def test_default_page_size_is_1000(cloud, get):
    """Without a limit Nova serves pages of 1000 with a next link when a page is full."""
    cloud.populate(servers=1001, hosts=1)
    pages = _walk(get, "/servers/detail?all_tenants=1")
    assert [len(p["servers"]) for p in pages] == [1000, 1]
    assert "limit" not in pages[0]["servers_links"][0]["href"]


def test_unknown_marker_is_bad_request(populated, get):
    """An unknown marker is answered with Nova's 400 'marker [x] not found'."""
    resp = get("compute", "/servers/detail?marker=nope", raise_exc=False)
    assert resp.status_code == 400
    assert resp.json() == {"badRequest": {"code": 400, "message": "marker [nope] not found"}}


def test_changes_since_reports_updates_and_deletions(populated, session, manual_time):
    """changes-since returns servers changed at or after the time, deleted ones as DELETED."""
    nova = client.Client("2.96", session=session)
    keys = populated.keys("servers")
    manual_time.advance(60)
    since = manual_time.now
    manual_time.advance(1)
    populated.update("servers", keys[1], status="SHUTOFF")
    populated.delete("servers", keys[2])
    changed = nova.servers.list(
        search_opts={"all_tenants": True, "changes-since": _iso(since)}, limit=-1
    )
    assert {s.id: s.status for s in changed} == {keys[1]: "SHUTOFF", keys[2]: "DELETED"}
    deleted = next(s for s in changed if s.id == keys[2])
    assert getattr(deleted, "OS-EXT-STS:vm_state") == "deleted"
    everything = nova.servers.list(search_opts={"all_tenants": True}, limit=-1)
    assert keys[2] not in {s.id for s in everything}


def test_changes_before_needs_266(populated, get, manual_time):
    """changes-before bounds the window from 2.66 on and is ignored before."""
    keys = populated.keys("servers")
    created = populated.record("servers", keys[0]).updated
    manual_time.advance(60)
    populated.update("servers", keys[0], status="SHUTOFF")
    path = (
        f"/servers/detail?all_tenants=1&changes-since={_iso(created - 10)}"
        f"&changes-before={_iso(created + 30)}"
    )
    assert len(get("compute", path, "2.66").json()["servers"]) == 119
    assert len(get("compute", path, "2.65").json()["servers"]) == 120


@pytest.mark.parametrize(
    ("version", "present", "absent"),
    [
        (
            "2.1",
            ["OS-EXT-SRV-ATTR:host", "OS-EXT-AZ:availability_zone"],
            ["locked", "tags", "description", "OS-EXT-SRV-ATTR:hostname", "host_status"],
        ),
        ("2.25", ["locked", "host_status", "description"], ["tags"]),
        ("2.26", ["tags"], ["trusted_image_certificates"]),
        ("2.73", ["locked_reason", "trusted_image_certificates"], ["pinned_availability_zone"]),
        ("2.96", ["pinned_availability_zone", "OS-EXT-SRV-ATTR:hypervisor_hostname"], []),
    ],
)
def test_server_fields_follow_microversion(populated, get, version, present, absent):
    """Server keys appear with the microversion that added them."""
    server = get("compute", "/servers/detail?limit=1", version).json()["servers"][0]
    assert set(present) <= set(server)
    assert not set(absent) & set(server)


def test_flavor_is_embedded_from_247(populated, get):
    """Before 2.47 a server's flavor is {id, links}; from 2.47 it is the embedded flavor."""
    old = get("compute", "/servers/detail?limit=1", "2.46").json()["servers"][0]["flavor"]
    new = get("compute", "/servers/detail?limit=1", "2.47").json()["servers"][0]["flavor"]
    assert set(old) == {"id", "links"}
    assert {"vcpus", "ram", "disk", "original_name", "extra_specs"} <= set(new)
    assert "id" not in new


def test_server_show_and_404(populated, session):
    """GET /servers/{id} shows a live server and 404s a deleted one."""
    nova = client.Client("2.96", session=session)
    key = populated.keys("servers")[0]
    server = nova.servers.get(key)
    assert server.id == key
    assert server.server_groups == []
    populated.delete("servers", key)
    with pytest.raises(nova_exc.NotFound):
        nova.servers.get(key)


def test_host_status_follows_the_host(populated, get):
    """host_status (2.16+) tracks the host's service state without moving 'updated'."""
    key = populated.keys("servers")[0]
    host = populated.get("servers", key)["OS-EXT-SRV-ATTR:host"]
    before = get("compute", f"/servers/{key}", "2.16").json()["server"]
    populated.update("hypervisors", host, state="down")
    after = get("compute", f"/servers/{key}", "2.16").json()["server"]
    assert (before["host_status"], after["host_status"]) == ("UP", "UNKNOWN")
    assert before["updated"] == after["updated"]


def test_hypervisor_ids_are_integers_before_253(populated, session):
    """Hypervisor and service ids are integers at 2.52 and UUIDs from 2.53."""
    old = client.Client("2.52", session=session).hypervisors.list()
    new = client.Client("2.53", session=session).hypervisors.list()
    assert all(isinstance(h.id, int) for h in old)
    assert all(isinstance(h.service["id"], int) for h in old)
    assert all(len(h.id) == 36 for h in new)
    assert [h.hypervisor_hostname for h in old] == [h.hypervisor_hostname for h in new]


def test_hypervisor_resource_fields_removed_at_288(populated, get):
    """vcpus, memory_mb, running_vms, cpu_info ... are present at 2.87 and gone at 2.88."""
    removed = {
        "vcpus",
        "memory_mb",
        "local_gb",
        "vcpus_used",
        "memory_mb_used",
        "local_gb_used",
        "free_ram_mb",
        "free_disk_gb",
        "current_workload",
        "running_vms",
        "disk_available_least",
        "cpu_info",
    }
    old = get("compute", "/os-hypervisors/detail", "2.87").json()["hypervisors"]
    new = get("compute", "/os-hypervisors/detail", "2.88").json()["hypervisors"]
    assert removed <= set(old[0])
    assert not removed & set(new[0])
    assert "uptime" in new[0]
    assert sum(h["running_vms"] for h in old) == 120


def test_cpu_info_is_a_string_before_228(populated, get):
    """cpu_info is a JSON string before 2.28 and an object from 2.28."""
    old = get("compute", "/os-hypervisors/detail", "2.27").json()["hypervisors"][0]
    new = get("compute", "/os-hypervisors/detail", "2.28").json()["hypervisors"][0]
    assert isinstance(old["cpu_info"], str)
    assert isinstance(new["cpu_info"], dict)


def test_hypervisors_page_from_233(populated, get):
    """From 2.33 hypervisors page by limit and marker with hypervisors_links."""
    pages = _walk(get, "/os-hypervisors/detail?limit=3", "2.53")
    assert [len(p["hypervisors"]) for p in pages] == [3, 1]
    unpaged = get("compute", "/os-hypervisors/detail?limit=3", "2.32").json()
    assert len(unpaged["hypervisors"]) == 4
    assert "hypervisors_links" not in unpaged


def test_hypervisor_service_host_is_the_server_host(populated, get):
    """A server's OS-EXT-SRV-ATTR:host is a hypervisor's service.host, and names differ."""
    hypervisors = get("compute", "/os-hypervisors/detail", "2.53").json()["hypervisors"]
    by_host = {h["service"]["host"]: h for h in hypervisors}
    server = get("compute", "/servers/detail?limit=1", "2.53").json()["servers"][0]
    hyp = by_host[server["OS-EXT-SRV-ATTR:host"]]
    assert hyp["hypervisor_hostname"] == server["OS-EXT-SRV-ATTR:hypervisor_hostname"]
    assert hyp["hypervisor_hostname"] != hyp["service"]["host"]


def test_with_servers_lists_instances_per_hypervisor(populated, get):
    """with_servers=true (2.53+) lists each hypervisor's servers by name and uuid."""
    hypervisors = get("compute", "/os-hypervisors/detail?with_servers=true", "2.53").json()[
        "hypervisors"
    ]
    assert sum(len(h.get("servers", [])) for h in hypervisors) == 120


def test_availability_zones_detail(populated, get):
    """Zones list their enabled hosts; a zone whose hosts are all disabled is unavailable."""
    zones = get("compute", "/os-availability-zone/detail").json()["availabilityZoneInfo"]
    names = {z["zoneName"]: z for z in zones}
    assert set(names) == {"internal", "zone-0", "zone-1"}
    assert names["zone-0"]["zoneState"] == {"available": True}
    host = next(iter(names["zone-1"]["hosts"]))
    assert names["zone-1"]["hosts"][host]["nova-compute"]["available"] is True
    for hyp in names["zone-1"]["hosts"]:
        populated.update("hypervisors", hyp, status="disabled", disabled_reason="test")
    zones = get("compute", "/os-availability-zone/detail").json()["availabilityZoneInfo"]
    zone1 = next(z for z in zones if z["zoneName"] == "zone-1")
    assert zone1 == {"zoneName": "zone-1", "zoneState": {"available": False}, "hosts": None}


def test_os_services_lists_compute_services(populated, session):
    """os-services lists one nova-compute per host with the host's state and status."""
    populated.update("hypervisors", "compute-0001", status="disabled", disabled_reason="m")
    services = client.Client("2.53", session=session).services.list(binary="nova-compute")
    by_host = {s.host: s for s in services}
    assert len(by_host) == 4
    assert by_host["compute-0001"].status == "disabled"
    assert by_host["compute-0001"].disabled_reason == "m"


def test_services_report_a_heartbeat_like_nova(populated, get, manual_time):
    """updated_at moves every 10 s while a service is up (whole seconds), and freezes when down.

    As a real Nova's os-services: the time is the service's last report, kept
    by MySQL without microseconds, for the controller services too.
    """

    def updated() -> dict[str, str]:
        services = get("compute", "/os-services").json()["services"]
        return {f"{s['binary']}@{s['host']}": s["updated_at"] for s in services}

    populated.update("hypervisors", "compute-0002", state="down")
    before = updated()
    assert [v for v in before.values() if not v.endswith(".000000")] == []
    manual_time.advance(10)
    after = updated()
    moved = {name for name in before if after[name] != before[name]}
    assert moved == set(before) - {"nova-compute@compute-0002"}
    zones = get("compute", "/os-availability-zone/detail").json()["availabilityZoneInfo"]
    internal = next(z for z in zones if z["zoneName"] == "internal")
    for binaries in internal["hosts"].values():
        assert {b["updated_at"] for b in binaries.values()} == {after["nova-conductor@controller"]}


def test_changes_since_is_inclusive_at_whole_seconds(populated, get, manual_time):
    """Sending back a server's own 'updated' (whole seconds) as changes-since returns it again."""
    manual_time.advance(30.7)
    key = populated.keys("servers")[5]
    populated.update("servers", key, status="PAUSED")
    updated = get("compute", f"/servers/{key}").json()["server"]["updated"]
    listed = get("compute", f"/servers/detail?all_tenants=1&changes-since={updated}").json()
    assert [s["id"] for s in listed["servers"]] == [key]


def test_legacy_endpoint_with_project_id(populated, session, token):
    """A legacy compute URL with the project id in its path serves the same API."""
    url = f"{populated.url}/compute/v2.1/{populated.credentials.project_id}/servers?limit=2"
    resp = requests.get(url, headers={"X-Auth-Token": token}, timeout=5)
    assert len(resp.json()["servers"]) == 2
    assert set(resp.json()["servers"][0]) == {"id", "name", "links"}


# -- flavors ------------------------------------------------------------------------


def _flavor_pages(get, path, version=None):
    pages, url = [], path
    while url:
        body = get("compute", url, version).json()
        pages.append(body)
        links = body.get("flavors_links") or []
        url = links[0]["href"] if links else None
    return pages


def test_novaclient_lists_and_shows_the_default_flavors(cloud, session):
    """A fresh cloud has the five m1 flavors, ids 1-5, listed in id order and shown by id."""
    nova = client.Client("2.96", session=session)
    flavors = nova.flavors.list()
    assert [(f.id, f.name) for f in flavors] == [
        ("1", "m1.tiny"),
        ("2", "m1.small"),
        ("3", "m1.medium"),
        ("4", "m1.large"),
        ("5", "m1.xlarge"),
    ]
    medium = nova.flavors.get("3")
    assert (medium.vcpus, medium.ram, medium.disk, medium.swap) == (2, 4096, 40, 0)
    assert medium.links[0]["href"] == f"{cloud.url}/compute/v2.1/flavors/3"
    cloud.delete("flavors", "1")
    cloud.reset()
    assert "1" in cloud.keys("flavors")


@pytest.mark.parametrize(
    ("version", "present", "absent", "swap"),
    [
        ("2.1", ["os-flavor-access:is_public", "rxtx_factor"], ["description", "extra_specs"], ""),
        ("2.54", [], ["description", "extra_specs"], ""),
        ("2.55", ["description"], ["extra_specs"], ""),
        ("2.61", ["description", "extra_specs"], [], ""),
        ("2.74", ["description", "extra_specs"], [], ""),
        ("2.75", ["description", "extra_specs"], [], 0),
    ],
)
def test_flavor_fields_follow_microversion(cloud, get, version, present, absent, swap):
    """description (2.55), extra_specs (2.61) and swap 0 instead of "" (2.75), listed and shown."""
    cloud.create(
        "flavors",
        id="7",
        name="m1.numa",
        description="two nodes",
        extra_specs={"hw:numa_nodes": "2"},
    )
    listed = get("compute", "/flavors/detail", version).json()["flavors"][-1]
    shown = get("compute", "/flavors/7", version).json()["flavor"]
    assert listed == shown
    assert shown["name"] == "m1.numa"
    assert set(present) <= set(shown)
    assert not set(absent) & set(shown)
    assert shown["swap"] == swap
    if "extra_specs" in shown:
        assert shown["extra_specs"] == {"hw:numa_nodes": "2"}
    brief = get("compute", "/flavors", version).json()["flavors"][-1]
    assert set(brief) == {"id", "name", "links"} | ({"description"} & set(present))


def test_flavor_pages_follow_markers(cloud, get):
    """Full pages carry a next link whose marker is the last flavor id; an unknown one is 400."""
    for i in range(7):
        cloud.create("flavors", id=f"x{i}", name=f"extra-{i}", ram=256 * (i + 1))
    pages = _flavor_pages(get, "/flavors/detail?limit=5")
    assert [len(p["flavors"]) for p in pages] == [5, 5, 2]
    ids = [f["id"] for p in pages for f in p["flavors"]]
    assert ids == sorted(cloud.keys("flavors"))
    assert "marker=5" in pages[0]["flavors_links"][0]["href"]
    assert "flavors_links" not in pages[-1]
    by_ram = get("compute", "/flavors?sort_key=memory_mb&sort_dir=desc&minRam=4096").json()
    assert [f["name"] for f in by_ram["flavors"]] == ["m1.xlarge", "m1.large", "m1.medium"]
    resp = get("compute", "/flavors/detail?marker=nope", raise_exc=False)
    assert resp.status_code == 400
    assert resp.json()["badRequest"]["message"] == "marker [nope] not found"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"1", "2", "3", "4", "5"}),
        ("?is_public=None", {"1", "2", "3", "4", "5", "p1"}),
        ("?is_public=false", {"p1"}),
        ("?is_public=true", {"1", "2", "3", "4", "5"}),
    ],
)
def test_private_flavors_need_is_public_none(cloud, get, query, expected):
    """An admin sees public flavors by default, every flavor with is_public=None."""
    cloud.create("flavors", id="p1", name="private", is_public=False)
    flavors = get("compute", "/flavors/detail" + query).json()["flavors"]
    assert {f["id"] for f in flavors} == expected


def test_bad_flavor_queries_are_400(cloud, get):
    """An unclear is_public or a non-integer minRam is a 400, as in Nova."""
    for query in ("is_public=maybe", "minRam=lots"):
        resp = get("compute", f"/flavors/detail?{query}", raise_exc=False)
        assert resp.status_code == 400, query


def test_server_flavor_id_resolves_to_its_embedded_flavor(populated, get):
    """Before 2.47 a server's flavor id shows the flavor that 2.47+ embeds."""
    for server in get("compute", "/servers/detail?all_tenants=1&limit=20", "2.46").json()[
        "servers"
    ]:
        flavor = get("compute", f"/flavors/{server['flavor']['id']}", "2.75").json()["flavor"]
        embedded = get("compute", f"/servers/{server['id']}", "2.47").json()["server"]["flavor"]
        assert embedded["original_name"] == flavor["name"]
        assert (embedded["vcpus"], embedded["ram"], embedded["disk"]) == (
            flavor["vcpus"],
            flavor["ram"],
            flavor["disk"],
        )


def test_deleted_flavor_stays_embedded_in_its_servers(cloud, get):
    """Deleting a flavor leaves its servers' copy; the flavor itself then answers 404."""
    cloud.populate(servers=0, hosts=1)
    cloud.create("flavors", id="gone", name="m1.gone", vcpus=3, extra_specs={"k": "v"})
    sid = cloud.create("servers", flavor="m1.gone", host=cloud.keys("hypervisors")[0])
    cloud.delete("flavors", "gone")
    assert get("compute", "/flavors/gone", raise_exc=False).status_code == 404
    assert "gone" not in {f["id"] for f in get("compute", "/flavors/detail").json()["flavors"]}
    new = get("compute", f"/servers/{sid}", "2.96").json()["server"]["flavor"]
    old = get("compute", f"/servers/{sid}", "2.46").json()["server"]["flavor"]
    assert (new["original_name"], new["vcpus"], new["extra_specs"]) == ("m1.gone", 3, {"k": "v"})
    assert old["id"] == "gone"


def test_flavor_fields_are_checked(cloud):
    """A server with an unknown flavor, or a second flavor of the same name, is refused."""
    cloud.populate(servers=0, hosts=1)
    with pytest.raises(ValueError, match="unknown flavor"):
        cloud.create("servers", flavor="m9.huge")
    with pytest.raises(ValueError, match="already exists"):
        cloud.create("flavors", name="m1.small")
