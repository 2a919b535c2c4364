"""Every Nova sample of the OpenStack fixtures through the Nova plugins.

API samples: every file under ``nova/api`` is either read by a collector
(:data:`API_RULES`: servers detail and show records, hypervisor detail and
show records, compute services, availability-zone detail) and each of its
records becomes a valid entity, or belongs to an endpoint no collector reads
(:data:`NOT_READ`).  Down-cell stubs (2.69+) are recognised as partial.

Notification samples: every versioned sample under ``nova/notifications``
(``$ref`` resolved as ``fixtures/openstack/README.md`` says) and every legacy
sample under ``nova/notifications-legacy`` goes through the core
:class:`~synchronizer.workers.converter.Converter` with the plugin of its format,
and is either mapped to the expected change (type, key, action, state,
project, parent) or ignored by a documented rule; none fails.  For every
mapped instance sample, the servers-detail record Nova would show for the
same state (built on a real 2.96 record) fingerprints like the pushed one.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from synchronizer import fingerprint
from synchronizer.model import Action, Change, Entity
from synchronizer.workers.converter import Converter
from synchronizer_plugins import fields, openstack
from synchronizer_plugins.nova import hosts, instances, shapes, zones
from synchronizer_plugins.nova.instances import InstanceCollector
from synchronizer_plugins.nova.notifications import NovaNotifications
from tests.helpers.samples import resolve_refs


def _fixtures_root() -> Path | None:
    default = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "openstack"
    root = Path(os.environ.get("SYNCHRONIZER_FIXTURES") or default)
    return root if (root / "nova").is_dir() else None


ROOT = _fixtures_root()
NOVA = ROOT / "nova" if ROOT else None
API_FILES = sorted((NOVA / "api").rglob("*.json")) if NOVA else []
VERSIONED_FILES = sorted((NOVA / "notifications").glob("*.json")) if NOVA else []
LEGACY_FILES = sorted((NOVA / "notifications-legacy").rglob("*.json")) if NOVA else []


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(NOVA)) for p in paths] if NOVA else []


def test_fixtures_are_present():
    """The shared fixtures folder is present (required under CI)."""
    if NOVA is None:
        reason = "no fixtures folder (set SYNCHRONIZER_FIXTURES to fixtures/openstack)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " - conformance must not skip under CI")
        pytest.skip(reason)
    assert API_FILES
    assert VERSIONED_FILES
    assert LEGACY_FILES


def make(cls: type, **overrides: Any) -> Any:
    conf = cfg.ConfigOpts()
    openstack.register_opts(conf)
    cls.register_options(conf, cls.name)
    conf(args=[], default_config_files=[])
    for name, value in overrides.items():
        conf.set_override(name, value, group=cls.name)
    return cls(conf)


# -- API samples ----------------------------------------------------------------

# Nova's default flavors, for records older than 2.47 that carry only the id.
FLAVORS = {"1": "m1.tiny", "2": "m1.small", "3": "m1.medium", "4": "m1.large", "5": "m1.xlarge"}


def _server_records(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body.get("servers") or [body["server"]]


def _check_server(record: dict[str, Any]) -> None:
    if instances.is_partial(record):
        assert set(record) <= {
            "id",
            "status",
            "tenant_id",
            "created",
            "links",
            "flavor",
            "image",
            "OS-EXT-AZ:availability_zone",
            "OS-EXT-STS:power_state",
            "user_id",
            "server_groups",
            "pinned_availability_zone",
        }
        return
    flavor = record["flavor"]
    name = flavor.get("original_name") or FLAVORS[flavor["id"]]
    entity = instances.server_instance(record, name).entity(
        make(InstanceCollector), volume_relations=True
    )
    assert (entity.key, entity.project) == (record["id"], record["tenant_id"])
    assert entity.state == record["status"]  # Nova's own status agrees with the table
    host = record.get("OS-EXT-SRV-ATTR:host")
    assert (entity.parent.key if entity.parent else None) == host
    volumes = record.get("os-extended-volumes:volumes_attached") or []
    assert sorted(r.key for r in entity.relations) == sorted(v["id"] for v in volumes)
    assert entity.properties["flavor"] == name


def _check_hypervisors(body: dict[str, Any]) -> None:
    records = body.get("hypervisors") or [body["hypervisor"]]
    plugin = make(hosts.HostCollector)
    for record in records:
        host = record["service"]["host"]
        entity = hosts.host_facts(host, None, [record]).entity(plugin)
        assert entity.key == host
        expected = shapes.host_state(record["state"] == "up", record["status"] == "enabled")
        assert entity.state == expected
        assert entity.properties["nodes"] == [record["hypervisor_hostname"]]
        assert "vcpus" not in entity.properties


def _check_services(body: dict[str, Any]) -> None:
    plugin = make(hosts.HostCollector)
    for record in body["services"]:
        if record["binary"] != "nova-compute":
            continue  # the collector asks for binary=nova-compute only
        if hosts.is_partial(record):
            continue  # a down cell's stub: the listing is marked incomplete
        entity = hosts.host_facts(record["host"], record, []).entity(plugin)
        up, enabled = record["state"] == "up", record["status"] == "enabled"
        assert (entity.key, entity.state) == (record["host"], shapes.host_state(up, enabled))
        assert (entity.parent.key if entity.parent else None) == record["zone"]


def _check_zones(body: dict[str, Any]) -> None:
    plugin = make(zones.ZoneCollector)
    for record in body["availabilityZoneInfo"]:
        entity = zones.zone_facts(record).entity(plugin)
        assert entity.key == record["zoneName"]
        assert entity.state == ("available" if record["zoneState"]["available"] else "unavailable")
        assert entity.properties["hosts"] == sorted(record["hosts"] or {})


API_RULES: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    (
        r"servers/(v[\d.]+/)?(servers-details-resp|server-get-resp|servers-details-with-changes-)",
        lambda body: [_check_server(r) for r in _server_records(body)],
    ),
    (r"os-hypervisors/(v[\d.]+/)?hypervisors-(detail|show)", _check_hypervisors),
    (r"os-services/(v[\d.]+/)?services-list-get-resp", _check_services),
    (r"os-availability-zone/availability-zone-detail-resp", _check_zones),
]
# Endpoints no collector reads: brief listings, statistics, uptime, search, actions,
# migrations and the version documents.
NOT_READ = (
    r"servers/(v[\d.]+/)?servers-list",
    r"os-hypervisors/(v[\d.]+/)?hypervisors-(list|search|statistics|uptime|with-servers|"
    r"without-servers)",
    r"os-availability-zone/availability-zone-list-resp",
    r"os-instance-actions/",
    r"os-migrations/",
    r"versions/",
)


@pytest.mark.parametrize("path", API_FILES, ids=_ids(API_FILES))
def test_api_sample(path: Path):
    """Each API sample is read into valid entities, or is an endpoint no collector reads."""
    relative = str(path.relative_to(NOVA / "api"))
    body = json.loads(path.read_text())
    for pattern, check in API_RULES:
        if re.match(pattern, relative):
            check(body)
            return
    assert any(re.match(p, relative) for p in NOT_READ), f"no rule covers {relative}"


# -- notification samples ------------------------------------------------------------


def _raw(sample: dict[str, Any]) -> dict[str, Any]:
    metadata = sample.get("metadata") or {}
    return {
        "event_type": sample["event_type"],
        "payload": sample["payload"],
        "publisher_id": sample.get("publisher_id", ""),
        "priority": sample.get("priority", "INFO"),
        "timestamp": sample.get("timestamp") or metadata.get("timestamp") or "",
        "message_id": metadata.get("message_id") or sample.get("message_id") or "",
    }


def versioned_sample(path: Path) -> dict[str, Any]:
    return _raw(resolve_refs(json.loads(path.read_text()), path.parent))


def legacy_samples(path: Path) -> Iterator[dict[str, Any]]:
    body = json.loads(path.read_text())
    for sample in [body] if "event_type" in body else list(body.values()):
        yield _raw(sample)


def _data(payload: dict[str, Any]) -> dict[str, Any]:
    return payload["nova_object.data"]


def expected_versioned(raw: dict[str, Any]) -> tuple | None:
    """(type, key, action, state, project, parent) Nova's semantics imply, or None."""
    event, payload = raw["event_type"], raw["payload"]
    name = payload.get("nova_object.name", "")
    if event.startswith("instance.") and re.match(r"^Instance\w*Payload$", name):
        return _expected_instance(event, _data(payload), "uuid", "tenant_id", "task_state")
    if event == "service.delete" and _data(payload).get("binary") == "nova-compute":
        return ("nova.host", _data(payload)["host"], Action.DELETE, None, None, None)
    return None


