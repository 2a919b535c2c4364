"""Nova versioned notifications about the fake cloud's servers, as Nova sends them.

Each payload is built from the server's canonical document in the fake
cloud (its 2.96 API view) the way Nova's ``InstancePayload`` family is built
from the instance: the same facts, Nova's field names, every nested object
wrapped as a versioned object, attached volumes as ``block_devices`` (nova.conf
``bdms_in_notifications = true``).  So a pushed state fingerprints like the
polled one::

    event_type, payload = instance_event("update", doc, old_status="ACTIVE")
"""

from __future__ import annotations

import uuid
from typing import Any

from synchronizer_fakecloud.nova_servers import IMAGE_ID

POWER_STATES = {
    0: "pending",
    1: "running",
    3: "paused",
    4: "shutdown",
    6: "crashed",
    7: "suspended",
}
#: The action event Nova sends when a server reaches a status (else ``instance.update``).
STATUS_EVENTS = {
    "ACTIVE": "instance.power_on.end",
    "SHUTOFF": "instance.power_off.end",
    "PAUSED": "instance.pause.end",
}
_VERSIONS = {
    "InstanceActionPayload": "1.9",
    "InstanceCreatePayload": "1.12",
    "InstanceUpdatePayload": "2.1",
}


def _obj(name: str, version: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "nova_object.name": name,
        "nova_object.namespace": "nova",
        "nova_object.version": version,
        "nova_object.data": data,
    }


def _flavor(doc: dict[str, Any]) -> dict[str, Any]:
    flavor = doc["flavor"]
    return _obj(
        "FlavorPayload",
        "1.4",
        {
            "flavorid": flavor["original_name"],
            "name": flavor["original_name"],
            "root_gb": flavor["disk"],
            "vcpus": flavor["vcpus"],
            "ephemeral_gb": flavor["ephemeral"],
            "memory_mb": flavor["ram"],
            "swap": flavor["swap"],
            "disabled": False,
            "rxtx_factor": 1.0,
            "extra_specs": dict(flavor.get("extra_specs") or {}),
            "projects": None,
            "is_public": True,
            "vcpu_weight": 0,
            "description": None,
        },
    )


def _block_devices(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        _obj(
            "BlockDevicePayload",
            "1.0",
            {
                "boot_index": None,
                "delete_on_termination": bool(v.get("delete_on_termination")),
                "device_name": f"/dev/vd{chr(ord('b') + i)}",
                "tag": None,
                "volume_id": v["id"],
            },
        )
        for i, v in enumerate(doc["os-extended-volumes:volumes_attached"])
    ]


def instance_data(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``InstancePayload`` data of a server document (a tombstone gives ``deleted``)."""
    deleted = doc["OS-EXT-STS:vm_state"] == "deleted"
    return {
        "uuid": doc["id"],
        "tenant_id": doc["tenant_id"],
        "user_id": doc["user_id"],
        "display_name": doc["name"],
        "display_description": doc.get("description") or "",
        "host_name": doc.get("OS-EXT-SRV-ATTR:hostname"),
        "host": doc.get("OS-EXT-SRV-ATTR:host"),
        "node": doc.get("OS-EXT-SRV-ATTR:hypervisor_hostname"),
        "availability_zone": doc.get("OS-EXT-AZ:availability_zone"),
        "state": doc["OS-EXT-STS:vm_state"],
        "task_state": doc.get("OS-EXT-STS:task_state"),
        "power_state": POWER_STATES.get(doc.get("OS-EXT-STS:power_state") or 0, "pending"),
        "flavor": _flavor(doc),
        "image_uuid": IMAGE_ID,
        "metadata": dict(doc.get("metadata") or {}),
        "block_devices": _block_devices(doc),
        "created_at": doc["created"],
        "launched_at": doc["created"],
        "updated_at": doc["updated"],
        "terminated_at": doc["updated"] if deleted else None,
        "deleted_at": doc["updated"] if deleted else None,
        "architecture": "x86_64",
        "os_type": None,
        "kernel_id": "",
        "ramdisk_id": "",
        "key_name": doc.get("key_name"),
        "locked": bool(doc.get("locked")),
        "locked_reason": doc.get("locked_reason"),
        "progress": 0,
        "reservation_id": doc.get("OS-EXT-SRV-ATTR:reservation_id", ""),
        "auto_disk_config": "MANUAL",
        "ip_addresses": [],
        "request_id": f"req-{uuid.uuid4()}",
        "action_initiator_user": doc["user_id"],
        "action_initiator_project": doc["tenant_id"],
        "shares": [],
    }


def instance_event(
    action: str, doc: dict[str, Any], old_status: str | None = None
) -> tuple[str, dict[str, Any]]:
    """``(event_type, payload)`` Nova sends after ``action`` (create/update/delete)."""
    data = instance_data(doc)
    if action == "create":
        data.update(keypairs=[], tags=[], trusted_image_certificates=None, instance_name="")
        return "instance.create.end", _obj("InstanceCreatePayload", "1.12", data)
    if action == "delete":
        return "instance.delete.end", _obj("InstanceActionPayload", "1.9", {**data, "fault": None})
    event = STATUS_EVENTS.get(doc["status"]) if doc["status"] != old_status else None
    if event:
        return event, _obj("InstanceActionPayload", "1.9", {**data, "fault": None})
    data.update(
        audit_period=_obj(
            "AuditPeriodPayload",
            "1.0",
            {"audit_period_beginning": doc["created"], "audit_period_ending": doc["updated"]},
        ),
        old_display_name=None,
        state_update=_obj(
            "InstanceStateUpdatePayload",
            "1.0",
            {
                "old_state": data["state"],
                "state": data["state"],
                "old_task_state": None,
                "new_task_state": None,
            },
        ),
        tags=list(doc.get("tags") or []),
    )
    return "instance.update", _obj("InstanceUpdatePayload", "2.1", data)


#: Notifications the plugin must drop as invalid, by what is wrong with them.
BAD_PAYLOADS: dict[str, Any] = {
    "not a nova object": {"uuid": "not-wrapped"},
    "unsupported major version": _obj("InstanceActionPayload", "9.0", {"uuid": "x"}),
    "missing uuid": _obj("InstanceActionPayload", "1.9", {"state": "active", "tenant_id": "p"}),
    "payload is a string": "instance went away",
}
