"""What the soak reads from outside the daemon: metrics, memory, sockets, the broker.

* :func:`scrape` parses ``/metrics`` with prometheus-client's own parser
  into ``{(name, labels...): value}``;
* :func:`rss_kib` reads ``VmRSS`` of a process from ``/proc``;
* :func:`listening` lists the TCP sockets a set of processes listens on;
* :class:`Broker` cuts the soak's own connections (one ``rabbitmqctl
  eval`` closing them all, on a node name that answers) and reads a
  queue's depth over AMQP.
"""

from __future__ import annotations

import contextlib
import ipaddress
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import kombu
from prometheus_client.parser import text_string_to_metric_families

from synchronizer_fakecloud import testbed
from tests.helpers import broker

Sample = tuple[str, frozenset[tuple[str, str]]]


def fetch(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URL
        return resp.read().decode()


def fetch_status(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """``(HTTP status, body)``; an error status is an answer, not an exception."""
    try:
        return 200, fetch(url, timeout)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def parse(text: str) -> dict[Sample, float]:
    """``{(sample name, frozenset(labels)): value}`` of a Prometheus text exposition."""
    out: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def total(samples: dict[Sample, float], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= lab)


def by_label(samples: dict[Sample, float], name: str, label: str) -> dict[str, float]:
    """Sum of ``name`` per value of one label."""
    out: dict[str, float] = {}
    for (n, lab), v in samples.items():
        if n == name:
            value = dict(lab).get(label, "")
            out[value] = out.get(value, 0.0) + v
    return out


def rss_kib(pid: int) -> int:
    """Resident memory of a process in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def _address(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


def listening(pids: Iterable[int]) -> list[tuple[str, int]]:
    """``(address, port)`` of every TCP socket in LISTEN state owned by ``pids``."""
    return [
        (_address(address), port)
        for state, address, port, _ in broker.tcp_sockets(pids)
        if state == "0A"  # LISTEN
    ]


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


class Broker:
    """The local RabbitMQ, driven with rabbitmqctl and read over AMQP."""

    def __init__(self, amqp_url: str = "amqp://guest:guest@127.0.0.1:5672//") -> None:
        self.amqp_url = amqp_url
        self.node: str | None = None
        self.ctl_error = ""

    def find_node(self) -> bool:
        """Find a node name rabbitmqctl can reach; False (with ``ctl_error``) if none."""
        found, self.node, self.ctl_error = broker.find_node()
        return found

    def cut_connections(self, root: int) -> int:
        """Close the connections of ``root``'s process tree (the soak's own); how many.

        Every other client of the shared broker keeps its connections.
        """
        return broker.cut_connections(
            broker.process_tree(root), "soak: connections cut", node=self.node
        )

    def depth(self, queue: str) -> int:
        """Messages ready in a queue (0 if it does not exist)."""
        with kombu.Connection(self.amqp_url) as conn:
            channel = conn.channel()
            try:
                return int(channel.queue_declare(queue=queue, passive=True).message_count)
            except Exception:  # noqa: BLE001 - a queue that does not exist holds nothing
                return 0
            finally:
                with contextlib.suppress(Exception):
                    channel.close()

    def delete_queues(self, names: Iterable[str]) -> None:
        """Delete the run's queues (best effort: a missing one is fine)."""
        testbed.delete_queues(list(names), self.amqp_url)
