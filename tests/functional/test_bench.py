"""The benchmark harness's plumbing: the full plan runs end to end (at tiny sizes)."""

from __future__ import annotations

import pytest

from bench.__main__ import FIGURES, NOT_COMPARABLE, SIZES, TINY, run

pytestmark = pytest.mark.broker


def test_every_mode_names_the_same_sizes():
    """The full, quick and tiny sizes have the same keys, so no mode misses one."""
    assert set(SIZES["full"]) == set(SIZES["quick"]) == set(TINY)


def test_full_plan_runs_every_figure(transport_url):
    """Every figure of the full plan gives a value at tiny sizes, marked not comparable."""
    results = run(TINY, None)
    assert sorted(results) == sorted(FIGURES)
    failed = {f: r.get("note") for f, r in results.items() if r["value"] is None}
    assert failed == {}
    for fig, rec in results.items():
        assert rec["met"] is None, fig
        assert NOT_COMPARABLE in rec["note"], fig
    # B10 times whole poll cycles on both stores too (what durability costs a cycle).
    cycle = results["B10"]["whole_cycle"]
    assert set(cycle["cycle_s"]) == {"sqlite", "memory"}
    assert all(t > 0 for t in cycle["cycle_s"].values()), cycle
    assert cycle["cycle_ratio"] > 0, cycle
