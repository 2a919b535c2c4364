"""The poll loop: only changes leave the worker; failures back off."""

import json
import logging
from collections.abc import Iterator
from typing import ClassVar

import pytest
from oslo_config import cfg

from synchronizer import opts, plugin_loader, wire
from synchronizer.model import Action, Entity
from synchronizer.plugin_base import Delta
from synchronizer.workers.collector import PollLoop
from tests.helpers.plugins import FileCollector


@pytest.fixture
def loop(tmp_path):
    path = tmp_path / "things.json"
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="synchronizer-test")
    plugin_loader.resolve(conf, "tests.helpers.plugins:FileCollector")
    conf.set_override("path", str(path), group="filecollector")
    plugin = plugin_loader.instantiate(conf, "tests.helpers.plugins:FileCollector")
    sent = []
    return PollLoop(plugin, "files", sent.append, chunk_size=2), path, sent


def write(path, data):
    path.write_text(json.dumps(data))


def changes(sent):
    out = []
    for message in sent:
        if isinstance(message, wire.Changes):
            out.extend((c.action, c.key) for c in message.decode())
    sent.clear()
    return out


def ends(sent):
    return [m for m in sent if isinstance(m, wire.CycleEnd)]


def test_first_cycle_creates_then_nothing(loop):
    """The first cycle sends every entity; an unchanged second cycle sends none."""
    pl, path, sent = loop
    write(path, {"a": "up", "b": "up", "c": "up"})
    assert pl.cycle()
    assert sorted(changes(sent)) == [(Action.CREATE, k) for k in "abc"]
    assert pl.cycle()
    assert changes(sent) == []


def test_update_and_delete(loop):
    """An edited state gives one update and a removed key one delete."""
    pl, path, sent = loop
    write(path, {"a": "up", "b": "up"})
    pl.cycle()
    sent.clear()
    write(path, {"a": "down"})
    pl.cycle()
    assert set(changes(sent)) == {(Action.UPDATE, "a"), (Action.DELETE, "b")}


def test_failed_listing_emits_no_deletes_and_keeps_baseline(loop):
    """A failing listing deletes nothing; the next good one gives the true delta."""
    pl, path, sent = loop
    write(path, {"a": "up", "b": "up"})
    pl.cycle()
    sent.clear()
    write(path, "FAIL")
    assert not pl.cycle()
    assert changes(sent) == []
    write(path, {"a": "up"})
    assert pl.cycle()
    assert changes(sent) == [(Action.DELETE, "b")]


def test_chunks_are_bounded(loop):
    """Changes leave the worker in chunks of at most chunk_size."""
    pl, path, sent = loop
    write(path, {str(i): "up" for i in range(5)})
    pl.cycle()
    sizes = [len(m.decode()) for m in sent if isinstance(m, wire.Changes)]
    assert sizes == [2, 2, 1]


def test_cycle_is_framed_and_first_complete_is_a_resync(loop):
    """Each cycle is framed by begin/end; only the first complete one is a resync."""
    pl, path, sent = loop
    write(path, "FAIL")
    pl.cycle()
    write(path, {"a": "up"})
    pl.cycle()
    pl.cycle()
    frames = [type(m) for m in sent if not isinstance(m, wire.Changes)]
    assert frames == [wire.CycleBegin, wire.CycleEnd] * 3
    begins = [m for m in sent if isinstance(m, wire.CycleBegin)]
    assert [(b.resync, b.full, b.types) for b in begins] == [
        (True, True, ("test.thing",)),
        (True, True, ("test.thing",)),
        (False, True, ("test.thing",)),
    ]
    assert [(e.complete, e.resync) for e in ends(sent)] == [
        (False, False),
        (True, True),
        (True, False),
    ]


def test_cycle_end_counts_what_the_cycle_sent(loop):
    """A cycle's end reports what it listed, tracks and sent per action, and no error."""
    pl, path, sent = loop
    write(path, {"a": "up", "b": "up", "c": "up"})
    pl.cycle()
    write(path, {"a": "down", "b": "up", "d": "up"})
    sent.clear()
    pl.cycle()
    (end,) = ends(sent)
    assert (end.listed, end.tracked, end.created, end.updated, end.deleted) == (3, 3, 1, 1, 1)
    assert (end.complete, end.full, end.error) == (True, True, None)
    assert end.by_action() == {Action.CREATE: 1, Action.UPDATE: 1, Action.DELETE: 1}


