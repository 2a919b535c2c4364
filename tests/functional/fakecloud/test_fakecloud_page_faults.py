"""Faults a 200 can hide, and answers that never end, over real HTTP.

Displaced records, dropped next links and bad records answer 200 with a
well-formed body; a hung service never answers; a trickling one answers a
byte at a time; a clock offset moves the APIs' times and Date headers.
"""

from __future__ import annotations

import email.utils
import time

import pytest
import requests

from synchronizer_fakecloud.clock import nova_time

SERVERS = "/servers/detail?all_tenants=1&limit=50"


def walk(get, first: str = SERVERS) -> list[list[dict]]:
    """Every page of a servers walk, following the next links as a client does."""
    pages, url = [], first
    while url:
        body = get("compute", url).json()
        pages.append(body["servers"])
        links = body.get("servers_links") or []
        url = links[0]["href"] if links else None
    return pages


def test_displace_lists_one_record_twice_and_loses_the_one_it_displaced(populated, get):
    """Page 1's first record is page 0's last: 120 records listed, 119 distinct, one missing."""
    populated.displace("nova", page=1)
    pages = walk(get)
    assert pages[1][0] == pages[0][-1]
    ids = [s["id"] for page in pages for s in page]
    assert len(ids) == 120
    assert len(set(ids)) == 119
    assert len(set(populated.keys("servers")) - set(ids)) == 1
    assert populated.faults.fired() == {"displace": 1}
    assert len({s["id"] for page in walk(get) for s in page}) == 120  # fired once


def test_drop_next_ends_the_walk_early_without_an_error(populated, get):
    """A first page without its next link makes a 50-record listing look complete."""
    populated.drop_next("nova", page=0)
    pages = walk(get)
    assert [len(p) for p in pages] == [50]
    assert populated.faults.fired() == {"drop_next": 1}
    assert sum(len(p) for p in walk(get)) == 120


@pytest.mark.parametrize(("field", "value"), [("name", 12345), ("OS-EXT-STS:vm_state", None)])
def test_bad_record_lists_one_server_with_a_wrong_field(populated, get, field, value):
    """bad_record changes that server in every listing until cleared; the store is untouched."""
    key = populated.keys("servers")[7]
    populated.bad_record("nova", key, field, value)
    for _ in range(2):
        listed = {s["id"]: s for page in walk(get) for s in page}
        assert listed[key][field] == value
    assert populated.get("servers", key)[field] != value
    populated.clear_faults()
    listed = {s["id"]: s for page in walk(get) for s in page}
    assert listed[key][field] != value


def test_a_hung_service_never_answers_until_cleared(populated, session):
    """hang() takes the request and answers nothing: only the client's timeout ends it."""
    populated.hang("heat")
    url = session.get_endpoint(service_type="orchestration") + "/stacks"
    token = session.get_token()
    t0 = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        requests.get(url, headers={"X-Auth-Token": token}, timeout=1.0)
    assert time.monotonic() - t0 >= 1.0
    populated.clear_faults()
    assert requests.get(url, headers={"X-Auth-Token": token}, timeout=5).status_code == 200


def test_a_trickling_answer_never_times_out_and_never_ends(populated, session):
    """One byte every 0.3 s: each read is within a 1 s timeout, the body takes for ever."""
    populated.trickle("nova", 0.3)
    url = session.get_endpoint(service_type="compute") + SERVERS
    token = session.get_token()
    resp = requests.get(url, headers={"X-Auth-Token": token}, timeout=1.0, stream=True)
    t0 = time.monotonic()
    got = resp.raw.read(8)
    assert len(got) == 8
    assert 1.5 < time.monotonic() - t0 < 5
    assert int(resp.headers["Content-Length"]) > 10_000
    populated.clear_faults()
    resp.close()


def test_a_clock_offset_moves_record_times_and_the_date_header(populated, get, manual_time):
    """With the API's clock 60 s behind, updates, Date and changes-since all use its time."""
    populated.clock_offset(-60)
    manual_time.advance(120)  # past the offset: the clock is not stepped back
    key = populated.keys("servers")[3]
    populated.update("servers", key, status="SHUTOFF")
    resp = get("compute", f"/servers/detail?all_tenants=1&changes-since={nova_time(0)}")
    date = email.utils.parsedate_to_datetime(resp.headers["Date"]).timestamp()
    assert abs(date - (manual_time.now - 60)) <= 1
    doc = populated.get("servers", key)
    assert doc["updated"] == nova_time(manual_time.now - 60)
    since = nova_time(date - 5)
    changed = get("compute", f"/servers/detail?all_tenants=1&changes-since={since}").json()
    assert [s["id"] for s in changed["servers"]] == [key]
    populated.clear_faults()
    assert populated.state.clock.offset == 0


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("displace", {"service": "nova", "page": 1}),
        ("drop_next", {"service": "cinder"}),
        ("bad_record", {"service": "nova", "key": "x", "field": "name", "value": 1}),
        ("hang", {"service": "heat", "times": 1}),
        ("trickle", {"service": "neutron", "seconds_per_byte": 1}),
        ("clock_offset", {"seconds": -60}),
    ],
)
def test_the_new_faults_are_armed_over_the_control_api(populated, name, fields):
    """Each fault is armed by POST /_control/faults/<name> with its keyword arguments."""
    resp = requests.post(f"{populated.control_url}/faults/{name}", json=fields, timeout=5)
    assert resp.status_code == 200
    assert resp.json() == {"armed": name}
    assert requests.delete(f"{populated.control_url}/faults", timeout=5).status_code == 200


def test_a_page_fault_on_page_zero_of_displace_is_refused(populated):
    """displace needs a page before the one it shifts: page 0 is a ValueError (400)."""
    with pytest.raises(ValueError, match="page"):
        populated.displace("nova", page=0)
