"""The ``nova.instance`` collector: every server of every project, by pages.

Lists ``GET /servers/detail?all_tenants=1`` page after page (``limit`` =
``page_size``, ``marker`` from each page's ``next`` link) until a page has
no ``next`` link, at the negotiated microversion (see
:class:`synchronizer_plugins.nova.collector.NovaCollector`).  Each server becomes
one entity of the shape in :mod:`synchronizer_plugins.nova.shapes`::

    key         id                                  state      Nova status from
    project     tenant_id                                      OS-EXT-STS:vm_state
    parent      nova.host OS-EXT-SRV-ATTR:host                 and :task_state
    relations   (attached, cinder.volume, id) for each os-extended-volumes:volumes_attached
    properties  name, host, node (OS-EXT-SRV-ATTR:hypervisor_hostname),
                availability_zone (OS-EXT-AZ:availability_zone), flavor
                (flavor.original_name from 2.47, the name of flavor.id before),
                image (image.id), vm_state, task_state, user_id, created_at
                (created, to the second), metadata

Delta listings (``supports_delta``) add ``changes-since``, which also
returns deleted servers.  Deletion rule: a server whose vm_state is
``deleted`` (status DELETED) is a delete; a soft-deleted one (SOFT_DELETED)
is still an entity, in that state, since it can be restored.  A full listing
never shows deleted servers, and skips one if it races with a delete.

Flavor names below microversion 2.47, where a server carries only
``flavor: {id, links}``: the shape needs the flavor's *name* only, so the
collector maps ids to names with ``GET /flavors/detail?is_public=None``
(every flavor, public or private, followed page by page) and keeps the map
between cycles, since Nova never renames a flavor.  It lists flavors at most
once per cycle, and only when a server shows an id it does not know (a flavor
created since): a cloud whose flavors do not change costs no flavor request
after the first cycle.  A failed flavor listing makes the cycle incomplete,
like a failed page.  One difference remains: a flavor deleted before the
collector first saw it has no name any more (Nova answers 404 for it), so
its instances get flavor None, where 2.47+ shows the name the server was
built with; negotiate 2.47 or later where that matters.

A server that comes back partial (microversion 2.69+ for a cell that is
down: only id, status UNKNOWN and a few fields) or unusable (a null
vm_state, a field of the wrong type) but with its id is reported with
``skip``: its instance keeps its last good state and the listing stays
complete for every other server, so one bad record blocks no delete (before
2.69 Nova silently leaves a down cell's servers out, another reason to
negotiate a recent microversion).  Only a record without a usable id makes
the listing incomplete, and it raises after yielding what it could.  A
field whose type is merely unexpected (a name of digits sent as a number)
is normalised (:func:`synchronizer_plugins.nova.shapes.label`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from oslo_config import cfg

from synchronizer.errors import IncompleteListing
from synchronizer.model import Entity
from synchronizer.plugin_base import Delta, EntityDoc, Plugin
from synchronizer_plugins import fields
from synchronizer_plugins.nova import shapes
from synchronizer_plugins.nova.collector import NovaCollector

LOG = logging.getLogger(__name__)

__all__ = ["InstanceCollector", "server_entity", "server_instance"]

VOLUMES_ATTACHED = "os-extended-volumes:volumes_attached"
HOST = "OS-EXT-SRV-ATTR:host"
VM_STATE = "OS-EXT-STS:vm_state"
TASK_STATE = "OS-EXT-STS:task_state"
NODE = "OS-EXT-SRV-ATTR:hypervisor_hostname"
ZONE = "OS-EXT-AZ:availability_zone"


def _image_id(record: Mapping[str, Any]) -> str | None:
    image = record.get("image")
    if isinstance(image, Mapping):
        return shapes.text(image, "id")
    if image in (None, ""):  # booted from a volume
        return None
    raise ValueError(f"'image' is a {type(image).__name__}")


def _volume_ids(record: Mapping[str, Any]) -> tuple[str, ...]:
    attached = record.get(VOLUMES_ATTACHED) or []
    if not isinstance(attached, list):
        raise ValueError(f"{VOLUMES_ATTACHED!r} is not a list")
    return tuple(str(shapes.text(v, "id", required=True)) for v in attached)


def server_instance(record: Mapping[str, Any], flavor: str | None) -> shapes.Instance:
    """The instance facts of one servers-detail record (``flavor``: its name).

    Raises ValueError when the record is unusable.
    """
    return shapes.Instance(
        uuid=str(shapes.text(record, "id", required=True)),
        project=shapes.text(record, "tenant_id"),
        vm_state=str(shapes.text(record, VM_STATE, required=True)),
        task_state=shapes.text(record, TASK_STATE),
        name=shapes.label(record, "name"),
        host=shapes.text(record, HOST),
        node=shapes.text(record, NODE),
        availability_zone=shapes.text(record, ZONE),
        flavor=flavor,
        image=_image_id(record),
        user_id=shapes.text(record, "user_id"),
        created_at=fields.seconds(record.get("created")),
        metadata=shapes.mapping(record, "metadata"),
        volumes=_volume_ids(record),
    )


def server_entity(
    record: Mapping[str, Any], flavor: str | None, plugin: Plugin, volume_relations: bool
) -> Entity:
    """The entity of one servers-detail record, as ``server_instance(...).entity(...)``.

    The poll's hot path: when every field has its usual type it builds the
    entity straight from the record, without the intermediate
    :class:`~synchronizer_plugins.nova.shapes.Instance`; anything unusual goes through
    :func:`server_instance`, which validates it (and raises ValueError when
    the record is unusable).  Both end in :func:`shapes.instance_entity`.
    """
    get = record.get
    uuid, vm_state, image, metadata = get("id"), get(VM_STATE), get("image"), get("metadata")
    # The string (or null) fields, unpacked below.
    texts = (
        get("tenant_id"),
        get("name"),
        get(HOST),
        get(NODE),
        get(ZONE),
        get(TASK_STATE),
        get("user_id"),
    )
    if not (
        type(uuid) is str
        and uuid
        and type(vm_state) is str
        and vm_state
        and (type(image) is dict or image is None)
        and (type(metadata) is dict or metadata is None)
        and _plain_texts(texts)
    ):
        instance = server_instance(record, flavor)
        return instance.entity(plugin, volume_relations=volume_relations)
    project, name, host, node, zone, task_state, user_id = texts
    properties = shapes.instance_properties(
        name or None,
        host or None,
        node or None,
        zone or None,
        flavor,
        shapes.text(image, "id") if image else None,
        vm_state,
        task_state or None,
        user_id or None,
        fields.seconds(get("created")),
        metadata or {},
    )
    volumes = _volume_ids(record) if get(VOLUMES_ATTACHED) else ()
    return shapes.instance_entity(
        plugin, volume_relations, None, uuid, project or None, volumes, properties
    )


def _plain_texts(values: tuple[Any, ...]) -> bool:
    """Whether every value is a string or None (the usual case)."""
    for value in values:  # noqa: SIM110 - a plain loop: this runs for every listed server
        if value is not None and type(value) is not str:
            return False
    return True


def is_partial(record: Mapping[str, Any]) -> bool:
    """Whether a record is a down cell's stub (2.69+: status UNKNOWN, no vm_state)."""
    return record.get("status") == "UNKNOWN" and VM_STATE not in record


