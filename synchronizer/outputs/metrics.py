"""Prometheus metrics and a health endpoint, on an opt-in loopback port.

``[DEFAULT] metrics_port`` (0: off) serves, on ``metrics_host`` (default
127.0.0.1, never a wildcard unless the operator asks):

``/metrics``  the Prometheus text format (prometheus-client)
``/healthz``  JSON; HTTP 200 when every running collector completed a cycle
              within 3 of its periods (and none is hung), 503 otherwise;
              per plugin also ``hung`` (why, or null), ``held_deletes``
              and ``unconvertible_records``; a fleet member adds
              ``coordinator`` (``connected``, and the ``members`` it last
              read) and ``partitions``: each one's owner and term in the
              database, whether this member holds it, its ``seq`` and each
              sink's lag

A fleet member (:class:`~synchronizer.fleet.member.Member`) serves the
plugin and notification families and, per partition,
``synchronizer_partition_held``, ``_term``, ``_seq``, ``_entities`` and
``_sink_lag`` (:class:`FleetCollector`).

Values are read at scrape time (a custom collector) through the public
reads of the :class:`~synchronizer.service.library.Synchronizer`, its
:class:`~synchronizer.service.status.Status` and its
:class:`~synchronizer.dispatch.dispatcher.Dispatcher`, so the hot paths only
bump plain counters.  Nothing here carries a credential:
labels are plugin names, event types, actions and subscriber names.
"""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, exposition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from synchronizer.errors import ConfigError

if TYPE_CHECKING:
    from synchronizer.fleet.member import Member
    from synchronizer.service.library import Synchronizer

LOG = logging.getLogger(__name__)

PREFIX = "synchronizer"


def _counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=labels)


class SynchronizerCollector(Collector):
    """Reads the synchronizer's state into metric families on each scrape."""

    def __init__(self, sync: Synchronizer) -> None:
        self.sync = sync

    def collect(self) -> Iterator[Any]:
        yield from self._collectors()
        yield from self._notifications()
        yield from self._subscribers()
        yield from self._core()

    def _collectors(self) -> Iterator[Any]:
        status = self.sync.status
        cycles = _counter("poll_cycles", "Poll cycles by outcome.", ["plugin", "outcome"])
        for (plugin, outcome), n in status.cycles_snapshot().items():
            cycles.add_metric([plugin, outcome], n)
        changes = _counter("poll_changes", "Changes emitted by polls.", ["plugin", "action"])
        for (plugin, action), n in status.changes_snapshot().items():
            changes.add_metric([plugin, action], n)
        duration = _gauge("poll_cycle_seconds", "Duration of the last cycle.", ["plugin"])
        tracked = _gauge("poll_entities_tracked", "Entities in the baseline.", ["plugin"])
        for plugin, end in status.last_cycles().items():
            duration.add_metric([plugin], end.duration)
            tracked.add_metric([plugin], end.tracked)
        failures = _counter("plugin_failures", "Plugin failures by kind.", ["plugin", "kind"])
        for (plugin, kind), n in status.failures_snapshot().items():
            failures.add_metric([plugin, kind], n)
        restarts = _counter("worker_restarts", "Worker processes restarted.", ["worker"])
        for worker, n in status.restarts_snapshot().items():
            restarts.add_metric([worker], n)
        yield from (cycles, changes, duration, tracked, failures, restarts)
        yield from self._doubts()

    def _doubts(self) -> Iterator[Any]:
        """What the listings could not vouch for: held deletes, bad records, hung plugins."""
        status = self.sync.status
        held = _gauge(
            "poll_deletes_held",
            "Deletes held back as a suspicious mass delete (the next full listing decides).",
            ["plugin"],
        )
        bad = _gauge(
            "poll_records_unconvertible",
            "Records of the last listing that did not convert (they keep their last state).",
            ["plugin"],
        )
        for plugin, end in status.last_cycles().items():
            held.add_metric([plugin], end.held)
            bad.add_metric([plugin], end.unconvertible)
        skipped = _counter(
            "poll_records_skipped", "Unconvertible records, counted once per listing.", ["plugin"]
        )
        for plugin, n in status.unconvertible_snapshot().items():
            skipped.add_metric([plugin], n)
        hung = _gauge("plugin_hung", "1 while a collector is declared hung.", ["plugin"])
        for plugin in status.hung_snapshot():
            hung.add_metric([plugin], 1)
        yield from (held, bad, skipped, hung)

    def _notifications(self) -> Iterator[Any]:
        family = _counter(
            "notifications",
            "Notifications by plugin, event type and outcome (received/mapped/ignored/dropped).",
            ["plugin", "event_type", "outcome"],
        )
        stats = self.sync.status.notifications_snapshot()
        for e in stats.by_event:
            family.add_metric([e.plugin, e.event_type, str(e.outcome)], e.count)
        total = _counter("notifications_by_outcome", "Notifications by outcome.", ["outcome"])
        for outcome, n in stats.by_outcome().items():
            total.add_metric([str(outcome)], n)
        yield from (family, total)

    def _subscribers(self) -> Iterator[Any]:
        backlog = _gauge("subscriber_backlog", "Pending items per subscriber.", ["subscriber"])
        coalesced = _counter("subscriber_coalesced", "Changes merged per key.", ["subscriber"])
        delivered = _counter("subscriber_delivered", "Items delivered.", ["subscriber"])
        failed = _counter("subscriber_failures", "Callback exceptions.", ["subscriber"])
        for sub in self.sync.all_subscriptions():
            backlog.add_metric([sub.name], sub.backlog)
            coalesced.add_metric([sub.name], sub.coalesced)
            delivered.add_metric([sub.name], sub.delivered)
            failed.add_metric([sub.name], sub.failures)
        yield from (backlog, coalesced, delivered, failed)

    def _core(self) -> Iterator[Any]:
        dispatched = _counter("dispatched", "Changes seen by the dispatcher.", ["outcome"])
        for outcome, n in self.sync.dispatcher.counters().items():
            dispatched.add_metric([outcome], n)
        entities = _gauge("entities", "Entities in the current view.", [])
        entities.add_metric([], self.sync.dispatcher.entity_count())
        yield from (dispatched, entities)


