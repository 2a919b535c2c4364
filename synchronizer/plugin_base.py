"""Plugin contracts: collectors (poll) and notification plugins (push).

Over 400 lines on purpose: the whole plugin contract (and the entity
documentation a plugin declares) is one page a plugin author reads.

A plugin is a class enabled by name in ``[DEFAULT] plugins``, either its
entry-point name in the ``synchronizer.plugins`` namespace or its class path
(``package.module:Class``).  Its options live in a config group named after
it (the entry-point name, or the class's ``name``), and always include
``period`` for collectors.  A minimal collector::

    from synchronizer.plugin_base import CollectorPlugin, EntityDoc

    class Racks(CollectorPlugin):
        name = "dc.rack"
        entity_types = ("dc.rack",)
        entity_docs = (EntityDoc("dc.rack", "A rack of the data centre.", key="rack id",
                                 properties={"row": "the row it stands in"}),)

        def list_all(self):
            for row in fetch_racks():          # raise on any failure
                yield self.entity("dc.rack", row["id"], state=row["status"],
                                  properties={"row": row["row"]})

Threading: a plugin instance is used by one thread of one worker process; it
need not be thread-safe.  Collectors run in their own subprocess, so they may
block on I/O (every call must still have a timeout).
"""

from __future__ import annotations

import abc
import dataclasses
import email.utils
import re
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

from oslo_config import cfg

from synchronizer import clouds, timeutil
from synchronizer.model import Action, Change, Entity, Ref, Relation, Source

__all__ = [
    "CollectorPlugin",
    "Delta",
    "EntityDoc",
    "Notification",
    "NotificationPlugin",
    "Plugin",
    "RelationDoc",
]


class RelationDoc(NamedTuple):
    """One kind of edge an entity type carries: ``(relation, type, meaning)``."""

    relation: str
    type: str
    meaning: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class EntityDoc:
    """What operators and consumers may rely on about one entity type.

    A plugin lists one per type it produces in ``entity_docs``; the
    reference ``doc/entities.md`` is generated from them
    (``python -m synchronizer.cmd.entity_docs``), and the tests check each
    against entities the plugin really builds, so it cannot go stale.
    Plugins producing the same type (its collector and its notification
    plugin) share one shape, so they share one doc.

    ``key`` says what the key is ("server UUID"); ``state`` what the state
    is and ``states`` the values it takes; ``project`` what the project is
    (None: always null, infrastructure); ``parent`` the parent's type (None:
    never a parent) and ``parent_meaning`` what it is; ``relations`` the
    kinds of edge (``(relation, type)`` or ``(relation, type, meaning)``);
    ``properties`` every property name with its one-line meaning, and
    ``volatile`` those left out of the fingerprint.

    Invariants (checked on construction, ValueError otherwise): ``type``
    and ``key`` are set, ``volatile`` names properties, no state is listed
    twice.  Immutable: ``properties`` is a read-only mapping.
    """

    type: str
    summary: str
    key: str
    state: str = ""
    states: tuple[str, ...] = ()
    project: str | None = None
    parent: str | None = None
    parent_meaning: str = ""
    relations: tuple[RelationDoc, ...] = ()
    properties: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)
    volatile: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.type or not self.key:
            raise ValueError(f"EntityDoc {self.type!r}: type and key must be set")
        if len(set(self.states)) != len(self.states):
            raise ValueError(f"EntityDoc {self.type!r}: a state is listed twice")
        undocumented = sorted(set(self.volatile) - set(self.properties))
        if undocumented:
            raise ValueError(f"EntityDoc {self.type!r}: volatile {undocumented} are no properties")
        # Normalised once, here (the dataclass is frozen): lists and plain
        # tuples in, tuples, RelationDocs and a read-only mapping out.
        assign = object.__setattr__
        assign(self, "states", tuple(self.states))
        assign(self, "relations", tuple(RelationDoc(*r) for r in self.relations))
        assign(self, "properties", types.MappingProxyType(dict(self.properties)))
        assign(self, "volatile", frozenset(self.volatile))


