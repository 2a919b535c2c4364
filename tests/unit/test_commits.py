"""Acknowledged once committed: the notification worker's positions, answers and requeues.

The hand-off numbers the changes it hands on; the main process answers
each chunk (``wire.Committed``) once committed; an endpoint acknowledges
its message only on a committed answer, and gives it back to the bus
otherwise.  The listener runs on oslo.messaging's in-memory transport,
which redelivers a requeued message as a broker does.
"""

from __future__ import annotations

import threading
import time

import oslo_messaging

from synchronizer import plugin_loader, wire
from synchronizer.workers import notification
from synchronizer.workers.converter import Converter
from tests.unit.test_listener import PLUGIN, TOPIC, Acks, make_conf


def test_puts_are_numbered_and_each_chunk_names_what_it_covers():
    """put() returns the position through its changes; a chunk covers (start, through]."""
    sent = []
    handoff = notification.Handoff(lambda chunk, start, through: sent.append((start, through)), 2)
    assert handoff.put(["a"]) == 1
    assert handoff.put(["b", "c", "d"]) == 4
    assert handoff.put(["e"]) == 5
    assert sent == [(0, 1), (1, 3), (3, 4), (4, 5)]


def test_a_committed_answer_releases_the_waits_it_covers():
    commits = notification.Commits()
    commits.sent(0, 3)
    commits.sent(3, 5)
    commits.answer(wire.Committed(3))
    assert commits.wait(0, 2, timeout=1)
    assert commits.wait(2, 3, timeout=1)
    assert not commits.wait(3, 5, timeout=0.05)  # not answered yet: not known committed
    commits.answer(wire.Committed(5))
    assert commits.wait(3, 5, timeout=1)


def test_a_refused_chunk_is_refused_to_every_message_in_it_and_no_other():
    commits = notification.Commits()
    for start, through in ((0, 2), (2, 4), (4, 6)):
        commits.sent(start, through)
    commits.answer(wire.Committed(2))
    commits.answer(wire.Committed(4, ok=False))
    commits.answer(wire.Committed(6))
    assert commits.wait(0, 2, timeout=1)
    assert not commits.wait(2, 3, timeout=1)
    assert not commits.wait(3, 4, timeout=1)
    assert not commits.wait(1, 3, timeout=1)  # a message whose changes straddle both
    assert commits.wait(4, 6, timeout=1)


def test_an_answer_that_never_came_counts_as_refused():
    """The main process dropped an answer (its pipe had no room): not known committed."""
    commits = notification.Commits()
    commits.sent(0, 1)
    commits.sent(1, 2)
    commits.answer(wire.Committed(2))  # the answer to (0, 1] never came
    assert not commits.wait(0, 1, timeout=1)
    assert commits.wait(1, 2, timeout=1)


def test_waits_end_refused_when_no_answer_can_come_any_more():
    """The main process is gone (its end of the pipe ended): the waiters return at once."""
    commits = notification.Commits()
    commits.sent(0, 1)
    results = []
    waiter = threading.Thread(target=lambda: results.append(commits.wait(0, 1, timeout=30)))
    waiter.start()
    time.sleep(0.05)
    assert waiter.is_alive()
    t0 = time.monotonic()
    commits.close()
    waiter.join(5)
    assert results == [False]
    assert time.monotonic() - t0 < 1
    assert not commits.wait(0, 1, timeout=30)  # and later ones too, without waiting


def test_a_wait_for_an_answer_that_does_not_come_times_out_refused():
    commits = notification.Commits()
    commits.sent(0, 1)
    t0 = time.monotonic()
    assert not commits.wait(0, 1, timeout=0.2)
    assert 0.15 < time.monotonic() - t0 < 2


class _Answering:
    """The main process's side for the listener test: commits every chunk but the ``refuse``-th."""

    def __init__(self, commits: notification.Commits, refuse: set[int]) -> None:
        self.commits, self.refuse = commits, refuse
        self.chunks: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, chunk: list, start: int, through: int) -> None:
        self.commits.sent(start, through)
        with self.lock:
            self.chunks.append([c.key for c in chunk])
            n = len(self.chunks)
        # Answered on another thread, as the main process's answer arrives.
        ok = n not in self.refuse
        threading.Timer(0.01, self.commits.answer, [wire.Committed(through, ok)]).start()


def test_the_listener_acknowledges_what_was_committed_and_gives_back_the_rest(monkeypatch):
    """A refused chunk's message is requeued and handled again; every message is acked once.

    The plain listener, one message a call (the batch listener's refusal is
    the functional crash test's).
    """
    acks = Acks(monkeypatch)
    conf = make_conf(notification_batch_size=1)
    plugins = [plugin_loader.instantiate(conf, PLUGIN)]
    commits = notification.Commits()
    main = _Answering(commits, refuse={2})
    handoff = notification.Handoff(main, chunk_size=1000)
    server = notification.build_listener(
        conf, plugins, Converter(plugins, 4096), handoff.put, confirm=commits.wait
    )
    notifier = oslo_messaging.Notifier(
        oslo_messaging.get_notification_transport(conf),
        publisher_id="test.host",
        driver="messagingv2",
        topics=[TOPIC],
    )
    server.start(override_pool_size=1)
    try:
        for i in range(5):
            notifier.info({}, "test.thing.update", {"key": f"k{i}", "state": "up"})
        notifier.info({}, "unrelated.event", {"key": "x"})  # no change: acked at once
        deadline = time.monotonic() + 10
        while len(acks.acked) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        server.stop()
        server.wait()
    assert len(acks.acked) == 6
    assert acks.requeued == ["test.thing.update"]  # the refused one, once
    keys = [k for chunk in main.chunks for k in chunk]
    assert sorted(set(keys)) == [f"k{i}" for i in range(5)]
    assert keys.count(main.chunks[1][0]) == 2  # the refused chunk's message came again


def test_without_confirm_the_endpoint_acknowledges_at_once():
    """No answer to wait for (a test's emit, or nothing to commit): HANDLED straight away."""
    conf = make_conf()
    plugins = [plugin_loader.instantiate(conf, PLUGIN)]
    got = []
    endpoint = notification.Endpoint(Converter(plugins, 4096), got.append)
    assert (
        endpoint.info({}, "test.host", "test.thing.update", {"key": "a", "state": "up"}, {})
        == notification.HANDLED
    )
    refusing = notification.Endpoint(
        Converter(plugins, 4096), lambda changes: 1, confirm=lambda s, t: False
    )
    assert (
        refusing.info({}, "test.host", "test.thing.update", {"key": "a", "state": "up"}, {})
        == notification.REQUEUE
    )
    assert (
        refusing.info({}, "test.host", "unrelated.event", {"key": "a"}, {}) == notification.HANDLED
    )
