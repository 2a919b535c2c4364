"""``python -m tests.soak [--fleet] [--quick] [--minutes N] [--seed S] [--set K=V] [--json FILE]``.

``--fleet`` soaks a fleet of three members (:mod:`tests.soak.fleetrun`)
instead of one daemon, with the fleet's faults and checks added.

Prints the seed first (``--seed`` replays the scenario and the fault plan),
then progress, a summary table and every check; exits 1 if a check failed,
2 if the run could not be carried out (no broker, a timeout while starting).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import random
import socket
import sys
from typing import Any

QUICK_SEED = 20261123
QUICK_FLEET_SEED = 20261201
QUICK_MINUTES = 3.0


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fixed seed, about three minutes (CI's form)"
    )
    parser.add_argument("--minutes", type=float, default=None, help="run length (default 10)")
    parser.add_argument("--seed", type=int, default=None, help="replay a run's seed")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument(
        "--fleet",
        action="store_true",
        help="three members with a Redis and a PostgreSQL of their own; adds owner kills "
        "and pauses, coordinator restarts and pauses, and the fleet's checks",
    )
    parser.add_argument(
        "--set",
        metavar="OPTION=VALUE",
        action="append",
        default=[],
        help="a [DEFAULT] option for the daemon, to soak a setting "
        "(e.g. --set notification_workers=2); repeatable",
    )
    return parser.parse_args(argv)


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def summary(f: dict[str, Any], checks: list[Any]) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    scenario: collections.Counter[str] = collections.Counter()
    for (_, action), n in f.get("scenario", {}).items():
        scenario[action] += n
    stream = dict(f["findings"].changes)
    faults = f["chaos"].counts()
    rows = [
        ("seed", str(f["seed"])),
        ("daemon options", json.dumps(f.get("options") or {})),
        ("minutes", f"{f['minutes']:.2f}"),
        ("cloud changes by action", json.dumps(dict(sorted(scenario.items())))),
        ("stream items by action", json.dumps(dict(sorted(stream.items())))),
        ("nova notifications", json.dumps(f["notifications"])),
        ("faults by kind", json.dumps(dict(sorted(faults.items())))),
        ("entities compared", str(f["world_report"].compared)),
        ("missing / phantom / wrong", "{} / {} / {}".format(
            len(f["world_report"].missing), len(f["world_report"].phantom),
            len(f["world_report"].wrong))),
        ("duplicates / older / false deletes", "{} / {} / {}".format(
            f["findings"].duplicates, f["findings"].older, f["findings"].false_deletes)),
        ("RSS warm-up -> end (MiB, all)", "{} -> {}".format(
            f["rss_warm_kib"]["total"] // 1024, f["rss_end_kib"]["total"] // 1024)),
        ("RSS warm-up -> end (MiB, main)", "{} -> {}".format(
            f["rss_warm_kib"]["main"] // 1024, f["rss_end_kib"]["main"] // 1024)),
        ("consumers", json.dumps(f["consumers"])),
    ]  # fmt: skip
    if f.get("fleet"):
        from tests.soak import fleetchecks

        rows += fleetchecks.summary_rows(f)
    rows.append(("checks passed", f"{sum(c.ok for c in checks)} of {len(checks)}"))
    figures = {
        "seed": f["seed"],
        "minutes": f["minutes"],
        "cloud_changes": dict(scenario),
        "stream_items": stream,
        "notifications": f["notifications"],
        "faults": faults,
        "episodes": [vars(e) for e in f["chaos"].episodes],
        "entities_compared": f["world_report"].compared,
        "missing": len(f["world_report"].missing),
        "phantom": len(f["world_report"].phantom),
        "wrong": len(f["world_report"].wrong),
        "duplicates": f["findings"].duplicates,
        "seq_backwards": f["findings"].backwards,
        "older": f["findings"].older,
        "false_deletes": f["findings"].false_deletes,
        "rss_warm_kib": f["rss_warm_kib"],
        "rss_end_kib": f["rss_end_kib"],
        "consumers": f["consumers"],
        "fleet": _fleet_figures(f) if f.get("fleet") else None,
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
    }
    return rows, figures


def _fleet_figures(f: dict[str, Any]) -> dict[str, Any]:
    chaos = f["chaos"]
    return {
        "failovers": [vars(x) for x in chaos.failovers],
        "settles": chaos.settles,
        "windows": chaos.windows,
        "samples": len(f["fleet_samples"]),
        "nova_handovers": chaos.nova_handovers,
        "wire": {"received": f["wire"].received, "repeats": f["wire"].repeats},
        "owners": f["owners"],
        "member_exits": f.get("member_exits"),
        "member_stop_seconds": f.get("member_stop_seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    quick_seed = QUICK_FLEET_SEED if args.fleet else QUICK_SEED
    seed = quick_seed if args.quick and args.seed is None else args.seed
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 31)
    minutes = args.minutes or (QUICK_MINUTES if args.quick else 10.0)
    form = " --fleet" if args.fleet else ""
    print(f"soak{form}: seed {seed} ({minutes:g} min; replay with{form} --seed {seed})", flush=True)
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError:
        print("soak: no RabbitMQ on 127.0.0.1:5672 (start it: rabbitmq-server -detached)")
        return 2
    logging.basicConfig(level=logging.WARNING, format="soak: %(name)s: %(message)s")
    # The raising consumer raises on purpose; oslo.messaging logs each with a traceback.
    logging.getLogger("oslo_messaging.notify.dispatcher").setLevel(logging.CRITICAL)
    # Imported late: the broker check above should not wait for oslo.
    from tests.soak import checks, fleetchecks, fleetrun, runner

    options = dict(item.split("=", 1) for item in args.set if "=" in item)
    if len(options) != len(args.set):
        print("soak: --set takes OPTION=VALUE", file=sys.stderr)
        return 2
    kind = fleetrun.FleetRun if args.fleet else runner.Run
    run = kind(seed, minutes, args.quick, lambda text: print("soak:", text, flush=True), options)
    try:
        figures = run.execute()
    except runner.SoakError as exc:
        print(f"soak: run aborted (seed {seed}): {exc}", flush=True)
        print(f"soak: the daemon's log is in {run.figures.get('daemon_log')}", flush=True)
        return 2
    verdict = checks.judge(figures, runner.volatile_by_type())
    if args.fleet:
        verdict += fleetchecks.judge(figures)
    rows, out = summary(figures, verdict)
    print("\nsummary\n" + _table(rows))
    print("\nchecks")
    for check in verdict:
        mark = "PASS" if check.ok else "FAIL"
        print(f"  {mark}  {check.name}" + (f"  ({check.detail})" if check.detail else ""))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2, default=str)
    failed = [c.name for c in verdict if not c.ok]
    if failed:
        print(f"\nsoak: FAILED {len(failed)} check(s) with{form} seed {seed}: " + "; ".join(failed))
        print(f"soak: the daemon's log is in {figures.get('daemon_log')}")
        return 1
    print(f"\nsoak{form}: all {len(verdict)} checks passed (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
