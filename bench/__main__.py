"""``python -m bench [--quick] [--json FILE] [--only B2,B3]``: run, tabulate, save."""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

from bench import bus, cloud, common, diffing, durability, fleet, memory, scaleout

FIGURES = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8S", "B9", "B10", "B11", "B12")


# Every mode names the same sizes (a test runs the full plan at TINY sizes,
# so a key the full form lacks fails there, not in an operator's run).
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "n": 100_000,
        "runs": 5,
        "mem": [100_000, 1_000_000],
        "servers": 100_000,
        "latency_runs": None,  # as many as "runs"
        "bus": (30.0, 1000.0, 50_000),
        "failover": (1_000, 5),  # servers, failovers
        "fleet": (100_000, 3),  # entities per service, cycles
    },
    "quick": {
        "n": 10_000,
        "runs": 3,
        "mem": [10_000],
        "servers": 10_000,
        "latency_runs": 1,
        "bus": (3.0, 1000.0, 5_000),
        "failover": (1_000, 2),
        "fleet": (10_000, 2),
    },
}
TINY: dict[str, Any] = {
    "n": 500,
    "runs": 1,
    "mem": [500],
    "servers": 500,
    "latency_runs": 1,
    "bus": (1.0, 200.0, 200),
    "failover": (50, 1),
    "fleet": (300, 1),
}


NOT_COMPARABLE = "not comparable: the targets are set for the full sizes"

GROUPS = {"B1": {"B1", "B5"}, "B6": {"B6", "B7"}}


def _plan(s: dict[str, Any]) -> dict[str, Callable[[], dict[str, dict[str, Any]]]]:
    return {
        "B2": lambda: {"B2": diffing.b2(s["n"], s["runs"])},
        "B4": lambda: {"B4": diffing.b4(s["n"], s["runs"])},
        "B3": lambda: {"B3": memory.b3(s["mem"])},
        "B1": lambda: cloud.b1_b5(s["servers"], 3, 100, s["latency_runs"]),
        "B8": lambda: {"B8": memory.b8(s["n"], s["runs"])},
        "B6": lambda: bus.b6_b7(*s["bus"]),
        "B8S": lambda: {"B8S": durability.b8_store(s["n"], s["runs"])},
        "B9": lambda: {"B9": durability.b9(s["servers"])},
        "B10": lambda: {"B10": durability.b10(s["n"], s["runs"], s["servers"])},
        "B11": lambda: {"B11": fleet.b11(*s["failover"])},
        "B12": lambda: {"B12": scaleout.b12(*s["fleet"])},
    }


def run(sizes: dict[str, Any], only: set[str] | None) -> dict[str, dict[str, Any]]:
    """Run the figures (all, or ``only``) at ``sizes``; a failing one is reported, not raised.

    The targets are set for the full sizes: at any other sizes a figure's
    ``met`` is None (not comparable) and it says so in its note.
    """
    comparable = sizes is SIZES["full"]
    results: dict[str, dict[str, Any]] = {}
    for name, job in _plan(sizes).items():
        wanted = GROUPS.get(name, {name})
        if only is not None and not wanted & only:
            continue
        t0 = time.perf_counter()
        try:
            out = job()
        except Exception as exc:  # noqa: BLE001 - report, keep the other figures
            out = {f: common.skipped(f"failed: {exc!r}") for f in wanted}
        for fig, rec in out.items():
            if only is None or fig in only:
                rec["seconds"] = round(time.perf_counter() - t0, 2)
                if not comparable and rec.get("met") is not None:
                    rec["met"] = None
                    rec["note"] = "; ".join(filter(None, [rec.get("note"), NOT_COMPARABLE]))
                results[fig] = rec
    return dict(sorted(results.items()))


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table(results: dict[str, dict[str, Any]]) -> str:
    head = ("fig", "value", "unit", "spread", "baseline", "ratio", "target", "met")
    rows = [head]
    for fig, r in results.items():
        spread = r.get("spread")
        spread_s = f"[{_fmt(spread[0])}, {_fmt(spread[1])}]" if spread else "-"
        rows.append(
            (
                fig,
                _fmt(r["value"]),
                _fmt(r["unit"]),
                spread_s,
                _fmt(r["baseline"]),
                _fmt(r["ratio"]),
                _fmt(r["target"]),
                _fmt(r["met"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, under 60 s")
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON")
    parser.add_argument("--only", help="comma-separated figure ids, e.g. B2,B3")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    # Worker, publisher and cloud processes inherit it: their import-time
    # deprecation notices are not results.
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    only = {f.strip().upper() for f in args.only.split(",")} if args.only else None
    if only is not None and only - set(FIGURES):
        parser.error(f"unknown figures: {sorted(only - set(FIGURES))}")
    t0 = time.perf_counter()
    results = run(SIZES["quick" if args.quick else "full"], only)
    print(table(results))
    for fig, r in results.items():
        for extra in ("note", "with_api_latency", "with_ledger_file", "profile"):
            if r.get(extra):
                print(f"{fig} {extra}: {r[extra]}")
    print(
        f"machine: {machine()}  mode: {'quick' if args.quick else 'full'}  "
        f"total: {time.perf_counter() - t0:.1f} s"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
