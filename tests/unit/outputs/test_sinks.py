"""The built-in sinks: log lines, JSON lines, bus notifications, and build()."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time

import orjson
import pytest

from synchronizer import backend
from synchronizer.dispatch.subscriber import Subscription
from synchronizer.errors import ConfigError
from synchronizer.model import Action, Change, Synced
from synchronizer.outputs import sinks
from tests.unit.outputs.common import bus_conf, change, seeded

SYNCED = Synced(("test.thing",), 0)


def told(*keys: str) -> list[Change]:
    """Changes as the dispatcher tells them: actions rewritten, seq stamped."""
    return seeded({"test.thing": list(keys)}).ledger.current()


# -- log ------------------------------------------------------------------


@pytest.mark.parametrize("action", [Action.CREATE, Action.UPDATE, Action.DELETE])
def test_log_sink_writes_one_info_line_per_change(caplog, action):
    """Each change becomes one INFO line naming its action, type, key, state and seq."""
    caplog.set_level(logging.INFO, logger="synchronizer.outputs.sinks")
    sink = sinks.LogSink()
    sink(change("k1", "ACTIVE", action=action, seq=7))
    sink(SYNCED)
    lines = [r for r in caplog.records if r.name == "synchronizer.outputs.sinks"]
    assert [(r.levelno, r.getMessage()) for r in lines] == [
        (logging.INFO, f"{action} test.thing k1 state=ACTIVE seq=7")
    ]


# -- jsonl ----------------------------------------------------------------


def read_lines(path) -> list[Change]:
    return [Change.from_dict(orjson.loads(line)) for line in path.read_bytes().splitlines()]


def test_jsonl_sink_appends_one_json_object_per_change(tmp_path):
    """Every change is one JSON line that reads back as the same change; a reopened sink appends."""
    path = tmp_path / "changes.jsonl"
    first, second, third = told("a", "b", "c")
    sink = sinks.JsonlSink(str(path))
    sink(first)
    sink(SYNCED)
    sink(second)
    sink.close()
    again = sinks.JsonlSink(str(path))
    again(third)
    again.close()
    got = read_lines(path)
    assert [(c.action, c.entity, c.seq) for c in got] == [
        (c.action, c.entity, c.seq) for c in (first, second, third)
    ]


def test_jsonl_sink_flushes_each_line(tmp_path):
    """A reader of the file sees each line as soon as the sink returns, before close."""
    path = tmp_path / "changes.jsonl"
    sink = sinks.JsonlSink(str(path))
    try:
        (only,) = told("a")
        sink(only)
        assert [c.key for c in read_lines(path)] == ["a"]
    finally:
        sink.close()


def test_jsonl_sink_on_stdout_leaves_stdout_open(capfd):
    """With path '-' lines go to standard output, and close() does not close it."""
    sink = sinks.JsonlSink("-")
    (only,) = told("a")
    sink(only)
    sink.close()
    sys.stdout.write("still open\n")
    out = capfd.readouterr().out.splitlines()
    assert orjson.loads(out[0])["key"] == "a"
    assert out[1] == "still open"


def closed_file(tmp_path):
    sink = sinks.JsonlSink(str(tmp_path / "closed.jsonl"))
    sink.close()
    return sink, lambda: None


def broken_pipe(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    sink = sinks.JsonlSink(str(fifo))
    return sink, lambda: os.close(reader)


@pytest.mark.parametrize("broken", [closed_file, broken_pipe], ids=["closed", "broken-pipe"])
def test_a_broken_jsonl_stream_fails_only_its_own_subscription(tmp_path, broken):
    """A sink whose stream is gone raises into its subscription, which counts it; others go on."""
    sink, break_it = broken(tmp_path)
    break_it()
    dispatcher = seeded({})
    sink_sub = Subscription(None, sink, name="jsonl")
    got: list[Change] = []
    other = Subscription(None, got.append, name="other")
    for sub in (sink_sub, other):
        dispatcher.add(sub, snapshot=False)
        sub.start()
    try:
        dispatcher.dispatch([change("a"), change("b")])
        assert sink_sub.wait_idle(5)
        assert other.wait_idle(5)
        assert (sink_sub.failures, sink_sub.delivered) == (2, 0)
        assert [c.key for c in got] == ["a", "b"]
    finally:
        sink_sub.close()
        other.close()
    sink.close()  # the daemon's stop() closes every sink: it must not raise here


def test_jsonl_sink_close_after_its_reader_left_does_not_raise(tmp_path):
    """Closing a sink whose pipe reader went away releases it without raising."""
    sink, break_it = broken_pipe(tmp_path)
    (only,) = told("a")
    sink(only)
    break_it()
    with pytest.raises(BrokenPipeError):
        sink(only)
    sink.close()


# -- message --------------------------------------------------------------


class Recorder:
    """A notification endpoint that keeps what it receives."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, str, dict]] = []

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            self.events.append((publisher_id, event_type, payload))
        return "handled"

    def wait(self, n: int, timeout: float = 5.0) -> list[tuple[str, str, dict]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.events) >= n:
                    return list(self.events)
            time.sleep(0.02)
        with self.lock:
            return list(self.events)


