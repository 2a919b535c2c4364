"""Two clouds in one daemon: the real daemon against two fake clouds with equal ids.

Both fake clouds are populated from the same seed, so their servers have
the same UUIDs and their hosts the same names; each has its own Keystone
and catalog, and its own credentials group.  The daemon must keep both
sets side by side (each entity with its cloud, its key namespaced by it),
tell a change in one cloud as a change of that cloud's entity only, a
delete in one without touching the other, turn a notification on one
cloud's exchange into that cloud's entity, and restart on its state
without re-sending either cloud's entities.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oslo_messaging
import pytest
from oslo_config import cfg

from synchronizer import opts
from synchronizer.outputs import client
from synchronizer_fakecloud import FakeCloud
from tests.functional.conftest import _delete_queues
from tests.helpers.cloudconf import service_credentials
from tests.helpers.daemon import Daemon
from tests.soak.nova_events import instance_event

pytestmark = pytest.mark.broker

CLOUDS = ("east", "west")
SERVERS, HOSTS = 12, 2


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeCloud]]:
    with FakeCloud() as east, FakeCloud() as west:
        for fake in (east, west):
            fake.populate(servers=SERVERS, hosts=HOSTS, seed=7)
        yield {"east": east, "west": west}


def write_conf(path: Path, fakes: dict[str, FakeCloud], transport_url: str, u: str) -> Path:
    lines = [
        "[DEFAULT]",
        "clouds = east, west",
        "sinks = jsonl, message",
        f"transport_url = {transport_url}",
        f"notification_pool = pool-{u}",
        f"message_topic = synchronizer_{u}",
        f"rpc_topic = view_{u}",
        f"state_path = {path.parent / 'state.db'}",
        "[nova.instance]",  # shared by both clouds' nova.instance
        "period = 0.5",
        "[nova.host]",
        "period = 0.5",
        "[nova.notifications]",
        f"topics = test_notifications_{u}",
    ]
    for name, fake in fakes.items():
        creds = service_credentials(fake)
        lines += [
            f"[cloud:{name}]",
            f"credentials = {name}_credentials",
            "plugins = nova.instance, nova.host, nova.notifications",
            f"[{name}_credentials]",
            *creds[1:],
            # One broker for the test: each cloud's services on an exchange of their own.
            f"[{name}/nova.notifications]",
            f"exchange = {name}_{u}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def publish(transport_url: str, exchange: str, topic: str, event: str, payload: Any) -> None:
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="publisher")
    conf.set_override("control_exchange", exchange)
    transport = oslo_messaging.get_notification_transport(conf, url=transport_url)
    try:
        notifier = oslo_messaging.Notifier(
            transport, publisher_id="nova-compute:host", driver="messagingv2", topics=[topic]
        )
        notifier.info({}, event, payload)
    finally:
        transport.cleanup()


def by_cloud(records: list[dict[str, Any]], type_: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {name: set() for name in CLOUDS}
    for r in records:
        if r["type"] == type_:
            found[r["cloud"]].add(r["key"])
    return found


def local(keys: set[str], cloud: str) -> set[str]:
    assert all(k.startswith(f"{cloud}/") for k in keys), keys
    return {k.removeprefix(f"{cloud}/") for k in keys}


def test_two_clouds_with_equal_ids_stay_apart(tmp_path, fakes, transport_url, unique):
    """Equal ids of two clouds are two entities each; a change or delete in one stays in it."""
    conf_path = write_conf(tmp_path / "s.conf", fakes, transport_url, unique)
    servers = set(fakes["east"].keys("servers"))
    assert servers == set(fakes["west"].keys("servers"))  # the same seed: the same UUIDs
    try:
        with Daemon(conf_path) as d:
            records = d.wait_records(2 * (SERVERS + HOSTS), timeout=60)
            instances = by_cloud(records, "nova.instance")
            assert local(instances["east"], "east") == local(instances["west"], "west") == servers
            for r in records:
                assert r["source"]["plugin"].startswith(f"{r['cloud']}/"), r
                if r["type"] == "nova.instance":
                    assert r["parent"]["key"].startswith(f"{r['cloud']}/"), r

            consumer = opts.parse(["--config-file", str(conf_path)], setup_logging=False)
            view = client.get_all(consumer, ["nova.instance"])
            assert sorted((e.cloud, e.key) for e in view.entities) == sorted(
                (c, f"{c}/{s}") for c in CLOUDS for s in servers
            )

            changed, gone = sorted(servers)[:2]
            seen = len(d.records)
            fakes["east"].update("servers", changed, status="SHUTOFF")
            fakes["west"].delete("servers", gone)
            d.wait_records(seen + 2, timeout=30)
            time.sleep(1.5)  # three more periods: nothing else may come
            after = {(r["action"], r["key"]): r for r in d.records[seen:]}
            assert sorted(after) == [("delete", f"west/{gone}"), ("update", f"east/{changed}")]
            assert after[("update", f"east/{changed}")]["state"] == "SHUTOFF"
            assert after[("delete", f"west/{gone}")]["cloud"] == "west"  # its last state's
            view = {
                (e.cloud, e.key): e for e in client.get_all(consumer, ["nova.instance"]).entities
            }
            assert view[("east", f"east/{changed}")].state == "SHUTOFF"
            west_state = fakes["west"].get("servers", changed)["status"]
            assert view[("west", f"west/{changed}")].state == west_state != "SHUTOFF"
            assert ("east", f"east/{gone}") in view
            assert ("west", f"west/{gone}") not in view

            # A notification on east's exchange is east's entity, and only east's.
            doc = dict(fakes["east"].get("servers", changed), id=str(uuid.uuid4()))
            event, payload = instance_event("create", doc)
            seen = len(d.records)
            publish(transport_url, f"east_{unique}", f"test_notifications_{unique}", event, payload)
            pushed = d.wait_records(seen + 1, timeout=30)[seen]
            assert (pushed["cloud"], pushed["key"]) == ("east", f"east/{doc['id']}")
            assert pushed["source"] == {"kind": "push", "plugin": "east/nova.notifications"}
            time.sleep(1.0)
            assert len(d.records) == seen + 1

        # Restarted on its state: each cloud's collectors start from their own
        # cloud's view (not the other's), so they re-send nothing.  The pushed
        # server is in no cloud's listing: east's first listing finds it gone.
        with Daemon(conf_path) as d:
            d.wait_log("cycle listed", count=4, timeout=30)
            time.sleep(1.0)
            told = [(r["action"], r["key"], r["final_state_unknown"]) for r in d.records]
            assert told == [("delete", f"east/{doc['id']}", True)]
    finally:
        _delete_queues([f"pool-{unique}-{c}" for c in CLOUDS])
