"""The soak's Nova notifications state what a poll of the same server states.

The soak publishes notifications built from the fake cloud's servers; if
they fingerprinted unlike the polled records, every pushed state would be
followed by a poll "correcting" it and the soak would measure noise.  Real
HTTP against the fake cloud; the notification plugin converts the payloads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

from synchronizer import fingerprint, timeutil
from synchronizer.model import Action
from synchronizer.workers.converter import Converter
from synchronizer_fakecloud.server import FakeCloud
from synchronizer_plugins import openstack
from synchronizer_plugins.nova.instances import InstanceCollector
from synchronizer_plugins.nova.notifications import NovaNotifications
from tests.helpers.cloudconf import service_credentials
from tests.soak.nova_events import BAD_PAYLOADS, instance_event


@pytest.fixture
def cloud() -> Iterator[FakeCloud]:
    openstack.OpenStackCollector._session = None
    with FakeCloud(seed=5) as fake:
        fake.populate(servers=6, hosts=2, volumes=3, zones=2)
        yield fake
    openstack.OpenStackCollector._session = None


def _conf(cloud: FakeCloud, tmp_path: Path) -> cfg.ConfigOpts:
    path = tmp_path / "s.conf"
    path.write_text("\n".join(service_credentials(cloud, timeout=None)) + "\n")
    conf = cfg.ConfigOpts()
    openstack.register_opts(conf)
    InstanceCollector.register_options(conf, InstanceCollector.name)
    NovaNotifications.register_options(conf, NovaNotifications.name)
    conf(args=[], default_config_files=[str(path)])
    return conf


def _push(converter: Converter, event_type: str, payload: object) -> list:
    raw = {"event_type": event_type, "payload": payload, "timestamp": timeutil.now()}
    return converter.convert(raw)


def test_pushed_states_fingerprint_like_polled_ones(cloud: FakeCloud, tmp_path: Path):
    """Create, update (status and metadata) and delete events match the polls around them."""
    conf = _conf(cloud, tmp_path)
    collector = InstanceCollector(conf)
    converter = Converter([NovaNotifications(conf)], max_bytes=1 << 20)
    key, other = cloud.keys("servers")[:2]
    cloud.update("servers", key, status="PAUSED", metadata={"soak_rev": "11"})
    cloud.update("servers", other, metadata={"soak_rev": "12"})
    polled = {e.key: fingerprint.of(e) for e in collector.list_all()}
    for server, old in ((key, "ACTIVE"), (other, cloud.get("servers", other)["status"])):
        event_type, payload = instance_event("update", cloud.get("servers", server), old)
        (change,) = _push(converter, event_type, payload)
        assert change.action == Action.UPDATE
        assert change.fingerprint == polled[server], event_type
    new = cloud.create("servers", host=cloud.keys("hypervisors")[0], flavor="m1.large")
    polled = {e.key: fingerprint.of(e) for e in collector.list_all()}
    (change,) = _push(converter, *instance_event("create", cloud.get("servers", new)))
    assert (change.action, change.fingerprint) == (Action.CREATE, polled[new])
    cloud.delete("servers", new)
    (change,) = _push(converter, *instance_event("delete", cloud.get("servers", new)))
    assert (change.action, change.key) == (Action.DELETE, new)
    assert converter.counts["dropped"] == 0


@pytest.mark.parametrize("what", sorted(BAD_PAYLOADS))
def test_bad_payloads_are_dropped_and_counted(cloud: FakeCloud, tmp_path: Path, what: str):
    """Each deliberately bad payload the soak sends is dropped, not mapped."""
    converter = Converter([NovaNotifications(_conf(cloud, tmp_path))], max_bytes=1 << 20)
    assert _push(converter, "instance.update", BAD_PAYLOADS[what]) == []
    assert converter.counts["dropped"] == 1
