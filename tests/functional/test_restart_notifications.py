"""A daemon restarted under a stream of notifications: not one of them is lost.

Real parts: the daemon (a subprocess, the durable store, a ``jsonl``
sink), the real RabbitMQ and oslo.messaging's Notifier.  The only plugin
is ``nova.notifications``, so no poll makes up for a notification lost;
each notification creates an instance nothing else mentions, and every
one must be in the sink's file at the end.  What is published while the
daemon is down waits in its listener pool's queue.

On SIGTERM the notification worker stops its listener and sends what it
had taken from the bus; the daemon had stopped reading its workers by
then, so what the listener still handled while it stopped was lost (few:
its executor's messages in flight; the supervisor's unit test shows the
mechanism, this one that a restart loses nothing end to end).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from synchronizer_fakecloud import FakeCloud, testbed
from tests.helpers.daemon import Daemon
from tests.helpers.novabus import InstancePublisher

pytestmark = pytest.mark.broker

RATE = 100.0  # notifications a second


@pytest.fixture(scope="module")
def template() -> Iterator[dict]:
    """A fake-cloud server's document, the shape the notifications are built from."""
    with FakeCloud() as fake:
        fake.populate(servers=1, hosts=1)
        yield fake.get("servers", fake.keys("servers")[0])


def told(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(line)["key"] for line in path.read_text().splitlines() if line.strip()}


def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.1)


def _config(
    tmp_path: Path, transport_url: str, unique: str, batch_size: int | None = None
) -> tuple[Path, Path, str, str]:
    exchange, topic = f"nova_{unique}", f"test_notifications_{unique}"
    out = tmp_path / "changes.jsonl"
    conf = tmp_path / "s.conf"
    conf.write_text(
        "[DEFAULT]\n"
        "plugins = nova.notifications\n"
        f"transport_url = {transport_url}\n"
        f"notification_pool = pool-{unique}\n"
        "sinks = jsonl\n"
        f"jsonl_path = {out}\n"
        f"state_path = {tmp_path / 'state.db'}\n"
        f"rpc_topic = view_{unique}\n"
        + ("" if batch_size is None else f"notification_batch_size = {batch_size}\n")
        + "[nova.notifications]\n"
        f"topics = {topic}\n"
        f"exchange = {exchange}\n"
    )
    return conf, out, exchange, topic


def _all_told(publisher: InstancePublisher, out: Path) -> None:
    """Publish 2 s more, stop, and wait until every instance published is in the sink."""
    time.sleep(2.0)
    publisher.stop()
    sent = set(publisher.sent)
    deadline = time.monotonic() + 60
    while sent - told(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    lost = sent - told(out)
    assert not lost, (
        f"{len(lost)} of {len(sent)} notified instances never reached the sink "
        f"(published at {publisher.when(lost)})"
    )


def _listening(conf: Path, what: str) -> Daemon:
    """The daemon started, once its listener listens (its pool's queue exists from then on)."""
    daemon = Daemon(conf).start()
    try:
        until(lambda: daemon.count_logs("Listening for"), 60, what)
    except BaseException:
        daemon.stop(timeout=15)
        raise
    return daemon


def _tear_down(publisher: InstancePublisher, daemon: Daemon, unique: str) -> None:
    if not publisher.stopping.is_set():
        publisher.stop()
    daemon.stop(timeout=15)
    testbed.delete_queues([f"pool-{unique}", f"view_{unique}"])


def test_a_restart_under_notifications_loses_none(tmp_path, transport_url, unique, template):
    """SIGTERM and start again while 100 notifications a second flow: every one is told."""
    conf, out, exchange, topic = _config(tmp_path, transport_url, unique)
    publisher = InstancePublisher(transport_url, exchange, topic, template, RATE)
    # What is published before the listener declared its pool's queue goes nowhere.
    d = _listening(conf, "the listener")
    try:
        publisher.start()
        until(lambda: len(told(out)) >= 50, 30, "the first notifications told")
        assert d.stop(timeout=15) == 0
        d = _listening(conf, "the restarted listener")
        _all_told(publisher, out)
    finally:
        _tear_down(publisher, d, unique)


@pytest.mark.parametrize(
    ("what", "batch_size"),
    [("main process", None), ("every process", None), ("main process", 1)],
    ids=["main process", "every process", "main process, plain listener"],
)
def test_a_crash_under_notifications_loses_none(
    tmp_path, transport_url, unique, template, what, batch_size
):
    """SIGKILL (the main process alone, or all of them) under 100 notifications a second.

    A notification is acknowledged to the broker only once the store has
    committed its change: what the dead daemon had taken but not committed
    goes back to the pool's queue, and the restarted daemon gets it again.
    Twice each, at different moments of the stream; with the default batch
    listener, and with the plain one (one message a call).
    """
    conf, out, exchange, topic = _config(tmp_path, transport_url, unique, batch_size)
    publisher = InstancePublisher(transport_url, exchange, topic, template, RATE)
    d = _listening(conf, "the listener")
    try:
        publisher.start()
        for crash in range(2):
            enough = 50 * (crash + 1)
            until(lambda n=enough: len(told(out)) >= n, 60, "notifications told")
            if what == "main process":
                d.signal(signal.SIGKILL)
                d.proc.wait(10)
            else:
                d.kill()
            d = _listening(conf, "the restarted listener")
        _all_told(publisher, out)
    finally:
        _tear_down(publisher, d, unique)
