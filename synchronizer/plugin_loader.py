"""Loading plugins named in the configuration.

A name is either an entry-point name in the ``synchronizer.plugins``
namespace (loaded with stevedore) or a class path ``package.module:Class``.
:func:`load` is what every caller uses (the main process, both kinds of
worker, the command-line tools), after stevedore's
``NamedExtensionManager`` with its ``on_load_failure_callback``: it loads
the named plugins of one kind, calls back with ``(name, PluginState,
reason)`` for each that cannot run, and returns the others, by name::

    def report(name, state, reason):
        print(f"{name}: {state}: {reason}")

    collectors = load(conf, conf.plugins, CollectorPlugin, report, skip_other_kinds=True)
    classes = load(conf, conf.plugins, Plugin, report, invoke=False)  # nothing built

Loading is two steps, so the main process can classify plugins without
building them: :func:`resolve` imports the class, registers its options in
its group and reads them back (a malformed value fails that plugin only);
:func:`instantiate` also builds the plugin and runs its ``available()``
check.  Those two raise :class:`PluginLoadError` or
:class:`PluginUnavailable` with a message naming the plugin.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Iterable, Iterator
from typing import Literal, Protocol, TypeVar, overload

from oslo_config import cfg
from stevedore import driver, extension
from stevedore import exception as stevedore_exc

from synchronizer import clouds, opts
from synchronizer.errors import ConfigError, PluginLoadError, PluginUnavailable
from synchronizer.plugin_base import CollectorPlugin, NotificationPlugin, Plugin
from synchronizer.wire import PluginState

LOG = logging.getLogger(__name__)

NAMESPACE = "synchronizer.plugins"

P = TypeVar("P", bound=Plugin)


class OnFailure(Protocol):
    """What :func:`load` calls for a plugin that cannot run, before going on with the others."""

    def __call__(self, name: str, state: PluginState, reason: str, /) -> None: ...


def _entry_points() -> extension.ExtensionManager:
    return extension.ExtensionManager(
        NAMESPACE, invoke_on_load=False, on_load_failure_callback=_report_load_failure
    )


def _report_load_failure(manager: object, entrypoint: object, exc: Exception) -> None:
    LOG.error("Plugin entry point %s failed to load: %s", entrypoint, exc)


def _import_class_path(path: str) -> type:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise PluginLoadError(f"plugin {path!r}: a class path must read 'package.module:Class'")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise PluginLoadError(f"plugin {path!r} cannot be imported: {exc}") from exc
    if not isinstance(obj, type):
        raise PluginLoadError(f"plugin {path!r} is not a class")
    return obj


def _import_entry_point(name: str) -> type:
    try:
        manager = driver.DriverManager(NAMESPACE, name, invoke_on_load=False)
    except stevedore_exc.NoMatches:
        close = difflib.get_close_matches(name, [e.name for e in _entry_points()], n=3)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise PluginLoadError(
            f"plugin {name!r} is not an entry point in namespace {NAMESPACE!r} "
            f"({hint}is its package installed? class paths read 'package.module:Class')"
        ) from None
    except Exception as exc:
        raise PluginLoadError(f"plugin {name!r} failed to import: {exc!r}") from exc
    return manager.driver


def group_for(name: str, cls: type[Plugin]) -> str:
    """The config group of a plugin: its entry-point name, else its ``name``.

    A cloud's plugin (``east/nova.instance``) has the group of that name,
    qualified the same way (``east/<group>``).
    """
    cloud, base = clouds.split(name)
    if ":" in base:
        base = cls.name or base.rpartition(":")[2].lower()
    return clouds.qualify(cloud, base)


def resolve(conf: cfg.ConfigOpts, name: str) -> tuple[type[Plugin], str]:
    """Import the plugin ``name`` and register its options; return (class, group).

    A cloud's plugin (``east/nova.instance``) has its options in its own
    group (``[east/nova.instance]``), whose defaults are the plugin's group's
    values (``[nova.instance]``) but for ``credentials``, the cloud's.
    """
    cloud, base = clouds.split(name)
    cls = _import_class_path(base) if ":" in base else _import_entry_point(base)
    if not (issubclass(cls, CollectorPlugin) or issubclass(cls, NotificationPlugin)):
        raise PluginLoadError(
            f"plugin {name!r} ({cls.__module__}.{cls.__qualname__}) is neither a "
            "CollectorPlugin nor a NotificationPlugin"
        )
    group = group_for(name, cls)
    try:
        cls.register_options(conf, group_for(base, cls))
        if cloud is not None:
            _inherit(conf, cloud, cls, group_for(base, cls), group)
    except (cfg.Error, ValueError) as exc:
        raise PluginLoadError(f"plugin {name!r}: cannot register its options: {exc}") from exc
    except ConfigError as exc:
        raise PluginLoadError(f"plugin {name!r}: {exc}") from exc
    try:
        # Every value read now, required ones included: a malformed or missing
        # option fails this plugin before it starts (a collector without its
        # url would list nothing, "complete", and so delete everything).
        opts.check_group(conf, group)
    except ConfigError as exc:
        raise PluginLoadError(f"plugin {name!r}: {exc}") from exc
    return cls, group


def _inherit(conf: cfg.ConfigOpts, cloud: str, cls: type[Plugin], base: str, group: str) -> None:
    """Register a cloud's plugin group, its defaults the base group's values.

    Defaults rather than values, so the cloud's own group overrides any of
    them; set (not registered) so that a reload that changes the base group
    changes them too.  A required option the base group lacks stays unset
    (the cloud's group may set it; the check that follows says if neither does).
    """
    if cloud not in (conf.clouds or ()):
        raise ConfigError(f"cloud {cloud!r} is not in [DEFAULT] clouds")
    cls.register_options(conf, group)
    credentials = clouds.clouds_by_name(conf)[cloud].credentials
    for opt in cls.all_options():
        if opt.dest == "credentials" and credentials:
            value = credentials
        else:
            try:
                value = conf[base][opt.dest]
            except cfg.ConfigFileValueError as exc:
                raise ConfigError(opts.describe_value_error(conf, base, exc)) from None
            if value is None:
                continue
        conf.set_default(opt.dest, value, group=group)


def instantiate(conf: cfg.ConfigOpts, name: str) -> Plugin:
    """Resolve, construct and check ``name``; raise if it cannot run."""
    cls, group = resolve(conf, name)
    return _build(conf, name, cls, group)


def _build(conf: cfg.ConfigOpts, name: str, cls: type[P], group: str) -> P:
    try:
        plugin = cls(conf, group)
    except Exception as exc:
        raise PluginLoadError(f"plugin {name!r} failed to start: {exc!r}") from exc
    try:
        verdict = plugin.available()
    except Exception as exc:
        raise PluginUnavailable(f"plugin {name!r}: availability check raised {exc!r}") from exc
    if verdict is not True:
        reason = verdict if isinstance(verdict, str) else "available() returned False"
        raise PluginUnavailable(f"plugin {name!r} is not available: {reason}")
    return plugin


@overload
def load(
    conf: cfg.ConfigOpts,
    names: Iterable[str],
    kind: type[P],
    on_failure: OnFailure,
    *,
    invoke: Literal[True] = True,
    skip_other_kinds: bool = False,
) -> dict[str, P]: ...


@overload
def load(
    conf: cfg.ConfigOpts,
    names: Iterable[str],
    kind: type[P],
    on_failure: OnFailure,
    *,
    invoke: Literal[False],
    skip_other_kinds: bool = False,
) -> dict[str, type[P]]: ...


def load(
    conf: cfg.ConfigOpts,
    names: Iterable[str],
    kind: type[P],
    on_failure: OnFailure,
    *,
    invoke: bool = True,
    skip_other_kinds: bool = False,
) -> dict[str, P] | dict[str, type[P]]:
    """The named plugins of ``kind`` that can run, by name, in the order named.

    With ``invoke`` (the default) each is built and its ``available()``
    check run, and the instances are returned; without, only the classes
    (their options registered and read).  Each name that fails is passed to
    ``on_failure`` with :attr:`PluginState.FAILED` (not found, not
    importable, malformed options, constructor raised, or not a ``kind``
    unless ``skip_other_kinds``, which leaves those out silently) or
    :attr:`PluginState.UNAVAILABLE`, and loading goes on with the others.
    A name given twice is loaded once.
    """
    loaded: dict[str, object] = {}
    for name in dict.fromkeys(names):
        try:
            cls, group = resolve(conf, name)
            if not issubclass(cls, kind):
                if skip_other_kinds:
                    continue
                raise PluginLoadError(f"plugin {name!r} is not a {kind.__name__}")
            loaded[name] = _build(conf, name, cls, group) if invoke else cls
        except PluginUnavailable as exc:
            on_failure(name, PluginState.UNAVAILABLE, str(exc))
        except PluginLoadError as exc:
            on_failure(name, PluginState.FAILED, str(exc))
    return loaded  # type: ignore[return-value]


def shipped_plugins() -> Iterator[tuple[str, type[Plugin]]]:
    """Every installed plugin as (entry-point name, class), for the generator."""
    for ext in sorted(_entry_points(), key=lambda e: e.name):
        if isinstance(ext.plugin, type) and issubclass(ext.plugin, Plugin):
            yield ext.name, ext.plugin