@pytest.fixture
def listened(tmp_path):
    """A bus config and a recorder listening on its message topic (fake transport)."""
    conf = bus_conf(tmp_path)
    oslo_messaging = backend.messaging()
    transport = oslo_messaging.get_notification_transport(conf)
    recorder = Recorder()
    listener = oslo_messaging.get_notification_listener(
        transport,
        [oslo_messaging.Target(topic=conf.message_topic)],
        [recorder],
        executor="threading",
        pool="test-recorder",
    )
    listener.start()
    yield conf, recorder
    listener.stop()
    listener.wait()
    transport.cleanup()


def test_message_sink_publishes_each_change_as_a_notification(listened):
    """Each change is one notification 'entity.<action>' carrying the change's JSON form."""
    conf, recorder = listened
    created, deleted = change("a", action=Action.CREATE, seq=1), change("b", seq=2)
    deleted = deleted.replace(action=Action.DELETE)
    sink = sinks.MessageSink(conf)
    sink(created)
    sink(SYNCED)
    sink(deleted)
    events = sorted(recorder.wait(2), key=lambda e: e[2]["seq"])
    sink.close()  # the fake: driver's cleanup empties every fake exchange
    assert events == [
        (f"synchronizer.{socket.gethostname()}", "entity.create", created.to_dict()),
        (f"synchronizer.{socket.gethostname()}", "entity.delete", deleted.to_dict()),
    ]
    assert len(recorder.wait(3, timeout=0.3)) == 2  # the synced marker is not published


# -- build ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "built"),
    [
        ([], []),
        (["log"], [sinks.LogSink]),
        (["jsonl", "log"], [sinks.JsonlSink, sinks.LogSink]),
        (["message"], [sinks.MessageSink]),
    ],
)
def test_build_makes_the_named_sinks_in_order(tmp_path, names, built):
    """build() returns one sink per configured name, in the configured order."""
    conf = bus_conf(tmp_path, f"sinks = {', '.join(names)}", f"jsonl_path = {tmp_path / 'x'}")
    made = sinks.build(conf)
    try:
        assert [type(s) for s in made] == built
    finally:
        for sink in made:
            sink.close()


@pytest.mark.parametrize("names", ["bogus", "log, Log", "log, kafka"])
def test_build_refuses_an_unknown_sink(tmp_path, names):
    """An unknown sink name is a ConfigError naming it and the sinks there are."""
    conf = bus_conf(tmp_path, f"sinks = {names}")
    with pytest.raises(ConfigError) as info:
        sinks.build(conf)
    unknown = names.split(", ")[-1]
    assert repr(unknown) in str(info.value)
    assert "log, jsonl, message" in str(info.value)