def test_outage_is_logged_once_per_backoff_step(loop, caplog):
    """Back-off doubles up to the cap and logs once per step, not per retry."""
    pl, path, _sent = loop
    write(path, "FAIL")
    pl.plugin.conf.set_override("max_backoff", 1.0, group="filecollector")
    caplog.set_level(logging.WARNING, logger="synchronizer.workers.collector")
    delays = [pl.step() for _ in range(8)]
    assert delays[:4] == [0.2, 0.4, 0.8, 1.0]
    assert set(delays[4:]) == {1.0}
    warnings = [r for r in caplog.records if "next attempt" in r.getMessage()]
    assert len(warnings) == 4
    write(path, {"a": "up"})
    assert pl.step() == 0.2


class HalfListing(FileCollector):
    """Lists the file's first two entities, then fails (a page that did not come)."""

    name: ClassVar[str] = "halflisting"

    def list_all(self) -> Iterator[Entity]:
        for i, entity in enumerate(super().list_all()):
            if i == 2:
                raise ConnectionError("page 2 timed out")
            yield entity


def test_a_listing_failing_part_way_sends_what_it_saw_and_deletes_nothing(tmp_path):
    """Entities streamed before the failure are sent; nothing is deleted; the baseline stays."""
    path = tmp_path / "things.json"
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="synchronizer-test")
    name = "tests.unit.test_worker:HalfListing"
    plugin_loader.resolve(conf, name)
    conf.set_override("path", str(path), group="halflisting")
    sent = []
    pl = PollLoop(plugin_loader.instantiate(conf, name), "half", sent.append, chunk_size=10)
    write(path, {"a": "up", "b": "up"})
    assert pl.cycle()
    baseline = dict(pl.baseline)
    sent.clear()
    write(path, {"a": "down", "b": "up", "c": "up", "d": "up"})
    assert not pl.cycle()
    (end,) = ends(sent)
    assert (end.complete, end.listed, end.deleted) == (False, 2, 0)
    assert "page 2 timed out" in end.error
    assert end.failure_kind == "ConnectionError"
    assert changes(sent) == [(Action.UPDATE, "a")]
    assert dict(pl.baseline) == baseline


# -- listings that look complete but are not to be trusted -------------------


def test_a_record_that_does_not_convert_keeps_its_entity_and_blocks_no_delete(loop, caplog):
    """A bad record keeps its last good state; other deletes go; it is logged once."""
    pl, path, sent = loop
    write(path, {"a": "up", "b": "up", "c": "up"})
    pl.cycle()
    sent.clear()
    caplog.set_level(logging.WARNING, logger="synchronizer.workers.doubts")
    write(path, {"a": 12345, "b": "down"})  # a: unconvertible; c: really gone
    for _ in range(3):
        assert pl.cycle()
    assert [e.unconvertible for e in ends(sent)] == [1, 1, 1]
    assert changes(sent) == [(Action.UPDATE, "b"), (Action.DELETE, "c")]
    assert ("test.thing", "a") in pl.baseline
    lines = [r.getMessage() for r in caplog.records if "cannot be converted" in r.getMessage()]
    assert len(lines) == 1
    assert "test.thing a cannot be converted (state is a int)" in lines[0]


def test_a_record_that_never_converted_creates_nothing_and_is_tracked(loop):
    """A key first seen unconvertible creates nothing; its state is unknown (0) from then on.

    The first listing is a resync: its end names the key as listed (``kept``),
    so the dispatcher does not take an entity it knew by that key for gone.
    """
    pl, path, sent = loop
    write(path, {"a": "up", "new": None})
    assert pl.cycle()
    (end,) = ends(sent)
    assert end.resync
    assert end.kept == (("test.thing", "new"),)
    assert changes(sent) == [(Action.CREATE, "a")]
    assert dict(pl.baseline)[("test.thing", "new")] == 0
    sent.clear()
    assert pl.cycle()
    (end,) = ends(sent)
    assert not end.resync
    assert end.kept == ()


def test_a_listing_repeating_a_key_is_inconsistent_and_deletes_nothing(tmp_path):
    """A key listed twice (a displaced record) makes the cycle incomplete, with the reason."""
    pl, path, sent = loop_of(tmp_path, "tests.unit.test_worker:Displacing", "displacing")
    write(path, {"a": "up", "b": "up", "c": "up"})
    assert pl.cycle()
    sent.clear()
    pl.plugin.displace = True  # a walk that lists "a" twice and loses "b"
    assert not pl.cycle()
    (end,) = ends(sent)
    assert end.failure_kind == "InconsistentListing"
    assert end.deleted == 0
    assert changes(sent) == []
    assert len(pl.baseline) == 3


