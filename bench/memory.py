"""B3 (memory per tracked entity) and B8 (snapshot to a new subscriber)."""

from __future__ import annotations

import copy
import gc
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from bench import common
from synchronizer import diff, fingerprint
from synchronizer.dispatcher import Dispatcher
from synchronizer.entity import Action, Change, Synced
from synchronizer.ledger import Ledger
from synchronizer.subscriber import Subscription

B3_TARGET = 200.0
B8_TARGET = 2.0


def _retained(build: Callable[[], Any]) -> tuple[float, Any]:
    """Bytes still allocated after ``build`` once its temporaries are freed."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return float(after - before), kept


def _worker_baseline(n: int) -> Callable[[], Any]:
    # The listing is built inside, so the key strings the baseline keeps count.
    return lambda: diff.diff_snapshot({}, common.population(n), complete=True).baseline


def _ledger(n: int) -> Callable[[], Any]:
    def build() -> Ledger:
        ledger = Ledger()
        for e in common.population(n):
            ledger.admit(Change(Action.CREATE, e, fingerprint.of(e)))
        return ledger

    return build


def _full_copies(n: int) -> Callable[[], Any]:
    return lambda: {(e.type, e.key): copy.deepcopy(e.to_dict()) for e in common.population(n)}


def b3_size(n: int) -> dict[str, float]:
    """Bytes per entity of each structure at ``n`` entities."""
    out = {}
    for name, build in (
        ("worker_baseline", _worker_baseline(n)),
        ("ledger", _ledger(n)),
        ("full_copies", _full_copies(n)),
    ):
        size, kept = _retained(build)
        out[name] = size / n
        del kept
    return out


def b3(sizes: list[int]) -> dict[str, Any]:
    per = {n: b3_size(n) for n in sizes}
    top = per[max(sizes)]
    value = top["worker_baseline"] + top["ledger"]
    return common.figure(
        value,
        "bytes/entity",
        top["full_copies"],
        f"<= {B3_TARGET:.0f} bytes/entity",
        value <= B3_TARGET,
        worker_baseline=top["worker_baseline"],
        ledger=top["ledger"],
        by_size={str(n): {k: round(v, 1) for k, v in p.items()} for n, p in per.items()},
        method="tracemalloc, bytes retained after build (keys, tuples, dict slots, "
        "Change+Entity objects for the ledger)",
        note="baseline: (type,key) -> deep copy of the entity document; 1,000,000 not "
        "measured (tracemalloc needs ~10 min at that size, over the time budget)",
    )


class _SyncWaiter:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.items = 0

    def __call__(self, item: Any) -> None:
        self.items += 1
        if isinstance(item, Synced):
            self.event.set()


def _snapshot_once(dispatcher: Dispatcher) -> tuple[float, int]:
    waiter = _SyncWaiter()
    sub = Subscription([common.INSTANCE], waiter, name="bench-snapshot")
    sub.start()
    t0 = time.perf_counter()
    dispatcher.add(sub, snapshot=True)
    ok = waiter.event.wait(60)
    elapsed = time.perf_counter() - t0
    dispatcher.remove(sub)
    sub.close(drain=False)
    if not ok:
        raise RuntimeError("no Synced marker within 60 s")
    return elapsed, waiter.items


def b8(n: int, runs: int) -> dict[str, Any]:
    dispatcher = Dispatcher()
    dispatcher.dispatch(Change(Action.CREATE, e, fingerprint.of(e)) for e in common.population(n))
    ours, listing = [], []
    items = 0
    for _ in range(runs):
        gc.collect()
        t, items = _snapshot_once(dispatcher)
        ours.append(t)
        t, _ = common.timed(lambda: dispatcher.current([common.INSTANCE]))
        listing.append(t)
    value, spread = common.median_spread(ours)
    base, base_spread = common.median_spread(listing)
    return common.figure(
        value,
        "s",
        base,
        f"<= {B8_TARGET} s",
        value <= B8_TARGET,
        spread=spread,
        baseline_spread=base_spread,
        entities=n,
        items_delivered=items,
        runs=runs,
        note="baseline: copying the ledger's current view (Dispatcher.current)",
    )