def _expected_instance(event: str, data: dict[str, Any], key: str, project: str, task: str):
    vm_state = data["state"]
    deleted = vm_state == "deleted" or event.endswith("instance.delete.end")
    action = (
        Action.DELETE
        if deleted
        else (Action.CREATE if ".create." in event + "." else Action.UPDATE)
    )
    state = shapes.instance_status(vm_state, data.get(task) or None)
    return ("nova.instance", data[key], action, state, data[project], data.get("host") or None)


def _observed(change: Change) -> tuple:
    e = change.entity
    return (e.type, e.key, change.action, e.state, e.project, e.parent.key if e.parent else None)


def _run(plugin: NovaNotifications, raw: dict[str, Any]) -> list[Change]:
    converter = Converter([plugin], max_bytes=1 << 20)
    changes = converter.convert(raw)
    assert converter.counts["dropped"] == 0, f"dropped: {converter.by_event}"
    return changes


@pytest.mark.parametrize("path", VERSIONED_FILES, ids=_ids(VERSIONED_FILES))
def test_versioned_notification_sample(path: Path):
    """Each versioned sample maps to the expected change or is ignored by a rule."""
    raw = versioned_sample(path)
    plugin = make(NovaNotifications)
    changes = _run(plugin, raw)
    expected = expected_versioned(raw)
    if expected is None:
        assert changes == []
        notification = Converter([plugin], 1 << 20).parse(raw)
        assert plugin.why_ignored(notification), f"{raw['event_type']} ignored without a rule"
        return
    assert [_observed(c) for c in changes] == [expected]
    _check_change(changes[0])
    if expected[0] == "nova.instance" and expected[2] is not Action.DELETE:
        _check_poll_agrees(changes[0].entity, _data(raw["payload"]), volume_relations=True)