class FleetCollector(SynchronizerCollector):
    """A fleet member's families: its plugins' and, per partition, owner, term and lag."""

    def __init__(self, member: Member) -> None:
        self.sync = member  # type: ignore[assignment]  # status is all the base reads
        self.member = member

    def collect(self) -> Iterator[Any]:
        yield from self._collectors()
        yield from self._notifications()
        yield from self._partitions()

    def _partitions(self) -> Iterator[Any]:
        held = _gauge("partition_held", "1 while this member runs the partition.", ["partition"])
        term = _gauge(
            "partition_term",
            "The partition's term (this member's, or the database's).",
            ["partition"],
        )
        seq = _gauge(
            "partition_seq", "The last seq committed by this member's term.", ["partition"]
        )
        entities = _gauge("partition_entities", "Entities in the partition's view.", ["partition"])
        lag = _gauge(
            "partition_sink_lag", "Committed changes a sink has not sent.", ["partition", "sink"]
        )
        for name, report in self.member.partition_report().items():
            held.add_metric([name], 1 if report["held"] else 0)
            term.add_metric([name], report["term"])
            if report["held"]:
                seq.add_metric([name], report["seq"])
                entities.add_metric([name], report["entities"])
                for sink, n in report["lag"].items():
                    lag.add_metric([name, sink], n)
        yield from (held, term, seq, entities, lag)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: MetricsServer

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body = exposition.generate_latest(self.server.registry)
            self._reply(200, exposition.CONTENT_TYPE_LATEST, body)
        elif path in ("/healthz", "/health"):
            report = self.server.health()
            code = 200 if report["healthy"] else 503
            self._reply(code, "application/json", orjson.dumps(report))
        else:
            self._reply(404, "text/plain", b"not found\n")

    def _reply(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("metrics request: %s", format % args)


class MetricsServer(http.server.ThreadingHTTPServer):
    """The metrics and health HTTP server (threads, daemonic)."""

    daemon_threads = True

    def __init__(
        self,
        sync: Synchronizer | Member,
        host: str,
        port: int,
        *,
        collector: Collector | None = None,
        health: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.sync = sync
        self.health = health or sync.status.health
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector or SynchronizerCollector(sync))  # type: ignore[arg-type]
        try:
            super().__init__((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"metrics_host/metrics_port: cannot listen on {host}:{port}: {exc.strerror}"
            ) from exc
        self._thread = threading.Thread(target=self.serve_forever, name="metrics", daemon=True)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> None:
        self._thread.start()
        LOG.info("Metrics on http://%s:%d/metrics and /healthz", *self.server_address[:2])

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
