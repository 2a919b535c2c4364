"""A fleet member: the partitions it owns, each its own dispatcher on the shared store.

One class whose lifecycle (own, run, give up a partition) reads best whole;
over 400 lines for that reason.

:class:`Member` is what the daemon runs instead of
:class:`~synchronizer.service.library.Synchronizer` when
``[coordination] backend_url`` is set.  It computes the partitions from
the configured plugins (:mod:`synchronizer.fleet.partitions`), takes its
share through :class:`~synchronizer.fleet.ownership.Ownership`, and for
each partition it gains:

1. claims the partition's next term in the shared store
   (:class:`~synchronizer.dispatch.sql.SQLStore`), which reads the view,
   seq and history the previous owner committed;
2. builds a :class:`~synchronizer.dispatch.dispatcher.Dispatcher` on that
   store and a :class:`~synchronizer.dispatch.feed.Feed` per sink, which
   resumes from the sink's position committed by the previous owner;
3. starts the partition's workers (its collectors, and a notification
   worker in a listener pool of the partition's own, so partitions owned
   by different members never take each other's notifications).

A partition handed over (assigned to a member that joined, or this member
stopping) is drained first: its workers stop, what they send while
stopping (a notification worker's last batch) and what waits in the
dispatch queue is dispatched under the term that still holds, and only
then is the lock released; notifications taken from the bus are not
dropped by a rebalance or a rolling restart.

A batch the store refuses (:class:`~synchronizer.errors.Fenced`: another
member has a newer term) or cannot write (the database is down) reaches
no subscriber and no sink; the member drops that partition at once
(workers stopped, dispatcher closed) and gives its lock back, and takes
it again, from the database, when it is assigned to it and the database
answers.

Lifecycle as the library's: ``start()``, ``reload()``, ``stop()``,
``wait_ready()``, ``status``.  Threading: worker messages are handled on
one dispatch thread; partitions are gained and lost on the ownership
thread; ``_runs`` is guarded by ``_lock``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from oslo_config import cfg

from synchronizer import backend, clouds, opts, plugin_loader, wire
from synchronizer.dispatch import sql
from synchronizer.dispatch.dispatcher import Dispatcher
from synchronizer.dispatch.feed import Feed
from synchronizer.errors import ConfigError, Fenced
from synchronizer.fleet import options
from synchronizer.fleet.ownership import Ownership
from synchronizer.fleet.partitions import Partition, group
from synchronizer.fleet.view import build_server
from synchronizer.outputs import metrics, sinks, view_server
from synchronizer.plugin_base import CollectorPlugin, NotificationPlugin, Plugin
from synchronizer.service.status import Status
from synchronizer.workers import collector, notification
from synchronizer.workers.supervisor import Supervisor, WorkerSpec

LOG = logging.getLogger(__name__)
LOG_AGAIN = 60.0  # seconds between the ERROR lines of a partition that cannot open
DRAIN_WAIT = 3.0  # the longest a hand-over waits for its workers' last messages

__all__ = ["Member"]


@dataclasses.dataclass
class _Run:
    """One owned partition: its term, dispatcher, feeds and worker specs."""

    partition: Partition
    term: int
    dispatcher: Dispatcher
    feeds: list[Feed]
    sinks: list[Any]
    specs: list[WorkerSpec]
    stopping: bool = False  # being given up: nothing more is dispatched to it ...
    draining: bool = False  # ... but what its stopped workers sent last (a hand-over)


class Member:
    """Runs the partitions this member owns (see the module docstring)."""

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        conf_args: list[str] | None = None,
        *,
        on_output_closed: Callable[[], None] | None = None,
    ) -> None:
        opts.register_opts(conf)
        options.register(conf)
        clouds.validate(conf)
        if not conf.database.connection:
            raise ConfigError("[coordination] backend_url is set: [database] connection must be")
        self.conf = conf
        self.conf_args = conf_args if conf_args is not None else opts.config_args(conf)
        self.member_id = conf.coordination.member_id or f"{socket.gethostname()}-{os.getpid()}"
        self.status = _MemberStatus(self.owned)
        # Not connected yet: a database that is down at start delays the
        # partitions (retried every period), it does not stop the daemon.
        self.engine = sql.create_engine(
            conf.database.connection,
            create_tables=False,
            max_retries=0,
            max_pool_size=conf.database.max_pool_size,
            connection_recycle_time=conf.database.connection_recycle_time,
            mysql_sql_mode=conf.database.mysql_sql_mode,
            # A frozen owner's open transaction is ended within its lease.
            lease=conf.coordination.heartbeat_timeout,
        )
        self._tables_made = False
        self._on_output_closed = on_output_closed
        self._classes = self._load_classes()
        self.partitions = {p.name: p for p in group(self._classes)}
        self._runs: dict[str, _Run] = {}
        self._worker_partition: dict[str, str] = {}
        self._said: dict[str, float] = {}  # partition → when its failing open was last logged
        self._lock = threading.Lock()
        # One gain or loss of a partition at a time: the ownership loop gains
        # and loses, the lease watch loses, the dispatch thread drops; a loss
        # still under way must not take a new term's run with it.
        self._transitions = {name: threading.Lock() for name in self.partitions}
        self._workers_lock = threading.Lock()  # the workers wanted, worked out and applied
        # Worker messages, a hand-over's marker (an Event), or None to stop.
        self._inbox: queue.Queue[tuple[str, wire.Message] | threading.Event | None] = queue.Queue(
            64
        )
        self._supervisor = Supervisor(
            self._on_message,
            restart_delay=conf.worker_restart_delay,
            restart_max_delay=conf.worker_restart_max_delay,
            on_restart=self.status.worker_restarted,
        )
        self.ownership = Ownership(
            conf.coordination.backend_url,
            self.member_id,
            sorted(self.partitions),
            self._gain,
            self._lose,
            group=conf.coordination.group,
            timeout=conf.coordination.heartbeat_timeout,
        )
        self._thread = threading.Thread(target=self._dispatch_loop, name="dispatcher", daemon=True)
        # Every member answers get_all and watch for every partition, from the database.
        types = {name: p.types for name, p in self.partitions.items()}
        self._rpc = view_server.ViewServer(
            conf, None, lambda: build_server(conf, self.engine, types, self.member_id)
        )
        self._started = False
        self._standby = False  # keep standby workers (set at start, cleared at stop)
        self.metrics: metrics.MetricsServer | None = None

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        backend.select()
        self._started = True
        LOG.info(
            "Fleet member %s; partitions: %s",
            self.member_id,
            ", ".join(f"{p.name} ({', '.join(p.plugins)})" for p in self.partitions.values()),
        )
        self.status.expect([], {})
        self._thread.start()
        self._supervisor.start()
        self._standby = self.conf.coordination.standby_workers
        self._ensure_workers()  # the standby workers, before any partition is gained
        self.ownership.start()
        self._rpc.start()
        if self.conf.metrics_port:
            self.metrics = metrics.MetricsServer(
                self,
                self.conf.metrics_host,
                self.conf.metrics_port,
                collector=metrics.FleetCollector(self),
                health=self.health,
            )
            self.metrics.start()

    def reload(self) -> None:
        LOG.info("Reload: a fleet member keeps its partitions (restart it to change plugins)")

    def stop(self, timeout: float = 5.0) -> None:
        if not self._started:
            return
        self._standby = False  # partitions given up now are not prepared again
        self.ownership.stop(timeout)
        # A run the ownership loop did not account for (one its lease watch was
        # still stopping, or one gained by hand) stops too: no feed or worker
        # outlives the member.  Not planned: no lock is held for it any more.
        for name in self.owned():
            self._lose(name, "the member stops")
        self._rpc.stop(0.3 * timeout)
        self._supervisor.stop(0.8 * timeout)
        self._inbox.put(None)
        self._thread.join(timeout)
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        self.engine.dispose()
        self._started = False

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self.status.ready.wait(timeout)

    def owned(self) -> dict[str, int]:
        """``partition → term`` of what this member runs now."""
        with self._lock:
            return {name: run.term for name, run in self._runs.items()}

    def partition_report(self) -> dict[str, dict[str, Any]]:
        """Per partition: held here or not, owner and term, seq, entities, each sink's lag.

        ``owner`` and ``database_term`` are the database's (None while it
        does not answer); ``term`` is this member's while it holds the
        partition, else the database's.
        """
        try:
            stored: dict[str, tuple[str | None, int]] | None = sql.owners(self.engine)
        except sql.DATABASE_ERRORS:
            stored = None
        with self._lock:
            runs = dict(self._runs)
        report = {}
        for name in sorted(self.partitions):
            run = runs.get(name)
            owner, term = (stored or {}).get(name, (None, 0))
            entry: dict[str, Any] = {
                "held": run is not None,
                "owner": owner,
                "database_term": term if stored is not None else None,
                "term": run.term if run else term,
            }
            if run is not None:
                entry["seq"] = run.dispatcher.last_seq()
                entry["entities"] = run.dispatcher.entity_count()
                entry["lag"] = {feed.name: feed.backlog for feed in run.feeds}
            report[name] = entry
        return report

    def health(self) -> dict[str, Any]:
        """The status's health (the held partitions' collectors), the member, its partitions.

        ``coordinator``: whether its last call answered, and the fleet's
        members as it last read them (this member's view of the membership,
        from which it computes who owns what).
        """
        report = self.status.health()
        report["member"] = self.member_id
        report["coordinator"] = {
            "connected": self.ownership.connected,
            "members": list(self.ownership.members),
        }
        report["partitions"] = self.partition_report()
        return report

    # -- gaining and losing partitions ---------------------------------------

    def _gain(self, name: str) -> bool:
        # After any loss of it under way (which ends with its run gone).
        with self._transitions[name]:
            return self._gain_now(name)

    def _gain_now(self, name: str) -> bool:
        partition = self.partitions[name]
        try:
            run = self._open(partition)
        except (*sql.DATABASE_ERRORS, Fenced) as exc:
            # Retried every ownership cycle: said once a minute, not four times a period.
            now, level = time.monotonic(), logging.DEBUG
            if now - self._said.get(name, -LOG_AGAIN) >= LOG_AGAIN:
                self._said[name], level = now, logging.ERROR
            LOG.log(level, "Partition %s: cannot open its state (%s); retrying", name, exc)
            return False
        self._said.pop(name, None)
        started: list[Feed] = []
        try:
            for feed in run.feeds:
                feed.start()  # reads the sink's saved position
                started.append(feed)
        except (*sql.DATABASE_ERRORS, Fenced) as exc:
            # Claimed, but the database went away before the sinks could start:
            # undo (a partition held and not run would stay dead) and retry later.
            LOG.error("Partition %s: cannot start its sinks (%s); retrying later", name, exc)
            self._close(run, started, "its sinks could not start")
            return False
        with self._lock:
            self._runs[name] = run
            for spec in run.specs:
                self._worker_partition[spec.name] = name
        self._ensure_workers()
        LOG.info(
            "Partition %s: running, term %d, from seq %d", name, run.term, run.dispatcher.last_seq()
        )
        return True

    def _open(self, partition: Partition) -> _Run:
        store = sql.SQLStore(
            self.engine,
            partition.name,
            self.member_id,
            history_max_changes=self.conf.history_max_changes,
            history_max_age=self.conf.history_max_age,
        )
        if not self._tables_made:
            sql.create_tables_of(self.engine)
            self._tables_made = True
        term = store.claim()
        dispatcher = Dispatcher(
            self.conf.tombstone_ttl, store, tombstone_max=self.conf.tombstone_max
        )
        built = sinks.build(self.conf, self._on_output_closed)
        feeds = [
            Feed(dispatcher, sink, sink.name, bookmark_interval=self.conf.bookmark_interval)
            for sink in built
        ]
        return _Run(partition, term, dispatcher, feeds, built, self._specs(partition))

    def _lose(self, name: str, why: str, planned: bool = False, only: _Run | None = None) -> None:
        """Stop a partition (``only``: if that is still its run); ``planned`` (a
        hand-over): dispatch what its workers had first.

        Not ``planned`` when its lease or term is gone (what it dispatched
        would be refused), nor from the dispatch thread (it would wait on
        itself).  Waits for a gain or loss of the partition under way on
        another thread.
        """
        with self._transitions[name]:
            with self._lock:
                run = self._runs.get(name)
            if run is None or (only is not None and run is not only):
                return  # not held, or held under a newer term than the one to drop
            self._stop(run, why, planned)

    def _stop(self, run: _Run, why: str, planned: bool) -> None:
        """Stop one run of a partition (its transition lock held)."""
        name = run.partition.name
        with self._lock:
            run.stopping, run.draining = True, planned
        self._ensure_workers(drain=planned)
        if planned:
            self._drain(name)
        with self._lock:
            if self._runs.get(name) is run:
                del self._runs[name]
                for spec in run.specs:
                    self._worker_partition.pop(spec.name, None)
        self._close(run, run.feeds, why)

    def _drain(self, name: str) -> None:
        """Wait until the stopped workers' last messages, and all queued before, are dispatched."""
        deadline = time.monotonic() + DRAIN_WAIT
        if not self._supervisor.wait_drained(DRAIN_WAIT):
            LOG.warning("Partition %s: its workers did not all stop in time", name)
        done = threading.Event()
        with contextlib.suppress(queue.Full):  # then the wait below says so
            self._inbox.put(done, timeout=max(0.1, deadline - time.monotonic()))
        if not done.wait(max(0.1, deadline - time.monotonic())):
            LOG.warning("Partition %s: what its workers sent last may not all be dispatched", name)

    def _close(self, run: _Run, feeds: list[Feed], why: str) -> None:
        """Close a partition's dispatcher, its started ``feeds`` and its sinks."""
        name = run.partition.name
        run.dispatcher.close()  # later batches of its workers are refused
        for feed in feeds:
            try:
                feed.stop(timeout=2.0)
            except (Fenced, *sql.DATABASE_ERRORS) as exc:
                # Its position stays the last saved one: the next owner
                # re-sends from there (the same seqs, the same changes).
                LOG.warning("Partition %s: sink %s's position not saved (%s)", name, feed.name, exc)
        for sink in run.sinks:
            sink.close()
        LOG.warning("Partition %s: stopped (term %d): %s", name, run.term, why)

    def _ensure_workers(self, drain: bool = False) -> None:
        # Worked out and applied under one lock: two threads applying in the
        # other order would leave the older wish (a partition's workers put
        # on standby while it runs).
        with self._workers_lock:
            self._apply_workers(drain)

    def _apply_workers(self, drain: bool) -> None:
        with self._lock:
            running = {name for name, run in self._runs.items() if not run.stopping}
            specs = [spec for name in running for spec in self._runs[name].specs]
            collectors = [s.name for s in specs if s.target is collector.collector_main]
            standby = [
                spec
                for name, partition in self.partitions.items()
                if name not in running and self._standby
                for spec in self._specs(partition)
            ]
        periods = {n: float(self.conf[self._group(n)].period) for n in collectors}
        self.status.expect(collectors, periods)
        self._supervisor.ensure(specs, standby, drain=drain)

    # -- plugins → partitions → worker specs -----------------------------------

    def _load_classes(self) -> dict[str, type]:
        names = clouds.plugin_names(self.conf)
        loaded = plugin_loader.load(self.conf, names, Plugin, self._plugin_failed, invoke=False)
        if names and not loaded:
            raise ConfigError(f"none of the configured plugins can be loaded ({', '.join(names)})")
        pushers = {
            name: plugin_loader.group_for(name, cls)
            for name, cls in loaded.items()
            if issubclass(cls, NotificationPlugin)
        }
        clouds.check_buses(self.conf, clouds.by_cloud(pushers))
        return dict(loaded)

    def _group(self, name: str) -> str:
        return plugin_loader.group_for(name, self._classes[name])

    def _specs(self, partition: Partition) -> list[WorkerSpec]:
        # A new term needs fresh workers: a partition lost stops its workers
        # (or replaces them by fresh ones on standby), so a gained one never
        # runs a worker of an earlier term.
        digest = partition.name
        chunk = self.conf.chunk_size
        specs, pushers = [], []
        for name in partition.plugins:
            cls = self._classes[name]
            if issubclass(cls, CollectorPlugin):
                group = self._group(name)  # what it is known by (see collector_main)
                args = (self.conf_args, name, chunk, group)
                specs.append(WorkerSpec(group, collector.collector_main, args, digest, gated=True))
            elif issubclass(cls, NotificationPlugin):
                pushers.append(name)
        if pushers:
            pool = f"{self.conf.notification_pool}-{partition.name}"
            args = (self.conf_args, pushers, chunk, pool)
            name = f"{partition.name}-notifications"
            specs.append(WorkerSpec(name, _notification_main, args, digest, gated=True))
        return specs

    def _plugin_failed(self, name: str, state: wire.PluginState, reason: str) -> None:
        LOG.error("%s; the other plugins run", reason)
        self.status.plugin_state(name, state, reason)

    # -- worker messages → the partition's dispatcher ---------------------------

    def _on_message(self, name: str, message: wire.Message) -> None:
        self._inbox.put((name, message))

    def _dispatch_loop(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()  # a hand-over's marker: everything queued before it is dispatched
                continue
            name, message = item
            with self._lock:
                partition = self._worker_partition.get(name)
                run = self._runs.get(partition) if partition else None
            if run is None or (run.stopping and not run.draining):
                # A worker of a partition this member just gave up: what it
                # took from the bus goes back there, for the next owner.
                self._supervisor.refuse(name, message)
                continue
            try:
                self._handle(run, name, message)
            except (Fenced, *sql.DATABASE_ERRORS) as exc:
                LOG.error("Partition %s: a batch was refused (%s); giving it up", partition, exc)
                self._drop(run)
            except Exception:
                LOG.exception("Dispatcher failed on a message from %s; it goes on", name)

    def _drop(self, run: _Run) -> None:
        """Stop a partition whose store refused a batch, then give its lock back.

        Never raises: the dispatch thread serves every partition.  The lock
        is given back whatever stopping the partition ran into, so that the
        partition is taken again (here or elsewhere) from the database.
        """
        try:
            self._lose(run.partition.name, "its store refused a batch", only=run)
        except Exception:
            LOG.exception(
                "Partition %s: stopping it failed; its lock is given back", run.partition.name
            )
        finally:
            self.ownership.release(run.partition.name)

    def _handle(self, run: _Run, name: str, message: wire.Message) -> None:
        dispatcher = run.dispatcher
        match message:
            case wire.Changes():
                with self._supervisor.answering(name, message):
                    dispatcher.dispatch(message.decode())
            case wire.CycleBegin(resync=True):
                dispatcher.begin_resync(name, message.types, message.started)
            case wire.CycleEnd():
                if message.resync or not message.complete:
                    dispatcher.end_resync(name, message.complete, message.kept)
                self.status.cycle_done(name, message, dispatcher.entity_count())
            case wire.PluginStatus():
                self.status.plugin_state(message.plugin, message.state, message.reason)
            case wire.NotificationStats():
                # Per term: each term's worker counts from 0, and a partition that
                # comes back must not take back what its earlier workers counted.
                self.status.notification_stats(f"{name}:{run.term}", message)


class _MemberStatus(Status):
    """The status, whose one-line text (systemd's STATUS=) names the partitions held."""

    def __init__(self, owned: Callable[[], dict[str, int]]) -> None:
        super().__init__()
        self._owned = owned

    def text(self) -> str:
        owned = self._owned()
        held = ", ".join(f"{p} (term {t})" for p, t in sorted(owned.items())) or "none"
        return f"{super().text()}; partitions held: {held}"


def _notification_main(
    conf_args: list[str], names: list[str], chunk_size: int, pool: str, conn: Any, gate: Any = None
) -> None:
    """The notification worker of one partition, in that partition's listener pool.

    The pool reaches the fresh interpreter through oslo.config's environment
    source (``OS_DEFAULT__NOTIFICATION_POOL``), which overrides the files,
    and is passed on as it is (a cloud's partition, ``east.nova``, names its
    cloud already).
    """
    os.environ["OS_DEFAULT__NOTIFICATION_POOL"] = pool
    notification.notification_main(conf_args, names, chunk_size, conn, pool, gate)
