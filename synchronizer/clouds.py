"""Several clouds: their options, their plugins' names, their entities' namespace.

One daemon can keep the view of several clouds.  ``[DEFAULT] clouds``
names them, and each has a section ``[cloud:<name>]`` with its credentials
group (of the ``[service_credentials]`` form), its region, its plugins and
its bus::

    [DEFAULT]
    clouds = east, west
    plugins = nagios.service          # what belongs to no cloud, as before

    [cloud:east]
    credentials = east_credentials    # a [service_credentials]-form group
    region_name = RegionOne
    plugins = nova.instance, nova.host, nova.notifications
    transport_url = rabbit://synchronizer:SECRET@rabbit.east:5672/

A cloud's plugin runs under its *qualified name* (:func:`qualify`),
``east/nova.instance``: its worker, its status and metrics, its entities'
``source.plugin``, and its options group ``[east/nova.instance]``, whose
defaults are the values of ``[nova.instance]`` (so options shared by every
cloud are written once), except ``credentials``, whose default is the
cloud's group.

Its entities carry ``cloud`` and their keys are namespaced by it
(:func:`namespaced`): ``east/7f5a…``, as are the keys of their parent and
relations (a cloud's entities point into the same cloud), so two clouds'
equal ids never collide in the view, the ledger, the stores or a
subscriber, and a consumer joins parents to entities by key as before.
Entities of ``[DEFAULT] plugins`` (one cloud configured as before clouds)
have no cloud and keep their keys: their JSON, keys and fingerprints are
what they were.  Project ids are left as the cloud says (clouds that
share a Keystone share them).

The naming functions are pure (no configuration, no I/O); the others take
the parsed ``ConfigOpts``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from oslo_config import cfg

from synchronizer.errors import ConfigError
from synchronizer.model import Entity, Ref, Relation

__all__ = [
    "CLOUD_OPTS",
    "Cloud",
    "by_cloud",
    "check_buses",
    "clouds",
    "group",
    "namespaced",
    "plugin_names",
    "qualify",
    "split",
    "validate",
]

SEPARATOR = "/"
GROUP_PREFIX = "cloud:"
# No dot (a fleet partition is "<cloud>.<namespace>") and no separator.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

CLOUD_OPTS = [
    cfg.StrOpt(
        "credentials",
        regex=r"^[A-Za-z0-9_.-]+$",
        help="Config group holding this cloud's credentials, of the "
        "[service_credentials] form (auth_type and its options, region_name, "
        "interface, cafile, timeout). The default of the credentials option of "
        "each of the cloud's plugins (a plugin's own group, e.g. "
        "[east/ironic.node] credentials, may name another). Required.",
    ),
    cfg.StrOpt(
        "region_name",
        help="Region of this cloud's endpoints; unset: the credentials group's "
        "region_name. Two regions of one Keystone are two clouds with the same "
        "credentials and different regions.",
    ),
    cfg.ListOpt(
        "plugins",
        default=[],
        help="This cloud's plugins (entry-point names or class paths, as in "
        "[DEFAULT] plugins). Each runs as <cloud>/<plugin>, with its options in "
        "[<cloud>/<plugin>], whose defaults are [<plugin>]'s.",
    ),
    cfg.StrOpt(
        "transport_url",
        secret=True,
        help="The bus this cloud's services notify on (its own RabbitMQ or vhost), "
        "for its notification plugins, which listen in the pool "
        "<notification_pool>-<cloud>; unset: [DEFAULT] transport_url. Two clouds' "
        "notification plugins on one bus, exchange and topic are refused: their "
        "notifications could not be told apart.",
    ),
]


@dataclasses.dataclass(frozen=True, slots=True)
class Cloud:
    """One configured cloud: its name and its section's values."""

    name: str
    credentials: str
    region_name: str | None
    plugins: tuple[str, ...]
    transport_url: str | None


# -- names (pure) -------------------------------------------------------------------


