"""B3 (memory per tracked entity) and B8 (snapshot to a new subscriber)."""

from __future__ import annotations

import concurrent.futures
import copy
import gc
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench import common
from synchronizer import diff, fingerprint
from synchronizer.dispatch.dispatcher import Dispatcher
from synchronizer.dispatch.ledger import Ledger
from synchronizer.dispatch.store import FileStore
from synchronizer.dispatch.subscriber import Subscription
from synchronizer.model import Action, Change, Entity, Synced

B3_TARGET = 200.0
B8_TARGET = 2.0

# The builders' files (ledger_file, state), removed once measured: a full B3
# run writes several GB of them.
_TEMP_DIRS: list[str] = []


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _stream(n: int) -> Iterator[Entity]:
    """``n`` instances made one at a time (no listing held: RSS sees the structure)."""
    rng = random.Random(0)
    for key in common.keys(n):
        yield common.instance(rng, key)


def _build_baseline(n: int) -> tuple[Any, dict[str, float], int]:
    # The structure diff_snapshot returns (one key -> fingerprint dict per
    # type), filled straight from the stream so no change list inflates RSS.
    by_type = {common.INSTANCE: {e.key: fingerprint.of(e) for e in _stream(n)}}
    keys = by_type[common.INSTANCE]
    parts = {
        "key strings": sum(sys.getsizeof(k) for k in keys),
        "fingerprint ints": sum(sys.getsizeof(v) for v in keys.values()),
        "dict table": sys.getsizeof(keys),
    }
    return diff.Baseline._wrap(by_type), parts, 0


def _build_ledger(n: int) -> tuple[Any, dict[str, float], int]:
    ledger = Ledger()
    for e in _stream(n):
        ledger.admit(Change(Action.CREATE, e, fingerprint.of(e)))
    entries = ledger._entries[common.INSTANCE]
    sizes = [len(v) for v in entries.values()]
    parts = {
        "key strings": sum(sys.getsizeof(k) for k in entries),
        "bytes objects (header)": sum(sys.getsizeof(b"") for _ in sizes),
        "entry header (fp, seq, flags, time)": sum(sizes) - sum(_body_sizes(entries)),
        "entry content (compressed marshal)": sum(_body_sizes(entries)),
        "dict table": sys.getsizeof(entries),
    }
    return ledger, parts, 0


def _build_ledger_file(n: int) -> tuple[Any, dict[str, float], int]:
    # The same ledger with its entries in a SQLite file (ledger_file): what
    # stays in the heap is the codec, SQLite's page cache and the tombstones.
    path = os.path.join(_temp_dir("bench-ledger-"), "ledger.db")
    ledger = Ledger(store=FileStore(path))
    for e in _stream(n):
        ledger.admit(Change(Action.CREATE, e, fingerprint.of(e)))
    return ledger, {}, os.path.getsize(path)


def _build_state(n: int) -> tuple[Any, dict[str, float], int]:
    # The default store (state = sqlite): the ledger's entries are rows of the
    # durable file; what stays in the heap is SQLite's page cache and the tombstones.
    from synchronizer.dispatch.durable import SQLiteStore

    path = os.path.join(_temp_dir("bench-state-"), "state.db")
    store = SQLiteStore(path)
    ledger = Ledger(store=store)
    seq = 0
    batch = []
    for e in _stream(n):
        seq += 1
        told = ledger.admit(Change(Action.CREATE, e, fingerprint.of(e)), seq)
        batch.append(told)
        if len(batch) == 1000:
            ledger.commit(batch, seq)
            batch = []
    ledger.commit(batch, seq)
    size = sum(os.path.getsize(path + ext) for ext in ("", "-wal") if os.path.exists(path + ext))
    return ledger, {}, size


def _temp_dir(prefix: str) -> str:
    path = tempfile.mkdtemp(prefix=prefix)
    _TEMP_DIRS.append(path)
    return path


def _body_sizes(entries: dict[str, Any]) -> Iterator[int]:
    for entry in entries.values():
        n = entry[17]  # the timestamp's length, after fp, seq and flags
        yield len(entry) - 18 - n


def _build_copies(n: int) -> tuple[Any, dict[str, float], int]:
    return {(e.type, e.key): copy.deepcopy(e.to_dict()) for e in _stream(n)}, {}, 0


# Each builder: (the structure, its parts in bytes by sys.getsizeof, bytes on disk).
_BUILDERS: dict[str, Callable[[int], tuple[Any, dict[str, float], int]]] = {
    "worker_baseline": _build_baseline,
    "ledger": _build_ledger,
    "ledger_file": _build_ledger_file,
    "state": _build_state,
    "full_copies": _build_copies,
}


def measure(structure: str, n: int) -> dict[str, Any]:
    """RSS growth per entity of one structure built in this (fresh) process."""
    gc.collect()
    before = _rss()
    kept, parts, disk = _BUILDERS[structure](n)
    gc.collect()
    grown = _rss() - before
    accounted = sum(parts.values())
    if parts:
        parts["allocator and arena overhead"] = grown - accounted
    measured = {
        "per_entity": grown / n,
        "parts": {k: round(v / n, 1) for k, v in parts.items()},
        "disk_per_entity": disk / n,
        "kept": len(kept),
    }
    store = getattr(kept, "store", None)
    if store is not None:
        store.close()
    while _TEMP_DIRS:
        shutil.rmtree(_TEMP_DIRS.pop(), ignore_errors=True)
    return measured


def _in_fresh_process(structure: str, n: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(measure, structure, n).result()


def b3_size(n: int) -> dict[str, dict[str, Any]]:
    """Bytes per entity of each structure at ``n`` entities, each in its own process."""
    return {name: _in_fresh_process(name, n) for name in _BUILDERS}


def b3(sizes: list[int]) -> dict[str, Any]:
    per = {n: b3_size(n) for n in sizes}
    top = per[max(sizes)]
    baseline, ledger = top["worker_baseline"], top["ledger"]
    value = baseline["per_entity"] + ledger["per_entity"]
    with_file = baseline["per_entity"] + top["ledger_file"]["per_entity"]
    return common.figure(
        value,
        "bytes/entity",
        top["full_copies"]["per_entity"],
        f"<= {B3_TARGET:.0f} bytes/entity",
        value <= B3_TARGET,
        worker_baseline=baseline["per_entity"],
        ledger=ledger["per_entity"],
        with_ledger_file={
            "value": with_file,
            "ledger": top["ledger_file"]["per_entity"],
            "disk_per_entity": top["ledger_file"]["disk_per_entity"],
            "met": with_file <= B3_TARGET,
            "note": "the same with ledger_file set: the ledger's entries in a SQLite file",
        },
        with_state={
            "value": baseline["per_entity"] + top["state"]["per_entity"],
            "ledger": top["state"]["per_entity"],
            "disk_per_entity": top["state"]["disk_per_entity"],
            "met": baseline["per_entity"] + top["state"]["per_entity"] <= B3_TARGET,
            "note": "the default store (state = sqlite): entries, history and seq in the "
            "durable SQLite file",
        },
        breakdown={"worker_baseline": baseline["parts"], "ledger": ledger["parts"]},
        by_size={
            str(n): {k: round(v["per_entity"], 1) for k, v in p.items()} for n, p in per.items()
        },
        method="RSS growth of a fresh process building the structure from a stream of "
        "entities (no listing held), after gc; breakdown by sys.getsizeof",
        note="baseline: (type,key) -> deep copy of the entity document (Vitrage-style)",
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
