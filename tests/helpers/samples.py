"""The shared OpenStack samples (``fixtures/openstack``), read as the plugins meet them.

The folder is ``$SYNCHRONIZER_FIXTURES`` or ``../shared/fixtures/openstack``
beside the repository; :data:`ROOT` is None when it is absent, and
:func:`require` then skips the test with the reason (and fails it under CI,
where the folder must be present).  Nova's versioned samples share payloads
through ``"$ref"``; :func:`resolve_refs` resolves them as Nova's own
``nova/tests/json_ref.py`` does (the folder's README gives the rule)::

    for path in STREAMS["cinder"]:
        for raw in notifications_in(path):   # envelopes as on the wire
            converter.convert(raw)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest


def _root() -> Path | None:
    default = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "openstack"
    root = Path(os.environ.get("SYNCHRONIZER_FIXTURES") or default)
    return root if (root / "nova").is_dir() else None


ROOT = _root()


def require() -> Path:
    """The fixtures folder; skip the test without it (a failure under CI)."""
    if ROOT is None:
        reason = "no fixtures folder (set SYNCHRONIZER_FIXTURES to fixtures/openstack)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " - tests over the real samples must not skip under CI")
        pytest.skip(reason)
    return ROOT


def _files(pattern: str, under: str) -> list[Path]:
    return sorted((ROOT / under).glob(pattern)) if ROOT else []


#: Notification sample files per stream; Heat's fixtures hold no notification.
STREAMS: dict[str, list[Path]] = {
    "nova": _files("*.json", "nova/notifications"),
    "nova-legacy": _files("**/*.json", "nova/notifications-legacy"),
    "cinder": _files("**/*.json", "cinder/notifications"),
    "neutron": _files("**/*.json", "neutron/notifications"),
    "ironic": _files("*.json", "ironic/notifications"),
}


# -- "$ref" resolution (nova/tests/json_ref.py) -------------------------------------


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return over


def resolve_refs(obj: Any, directory: Path) -> Any:
    """Replace each ``{"$ref": path#, ...}`` by the file, with the other keys merged over."""
    if isinstance(obj, list):
        return [resolve_refs(item, directory) for item in obj]
    if not isinstance(obj, dict):
        return obj
    if "$ref" not in obj:
        return {key: resolve_refs(value, directory) for key, value in obj.items()}
    path, _, fragment = obj["$ref"].partition("#")
    assert not fragment, f"unsupported $ref fragment {fragment!r}"
    target = directory / path
    loaded = resolve_refs(json.loads(target.read_text()), target.parent)
    rest = {k: resolve_refs(v, directory) for k, v in obj.items() if k != "$ref"}
    return _merge(loaded, rest)


# -- notifications ----------------------------------------------------------------


def raw(sample: dict[str, Any]) -> dict[str, Any]:
    """The envelope of one sample as the converter gets it from the bus."""
    metadata = sample.get("metadata") or {}
    return {
        "event_type": sample["event_type"],
        "payload": sample["payload"],
        "publisher_id": sample.get("publisher_id") or "",
        "priority": sample.get("priority") or "INFO",
        "timestamp": sample.get("timestamp") or metadata.get("timestamp") or "",
        "message_id": metadata.get("message_id") or sample.get("message_id") or "",
    }


def notifications_in(path: Path) -> list[dict[str, Any]]:
    """The notifications of a sample file: one, or an object of named ones; refs resolved."""
    body = resolve_refs(json.loads(path.read_text()), path.parent)
    samples = [body] if "event_type" in body else list(body.values())
    return [raw(sample) for sample in samples]


def stream(name: str) -> list[dict[str, Any]]:
    """Every notification of a stream, file by file, in file order."""
    return [n for path in STREAMS[name] for n in notifications_in(path)]


# -- Heat: the fixtures hold stacks only ----------------------------------------------


def heat_stacks() -> list[dict[str, Any]]:
    """Every stack record of the Heat API samples."""
    found = []
    for path in _files("*.json", "heat/api"):
        body = json.loads(path.read_text())
        found += body.get("stacks") or ([body["stack"]] if "stack" in body else [])
    return found


def heat_notification_body(record: dict[str, Any], project: str) -> dict[str, Any]:
    """What heat.engine.api.format_notification_body sends for this stack state."""
    return {
        "tenant_id": project,
        "user_id": "demo",
        "username": "demo",
        "user_identity": "u1",
        "stack_identity": f"arn:openstack:heat::{project}:stacks/"
        f"{record['stack_name']}/{record['id']}",
        "stack_name": record["stack_name"],
        "state": record["stack_status"],
        "state_reason": record["stack_status_reason"],
        "create_at": record["creation_time"].rstrip("Z"),
        "tags": record["tags"],
        "updated_at": record["updated_time"],
        "description": record["description"],
    }
