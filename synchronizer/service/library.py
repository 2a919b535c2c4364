"""The synchronizer as a library: workers + dispatcher + subscribers + sinks.

::

    from synchronizer import Synchronizer, opts

    conf = opts.parse(["--config-file", "/etc/synchronizer/synchronizer.conf"])
    sync = Synchronizer(conf)
    sync.register(["nova.instance"], print)   # snapshot items, synced, then live
    sync.start()                              # returns at once
    sync.wait_ready(60)                       # every collector's first full listing is in
    ...
    sync.stop()

A subscription's ``Synced`` marker closes the snapshot of what the view
held when it was registered; registered before :meth:`wait_ready` returns,
that may be less than the cloud (entities then arrive as ``create``).

Worker processes parse the same configuration *files* (they are fresh
interpreters), so values set with ``conf.set_override`` in the caller do not
reach them; put plugin options in a file.

Lifecycle: ``start()`` once, then any number of ``reload()``, then
``stop()``.  Threading: every public method is thread-safe.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

from oslo_config import cfg

from synchronizer import backend, clouds, opts, plugin_loader, wire
from synchronizer.dispatch.dispatcher import Dispatcher
from synchronizer.dispatch.feed import Feed
from synchronizer.dispatch.subscriber import Callback, Subscription, queue_deliverer
from synchronizer.errors import ConfigError
from synchronizer.model import Entity
from synchronizer.outputs import metrics, sinks, view_server
from synchronizer.plugin_base import CollectorPlugin, NotificationPlugin, Plugin
from synchronizer.service.status import Status
from synchronizer.workers import collector, notification
from synchronizer.workers.supervisor import Supervisor, WorkerSpec

LOG = logging.getLogger(__name__)

INBOX_CHUNKS = 64  # bounded hand-off between the pipe reader and the dispatcher


class Synchronizer:
    """Keeps the current view of the enabled plugins and streams its changes."""

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        conf_args: list[str] | None = None,
        *,
        on_output_closed: Callable[[], None] | None = None,
    ) -> None:
        """``on_output_closed``: called when the jsonl sink's stdout reader goes away."""
        opts.register_opts(conf)
        clouds.validate(conf)
        self.conf = conf
        self.conf_args = conf_args if conf_args is not None else opts.config_args(conf)
        self.dispatcher = Dispatcher.from_conf(conf)
        self.status = Status()
        self._reads: dict[str, tuple[str, ...]] = {}  # collector → other groups it reads
        self._inbox: queue.Queue[tuple[str, wire.Message] | None] = queue.Queue(INBOX_CHUNKS)
        self._supervisor = Supervisor(
            self._on_message,
            restart_delay=conf.worker_restart_delay,
            restart_max_delay=conf.worker_restart_max_delay,
            on_restart=self.status.worker_restarted,
        )
        self._sinks: list[sinks.Sink] = []
        self._feeds: list[Feed] = []
        self._thread = threading.Thread(target=self._dispatch_loop, name="dispatcher", daemon=True)
        self._started = False
        self.metrics: metrics.MetricsServer | None = None
        self._on_output_closed = on_output_closed
        self._rpc = view_server.ViewServer(conf, self.dispatcher)

    # -- subscribers --------------------------------------------------------

    def register(
        self,
        entity_types: Collection[str] | None,
        callback: Callback,
        *,
        snapshot: bool = True,
        name: str | None = None,
    ) -> Subscription:
        """Call ``callback`` (on its own thread) for every change of these types.

        With ``snapshot`` it first gets the current entities as ``snapshot``
        changes, then a ``Synced`` marker.  ``None`` means every type.
        """
        sub = Subscription(entity_types, callback, name=name)
        self.dispatcher.add(sub, snapshot=snapshot)
        sub.start()
        return sub

    def subscribe(
        self,
        entity_types: Collection[str] | None,
        target: queue.Queue[Any],
        *,
        snapshot: bool = True,
    ) -> Subscription:
        """Put every change of these types into the consumer's queue."""
        return self.register(entity_types, queue_deliverer(target), snapshot=snapshot)

    def unregister(self, sub: Subscription) -> None:
        self.dispatcher.remove(sub)
        sub.close(drain=False)

    def all_subscriptions(self) -> list[Subscription | Feed]:
        """Every subscription, and every sink's feed (for metrics)."""
        return [*self.dispatcher.subscribers, *self._feeds]

    def get_all(self, entity_types: Collection[str] | None = None) -> list[Entity]:
        """The current entities of these types (all types with None)."""
        return self.dispatcher.get_all(entity_types)

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Start sinks, the dispatcher and the workers of the enabled plugins."""
        if self._started:
            return
        backend.select()
        specs = self._specs()
        self._started = True
        self._sinks = sinks.build(self.conf, self._on_output_closed)
        for sink in self._sinks:
            # Fed from the store's history, from where it got to last time.
            feed = Feed(
                self.dispatcher,
                sink,
                sink.name,
                bookmark_interval=self.conf.bookmark_interval,
            )
            feed.start()
            self._feeds.append(feed)
        self._thread.start()
        self._supervisor.start()
        self._supervisor.ensure(specs)
        self._start_metrics()
        if "message" in self.conf.sinks:
            # Out-of-process consumers: the message sink plus get_all over RPC.
            self._rpc.start()

    def _start_metrics(self) -> None:
        if not self.conf.metrics_port:
            return
        self.metrics = metrics.MetricsServer(self, self.conf.metrics_host, self.conf.metrics_port)
        self.metrics.start()

    def reload(self) -> None:
        """Re-read the plugin list and options; restart only what changed.

        The caller reloads the configuration files first (the daemon does so
        on SIGHUP).
        """
        clouds.validate(self.conf)  # a cloud added with its section, or a broken one refused
        names = clouds.plugin_names(self.conf)
        LOG.info("Reloading the plugin list: %s", ", ".join(names) or "(none)")
        self._supervisor.ensure(self._specs())

    def stop(self, timeout: float = 5.0) -> None:
        """Stop workers, then deliver what is pending and stop subscribers.

        Within about ``1.6 * timeout`` whatever state it is in (a worker
        that ignores SIGTERM is killed, a broker that does not answer is
        abandoned): the daemon's default of 5 s keeps SIGTERM under 10 s.
        Workers go first, so nothing polls or restarts while the rest stops.
        """
        if not self._started:
            return
        deadline = time.monotonic() + 1.6 * timeout
        # What the workers send while they stop (a notification worker's last
        # batch, taken from the bus already) is read and dispatched below.
        self._supervisor.stop(0.8 * timeout, drain=True)
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        self._rpc.stop(min(0.3 * timeout, _left(deadline)))
        if self._thread.is_alive():  # not when start() failed before it
            self._inbox.put(None)
            self._thread.join(_left(deadline))
        for feed in self._feeds:
            # Sends what is committed while there is time, then saves its position:
            # a sink waiting for its broker sends the rest at the next start.
            feed.stop(timeout=min(timeout / 2, _left(deadline)))
        for sub in self.dispatcher.subscribers:
            sub.close(timeout=_left(deadline))
        for sink in self._sinks:
            sink.close()
        self._feeds.clear()
        self.dispatcher.close()  # commits, and frees the state's lock for the next daemon
        self._started = False

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until every collector has delivered a first complete snapshot."""
        return self.status.ready.wait(timeout)

    # -- plugins → worker specs ----------------------------------------------

    def _specs(self) -> list[WorkerSpec]:
        """The workers of the configured plugins; ConfigError when none can load."""
        names = clouds.plugin_names(self.conf)
        collectors, pushers = self._classify(names)
        if not names:
            LOG.warning("No plugin is configured ([DEFAULT] plugins is empty): nothing to deliver")
        elif not collectors and not pushers:
            raise ConfigError(
                "none of the configured plugins can be loaded "
                f"({', '.join(names)}): see the lines above"
            )
        # A collector is known by its group (a class path's plugin by its name).
        periods = {group: float(self.conf[group].period) for group in collectors.values()}
        self.status.expect(collectors.values(), periods)
        chunk = self.conf.chunk_size
        specs = [
            WorkerSpec(
                group,
                collector.collector_main,
                (self.conf_args, name, chunk, group),
                self._digest([*_groups_of(name, group), *self._reads.get(name, ())]),
            )
            for name, group in collectors.items()
        ]
        for cloud, groups in clouds.by_cloud(pushers).items():
            digest = self._digest(list(groups.values()), core=True, cloud=cloud)
            specs.extend(
                WorkerSpec(
                    worker_name,
                    notification.notification_main,
                    (self.conf_args, sorted(groups), chunk),
                    digest,
                )
                for worker_name in notification.worker_names(self.conf.notification_workers, cloud)
            )
        return specs

    def _classify(self, names: list[str]) -> tuple[dict[str, str], dict[str, str]]:
        """The configured collectors and notification plugins, each with its group.

        Classes only: plugins are built in their workers, never here.  Each
        cloud's notification plugins get a worker of their own, on the cloud's
        bus: two of them on one bus could not tell their notifications apart.
        """
        loaded = plugin_loader.load(self.conf, names, Plugin, self._plugin_failed, invoke=False)
        collectors: dict[str, str] = {}
        pushers: dict[str, str] = {}
        for name, cls in loaded.items():
            group = plugin_loader.group_for(name, cls)
            if issubclass(cls, CollectorPlugin):
                collectors[name] = group
                self._reads[name] = cls.other_groups(self.conf, group)
            elif issubclass(cls, NotificationPlugin):
                pushers[name] = group
        clouds.check_buses(self.conf, clouds.by_cloud(pushers))
        return collectors, pushers

    def _plugin_failed(self, name: str, state: wire.PluginState, reason: str) -> None:
        LOG.error("%s; the other plugins run", reason)
        self.status.plugin_state(name, state, reason)

    def _digest(self, groups: list[str], *, core: bool = False, cloud: str | None = None) -> str:
        h = hashlib.sha256()
        if cloud is not None:  # the cloud's bus
            h.update(f"{cloud}.transport_url={clouds.transport_url(self.conf, cloud)!r};".encode())
        for group in groups:
            for key, value in sorted(self.conf[group].items()):
                h.update(f"{group}.{key}={value!r};".encode())
        if core:
            # Every core option the notification worker reads: a SIGHUP that
            # changes one of them restarts it.
            keys = sorted(
                opt.dest for opt in opts.CORE_OPTS if opt.dest.startswith("notification_")
            )
            for key in (*keys, "chunk_size", "transport_url"):
                h.update(f"{key}={self.conf.get(key, None)!r};".encode())
        return h.hexdigest()

    # -- worker messages → dispatcher ------------------------------------------

    def _on_message(self, name: str, message: wire.Message) -> None:
        # Runs on the supervisor's reader thread; blocks when the inbox is full,
        # which back-pressures the workers through their pipes.
        self._inbox.put((name, message))

    def _dispatch_loop(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            try:
                self._handle(*item)
            except Exception:
                LOG.exception("Dispatcher failed on a message from %s; it goes on", item[0])

    def _handle(self, name: str, message: wire.Message) -> None:
        match message:
            case wire.Changes():
                with self._supervisor.answering(name, message):
                    self.dispatcher.dispatch(message.decode())
            case wire.CycleBegin(resync=True):
                self.dispatcher.begin_resync(name, message.types, message.started)
            case wire.CycleEnd():
                if message.resync or not message.complete:
                    self.dispatcher.end_resync(name, message.complete, message.kept)
                self.status.cycle_done(name, message, self.dispatcher.entity_count())
            case wire.PluginStatus():
                self.status.plugin_state(message.plugin, message.state, message.reason)
            case wire.NotificationStats():
                self.status.notification_stats(name, message)


def _groups_of(name: str, group: str) -> list[str]:
    """The groups a collector's worker reads: its own, and its cloud's section (region)."""
    cloud = clouds.cloud_of(name)
    return [group] if cloud is None else [group, clouds.group(cloud)]


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def on_ready(sync: Synchronizer, callback: Callable[[], None]) -> threading.Thread:
    """Run ``callback`` once the synchronizer is ready (on a helper thread)."""

    def wait() -> None:
        sync.wait_ready()
        callback()

    thread = threading.Thread(target=wait, name="ready-notifier", daemon=True)
    thread.start()
    return thread
