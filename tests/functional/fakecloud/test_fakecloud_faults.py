"""Fault injection and request accounting of the fake cloud."""

from __future__ import annotations

import pytest
import requests
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from novaclient import client
from novaclient import exceptions as nova_exc


def test_fail_page_fails_only_that_page(populated, session, get):
    """fail_page("nova", 1) fails the second request of a walk once; a retry succeeds."""
    populated.fail_page("nova", 1, status=500)
    first = get("compute", "/servers/detail?all_tenants=1&limit=50")
    marker = first.json()["servers"][-1]["id"]
    second = get(
        "compute", f"/servers/detail?all_tenants=1&limit=50&marker={marker}", raise_exc=False
    )
    assert (first.status_code, second.status_code) == (200, 500)
    assert second.json()["computeFault"]["code"] == 500
    retry = get("compute", f"/servers/detail?all_tenants=1&limit=50&marker={marker}")
    assert len(retry.json()["servers"]) == 50


def test_fail_page_breaks_a_novaclient_walk(populated, session):
    """A 5xx on page k of a walk surfaces to novaclient as an error, not a short list."""
    populated.fail_page("nova", 1, status=503, times=None)
    nova = client.Client("2.96", session=session)
    with pytest.raises(nova_exc.ClientException, match="503"):
        nova.servers.list(search_opts={"all_tenants": True}, limit=-1)
    populated.clear_faults()
    assert len(nova.servers.list(search_opts={"all_tenants": True}, limit=-1)) == 120


def test_fail_page_counts_pages_per_collection(populated, get):
    """Page counters are per collection: a hypervisor listing does not move the servers walk."""
    populated.fail_page("nova", 1, collection="servers/detail")
    get("compute", "/servers/detail?all_tenants=1&limit=10")
    get("compute", "/os-hypervisors/detail?limit=1", "2.53")
    marker = populated.keys("servers")[-1]
    resp = get(
        "compute", f"/servers/detail?all_tenants=1&limit=10&marker={marker}", raise_exc=False
    )
    assert resp.status_code == 500


def test_outage_answers_every_request(populated, get):
    """fail("cinder", 503) answers 503 until the faults are cleared."""
    populated.fail("cinder", 503)
    for _ in range(2):
        assert get("volumev3", "/volumes/detail", raise_exc=False).status_code == 503
    assert get("compute", "/servers/detail").status_code == 200
    populated.clear_faults()
    assert get("volumev3", "/volumes/detail").status_code == 200


def test_delay_makes_clients_time_out(populated, password_auth):
    """delay() holds answers so that a client with a short timeout times out."""
    populated.delay("neutron", 2.0)
    sess = ks_session.Session(auth=password_auth(), timeout=0.3)
    with pytest.raises(ks_exc.ConnectTimeout):
        sess.get("/v2.0/networks", endpoint_filter={"service_type": "network"})
    populated.delay("neutron", 0)
    assert sess.get("/v2.0/networks", endpoint_filter={"service_type": "network"}).ok


@pytest.mark.parametrize("mode", ["truncate", "malformed", "empty"])
def test_corrupt_body_is_not_json(populated, get, mode):
    """A corrupted answer is a 200 whose body does not parse, once."""
    populated.corrupt("heat", mode)
    resp = get("orchestration", "/stacks")
    assert resp.status_code == 200
    with pytest.raises(ValueError):  # noqa: PT011 - any JSON decode error
        resp.json()
    assert get("orchestration", "/stacks").json()["stacks"]


def test_disconnect_mid_body(populated, session, token):
    """The disconnect corruption announces the full length and drops the connection."""
    populated.corrupt("ironic", "disconnect")
    url = session.get_endpoint(service_type="baremetal") + "/v1/nodes/detail"
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(url, headers={"X-Auth-Token": token}, timeout=5)


def test_unknown_fault_arguments_are_rejected(cloud):
    """Arming a fault for an unknown service or mode raises ValueError."""
    with pytest.raises(ValueError, match="unknown service"):
        cloud.fail_page("glance", 0)
    with pytest.raises(ValueError, match="unknown corruption"):
        cloud.corrupt("nova", "garble")
    with pytest.raises(ValueError, match="0-based"):
        cloud.fail_page("nova", -1)


def test_counters_show_a_delta_poll_did_no_full_listing(populated, get):
    """The request log lets a test assert that delta polls only sent changes-since."""
    populated.reset_stats()
    get("compute", "/servers/detail?all_tenants=1&changes-since=2020-01-01T00:00:00Z")
    get("compute", "/servers/detail?all_tenants=1&changes-since=2020-01-01T00:00:00Z")
    full = populated.stats.find(
        service="nova",
        path_suffix="/servers/detail",
        where=lambda r: "changes-since" not in r.query,
    )
    assert full == []
    assert populated.request_count(path="/servers/detail") == 2
    assert populated.stats.counts()["GET /compute/v2.1/servers/detail"] == 2


def test_reset_forgets_everything(populated, get):
    """reset() empties the cloud, disarms faults and forgets statistics."""
    populated.fail("nova", 500)
    populated.reset()
    assert populated.count("servers") == 0
    assert get("compute", "/servers/detail").json() == {"servers": []}
    assert populated.request_count(path="/servers/detail") == 1
