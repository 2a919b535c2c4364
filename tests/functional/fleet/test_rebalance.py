"""Rebalance under churn: 1 → 3 → 2 members, one owner per partition throughout.

Each member logs ``claimed term T`` when its store takes a partition and
``stopped (term T)`` once that term's workers, dispatcher and feeds are
down; with the terms (ordered by the database) and the log times (one
host's clock) the test checks, over the whole run rather than at samples,
that a partition's next term never started before the previous one
stopped.  Meanwhile it samples the database's owners, and a watcher (the
real client) must equal the cloud at the end.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import re
import threading
import time

import pytest
import sqlalchemy as sa

from synchronizer import opts
from synchronizer.dispatch import sql
from synchronizer.outputs import client
from tests.functional.fleet.test_failover import MEMBERS, _cont, wait
from tests.functional.fleet.test_stream import (
    CLEAN,
    Watcher,
    _config,
    _delete_queues,
    diff,
    servers,
    volumes,
)
from tests.helpers.daemon import Daemon

pytestmark = pytest.mark.broker

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})")
_CLAIMED = re.compile(r"Partition (\w+): claimed term (\d+)")
_STOPPED = re.compile(r"Partition (\w+): stopped \(term (\d+)\)")


def terms(daemons: dict[str, Daemon]) -> dict[tuple[str, int], dict]:
    """(partition, term) → {member, start, stop} from every member's log."""
    found: dict[tuple[str, int], dict] = {}
    for name, d in daemons.items():
        with d._cond:
            lines = list(d.logs)
        for line in lines:
            stamp = _STAMP.match(line)
            for pattern, what in ((_CLAIMED, "start"), (_STOPPED, "stop")):
                m = pattern.search(line)
                if m and stamp:
                    at = datetime.datetime.fromisoformat(stamp.group(1)).timestamp()
                    entry = found.setdefault((m.group(1), int(m.group(2))), {"member": name})
                    assert entry["member"] == name, f"two members claimed {m.groups()}"
                    entry[what] = at
    return found


def overlaps(found: dict[tuple[str, int], dict]) -> list[str]:
    """Terms that started before the partition's previous term stopped."""
    bad = []
    for (partition, term), entry in sorted(found.items()):
        before = found.get((partition, term - 1))
        if before is None or "start" not in entry:
            continue
        if "stop" not in before or before["stop"] > entry["start"]:
            bad.append(f"{partition} term {term} ({entry['member']}) while {before}")
    return bad


class Churn:
    """Servers (and now and then volumes) change, and the database's owners are sampled."""

    def __init__(self, cloud, engine) -> None:
        self.cloud, self.engine = cloud, engine
        self.stopped = threading.Event()
        self.samples: list[dict] = []
        self.threads = [threading.Thread(target=self._churn), threading.Thread(target=self._sample)]

    def __enter__(self) -> Churn:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for t in self.threads:
            t.join()

    def _churn(self) -> None:
        seed = 200
        while not self.stopped.wait(0.3):
            seed += 1
            self.cloud.change("servers", count=2, seed=seed)
            if seed % 5 == 0:
                self.cloud.change("volumes", count=1, seed=seed)

    def _sample(self) -> None:
        while not self.stopped.wait(0.2):
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                self.samples.append(sql.owners(self.engine))

    def terms_only_rise(self) -> bool:
        return all(
            after[p][1] >= term
            for before, after in itertools.pairwise(self.samples)
            for p, (_, term) in before.items()
        )


def settle(watcher: Watcher, cloud, timeout: float = 30.0) -> None:
    """Wait for the watcher to equal the cloud, then assert it does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (
        diff(watcher.view("nova.instance"), servers(cloud)) != CLEAN
        or diff(watcher.view("cinder.volume"), volumes(cloud)) != CLEAN
    ):
        time.sleep(0.2)
    assert diff(watcher.view("nova.instance"), servers(cloud)) == CLEAN
    assert diff(watcher.view("cinder.volume"), volumes(cloud)) == CLEAN
    assert watcher.conflicts == []
    assert watcher.backwards == []


def spread(engine) -> int:
    return len({o for o, _ in sql.owners(engine).values()})


def test_one_to_three_to_two_members_under_churn(
    cloud, redis, database, tmp_path, transport_url, unique
):
    """1 → 3 → 2 members while servers change: no term overlaps, the watcher equals the cloud."""
    cloud.reset()
    cloud.populate(servers=15, hosts=2, volumes=6)
    paths = {
        m: _config(tmp_path / f"{m}.conf", m, cloud, redis, database, transport_url, unique)
        for m in MEMBERS
    }
    daemons = {MEMBERS[0]: Daemon(paths[MEMBERS[0]]).start()}
    engine = sql.create_engine(database)
    watcher = Watcher()
    handle = None
    try:
        wait(lambda: set(sql.owners(engine)) == {"nova", "cinder"}, 60, "m1 to own both")
        assert spread(engine) == 1
        conf = opts.parse(["--config-file", str(paths[MEMBERS[0]])], setup_logging=False)
        handle = client.watch(conf, None, watcher, timeout=20)
        assert watcher.synced.wait(30)
        with Churn(cloud, engine) as churn:
            for m in MEMBERS[1:]:
                daemons[m] = Daemon(paths[m]).start()
            wait(lambda: spread(engine) == 2, 30, "the partitions to spread")
            time.sleep(2.0)
            leaving = sql.owners(engine)["nova"][0]
            assert daemons[leaving].stop(timeout=15) == 0
            wait(lambda: sql.owners(engine)["nova"][0] != leaving, 30, "nova to move")
            wait(lambda: spread(engine) == 2, 30, "two owners again")
            time.sleep(2.0)
        settle(watcher, cloud)
        found = terms(daemons)
        assert {p for p, t in found if t > 1}, f"no partition moved: {found}"
        assert overlaps(found) == []
        assert {o for o, _ in sql.owners(engine).values()} <= set(daemons) - {leaving}
        assert churn.terms_only_rise()
        print(f"rebalance: {len(churn.samples)} samples, terms {found}")
    finally:
        if handle is not None:
            handle.stop()
        for d in daemons.values():
            _cont(d)
            d.stop(timeout=15)
        engine.dispose()
        _delete_queues(
            [f"view_{unique}.fleet-{m}" for m in MEMBERS]
            + [f"pool-{unique}-{p}" for p in ("nova", "cinder")]
        )