LEGACY = [(p, i) for p in LEGACY_FILES for i, _ in enumerate(legacy_samples(p))]


@pytest.mark.parametrize(("path", "index"), LEGACY, ids=[f"{_ids([p])[0]}#{i}" for p, i in LEGACY])
def test_legacy_notification_sample(path: Path, index: int):
    """Each legacy compute.instance.* sample maps to the expected instance change."""
    raw = list(legacy_samples(path))[index]
    plugin = make(NovaNotifications, format="legacy", volume_relations=False)
    changes = _run(plugin, raw)
    payload = raw["payload"]
    expected = _expected_instance(
        raw["event_type"], payload, "instance_id", "tenant_id", "state_description"
    )
    assert [_observed(c) for c in changes] == [expected]
    _check_change(changes[0])
    if expected[2] is not Action.DELETE:
        _check_poll_agrees(changes[0].entity, _legacy_as_versioned(payload), volume_relations=False)


def _check_change(change: Change) -> None:
    entity = change.entity
    assert entity.source is not None
    assert entity.source.kind == "push"
    assert entity.timestamp.endswith("Z")
    if change.action is not Action.DELETE:
        assert change.fingerprint == fingerprint.of(entity, shapes.VOLATILE)
    json.dumps(change.to_dict())  # JSON-serialisable


# -- poll and push agree on real shapes ---------------------------------------------

TEMPLATE_PATH = "api/servers/v2.96/servers-details-resp.json"


def _legacy_as_versioned(p: dict[str, Any]) -> dict[str, Any]:
    """The same instance facts in the versioned payload's field names."""
    if "image_ref_url" in p:  # <glance>/images/<instance.image_ref>
        image = (p["image_ref_url"] or "").rsplit("/", 1)[-1]
    else:
        image = (p.get("image_meta") or {}).get("base_image_ref")
    return {
        "uuid": p["instance_id"],
        "tenant_id": p["tenant_id"],
        "user_id": p.get("user_id"),
        "display_name": p.get("display_name"),
        "state": p["state"],
        "task_state": p.get("state_description") or None,
        "host": p.get("host"),
        "node": p.get("node"),
        "availability_zone": p.get("availability_zone"),
        "image_uuid": image,
        "created_at": p.get("created_at"),
        "metadata": p.get("metadata") or {},
        "flavor": {"nova_object.data": {"name": p.get("instance_type")}},
        "block_devices": [],
    }


def server_view(data: dict[str, Any]) -> dict[str, Any]:
    """The servers-detail record Nova shows for an instance a payload describes.

    Built on the real 2.96 sample record, with the payload's values written
    into the API's fields (what nova/api/openstack/compute/views/servers.py
    does with the same Instance object).
    """
    assert NOVA is not None
    record = copy.deepcopy(json.loads((NOVA / TEMPLATE_PATH).read_text())["servers"][0])
    flavor = (data.get("flavor") or {}).get("nova_object.data") or {}
    bdms = [b["nova_object.data"] for b in data.get("block_devices") or []]
    # The API shows seconds with a Z (2012-10-29T13:42:11Z), whatever the payload's form.
    created = str(fields.seconds(data["created_at"]))[:19] + "Z"
    record.update(
        {
            "id": data["uuid"],
            "name": data.get("display_name"),
            "tenant_id": data["tenant_id"],
            "user_id": data.get("user_id"),
            "metadata": data.get("metadata") or {},
            "status": shapes.instance_status(data["state"], data.get("task_state")),
            "created": created,
            "updated": "2030-01-01T00:00:00Z",
            "image": {"id": data["image_uuid"], "links": []} if data.get("image_uuid") else "",
            "OS-EXT-AZ:availability_zone": data.get("availability_zone") or "",
            "OS-EXT-SRV-ATTR:host": data.get("host"),
            "OS-EXT-SRV-ATTR:hypervisor_hostname": data.get("node"),
            "OS-EXT-STS:vm_state": data["state"],
            "OS-EXT-STS:task_state": data.get("task_state"),
            "os-extended-volumes:volumes_attached": [
                {"id": b["volume_id"], "delete_on_termination": False} for b in bdms
            ],
        }
    )
    record["flavor"] = dict(record["flavor"], original_name=flavor.get("name"))
    return record


def _check_poll_agrees(push: Entity, data: dict[str, Any], *, volume_relations: bool) -> None:
    record = server_view(data)
    poll = instances.server_instance(record, record["flavor"]["original_name"]).entity(
        make(InstanceCollector, volume_relations=volume_relations),
        volume_relations=volume_relations,
    )
    assert poll.to_dict()["properties"] == push.to_dict()["properties"]
    assert fingerprint.of(poll, shapes.VOLATILE) == fingerprint.of(push, shapes.VOLATILE)