class Plugin(abc.ABC):  # noqa: B024 - the kinds below hold the abstract methods
    """What every plugin has: a name, a config group, options, a health check.

    Subclasses set ``name`` (default config group), ``entity_types`` (the
    types they produce, used for resyncs and documentation),
    ``entity_docs`` (an :class:`EntityDoc` for each of those types, from
    which the entity reference is generated) and ``volatile_properties``
    (properties left out of fingerprints, such as timers that move on every
    poll).
    """

    name: ClassVar[str] = ""
    entity_types: ClassVar[tuple[str, ...]] = ()
    entity_docs: ClassVar[tuple[EntityDoc, ...]] = ()
    volatile_properties: ClassVar[frozenset[str]] = frozenset()
    source_kind: ClassVar[str] = "poll"

    def __init__(self, conf: cfg.ConfigOpts, group: str | None = None) -> None:
        self.conf = conf
        self.group = group or self.name
        #: The cloud a cloud's plugin (group ``east/nova.instance``) runs for, else None.
        #: Its workers namespace what it yields (:func:`synchronizer.clouds.namespaced`):
        #: a plugin builds its entities with the cloud's own ids.
        self.cloud = clouds.cloud_of(self.group)
        self.options = conf[self.group]
        self.source = Source(self.source_kind, self.group)
        self.observed_at = timeutil.now()

    def observe(self, asked: str) -> None:
        """The records converted next were asked of the service at ``asked`` (a page's request).

        Paged listings call it before each page's records
        (:func:`synchronizer_plugins.paging.listing`'s ``on_page``).
        """
        self.observed_at = asked

    @classmethod
    def get_options(cls) -> list[cfg.Opt]:
        """The plugin's own options (registered in its group)."""
        return []

    @classmethod
    def all_options(cls) -> list[cfg.Opt]:
        """Options the core adds for every plugin of this kind plus ``get_options()``."""
        return list(cls.get_options())

    @classmethod
    def register_options(cls, conf: cfg.ConfigOpts, group: str) -> None:
        conf.register_opts(cls.all_options(), group=group)

    @classmethod
    def other_groups(cls, conf: cfg.ConfigOpts, group: str) -> tuple[str, ...]:
        """Config groups besides its own that the plugin reads (its credentials, say).

        A reload (SIGHUP) that changes an option of one of them restarts the
        plugin, as a change of its own group does.  Registers their options
        if it must, to read them.
        """
        return ()

    def available(self) -> bool | str:
        """Return True when the plugin can run here, else False or a reason.

        Runs once before the plugin starts; a plugin that is not available
        is reported and not started, and the others run.
        """
        return True

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (sessions, files) when the plugin stops."""

    def entity(
        self,
        type_: str,
        key: str,
        *,
        state: str | None = None,
        project: str | None = None,
        parent: tuple[str, str] | Ref | None = None,
        relations: Iterable[tuple[str, str, str] | Relation] = (),
        properties: dict[str, Any] | None = None,
        timestamp: str | None = None,
    ) -> Entity:
        """Build an entity stamped with this plugin as source.

        Without ``timestamp`` the entity is stamped with ``observed_at``:
        the start of the current poll cycle (set by the worker), moved by a
        paged listing to the time each page was asked for (:meth:`observe`).
        Either is a lower bound of when the service read the state, so a
        listed state never looks newer than it is, and a notification of an
        event before its page never overrides it.
        """
        if parent is not None and not isinstance(parent, Ref):
            parent = Ref(*parent)
        return Entity(
            type=type_,
            key=key,
            state=state,
            project=project,
            parent=parent,
            relations=tuple(r if isinstance(r, Relation) else Relation(*r) for r in relations),
            properties=properties if properties is not None else {},
            timestamp=timestamp or self.observed_at,
            source=self.source,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Delta:
    """What a delta listing returns: changed entities and deleted ones."""

    entities: Sequence[Entity]
    deleted: Sequence[Entity] = ()


class CollectorPlugin(Plugin):
    """A plugin that polls a service for the full state of some entity types.

    Contract:

    * :meth:`list_all` yields every entity of the plugin's types, following
      every page.  If anything fails part way it must raise (any exception);
      the listing then counts as incomplete: no deletes are inferred and the
      baseline is kept.
    * :meth:`list_changes` (optional, set ``supports_delta = True``) returns
      what changed since a time, including deleted entities; a full listing
      still runs every ``snapshot_interval`` seconds.
    * A record that names an entity but cannot be converted (a field of the
      wrong type, a null state) is reported with :meth:`skip` and not
      yielded: the entity keeps its last good state (or stays absent if it
      never had one) and the listing stays complete for everything else.
      Only a record without a usable key must make the listing raise.
    * A plugin that knows the service's own clock (an HTTP ``Date`` header)
      passes it to :meth:`note_service_date`: the next delta listing's
      ``since`` is then counted on the service's clock, not the daemon's.

    Threading: the worker calls :meth:`start_listing`, then one listing, on
    one thread; :meth:`skip` and :meth:`note_service_date` may be called
    from the listing's helper threads (a read-ahead).
    """

    default_period: ClassVar[float] = 60.0
    default_snapshot_interval: ClassVar[float] = 600.0
    default_mass_delete_threshold: ClassVar[float] = 0.1
    supports_delta: ClassVar[bool] = False

    def __init__(self, conf: cfg.ConfigOpts, group: str | None = None) -> None:
        super().__init__(conf, group)
        #: Records of the current listing that could not be converted: (type, key) -> why.
        self.skipped: dict[tuple[str, str], str] = {}
        #: The service's time at the current listing's first answer (UTC ISO 8601), if known.
        self.service_time: str | None = None

    def start_listing(self) -> None:
        """Forget what the previous listing reported (skipped records, service time)."""
        self.skipped = {}
        self.service_time = None

    def skip(self, type_: str, key: str, reason: str) -> None:
        """Report a listed record of entity ``(type_, key)`` that cannot be converted."""
        self.skipped[(type_, key)] = reason

    def note_service_date(self, date: str | None) -> None:
        """Take an HTTP ``Date`` header as the service's time, once per listing.

        The first answer's date is kept: the service's clock when the
        listing began (to the second, which the delta's overlap covers).  A
        missing or unreadable header is ignored (the daemon's clock is used).
        """
        if self.service_time is not None or not date:
            return
        try:
            when = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            return
        if when.tzinfo is None:
            return  # RFC 9110: an HTTP-date is GMT; anything else is not one
        self.service_time = timeutil.normalize(when)

    @classmethod
    def all_options(cls) -> list[cfg.Opt]:
        opts: list[cfg.Opt] = [
            cfg.FloatOpt(
                "period",
                default=cls.default_period,
                min=0.05,
                help="Seconds between two poll cycles of this plugin.",
            ),
            cfg.FloatOpt(
                "max_backoff",
                default=300.0,
                min=0.1,
                help="Longest wait between retries while the service is failing.",
            ),
            cfg.FloatOpt(
                "mass_delete_threshold",
                default=cls.default_mass_delete_threshold,
                min=0.0,
                max=1.0,
                help="Share of this plugin's entities that one complete listing may "
                "delete at once (more than one entity). A listing that would delete "
                "more is suspicious (a page lost without an error): its deletes are "
                "held until the next complete listing confirms them. 1 turns the "
                "check off; a reload with a higher value lets held deletes through.",
            ),
            cfg.FloatOpt(
                "cycle_timeout",
                default=0.0,
                min=0.0,
                help="Seconds one poll cycle may run before the plugin is declared "
                "hung and its worker restarted (with back-off). 0: ten periods, and "
                "at least 300 s.",
            ),
        ]
        if cls.supports_delta:
            opts.append(
                cfg.FloatOpt(
                    "snapshot_interval",
                    default=cls.default_snapshot_interval,
                    min=0.0,
                    help="Seconds between full listings; delta listings run in between "
                    "(0 disables delta listings).",
                )
            )
        return opts + list(cls.get_options())

    @abc.abstractmethod
    def list_all(self) -> Iterable[Entity]:
        """Yield every entity of this plugin's types; raise if incomplete."""

    def classify_error(self, exc: Exception) -> Exception:
        """Map a listing failure to a project error.

        Return (or raise) :class:`~synchronizer.errors.PermanentError`
        when retrying cannot help (bad credentials, no such endpoint): the
        worker then disables the plugin until the next reload.  Anything
        else is transient and retried with back-off.
        """
        return exc

    def list_changes(self, since: str) -> Delta:
        """Return what changed since ``since`` (normalised UTC ISO 8601)."""
        raise NotImplementedError(f"{type(self).__name__} has no delta listing")


@dataclasses.dataclass(frozen=True, slots=True)
class Notification:
    """One notification as the bus delivered it (or as a replay file holds it).

    ``priority`` is lower case here whatever the wire said (``INFO``);
    ``timestamp`` is normalised UTC ISO 8601.
    """

    event_type: str
    payload: Any
    publisher_id: str = ""
    priority: str = "info"
    timestamp: str = ""
    message_id: str = ""
    topic: str = ""


class NotificationPlugin(Plugin):
    """A plugin that turns bus notifications into entity changes.

    Contract: ``default_exchange`` and ``default_topics`` say where the
    service publishes (both configurable in the plugin's group);
    ``event_types`` and ``publishers`` are regular expressions matched with
    ``re.match`` (the same semantics as oslo.messaging's
    ``NotificationFilter``); :meth:`convert` maps one accepted notification
    to zero or more changes and raises
    :class:`~synchronizer.errors.InvalidNotification` for bad input.
    """

    source_kind: ClassVar[str] = "push"
    default_exchange: ClassVar[str] = "openstack"
    default_topics: ClassVar[tuple[str, ...]] = ("notifications",)
    event_types: ClassVar[tuple[str, ...]] = (".*",)
    publishers: ClassVar[tuple[str, ...]] = (".*",)

    @classmethod
    def all_options(cls) -> list[cfg.Opt]:
        return [
            cfg.StrOpt(
                "exchange",
                default=cls.default_exchange,
                help="Control exchange the service publishes its notifications on.",
            ),
            cfg.ListOpt(
                "topics",
                default=list(cls.default_topics),
                help="Notification topics to listen to.",
            ),
            *cls.get_options(),
        ]

    def __init__(self, conf: cfg.ConfigOpts, group: str | None = None) -> None:
        super().__init__(conf, group)
        self._event_re = re.compile("|".join(f"(?:{p})" for p in self.event_types))
        self._publisher_re = re.compile("|".join(f"(?:{p})" for p in self.publishers))

    @property
    def exchange(self) -> str:
        return self.options.exchange

    @property
    def topics(self) -> list[str]:
        return list(self.options.topics)

    def accepts(self, event_type: str, publisher_id: str) -> bool:
        """Whether this plugin takes notifications of this type and publisher."""
        return bool(
            self._event_re.match(event_type or "") and self._publisher_re.match(publisher_id or "")
        )

    @abc.abstractmethod
    def convert(self, notification: Notification) -> Iterable[Change]:
        """Map one notification to changes (create/update/delete).

        Entities should be built with :meth:`entity` and the notification's
        timestamp, so that they carry this plugin as source and the time the
        service observed the state.
        """

    def change(self, action: Action, entity: Entity) -> Change:
        """A change of ``entity``; the fingerprint is computed by the worker."""
        return Change(action, entity)