def record_key(record: Any) -> str | None:
    """A server record's usable id, or None (a record no entity can be named for)."""
    uuid = record.get("id") if isinstance(record, Mapping) else None
    if type(uuid) is int and not isinstance(uuid, bool):
        uuid = str(uuid)
    return uuid if isinstance(uuid, str) and uuid else None


class _Tally:
    """Server records without a usable id; the listing raises at the end if there were any."""

    def __init__(self) -> None:
        self.keyless = 0

    def check(self) -> None:
        if self.keyless:
            raise IncompleteListing(
                f"{self.keyless} server record(s) without a usable id: the listing cannot "
                "say which servers it holds"
            )


class InstanceCollector(NovaCollector):
    """Polls Nova's servers (all projects) into ``nova.instance`` entities.

    Needs admin credentials (``all_tenants`` and the ``OS-EXT-SRV-ATTR``
    fields are admin-only).  ``volume_relations`` must have the same value
    here and in the ``nova.notifications`` group (see there).
    """

    name: ClassVar[str] = "nova.instance"
    entity_types: ClassVar[tuple[str, ...]] = (shapes.INSTANCE,)
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = (shapes.INSTANCE_DOC,)
    volatile_properties: ClassVar[frozenset[str]] = shapes.VOLATILE
    supports_delta: ClassVar[bool] = True

    @classmethod
    def get_options(cls) -> list[cfg.Opt]:
        return [
            *super().get_options(),
            cfg.BoolOpt(
                "volume_relations",
                default=True,
                help="Give instances an 'attached' relation to each attached "
                "cinder.volume.  Set it as in the nova.notifications group.",
            ),
        ]

    def __init__(self, conf: cfg.ConfigOpts, group: str | None = None) -> None:
        super().__init__(conf, group)
        self._flavors: dict[str, str] = {}
        self._flavors_fresh = False
        self._warned: set[str] = set()
        self._volume_relations = True

    def list_all(self) -> Iterator[Entity]:
        for entity in self._entities({}):
            if entity.properties["vm_state"] != shapes.DELETED:
                yield entity

    def list_changes(self, since: str) -> Delta:
        entities: list[Entity] = []
        deleted: list[Entity] = []
        for entity in self._entities({"changes-since": since}):
            gone = entity.properties["vm_state"] == shapes.DELETED
            (deleted if gone else entities).append(entity)
        return Delta(entities, deleted)

    def _entities(self, params: Mapping[str, Any]) -> Iterator[Entity]:
        """Every server of a listing that converts; raises at the end if any did not."""
        tally = _Tally()
        self._flavors_fresh = False
        self._volume_relations = self.options.volume_relations
        for record in self._servers(params):
            entity = self._convert(record, tally)
            if entity is not None:
                yield entity
        tally.check()

    def _servers(self, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        query = {"all_tenants": "True", "limit": self.options.page_size, **params}
        return self.pages("/servers/detail", "servers", query)

    def _convert(self, record: Any, tally: _Tally) -> Entity | None:
        key = record_key(record)
        if key is None:
            tally.keyless += 1
            return None
        if is_partial(record):
            self.skip(shapes.INSTANCE, key, "its cell is unreachable (a partial record)")
            return None
        try:
            flavor = self._flavor_name(record.get("flavor"))
            entity = server_entity(record, flavor, self, self._volume_relations)
        except ValueError as exc:
            self.skip(shapes.INSTANCE, key, str(exc))
            return None
        if HOST not in record:
            self._warn_once(
                "admin",
                "servers have no OS-EXT-SRV-ATTR:host: the credentials "
                "are not admin, so instances get no host",
            )
        return entity

    def _flavor_name(self, flavor: Any) -> str | None:
        """Microversion 2.47+ embeds the flavor (original_name); before, only its id."""
        if type(flavor) is dict:
            name = flavor.get("original_name")
            if type(name) is str:  # the usual case first
                return name or None
        if not isinstance(flavor, Mapping):
            return None
        if "original_name" in flavor:
            return shapes.text(flavor, "original_name")
        flavor_id = shapes.text(flavor, "id")
        if flavor_id is None:
            return None
        if flavor_id not in self._flavors and not self._flavors_fresh:
            self._load_flavors()
        name = self._flavors.get(flavor_id)
        if name is None:
            self._warn_once(f"flavor:{flavor_id}", f"flavor {flavor_id} is unknown (deleted?)")
        return name

    def _load_flavors(self) -> None:
        query = {"is_public": "None", "limit": self.options.page_size}
        flavors = self.pages("/flavors/detail", "flavors", query, observe=False)
        self._flavors = {str(f["id"]): f["name"] for f in flavors if "id" in f and "name" in f}
        self._flavors_fresh = True

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            LOG.warning("%s: %s", self.group, message)