def group(cloud: str) -> str:
    """The config section of a cloud: ``cloud:<name>``."""
    return f"{GROUP_PREFIX}{cloud}"


def qualify(cloud: str | None, name: str) -> str:
    """A cloud's name for a plugin (``east/nova.instance``); the name itself without a cloud."""
    return name if cloud is None else f"{cloud}{SEPARATOR}{name}"


def split(name: str) -> tuple[str | None, str]:
    """``(cloud, plugin)`` of a qualified plugin (or group) name; ``(None, name)`` without."""
    cloud, sep, rest = name.partition(SEPARATOR)
    return (cloud, rest) if sep and _NAME.match(cloud) else (None, name)


def cloud_of(name: str) -> str | None:
    """The cloud of a qualified plugin name, None for a plugin of no cloud."""
    return split(name)[0]


def namespaced(entity: Entity, cloud: str) -> Entity:
    """``entity`` as an entity of ``cloud``: ``cloud`` set, its keys namespaced.

    The key, the parent's key and every relation's key get the prefix
    ``<cloud>/``; everything else is kept.  An entity of that cloud already
    is returned as it is (a plugin may namespace its own).
    """
    if entity.cloud == cloud:
        return entity
    prefix = cloud + SEPARATOR
    parent = entity.parent
    if parent is not None:
        parent = Ref(parent.type, prefix + parent.key)
    relations = entity.relations
    if relations:
        relations = tuple(Relation(r.relation, r.type, prefix + r.key) for r in relations)
    return Entity(
        entity.type,
        prefix + entity.key,
        entity.state,
        entity.project,
        parent,
        relations,
        entity.properties,
        entity.timestamp,
        entity.source,
        cloud,
    )


def local_key(entity: Entity) -> str:
    """The key as the entity's cloud knows it (the server's UUID without ``east/``)."""
    if entity.cloud is None:
        return entity.key
    return entity.key.removeprefix(entity.cloud + SEPARATOR)


# -- options --------------------------------------------------------------------------


def register(conf: cfg.ConfigOpts) -> list[str]:
    """Register the section of every cloud ``[DEFAULT] clouds`` names; return the names."""
    names = list(conf.clouds or ())
    for name in names:
        conf.register_opts(CLOUD_OPTS, group=group(name))
    return names


def clouds(conf: cfg.ConfigOpts) -> list[Cloud]:
    """The configured clouds, in the order named (not validated: see :func:`validate`)."""
    found = []
    for name in register(conf):
        section = conf[group(name)]
        found.append(
            Cloud(
                name,
                section.credentials,
                section.region_name,
                tuple(section.plugins or ()),
                section.transport_url,
            )
        )
    return found


def clouds_by_name(conf: cfg.ConfigOpts) -> dict[str, Cloud]:
    """The configured clouds by name."""
    return {cloud.name: cloud for cloud in clouds(conf)}


def plugin_names(conf: cfg.ConfigOpts) -> list[str]:
    """Every plugin to run: ``[DEFAULT] plugins``, then each cloud's, qualified."""
    names = list(conf.plugins or ())
    for cloud in clouds(conf):
        names.extend(qualify(cloud.name, p) for p in cloud.plugins)
    return names


def region_name(conf: cfg.ConfigOpts, cloud: str | None) -> str | None:
    """The region a cloud's section sets (None: its credentials group's, or no cloud)."""
    if cloud is None or cloud not in (conf.clouds or ()):
        return None
    conf.register_opts(CLOUD_OPTS, group=group(cloud))
    return conf[group(cloud)].region_name


def transport_url(conf: cfg.ConfigOpts, cloud: str | None) -> str | None:
    """The bus of a cloud's notification plugins (None: ``[DEFAULT] transport_url``)."""
    if cloud is None or cloud not in (conf.clouds or ()):
        return None
    conf.register_opts(CLOUD_OPTS, group=group(cloud))
    return conf[group(cloud)].transport_url


