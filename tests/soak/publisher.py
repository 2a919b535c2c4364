"""Nova's side of the bus: notifications published late, twice, out of order or never.

:class:`NovaPublisher` publishes with a real ``oslo_messaging.Notifier`` on
the ``nova`` exchange, driver ``messagingv2``, as nova-compute does.  Each
offered event is, by a seeded draw, lost (never sent), delayed (sent up to
a few seconds later), duplicated (sent twice) or sent at once; a delayed
event overtaken by a later one about the same server is a reordering, and
is counted when it happens.  The envelope's ``timestamp`` is the event's
own time (when the cloud changed), not the time it finally left, exactly
as for a notification held up in a real broker::

    pub = NovaPublisher(transport_url, topic, random.Random(1))
    pub.start()
    pub.offer(event)            # a scenario.NovaEvent
    pub.bad("missing uuid")     # a payload the plugin must drop
    pub.flush(); pub.stop()
"""

from __future__ import annotations

import collections
import datetime
import heapq
import itertools
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from oslo_config import cfg
from oslo_utils import timeutils

from synchronizer import backend
from tests.soak.nova_events import BAD_PAYLOADS, instance_event
from tests.soak.scenario import NovaEvent

LOST, DELAYED, DUPLICATED = 0.15, 0.25, 0.10
MAX_DELAY = 5.0
# oslo.messaging stamps the envelope with timeutils.utcnow(); the override
# that makes it carry the event's time is process-wide, hence one lock.
_STAMP_LOCK = threading.Lock()


class NovaPublisher:
    """Publishes Nova events with seeded losses, delays, duplicates and reorderings.

    Threading: ``offer``/``bad`` from any thread; one thread publishes.
    """

    def __init__(self, transport_url: str, topic: str, rng: random.Random) -> None:
        oslo_messaging = backend.messaging()
        self.rng = rng
        self.counts: collections.Counter[str] = collections.Counter()
        self._heap: list[tuple[float, int, str, dict[str, Any], float, str]] = []
        self._order = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self._last_sent: dict[str, float] = {}
        self.sent_at: list[float] = []  # when each notification left (wall clock)
        self._conf_dir = tempfile.TemporaryDirectory(prefix="soak-nova-")
        conf_file = Path(self._conf_dir.name) / "nova.conf"
        # Nova publishes on its own control exchange.
        conf_file.write_text(
            f"[DEFAULT]\ntransport_url = {transport_url}\ncontrol_exchange = nova\n"
        )
        conf = cfg.ConfigOpts()
        conf(args=[], default_config_files=[str(conf_file)])
        self._transport = oslo_messaging.get_notification_transport(conf)
        self._notifier = oslo_messaging.Notifier(
            self._transport,
            publisher_id="nova-compute:soak",
            driver="messagingv2",
            topics=[topic],
        )
        self._thread = threading.Thread(target=self._run, name="soak-nova", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, event: NovaEvent) -> None:
        """Schedule the notification of one server change, or lose it."""
        event_type, payload = instance_event(event.action, event.doc, event.old_status)
        self.counts["events"] += 1
        draw = self.rng.random()
        now = time.monotonic()
        if draw < LOST:
            self.counts["lost"] += 1
            return
        if draw < LOST + DELAYED:
            self.counts["delayed"] += 1
            self._schedule(now + self.rng.uniform(0.5, MAX_DELAY), event_type, payload, event)
            return
        self._schedule(now, event_type, payload, event)
        if draw < LOST + DELAYED + DUPLICATED:
            self.counts["duplicated"] += 1
            self._schedule(now + self.rng.uniform(0.0, 2.0), event_type, payload, event)

    def bad(self, what: str) -> None:
        """Publish at once a notification the plugin must drop (see BAD_PAYLOADS)."""
        self.counts["bad"] += 1
        with self._cond:
            heapq.heappush(
                self._heap,
                (0.0, next(self._order), "instance.update", BAD_PAYLOADS[what], time.time(), ""),
            )
            self._cond.notify()

    def _schedule(self, due: float, event_type: str, payload: Any, event: NovaEvent) -> None:
        with self._cond:
            item = (due, next(self._order), event_type, payload, event.at, event.key)
            heapq.heappush(self._heap, item)
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until everything scheduled was published."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._heap and not self._busy, timeout)

    _busy = False

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._heap or self._heap[0][0] > time.monotonic()):
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                if self._stop:
                    return
                _, _, event_type, payload, at, key = heapq.heappop(self._heap)
                self._busy = True
            try:
                self._send(event_type, payload, at, key)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _send(self, event_type: str, payload: Any, at: float, key: str) -> None:
        if key and at < self._last_sent.get(key, 0.0):
            self.counts["reordered"] += 1
        if key:
            self._last_sent[key] = max(at, self._last_sent.get(key, 0.0))
        stamp = datetime.datetime.fromtimestamp(at, datetime.UTC).replace(tzinfo=None)
        with _STAMP_LOCK:
            timeutils.set_time_override(stamp)
            try:
                self._notifier.info({}, event_type, payload)
            finally:
                timeutils.clear_time_override()
        self.counts["published"] += 1
        self.sent_at.append(time.time())

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=10)
        self._transport.cleanup()
        self._conf_dir.cleanup()
