"""Nova's side of the bus for the tests that count notifications: one new instance each.

:class:`InstancePublisher` publishes ``instance.create.end`` with a real
``oslo_messaging.Notifier`` (driver ``messagingv2``, as nova-compute
does), each about an instance nothing else mentions, at a steady rate
until stopped; ``sent`` lists them in order, ``at`` says when each went.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from synchronizer import backend, opts
from tests.soak.nova_events import instance_event


class InstancePublisher(threading.Thread):
    """Publishes ``instance.create.end`` for new instances, ``rate`` a second, until stopped."""

    def __init__(
        self, transport_url: str, exchange: str, topic: str, template: dict[str, Any], rate: float
    ) -> None:
        super().__init__(name="publisher", daemon=True)
        from oslo_config import cfg

        oslo_messaging = backend.messaging()
        conf = cfg.ConfigOpts()
        opts.register_opts(conf)
        conf([], project="publisher")
        conf.set_override("control_exchange", exchange)
        self.transport = oslo_messaging.get_notification_transport(conf, url=transport_url)
        self.notifier = oslo_messaging.Notifier(
            self.transport, publisher_id="nova-compute:host", driver="messagingv2", topics=[topic]
        )
        self.template, self.rate = template, rate
        self.sent: list[str] = []
        self.at: dict[str, str] = {}  # when each was published (for a failure's message)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(1.0 / self.rate):
            doc = dict(self.template, id=str(uuid.uuid4()))
            event, payload = instance_event("create", doc)
            self.notifier.info({}, event, payload)
            self.sent.append(doc["id"])
            self.at[doc["id"]] = time.strftime("%H:%M:%S") + f"{time.time() % 1:.3f}"[1:]

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)
        self.transport.cleanup()

    def when(self, keys: set[str]) -> str:
        """When the first few of ``keys`` were published, for a failure's message."""
        return ", ".join(sorted(self.at[k] for k in keys)[:5]) + (" ..." if len(keys) > 5 else "")
