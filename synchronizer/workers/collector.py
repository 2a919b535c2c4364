"""The collector worker: one plugin's poll loop, in its own process.

The loop owns the plugin's baseline (``(type, key)`` → fingerprint) and
sends only changes.  Each cycle is either a full listing (the first one, and
one every ``snapshot_interval`` for plugins with a delta listing) or a delta
listing.  The loop never dies: a failing cycle is counted and logged, and
the next one waits with exponential back-off up to ``max_backoff``; an
outage is logged once per back-off step, not once per retry.

The first complete full listing after the worker starts is a *resync*: the
dispatcher learns every key the plugin has, and deletes (as "final state
unknown") what it knew of that plugin and no longer exists.  That is how a
restarted worker with an empty baseline still catches deletes it missed.

With the durable state (``state = sqlite``) a worker starts instead from
the baseline of what subscribers were last told (:meth:`PollLoop.seed`),
read from the store: its first listing sends only what changed while it
(or the whole daemon) was down, and no resync is needed.

A full listing that looks complete may still have lost records: one that
lists a key twice is treated as incomplete, records that do not convert
keep their entities, and a mass delete is held until the next full listing
confirms it (:mod:`synchronizer.deletes`; logged by
:mod:`synchronizer.workers.doubts`).  A delta listing's ``since`` is counted
on the service's clock when the plugin knows it
(:meth:`~synchronizer.plugin_base.CollectorPlugin.note_service_date`).  The
loop runs on a thread of its own, watched for cycles that never end
(:mod:`synchronizer.workers.watchdog`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from synchronizer import clouds, deletes, diff, plugin_loader, timeutil, wire
from synchronizer.dispatch import store
from synchronizer.errors import PermanentError
from synchronizer.model import Action, Change, Entity
from synchronizer.plugin_base import CollectorPlugin
from synchronizer.workers import watchdog
from synchronizer.workers.doubts import Doubts
from synchronizer.workers.process import (
    EXIT_PERMANENT,
    Sender,
    name_process,
    prepare_child,
    reporter,
)

if TYPE_CHECKING:
    from synchronizer.workers.supervisor import GateEnd

LOG = logging.getLogger(__name__)

Send = Callable[[wire.Message], None]


class PollLoop:
    """Runs one collector plugin's cycles and sends what changed.

    Threading: ``run()`` runs on one thread; ``stop`` may be set from any.
    """

    def __init__(self, plugin: CollectorPlugin, name: str, send: Send, chunk_size: int) -> None:
        self.plugin = plugin
        self.name = name
        self.send = send
        self.chunk_size = chunk_size
        self.baseline = diff.Baseline()
        self.resync_pending = True
        self.last_full: float | None = None
        self.last_success: str | None = None
        self.failures = 0
        self.hold = deletes.MassDeleteHold(float(plugin.options.mass_delete_threshold))
        self.doubts = Doubts(name)
        #: When the running cycle began (monotonic), None between cycles: the watchdog reads it.
        self.cycle_started: float | None = None
        self.seeded = False

    def seed(self, by_type: dict[str, dict[str, int]]) -> None:
        """Start from what subscribers were last told (the durable state's view).

        The first full listing then sends only what changed since: no
        resync is needed (the baseline names every key told), and the
        deletes it finds were not seen happen (the daemon was down), so
        they go as ``final_state_unknown``.
        """
        self.baseline = diff.Baseline.of_types(by_type)
        self.resync_pending = False
        self.seeded = True
        LOG.info("%s: starting from the saved view (%d entities)", self.name, len(self.baseline))

    # -- scheduling -------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        delay = 0.0
        while not stop.wait(delay):
            delay = self.step()

    def step(self) -> float:
        """Run one cycle; return the delay before the next one."""
        period = float(self.plugin.options.period)
        self.cycle_started = time.monotonic()
        try:
            ok = self.cycle()
        except PermanentError:
            raise
        except Exception as exc:  # the loop never dies
            LOG.exception("%s: poll cycle crashed: %s", self.name, exc)
            ok = False
        finally:
            self.cycle_started = None
        if ok:
            if self.failures:
                LOG.info("%s: service back after %d failed cycle(s)", self.name, self.failures)
            self.failures = 0
            return period
        return self._backoff(period)

    def _backoff(self, period: float) -> float:
        self.failures += 1
        cap = float(self.plugin.options.max_backoff)
        delay = min(period * 2 ** (self.failures - 1), max(cap, period))
        previous = min(period * 2 ** (self.failures - 2), max(cap, period))
        if self.failures == 1 or delay != previous:
            LOG.warning(
                "%s: cycle failed (%d in a row); next attempt in %.1f s",
                self.name,
                self.failures,
                delay,
            )
        return delay

    def _wants_full(self) -> bool:
        if self.resync_pending or self.hold.held or not self.plugin.supports_delta:
            return True  # held deletes wait for a full listing to confirm them
        interval = float(self.plugin.options.snapshot_interval)
        if interval <= 0 or self.last_success is None or self.last_full is None:
            return True
        return time.monotonic() - self.last_full >= interval

    # -- one cycle --------------------------------------------------------

    def cycle(self) -> bool:
        """Poll once, send the changes; return whether the listing was complete."""
        started = timeutil.now()
        t0 = time.monotonic()
        self.plugin.observed_at = started
        self.plugin.start_listing()
        full = self._wants_full()
        resync = full and self.resync_pending
        self.send(wire.CycleBegin(resync, full, started, tuple(self.plugin.entity_types)))
        held, tracked = self.hold.held, len(self.baseline)
        result, error = self._list(full)
        self._emit(self._unseen(result.changes) if self.seeded and full else result.changes)
        complete = error is None
        if complete:
            self.seeded = self.seeded and not full
            self.baseline = result.baseline
            # The next delta's since: on the service's clock when it said (its Date).
            self.last_success = self.plugin.service_time or started
            if full:
                self.last_full = t0
                self.resync_pending = False
                self.doubts.held(self.hold, held, tracked)
        end = self._outcome(result, resync, full, time.monotonic() - t0, error)
        end = dataclasses.replace(
            end,
            held=len(self.hold.held),
            unconvertible=self.doubts.skipped(self.plugin.skipped, settled=full and complete),
            # Listed, though not sent: a resync must not take them for gone.
            kept=tuple(self._kept()) if end.resync else (),
        )
        self.send(end)
        self._log_cycle(end)
        return complete

    def _list(self, full: bool) -> tuple[diff.DiffResult, str | None]:
        volatile = self.plugin.volatile_properties
        if not full:
            return self._list_delta(volatile)
        errors: list[str] = []
        # Streamed: each entity is diffed as its page arrives and is then
        # garbage (unless it changed), so a cycle never holds the listing.
        result = diff.diff_snapshot(
            self.baseline,
            self._listing(errors),
            complete=lambda: not errors,
            now=timeutil.now,  # asked at the listing's end: when its deletes are known
            volatile=volatile,
            kept=self._kept,  # asked at the end too: skip() fills it
            hold=self.hold,
        )
        if result.duplicates and not errors:
            errors.append(_inconsistent(result.duplicates))
        return result, errors[0] if errors else None

    def _listing(self, errors: list[str]) -> Iterator[Entity]:
        """The plugin's full listing; a failure ends it and lands in ``errors``."""
        try:
            yield from _in_cloud(self.plugin.cloud, self.plugin.list_all())
        except Exception as exc:  # noqa: BLE001 - any failure makes the listing incomplete
            errors.append(self._failure(exc))

    def _kept(self) -> Iterable[tuple[str, str]]:
        """The keys of the listing's records that did not convert, as the baseline names them."""
        cloud = self.plugin.cloud
        if cloud is None:
            return self.plugin.skipped
        return [(t, clouds.qualify(cloud, k)) for t, k in self.plugin.skipped]

    def _list_delta(self, volatile: frozenset[str]) -> tuple[diff.DiffResult, str | None]:
        overlap = 5.0
        since = timeutil.normalize(timeutil.to_datetime(self.last_success).timestamp() - overlap)
        try:
            delta = self.plugin.list_changes(since)
        except Exception as exc:  # noqa: BLE001 - any failure makes the listing incomplete
            return diff.DiffResult([], self.baseline, 0), self._failure(exc)
        cloud = self.plugin.cloud
        entities = list(_in_cloud(cloud, delta.entities))
        deleted = list(_in_cloud(cloud, delta.deleted))
        result = diff.diff_delta(self.baseline, entities, deleted, volatile=volatile)
        listed = [*entities, *deleted]
        repeated = len(listed) - len({(e.type, e.key) for e in listed})
        if repeated:
            # A shifted walk lost the change it displaced: list the same delta again.
            return dataclasses.replace(result, baseline=self.baseline), _inconsistent(repeated)
        return result, None

    def _failure(self, exc: Exception) -> str:
        """Describe a transient failure; re-raise a permanent one."""
        classified = self.plugin.classify_error(exc)
        if isinstance(classified, PermanentError):
            raise classified from exc
        return _describe(classified)

    @staticmethod
    def _unseen(changes: list[Change]) -> list[Change]:
        """The first listing after a seeded start: its deletes happened unseen."""
        return [
            c.replace(final_state_unknown=True) if c.action is Action.DELETE else c for c in changes
        ]

    def _emit(self, changes: list[Change]) -> None:
        for chunk in wire.chunked(changes, self.chunk_size):
            self.send(wire.Changes.of(chunk))

    @staticmethod
    def _outcome(
        result: diff.DiffResult, resync: bool, full: bool, duration: float, error: str | None
    ) -> wire.CycleEnd:
        counts = dict.fromkeys(Action, 0)
        for change in result.changes:
            counts[change.action] += 1
        complete = error is None
        return wire.CycleEnd(
            complete=complete,
            resync=resync and complete,
            full=full,
            listed=result.listed,
            tracked=len(result.baseline),
            created=counts[Action.CREATE],
            updated=counts[Action.UPDATE],
            deleted=counts[Action.DELETE],
            duration=round(duration, 4),
            error=error,
        )

    def _log_cycle(self, end: wire.CycleEnd) -> None:
        LOG.info(
            "%s: %s cycle listed %d entities, %d created, %d updated, %d deleted in %.3f s, %s",
            self.name,
            "full" if end.full else "delta",
            end.listed,
            end.created,
            end.updated,
            end.deleted,
            end.duration,
            "complete" if end.complete else f"INCOMPLETE ({end.error})",
        )


def _in_cloud(cloud: str | None, entities: Iterable[Entity]) -> Iterable[Entity]:
    """A cloud's plugin's entities, namespaced by its cloud (the others as they are)."""
    if cloud is None:
        return entities
    return (clouds.namespaced(e, cloud) for e in entities)


def _inconsistent(repeated: int) -> str:
    return (
        f"InconsistentListing: {repeated} record(s) repeated a key listed before "
        "(the paging shifted under the walk); no deletes inferred"
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


# -- the worker process ------------------------------------------------------


def collector_main(
    conf_args: list[str],
    name: str,
    chunk_size: int,
    display: str,
    conn: Connection,
    gate: GateEnd | None = None,
) -> None:
    """Entry point of a collector worker process (multiprocessing target).

    ``name`` is the plugin as configured (an entry point or a class path),
    ``display`` what it is known by: its config group (a class path's
    plugin by its ``name``), in logs, ``ps``, the status and its entities'
    source.  A worker on standby (``gate``) loads its plugin, then waits
    at the gate before it reads its baseline and polls.
    """
    title = f"collector {display}"
    conf, stop = prepare_child(conf_args, title, standby=gate is not None)
    send = Sender(conn)
    report = reporter(send)
    loaded = plugin_loader.load(
        conf, [name], CollectorPlugin, lambda _, state, why: report(display, state, why)
    )
    if name not in loaded:
        raise SystemExit(EXIT_PERMANENT)
    plugin = loaded[name]
    if gate is not None:
        if not gate.wait(stop):
            plugin.close()
            return
        name_process(title)
    send(wire.PluginStatus(display, wire.PluginState.RUNNING))
    loop = PollLoop(plugin, display, send, chunk_size)
    saved = store.persisted_baseline(conf, display, plugin.entity_types)
    if saved is not None:
        loop.seed(saved)
    try:
        watchdog.Watchdog(loop, watchdog.cycle_bound(plugin.options)).run(stop)
    except PermanentError as exc:
        LOG.error("%s: permanent error, plugin disabled until reload: %s", display, exc)
        send(wire.PluginStatus(display, wire.PluginState.DISABLED, str(exc)))
        raise SystemExit(EXIT_PERMANENT) from None
    finally:
        plugin.close()


def snapshot_changes(plugin: CollectorPlugin) -> list[Change]:
    """List a collector once, in-process, as ``snapshot`` changes (for the CLI)."""
    plugin.observed_at = timeutil.now()
    return [Change(Action.SNAPSHOT, e) for e in _in_cloud(plugin.cloud, plugin.list_all())]