def test_a_mass_delete_is_held_then_confirmed(loop, caplog):
    """Losing most entities at once holds the deletes; a second listing lacking them confirms."""
    pl, path, sent = loop
    write(path, {str(i): "up" for i in range(20)})
    pl.cycle()
    sent.clear()
    caplog.set_level(logging.WARNING, logger="synchronizer.workers.doubts")
    write(path, {str(i): "up" for i in range(5)})
    assert pl.cycle()
    assert ends(sent)[-1].held == 15
    assert changes(sent) == []
    assert "would delete 15 of 20 entities at once (75.0%" in caplog.text
    assert pl.cycle()
    assert ends(sent)[-1].held == 0
    assert sorted(changes(sent)) == sorted((Action.DELETE, str(i)) for i in range(5, 20))
    assert "lacks 15 held entities again" in caplog.text


def test_held_deletes_listed_again_are_dropped(loop, caplog):
    """A mass delete the next listing does not confirm never reaches anyone."""
    pl, path, sent = loop
    everything = {str(i): "up" for i in range(20)}
    write(path, everything)
    pl.cycle()
    write(path, {"0": "up"})  # a first page without its next link
    pl.cycle()
    sent.clear()
    caplog.set_level(logging.WARNING, logger="synchronizer.workers.doubts")
    write(path, everything)
    assert pl.cycle()
    assert changes(sent) == []
    assert len(pl.baseline) == 20
    assert "19 held deletes were wrong" in caplog.text


class Displacing(FileCollector):
    """A walk whose paging shifted: the first key comes twice and the second is lost."""

    name: ClassVar[str] = "displacing"
    displace = False

    def list_all(self) -> Iterator[Entity]:
        entities = list(super().list_all())
        if self.displace:
            entities[1] = entities[0]
        yield from entities


class Dated(FileCollector):
    """A delta-capable collector whose service's clock runs 60 s behind the daemon's."""

    name: ClassVar[str] = "dated"
    supports_delta: ClassVar[bool] = True
    asked: ClassVar[list[str]] = []

    def list_all(self) -> Iterator[Entity]:
        self.note_service_date("Thu, 01 Jan 2026 00:00:00 GMT")
        yield from super().list_all()

    def list_changes(self, since: str) -> Delta:
        self.asked.append(since)
        self.note_service_date("Thu, 01 Jan 2026 00:01:00 GMT")
        return Delta(list(super().list_all()))


def loop_of(tmp_path, name, group, **overrides):
    path = tmp_path / "things.json"
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    conf([], project="synchronizer-test")
    plugin_loader.resolve(conf, name)
    conf.set_override("path", str(path), group=group)
    for key, value in overrides.items():
        conf.set_override(key, value, group=group)
    sent = []
    return PollLoop(plugin_loader.instantiate(conf, name), group, sent.append, 10), path, sent


def test_delta_since_is_counted_on_the_services_clock(tmp_path):
    """changes-since is the service's Date of the last listing minus the overlap."""
    pl, path, _sent = loop_of(tmp_path, "tests.unit.test_worker:Dated", "dated")
    write(path, {"a": "up"})
    Dated.asked.clear()
    assert pl.cycle()  # full: the service said 00:00:00
    assert pl.cycle()  # delta since 23:59:55 the day before
    assert pl.cycle()  # delta since 00:00:55 (the delta's own Date)
    assert Dated.asked == ["2025-12-31T23:59:55.000000Z", "2026-01-01T00:00:55.000000Z"]


class DisplacingDelta(Dated):
    """A delta walk whose paging shifted: one changed entity twice, another lost."""

    name: ClassVar[str] = "displacingdelta"
    displace = False

    def list_changes(self, since: str) -> Delta:
        delta = super().list_changes(since)
        entities = list(delta.entities)
        if self.displace:
            entities[1] = entities[0]
        return Delta(entities)


def test_a_delta_repeating_a_key_is_listed_again_from_the_same_time(tmp_path):
    """A delta listing a key twice lost a change: incomplete; the next asks the same since."""
    name = "tests.unit.test_worker:DisplacingDelta"
    pl, path, sent = loop_of(tmp_path, name, "displacingdelta")
    write(path, {"a": "up", "b": "up"})
    assert pl.cycle()
    DisplacingDelta.asked.clear()
    write(path, {"a": "down", "b": "down"})
    pl.plugin.displace = True
    assert not pl.cycle()
    assert ends(sent)[-1].failure_kind == "InconsistentListing"
    assert ("test.thing", "b") in pl.baseline
    pl.plugin.displace = False
    assert pl.cycle()
    assert DisplacingDelta.asked[0] == DisplacingDelta.asked[1]
    assert (Action.UPDATE, "b") in changes(sent)
