"""B2 (fingerprint + diff cost) and B4 (changes delivered per cycle)."""

from __future__ import annotations

import cProfile
import gc
import io
import json
import pstats
import threading
from typing import Any

from oslo_config import cfg

from bench import common
from synchronizer import diff, wire
from synchronizer.dispatch.dispatcher import Dispatcher
from synchronizer.dispatch.subscriber import Subscription
from synchronizer.model import Entity
from synchronizer.plugin_base import CollectorPlugin
from synchronizer.workers.collector import PollLoop

B2_TARGET_US = 2.5
B2_TARGET_SPEEDUP = 5.0


def _doc(e: Entity) -> dict[str, Any]:
    parent = e.parent
    return {
        "type": e.type,
        "key": e.key,
        "state": e.state,
        "project": e.project,
        "parent": [parent.type, parent.key] if parent else None,
        "relations": sorted([r.relation, r.type, r.key] for r in e.relations),
        "properties": e.properties,
    }


def naive_diff(stored: dict[tuple[str, str], dict[str, Any]], entities: list[Entity]) -> int:
    """Baseline: canonical JSON of each entity and a full-dict comparison with a stored copy."""
    changed = 0
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for e in entities:
        doc = _doc(e)
        json.dumps(doc, sort_keys=True)
        k = (e.type, e.key)
        seen[k] = doc
        if stored.get(k) != doc:
            changed += 1
    changed += len(stored.keys() - seen.keys())
    return changed


def _profile(baseline: dict, entities: list[Entity]) -> str:
    prof = cProfile.Profile()
    prof.enable()
    diff.diff_snapshot(baseline, entities, complete=True)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(8)
    lines = [ln.strip() for ln in out.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("ncalls"))
    return " | ".join(lines[start + 1 : start + 9])


def b2(n: int, runs: int) -> dict[str, Any]:
    entities = common.population(n)
    base = diff.diff_snapshot({}, entities, complete=True).baseline
    stored = {(e.type, e.key): _doc(e) for e in entities}
    changed, churned = common.churn(entities, 0.01)
    ours, theirs = [], []
    diff.diff_snapshot(base, changed, complete=True)  # warm up
    for _ in range(runs):
        gc.collect()
        t, res = common.timed(lambda: diff.diff_snapshot(base, changed, complete=True))
        assert len(res.changes) == churned, (len(res.changes), churned)
        ours.append(t / n * 1e6)
        gc.collect()
        t, count = common.timed(lambda: naive_diff(stored, changed))
        assert count == churned
        theirs.append(t / n * 1e6)
    value, spread = common.median_spread(ours)
    base_us, base_spread = common.median_spread(theirs)
    met = value <= B2_TARGET_US and base_us / value >= B2_TARGET_SPEEDUP
    rec = common.figure(
        value,
        "us/entity",
        base_us,
        f"<= {B2_TARGET_US} us and >= {B2_TARGET_SPEEDUP}x faster",
        met,
        spread=spread,
        baseline_spread=base_spread,
        speedup=base_us / value,
        entities=n,
        runs=runs,
    )
    if not met:
        rec["profile"] = _profile(base, changed)
    return rec


class _Plugin(CollectorPlugin):
    """A collector plugin serving a list that the benchmark swaps between cycles.

    A real ``CollectorPlugin`` with its options at their defaults, so the
    poll loop meets exactly what it meets in a worker.
    """

    name = common.INSTANCE
    entity_types = (common.INSTANCE,)

    def __init__(self, entities: list[Entity]) -> None:
        conf = cfg.ConfigOpts()
        type(self).register_options(conf, self.name)
        conf([], project="synchronizer-bench")
        super().__init__(conf, self.name)
        self.entities = entities
        self.observed_at = ""

    def list_all(self) -> list[Entity]:
        return [e.replace(timestamp=self.observed_at) for e in self.entities]


class _Counter:
    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, item: Any) -> None:
        with self.lock:
            self.count += 1


def b4(n: int, cycles: int) -> dict[str, Any]:
    entities = common.population(n)
    plugin = _Plugin(entities)
    dispatcher = Dispatcher()
    counter = _Counter()
    sub = Subscription([common.INSTANCE], counter, name="bench")
    dispatcher.add(sub, snapshot=False)
    sub.start()

    def send(msg: Any) -> None:
        if isinstance(msg, wire.Changes):
            dispatcher.dispatch(msg.decode())

    loop = PollLoop(plugin, common.INSTANCE, send, chunk_size=1000)
    loop.cycle()
    sub.wait_idle(60)
    delivered, churned_counts = [], []
    for i in range(cycles):
        counter.count = 0
        plugin.entities, churned = common.churn(plugin.entities, 0.01, seed=100 + i)
        loop.cycle()
        sub.wait_idle(60)
        delivered.append(float(counter.count))
        churned_counts.append(churned)
    sub.close()
    value, spread = common.median_spread(delivered)
    met = all(d == c for d, c in zip(delivered, churned_counts, strict=True))
    return common.figure(
        value,
        "entities/cycle",
        float(n),
        f"exactly the churned entities ({churned_counts[0]})",
        met,
        spread=spread,
        churned=churned_counts,
        entities=n,
        cycles=cycles,
        note="baseline: Vitrage-style re-send of every entity each cycle",
    )
