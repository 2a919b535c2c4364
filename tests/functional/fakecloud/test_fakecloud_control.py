"""The HTTP control API, the command line and the fake cloud's scale."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import quote

import orjson
import pytest
import requests

from synchronizer_fakecloud import Cloud


def _control(cloud, method, path, **body):
    resp = requests.request(method, cloud.control_url + path, json=body or None, timeout=10)
    return resp.status_code, (resp.json() if resp.content else None)


def test_control_crud_round_trip(cloud):
    """Entities are created, read, updated and deleted over /_control."""
    _control(cloud, "POST", "/hypervisors", host="cmp-1", zone="az-1")
    status, created = _control(cloud, "POST", "/servers", name="web", host="cmp-1")
    assert status == 201
    key = created["key"]
    assert created["doc"]["OS-EXT-AZ:availability_zone"] == "az-1"
    status, updated = _control(cloud, "PATCH", "/servers/" + key, status="SHUTOFF")
    assert (status, updated["doc"]["status"]) == (200, "SHUTOFF")
    assert updated["updated"] > created["updated"]
    assert _control(cloud, "DELETE", "/servers/" + key)[0] == 204
    status, tomb = _control(cloud, "GET", "/servers/" + key)
    assert (status, tomb["doc"]["status"]) == (200, "DELETED")
    assert tomb["deleted"] is not None
    assert _control(cloud, "GET", "/servers")[1] == {"servers": []}
    assert len(_control(cloud, "GET", "/servers?deleted=true")[1]["servers"]) == 1


def test_control_nagios_keys_are_url_encoded(cloud):
    """A Nagios service key ('host;description') is addressed URL-encoded."""
    _control(cloud, "POST", "/nagios_services", host_name="h1", description="disk /")
    status, rec = _control(
        cloud, "PATCH", "/nagios_services/" + quote("h1;disk /", safe=""), status="WARNING"
    )
    assert (status, rec["doc"]["status"]) == (200, 4)


def test_control_errors(cloud):
    """Unknown kinds or keys answer 404 and bad fields 400."""
    assert _control(cloud, "GET", "/widgets")[0] == 404
    assert _control(cloud, "PATCH", "/servers/nope", status="ACTIVE")[0] == 404
    assert _control(cloud, "POST", "/servers", status="EXPLODED")[0] == 400
    assert _control(cloud, "POST", "/faults/fail_page", service="glance", page=0)[0] == 400


def test_control_populate_change_and_stats(cloud, get):
    """populate, change, faults and stats are driven over HTTP."""
    _, body = _control(cloud, "POST", "/populate", servers=50, hosts=2, seed=3)
    assert body["created"]["servers"] == 50
    _, changed = _control(cloud, "POST", "/change", kind="servers", count=5, seed=1)
    assert len(changed["changed"]) == 5
    _control(cloud, "POST", "/faults/fail", service="nova", status=502, times=1)
    assert get("compute", "/servers/detail", raise_exc=False).status_code == 502
    counts = _control(cloud, "GET", "/stats")[1]["counts"]
    assert counts["GET /compute/v2.1/servers/detail"] == 1
    log = _control(cloud, "GET", "/stats/requests?service=nova")[1]["requests"]
    assert log[0]["status"] == 502
    _control(cloud, "POST", "/tokens/revoke")
    assert get("compute", "/servers/detail").status_code == 200
    assert _control(cloud, "GET", "/health")[1]["counts"]["servers"] == 50


def test_change_is_seeded_and_flips_state(cloud):
    """change() picks a reproducible subset and applies the kind's natural flip."""
    cloud.populate(servers=200, hosts=2, nagios_services=1)
    first = cloud.change("servers", fraction=0.1, seed=7)
    assert len(first) == 20
    other = Cloud()
    other.populate(servers=200, hosts=2, nagios_services=1)
    assert other.change("servers", fraction=0.1, seed=7) == first
    flipped = cloud.change("nagios_services", count=1, seed=1)[0]
    assert cloud.get("nagios_services", flipped)["status"] == 4
    gone = cloud.change("servers", count=3, action="delete", seed=2)
    assert all(cloud.get("servers", key)["status"] == "DELETED" for key in gone)
    assert len(cloud.change("servers", count=4, action="create")) == 4
    assert cloud.count("servers") == 201


def test_populate_100k_servers_is_fast(cloud, session, token):
    """100,000 servers over 1,000 hosts populate in seconds and list completely, page by page."""
    started = time.monotonic()
    cloud.populate(servers=100_000, hosts=1_000)
    populated = time.monotonic()
    assert populated - started < 8  # about 2 s on a quiet machine
    http = requests.Session()
    http.headers.update({"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.96"})
    url = session.get_endpoint(service_type="compute") + "/servers/detail?all_tenants=1"
    seen = pages = 0
    while url:
        body = http.get(url, timeout=30).content
        # Count and follow links without decoding ~2 MB per page: fast enough
        # to keep this test about the server, not the client's JSON parser.
        seen += body.count(b'"hostId":')
        pages += 1
        links = body.rfind(b'"servers_links":')
        url = orjson.loads(body[links + 16 : -1])[0]["href"] if links >= 0 else None
    assert (seen, pages) == (100_000, 101)


def test_concurrent_walks_and_changes(cloud, session, token):
    """Listings walked from several threads while the cloud changes all succeed."""
    cloud.populate(servers=300, hosts=3)
    url = session.get_endpoint(service_type="compute") + "/servers/detail?all_tenants=1&limit=40"
    results: list[int] = []

    def walk() -> None:
        http = requests.Session()
        http.headers["X-Auth-Token"] = token
        next_url, count = url, 0
        while next_url:
            body = http.get(next_url, timeout=10).json()
            count += len(body["servers"])
            links = body.get("servers_links")
            next_url = links[0]["href"] if links else None
        results.append(count)

    threads = [threading.Thread(target=walk) for _ in range(4)]
    for thread in threads:
        thread.start()
    for seed in range(20):
        cloud.change("servers", count=5, seed=seed)
        cloud.change("servers", count=1, action="create")
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 4
    assert all(300 <= count <= 320 for count in results)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_command_line_serves_until_sigterm():
    """python -m synchronizer_fakecloud serves the populated cloud until SIGTERM."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "synchronizer_fakecloud",
            "--port",
            "0",
            "--servers",
            "30",
            "--hosts",
            "3",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            match = re.search(r"serving on (http://\S+)", line)
            url = match.group(1) if match else None
        assert url, "the fake cloud did not report its URL"
        health = requests.get(url + "/_control/health", timeout=5).json()
        assert health["counts"]["servers"] == 30
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=10)[1]
    assert proc.returncode == 0
    assert "secret" not in output
