"""What the daemon knows about itself: plugin states, cycles, readiness.

Readiness (for ``sd_notify READY=1``): every enabled collector that can run
has delivered one complete snapshot.  Collectors that failed to load, are
not available, or were disabled by a permanent error do not hold readiness
back (they are reported loudly instead); a collector whose service is down
does, since its view is not there yet.  Nor does a collector declared hung
(a cycle ran past its bound; its worker is being restarted): it stays
"hung" in STATUS and healthz until it completes a cycle.

Threading: all methods are thread-safe.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable
from typing import Any

from synchronizer.wire import CycleEnd, NotificationStats, PluginState


class Status:
    """Plugin states, last cycle per collector, counters; the ``ready`` event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self.expected: set[str] = set()
        self._known = False  # readiness is judged only once the collector list is known
        self.states: dict[str, tuple[PluginState, str]] = {}
        self.first_complete: set[str] = set()
        self.last_cycle: dict[str, CycleEnd] = {}
        self.last_complete_at: dict[str, float] = {}
        self.cycles: collections.Counter[tuple[str, str]] = collections.Counter()
        self.restarts: collections.Counter[str] = collections.Counter()
        self.notifications: dict[str, NotificationStats] = {}
        self.changes: collections.Counter[tuple[str, str]] = collections.Counter()
        self.failures: collections.Counter[tuple[str, str]] = collections.Counter()
        self.hung: dict[str, str] = {}  # plugin -> why, until it completes a cycle
        self.unconvertible: collections.Counter[str] = collections.Counter()
        self.periods: dict[str, float] = {}
        self.expected_since = time.monotonic()
        self.tracked = 0

    def expect(self, collectors: Iterable[str], periods: dict[str, float] | None = None) -> None:
        with self._lock:
            self.expected = set(collectors)
            self._known = True
            self.periods = dict(periods or {})
            self.expected_since = time.monotonic()
            self._check_ready()

    def plugin_state(self, plugin: str, state: PluginState, reason: str = "") -> None:
        with self._lock:
            self.states[plugin] = (state, reason)
            if state.down or state is PluginState.HUNG:
                self.failures[(plugin, str(state))] += 1
            if state is PluginState.HUNG:
                self.hung[plugin] = reason
            self._check_ready()

    def cycle_done(self, plugin: str, end: CycleEnd, tracked: int) -> None:
        with self._lock:
            self.last_cycle[plugin] = end
            self.tracked = tracked
            outcome = "complete" if end.complete else "incomplete"
            self.cycles[(plugin, outcome)] += 1
            for action, n in end.by_action().items():
                self.changes[(plugin, str(action))] += n
            self.unconvertible[plugin] += end.unconvertible
            if not end.complete:
                self.failures[(plugin, end.failure_kind)] += 1
            if end.complete:
                self.hung.pop(plugin, None)
                self.last_complete_at[plugin] = time.monotonic()
                if end.full:
                    self.first_complete.add(plugin)
            self._check_ready()

    def worker_restarted(self, name: str) -> None:
        with self._lock:
            self.restarts[name] += 1

    def notification_stats(self, worker: str, stats: NotificationStats) -> None:
        """The cumulative counters one notification worker last reported."""
        with self._lock:
            self.notifications[worker] = stats

    def cycles_snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.cycles)

    def changes_snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.changes)

    def failures_snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self.failures)

    def restarts_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.restarts)

    def unconvertible_snapshot(self) -> dict[str, int]:
        """Records each collector's listings could not convert (once per listing)."""
        with self._lock:
            return dict(self.unconvertible)

    def hung_snapshot(self) -> dict[str, str]:
        """Collectors declared hung (and why) that have not completed a cycle since."""
        with self._lock:
            return dict(self.hung)

    def last_cycles(self) -> dict[str, CycleEnd]:
        with self._lock:
            return dict(self.last_cycle)

    def notifications_snapshot(self) -> NotificationStats:
        """Every notification worker's last counters, summed."""
        with self._lock:
            reports = list(self.notifications.values())
        return NotificationStats.total(reports)

    def health(self) -> dict[str, Any]:
        """Healthy when every running collector completed a cycle within 3 periods.

        A period is at least as long as the collector's last cycle took: a
        listing that takes longer than the period (a big cloud, a slow API)
        is not stale while it runs, only one that stops completing is.  A
        hung collector is unhealthy and says why (``hung``); deletes a
        collector holds as a suspicious mass delete are shown
        (``held_deletes``) without making it unhealthy: the next listing
        decides them.
        """
        now = time.monotonic()
        with self._lock:
            plugins = {}
            for name in sorted(self.expected):
                state = self._state(name)
                period = self.periods.get(name, 60.0)
                last = self.last_complete_at.get(name, self.expected_since)
                cycle = self.last_cycle.get(name)
                fresh = now - last <= 3 * max(period, cycle.duration if cycle else 0.0)
                hung = self.hung.get(name)
                plugins[name] = {
                    "state": PluginState.HUNG if hung else state,
                    "healthy": fresh and not state.down and not hung,
                    "seconds_since_complete_cycle": round(now - last, 3),
                    "period": period,
                    "hung": hung,
                    "held_deletes": cycle.held if cycle is not None else 0,
                    "unconvertible_records": cycle.unconvertible if cycle is not None else 0,
                }
        return {"healthy": all(p["healthy"] for p in plugins.values()), "plugins": plugins}

    def _state(self, plugin: str) -> PluginState:
        return self.states.get(plugin, (PluginState.STARTING, ""))[0]

    def _check_ready(self) -> None:
        if not self._known:
            # A plugin that failed to load is reported before expect(): with
            # the list still empty, "every collector complete" would hold.
            return
        running = {p for p in self.expected if not self._state(p).down and p not in self.hung}
        if running <= self.first_complete:
            self.ready.set()

    def text(self) -> str:
        """A one-line summary for systemd's STATUS= and logs."""
        with self._lock:
            hung = sorted(self.hung)
            waiting = sorted(self.expected - self.first_complete - set(hung))
            failed = sorted(p for p, (s, _) in self.states.items() if s.down)
            holding = sorted(f"{p} ({c.held})" for p, c in self.last_cycle.items() if c.held)
        parts = [f"{self.tracked} entities", f"{len(self.expected)} collectors"]
        if waiting:
            parts.append("waiting for " + ", ".join(waiting))
        if failed:
            parts.append("not running: " + ", ".join(failed))
        if hung:
            parts.append("hung (restarting): " + ", ".join(hung))
        if holding:
            parts.append("holding deletes: " + ", ".join(holding))
        return "; ".join(parts)