def pool(notification_pool: str, cloud: str | None) -> str:
    """A cloud's listener pool: ``<notification_pool>-<cloud>`` (the pool itself without)."""
    return notification_pool if cloud is None else f"{notification_pool}-{cloud}"


def validate(conf: cfg.ConfigOpts) -> list[Cloud]:
    """The clouds, checked; :class:`ConfigError` with one line for the first problem.

    A cloud must have a valid, unique name, its ``[cloud:<name>]`` section,
    a ``credentials`` naming a section of the files, and at least one
    plugin.  (Two clouds' notification plugins that would take the same
    notifications are refused where the plugins are loaded.)
    """
    files = ", ".join(conf.config_file or ()) or "(no --config-file)"
    names = list(conf.clouds or ())
    sections = set(_sections(conf))
    for i, name in enumerate(names):
        if not _NAME.match(name):
            raise ConfigError(
                f"{files}: [DEFAULT] clouds: {name!r} is not a cloud name (letters, "
                "digits, '_' and '-', at most 64, no dot)"
            )
        if name in names[:i]:
            raise ConfigError(f"{files}: [DEFAULT] clouds: {name!r} is listed twice")
    for name in names:
        if group(name) not in sections:
            raise ConfigError(
                f"{files}: [DEFAULT] clouds names {name!r} but there is no "
                f"[{group(name)}] section (its credentials, region_name and plugins)"
            )
    found = clouds(conf)
    for cloud in found:
        _check_cloud(conf, files, cloud, sections)
    return found


def by_cloud(plugins: dict[str, str]) -> dict[str | None, dict[str, str]]:
    """Plugins (name → group) by cloud (None: of no cloud first, then the clouds by name)."""
    found: dict[str | None, dict[str, str]] = {}
    for name in sorted(plugins, key=lambda n: (cloud_of(n) is not None, n)):
        found.setdefault(cloud_of(name), {})[name] = plugins[name]
    return found


def check_buses(conf: cfg.ConfigOpts, pushers: dict[str | None, dict[str, str]]) -> None:
    """ConfigError when two clouds' notification plugins would take the same notifications.

    On one bus (the same transport URL) and the same exchange and topic, a
    notification could not be told to be of one cloud or the other.
    """
    seen: dict[tuple[str | None, str, str], str | None] = {}
    for cloud, groups in pushers.items():
        url = transport_url(conf, cloud) or conf.transport_url
        for section in groups.values():
            options = conf[section]
            for topic in options.topics:
                other = seen.setdefault((url, options.exchange, topic), cloud)
                if other != cloud:
                    what = "[DEFAULT] plugins" if other is None else f"cloud {other}"
                    raise ConfigError(
                        f"the notification plugins of cloud {cloud} and of {what} would "
                        f"take the same notifications (one bus, exchange {options.exchange}, "
                        f"topic {topic}): set [{group(str(cloud))}] transport_url to "
                        "the cloud's own bus"
                    )


def _check_cloud(conf: cfg.ConfigOpts, files: str, cloud: Cloud, sections: set[str]) -> None:
    from synchronizer import opts

    opts.check_group(conf, group(cloud.name))
    section = group(cloud.name)
    if not cloud.credentials:
        raise ConfigError(
            f"{files}: [{section}] credentials: a value is required and none is set "
            "(the group of the cloud's credentials, of the [service_credentials] form)"
        )
    if cloud.credentials not in sections:
        raise ConfigError(
            f"{files}: [{section}] credentials = {cloud.credentials}: there is no "
            f"[{cloud.credentials}] section"
        )
    if not cloud.plugins:
        raise ConfigError(f"{files}: [{section}] plugins: the cloud lists no plugin")
    bad = [p for p in cloud.plugins if SEPARATOR in p]
    if bad:
        raise ConfigError(
            f"{files}: [{section}] plugins: {bad[0]!r}: a plugin name has no {SEPARATOR!r}"
        )


def _sections(conf: cfg.ConfigOpts) -> Iterable[str]:
    try:
        return conf.list_all_sections()
    except cfg.Error:
        return ()
