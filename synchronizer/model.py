"""The entity and change model every consumer sees.

An :class:`Entity` is one observed state of one thing in the cloud (an
instance, a host, a volume...).  A :class:`Change` is an entity plus what
happened to it (:class:`Action`).  Both are frozen, slotted and
JSON-serialisable; the JSON form of a change is one object with the entity's
fields at the top level::

    >>> e = Entity(type="nova.instance", key="u1", state="ACTIVE",
    ...            timestamp="2026-01-01T00:00:00.000000Z")
    >>> Change(Action.CREATE, e).to_dict()["action"]
    'create'

``properties`` is a plain dict for speed; it is shared between every
subscriber that receives the change, so consumers must treat it as read-only.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

import orjson

from synchronizer import timeutil

__all__ = ["Action", "Change", "Entity", "Ref", "Relation", "Source", "Synced"]


class Action(enum.StrEnum):
    """What happened to an entity (``snapshot``: an item of a full listing)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"
    SNAPSHOT = "snapshot"


@dataclasses.dataclass(frozen=True, slots=True)
class Ref:
    """A reference to another entity, by type and key."""

    type: str
    key: str

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "key": self.key}


@dataclasses.dataclass(frozen=True, slots=True)
class Relation:
    """A non-containment edge, e.g. ``attached`` to a ``cinder.volume``."""

    relation: str
    type: str
    key: str

    def to_dict(self) -> dict[str, str]:
        return {"relation": self.relation, "type": self.type, "key": self.key}


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """Where a state came from: ``poll`` or ``push``, and the plugin name."""

    kind: str
    plugin: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "plugin": self.plugin}


@dataclasses.dataclass(frozen=True, slots=True)
class Entity:
    """One observed state of one entity.

    Invariants: ``type`` and ``key`` are non-empty strings and identify the
    entity; ``timestamp`` is UTC ISO 8601 with microseconds and a ``Z``
    suffix, so timestamps compare correctly as strings.

    ``cloud`` names the cloud of a configuration with several
    (``[DEFAULT] clouds``); its entities' keys, and those of their parent and
    relations, are namespaced by it (``east/7f5a…``, see
    :mod:`synchronizer.clouds`), so two clouds' equal ids never collide.
    None (the one cloud configured without a name, and what belongs to no
    cloud): the JSON form has no ``cloud`` field at all, as before clouds.
    """

    type: str
    key: str
    state: str | None = None
    project: str | None = None
    parent: Ref | None = None
    relations: tuple[Relation, ...] = ()
    properties: dict[str, Any] = dataclasses.field(default_factory=dict)
    timestamp: str = ""
    source: Source | None = None
    cloud: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not self.type:
            raise ValueError(f"entity type must be a non-empty string, got {self.type!r}")
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"entity key must be a non-empty string, got {self.key!r}")
        object.__setattr__(self, "timestamp", timeutil.normalize(self.timestamp))

    @property
    def ref(self) -> Ref:
        return Ref(self.type, self.key)

    def replace(self, **changes: Any) -> Entity:
        """Return a copy with some fields replaced."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (no action); ``cloud`` only when the entity has one."""
        data = {
            "type": self.type,
            "key": self.key,
            "timestamp": self.timestamp,
            "state": self.state,
            "project": self.project,
            "parent": self.parent.to_dict() if self.parent else None,
            "relations": [r.to_dict() for r in self.relations],
            "source": self.source.to_dict() if self.source else None,
            "properties": self.properties,
        }
        if self.cloud is not None:
            data["cloud"] = self.cloud
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Entity:
        """Build an entity from its JSON form; raises ValueError if invalid."""
        try:
            parent = data.get("parent")
            source = data.get("source")
            return cls(
                type=data["type"],
                key=str(data["key"]),
                state=data.get("state"),
                project=data.get("project"),
                parent=Ref(parent["type"], str(parent["key"])) if parent else None,
                relations=tuple(
                    Relation(r["relation"], r["type"], str(r["key"]))
                    for r in data.get("relations") or ()
                ),
                properties=dict(data.get("properties") or {}),
                timestamp=data.get("timestamp") or "",
                source=Source(source["kind"], source["plugin"]) if source else None,
                cloud=_cloud(data.get("cloud")),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"invalid entity: {exc!r}") from exc


def _cloud(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise TypeError(f"cloud must be a string, got {type(value).__name__}")


@dataclasses.dataclass(frozen=True, slots=True)
class Change:
    """An entity and what happened to it.

    ``final_state_unknown`` marks a delete found by a resync rather than
    seen: the entity carries the last known state (client-go's
    ``DeletedFinalStateUnknown``).  ``seq`` is the dispatcher's daemon-wide
    sequence number (0 before dispatch); ``fingerprint`` is the xxh3 of the
    entity's non-volatile content (0 for deletes).  ``inferred`` marks a
    delete concluded from the key's absence from a complete listing (or a
    resync's sweep), not reported by the service: a later listing that lists
    the key again overrules it (see :mod:`synchronizer.dispatch.ledger`).
    It is the daemon's own bookkeeping and not part of the JSON form.
    """

    action: Action
    entity: Entity
    fingerprint: int = 0
    final_state_unknown: bool = False
    seq: int = 0
    inferred: bool = False

    @property
    def type(self) -> str:
        return self.entity.type

    @property
    def key(self) -> str:
        return self.entity.key

    def replace(self, **changes: Any) -> Change:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = self.entity.to_dict()
        data["action"] = str(self.action)
        data["final_state_unknown"] = self.final_state_unknown
        data["seq"] = self.seq
        return data

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Change:
        try:
            action = Action(data["action"])
        except (KeyError, ValueError) as exc:
            raise ValueError(f"invalid change action: {exc!r}") from exc
        try:
            seq = int(data.get("seq") or 0)
        except (TypeError, ValueError, OverflowError) as exc:  # "three", [3], Infinity
            raise ValueError(f"invalid change seq: {exc!r}") from exc
        return cls(
            action=action,
            entity=Entity.from_dict(data),
            final_state_unknown=bool(data.get("final_state_unknown", False)),
            seq=seq,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Synced:
    """The marker a new subscriber gets after its initial ``snapshot`` items.

    Everything after it is live.  ``count`` is how many snapshot items came
    before it.  ``action`` reads ``"synced"`` so consumers can switch on
    ``item.action`` for changes and markers alike.
    """

    types: tuple[str, ...] | None
    count: int
    action: str = "synced"

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "types": self.types, "count": self.count}
