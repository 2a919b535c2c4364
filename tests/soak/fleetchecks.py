"""The fleet's checks, on top of every check of :mod:`tests.soak.checks`.

=================================  ================================================
check                              passes when
=================================  ================================================
one holder per term                at no sample do two members hold a partition
                                   under one term, nor does a member hold it under
                                   the database's term without being its owner
exactly one owner when settled     at every sample outside the fault windows
                                   (:data:`~tests.soak.fleetchaos.MOVES` episodes
                                   until the fleet settled), each partition is held
                                   by exactly one member: its database owner, under
                                   the database's term
failover in time                   every killed or paused owner's partitions had
                                   new owners within heartbeat timeout + one
                                   ownership period + slack
nothing of a fenced term           every change the stream carried is the change
                                   the store committed under that partition and
                                   seq (a refused batch of an old term would carry
                                   a seq the store gave to another change, or none)
one content per seq                a seq the stream carried twice (a new owner
                                   re-sending from the saved sink position) carried
                                   the same change
history consecutive                each partition's committed history is seq 1..N
                                   without a gap, N its stream's seq
=================================  ================================================
"""

from __future__ import annotations

from typing import Any

import orjson

from synchronizer.model import Change
from tests.helpers import fleetparts
from tests.soak.checks import Check
from tests.soak.consumers import digest
from tests.soak.fleet import Sample
from tests.soak.fleetchaos import FAILOVER_BOUND

EXAMPLES = 3


def _disturbed(sample: Sample, windows: list[tuple[float, float]]) -> bool:
    return any(sample.started <= end and sample.ended >= start for start, end in windows)


def _same_term(sample: Sample) -> list[str]:
    bad = []
    for partition, held in sample.holders.items():
        terms = [t for _, t in held]
        if len(terms) != len(set(terms)):
            bad.append(f"{partition}: {held}")
        owner, term = sample.owners.get(partition, (None, 0))
        if sample.stable and any(t == term and m != owner for m, t in held):
            bad.append(f"{partition}: {held}, database {owner} term {term}")
    return bad


def _settled_wrong(sample: Sample) -> list[str]:
    return [
        f"{p}: held by {sample.holders.get(p, [])}, database {owner} term {term}"
        for p, (owner, term) in sorted(sample.owners.items())
        if sample.holders.get(p, []) != [(owner, term)]
    ]


def ownership_checks(f: dict[str, Any]) -> list[Check]:
    samples: list[Sample] = f["fleet_samples"]
    windows = f["chaos"].windows
    split = [f"{s.started:.1f}: {b}" for s in samples for b in _same_term(s)]
    settled = [s for s in samples if s.stable and not s.silent and not _disturbed(s, windows)]
    wrong = [f"{s.started:.1f}: {w}" for s in settled for w in _settled_wrong(s)]
    silent = sum(1 for s in samples if s.silent and not _disturbed(s, windows))
    return [
        Check(
            "one holder per partition and term (every sample)",
            bool(samples) and not split,
            "; ".join(split[:EXAMPLES]) or f"{len(samples)} samples",
        ),
        Check(
            "exactly one owner per partition while settled (/healthz = database)",
            bool(settled) and not wrong,
            "; ".join(wrong[:EXAMPLES])
            or f"{len(settled)} settled samples of {len(samples)}, "
            f"{len(windows)} fault windows, {silent} settled samples with a silent member",
        ),
    ]


def failover_checks(f: dict[str, Any]) -> list[Check]:
    failovers = f["chaos"].failovers
    late = [x for x in failovers if x.seconds is None or x.seconds > FAILOVER_BOUND]
    times = ", ".join(f"{x.kind} {x.member} {x.seconds}" for x in failovers)
    return [
        Check(
            f"failover within heartbeat timeout + period + slack ({FAILOVER_BOUND:.1f} s)",
            bool(failovers) and not late,
            times or "no failover measured",
        )
    ]


def wire_checks(f: dict[str, Any]) -> list[Check]:
    wire, history = f["wire"], f["history"]
    committed = {key: digest(Change.from_dict(orjson.loads(doc))) for key, doc in history.items()}
    uncommitted = sorted(k for k in wire.seen if k not in committed)
    other = sorted(k for k, d in wire.seen.items() if k in committed and committed[k] != d)
    streams = {partition: seq for partition, (_, seq) in f["streams"].items()}
    gaps = fleetparts.history_gaps(streams, committed)
    fenced = [f"{p} seq {s}" for p, s in (uncommitted + other)[:EXAMPLES]]
    return [
        Check(
            "nothing of a fenced term reached the stream (every change = the committed one)",
            bool(wire.seen) and not uncommitted and not other,
            "; ".join(fenced)
            or f"{wire.received} changes on the wire ({wire.repeats} repeats), "
            f"{len(committed)} committed",
        ),
        Check(
            "one content per (partition, seq) on the wire",
            not wire.conflicts,
            "; ".join(wire.conflicts[:EXAMPLES]) or f"{len(wire.seen)} seqs",
        ),
        Check("each partition's history is seq 1..N", not gaps, "; ".join(gaps)),
    ]


def judge(f: dict[str, Any]) -> list[Check]:
    """The fleet's checks of a finished fleet run."""
    return [*ownership_checks(f), *failover_checks(f), *wire_checks(f)]


def summary_rows(f: dict[str, Any]) -> list[tuple[str, str]]:
    """The fleet's lines of the run's summary table."""
    chaos, wire = f["chaos"], f["wire"]
    failovers = ", ".join(f"{x.seconds}" for x in chaos.failovers) or "none"
    settles = ", ".join(f"{kind} {took and round(took, 1)}" for kind, took in chaos.settles)
    owners = ", ".join(f"{p} {m} (term {t})" for p, (m, t) in sorted(f["owners"].items()))
    return [
        ("failovers (s, kill and pause)", failovers),
        ("settled after (s)", settles or "none"),
        ("ownership samples / fault windows", f"{len(f['fleet_samples'])} / {len(chaos.windows)}"),
        ("nova hand-overs", str(chaos.nova_handovers)),
        ("wire changes / repeats", f"{wire.received} / {wire.repeats}"),
        ("owners at the end", owners),
    ]
