"""The cross-process messages: what a worker sends is what the main process receives."""

import multiprocessing

import orjson
import pytest

from synchronizer import wire
from synchronizer.model import Action, Change, Entity, Ref, Relation, Source
from synchronizer.wire import (
    Changes,
    CycleBegin,
    CycleEnd,
    EventCount,
    NotificationStats,
    Outcome,
    PluginState,
    PluginStatus,
)

TS = "2026-01-01T00:00:00.000000Z"


def change(key: str, action: Action = Action.UPDATE, **kw) -> Change:
    entity = Entity(
        type="nova.instance",
        key=key,
        state="ACTIVE",
        project="p1",
        parent=Ref("nova.host", "h1"),
        relations=(Relation("attached", "cinder.volume", "v1"),),
        properties={"name": key, "nested": {"n": [1, 2.5, None, True]}},
        timestamp=TS,
        source=Source("poll", "nova.instance"),
    )
    return Change(action, entity, **kw)


CHUNK = [
    change("u1", Action.CREATE, fingerprint="fp1"),
    change("u2", fingerprint="fp2"),
    change("u3", Action.DELETE, final_state_unknown=True),
    change("u4", Action.DELETE, inferred=True),
]

MESSAGES = [
    CycleBegin(resync=True, full=True, started=TS, types=("nova.instance", "nova.host")),
    CycleBegin(resync=False, full=False, started=TS, types=()),
    Changes.of(CHUNK),
    CycleEnd(
        complete=True,
        resync=True,
        full=True,
        listed=3,
        tracked=2,
        created=1,
        updated=1,
        deleted=1,
        duration=0.125,
    ),
    CycleEnd(complete=False, resync=False, full=False, error="ConnectionError: refused"),
    PluginStatus("nova.instance", PluginState.RUNNING),
    PluginStatus("broken", PluginState.FAILED, "plugin 'broken' cannot be imported"),
    PluginStatus("nagios", PluginState.UNAVAILABLE, "url is not set"),
    PluginStatus("nova.host", PluginState.DISABLED, "401 Unauthorized"),
    NotificationStats(
        received=5,
        mapped=3,
        ignored=1,
        dropped=1,
        by_event=(
            EventCount("nova.notifications", "instance.update", Outcome.MAPPED, 3),
            EventCount("-", "x.y", Outcome.IGNORED, 1),
        ),
    ),
    NotificationStats(),
]


@pytest.fixture(scope="module")
def pipe():
    reader, writer = multiprocessing.Pipe(duplex=False)
    yield reader, writer
    reader.close()
    writer.close()


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_crosses_a_pipe_unchanged(pipe, message):
    """A message sent on a worker's pipe is received equal, of the same type, field for field."""
    reader, writer = pipe
    writer.send(message)
    received = reader.recv()
    assert type(received) is type(message)
    assert received == message


def test_a_chunk_of_changes_decodes_to_the_changes_sent(pipe):
    """Changes decode on the far side of the pipe to equal changes, in order, enums included."""
    reader, writer = pipe
    writer.send(Changes.of(CHUNK))
    got = reader.recv().decode()
    assert got == CHUNK
    assert [type(c.action) for c in got] == [Action] * 4
    assert [c.final_state_unknown for c in got] == [False, False, True, False]
    assert [c.inferred for c in got] == [False, False, False, True]


def test_a_chunk_stays_orjson_bytes():
    """A chunk is the orjson encoding of its changes, never a pickle of them."""
    message = Changes.of(CHUNK)
    assert isinstance(message.chunk, bytes)
    assert len(orjson.loads(message.chunk)) == len(CHUNK)


@pytest.mark.parametrize("data", [b"not json", b'{"a": 1}', b'[["nope", null, false, {}]]'])
def test_a_malformed_chunk_raises_value_error(data):
    """A chunk that is not a list of encoded changes raises ValueError, never anything else."""
    with pytest.raises(ValueError):  # noqa: PT011 - the contract is ValueError of any message
        Changes(data).decode()


def test_every_message_kind_is_covered():
    """The round-trip table holds one of every kind of message the union names."""
    assert {type(m) for m in MESSAGES} == set(wire.Message.__args__)


def test_messages_are_immutable():
    """A received message cannot be altered by its consumer."""
    message = PluginStatus("a", PluginState.RUNNING)
    with pytest.raises(AttributeError):
        message.state = PluginState.FAILED  # type: ignore[misc]


@pytest.mark.parametrize(
    ("state", "down"),
    [
        (PluginState.STARTING, False),
        (PluginState.RUNNING, False),
        (PluginState.FAILED, True),
        (PluginState.UNAVAILABLE, True),
        (PluginState.DISABLED, True),
    ],
)
def test_a_plugin_is_down_when_it_will_not_run_before_a_reload(state, down):
    """Failed, unavailable and disabled plugins are down; starting and running ones are not."""
    assert state.down is down


def test_notification_stats_sum_per_outcome_and_per_event():
    """Summed reports add each outcome and each (plugin, event, outcome) count."""
    one = NotificationStats(3, 2, 1, 0, (EventCount("p", "e", Outcome.MAPPED, 2),))
    two = NotificationStats(
        4,
        1,
        0,
        3,
        (EventCount("p", "e", Outcome.MAPPED, 1), EventCount("p", "e", Outcome.DROPPED, 3)),
    )
    total = NotificationStats.total([one, two])
    assert (total.received, total.mapped, total.ignored, total.dropped) == (7, 3, 1, 3)
    assert set(total.by_event) == {
        EventCount("p", "e", Outcome.MAPPED, 3),
        EventCount("p", "e", Outcome.DROPPED, 3),
    }


def test_a_failed_cycle_names_its_failure_kind():
    """An incomplete cycle's failure kind is the exception class its error names."""
    assert CycleEnd(False, False, True, error="ReadTimeout: 30 s").failure_kind == "ReadTimeout"
    assert CycleEnd(False, False, True).failure_kind == "error"


def test_chunked_bounds_every_chunk_and_keeps_order():
    """Chunks hold at most the size asked, and together every change in order."""
    changes = [change(f"u{i}") for i in range(7)]
    chunks = list(wire.chunked(changes, 3))
    assert [len(c) for c in chunks] == [3, 3, 1]
    assert [c for chunk in chunks for c in chunk] == changes
