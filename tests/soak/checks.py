"""The verdict on a soak run's figures: every check, its result and why.

=============================  =================================================
check                          passes when
=============================  =================================================
missing / phantom / wrong      the rebuilt world has exactly the cloud's keys,
                               each with the reference listing's fingerprint
reference = truth              ``synchronizer-snapshot`` lists exactly the
                               cloud's keys (else the comparison means nothing)
duplicates / older / false     none in the checker's stream (see
deletes / seq backwards        :class:`~tests.soak.checker.StreamChecker`)
daemon running, clean exit     alive at the end; SIGTERM exits 0
memory                         RSS at the end within :data:`RSS_FACTOR` x the
                               RSS after warm-up + :data:`RSS_SLACK_MIB`, for
                               the main process and for all processes
restarts counted               ``worker_restarts_total`` = SIGKILLs + hangs, per
                               worker
hung where hung                a collector is declared hung exactly as often as
                               its service was made to hang
lost records refused           each displaced page made an InconsistentListing,
                               each cut walk an incomplete Nova listing or a
                               held mass delete
bad records counted            ``poll_records_skipped_total`` >= the bad records
                               that could not convert
API failures counted           per service, ``plugin_failures_total`` of its
                               plugins >= fault episodes that reached it; each
                               OpenStack plugin >= Keystone outages
drops counted                  dropped notifications = bad ones sent; received
                               >= published
faults injected                every kind took effect at least once, none failed
faulty consumers               the raising and the stalling consumer raised and
                               stalled, and kept receiving
no secrets                     no password, token id or transport password in
                               any output
loopback only                  every listening socket of the daemon is loopback
=============================  =================================================
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

from tests.soak import probes, setup
from tests.soak.chaos import COLLECTORS, HUNG, KINDS, OPENSTACK_PLUGINS, PLUGINS_BY_SERVICE
from tests.soak.checker import compare_world, describe_difference

RSS_FACTOR = 1.3
RSS_SLACK_MIB = 48
_FAILURES = "synchronizer_plugin_failures_total"


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


def _keys(keys: list[Any]) -> str:
    return ", ".join(f"{t}/{k}" for t, k in keys[:5]) + (" ..." if len(keys) > 5 else "")


def world_checks(f: dict[str, Any], volatile: dict[str, frozenset[str]]) -> list[Check]:
    report = compare_world(f["world"], f["reference"], f["truth"], volatile)
    f["world_report"] = report
    wrong = ""
    if report.wrong:
        key = report.wrong[0]
        diff = describe_difference(f["world"][key], f["reference"][key])
        wrong = f"{_keys(report.wrong)}; first: {diff}"
    missing = _keys(report.missing)
    if report.missing and f.get("last_told") is not None:
        key = report.missing[0]
        missing += f"; first: last told {f['last_told'](key)}; lived {f['lives'].lives(key)}"
        if key in f.get("store_rows", {}):
            missing += f"; the shared store holds {f['store_rows'][key]}"
    phantom = _keys(report.phantom)
    if report.phantom and f.get("lives") is not None:
        key = report.phantom[0]
        told = f["world"][key]
        phantom += (
            f"; first: last told {told.state} by {told.source and told.source.kind} "
            f"at {told.timestamp}; lived {f['lives'].lives(key)}"
        )
    return [
        Check("0 missing entities", not report.missing, missing),
        Check("0 phantom entities", not report.phantom, phantom),
        Check("0 wrong states", not report.wrong, wrong),
        Check(
            "reference listing = cloud truth",
            not report.reference_vs_truth,
            _keys(report.reference_vs_truth),
        ),
    ]


def stream_checks(f: dict[str, Any]) -> list[Check]:
    found = f["findings"]
    ex = found.examples
    return [
        Check("0 duplicate changes", found.duplicates == 0, "; ".join(ex.get("duplicate", []))),
        Check("0 older states", found.older == 0, "; ".join(ex.get("older", []))),
        Check("0 false deletes", found.false_deletes == 0, "; ".join(ex.get("false_delete", []))),
        Check(
            "seq never back within a stream",
            found.backwards == 0,
            "; ".join(ex.get("backwards", [])),
        ),
    ]


def process_checks(f: dict[str, Any]) -> list[Check]:
    warm, end = f["rss_warm_kib"], f["rss_end_kib"]
    slack = RSS_SLACK_MIB * 1024
    bad_sockets = [f"{a}:{p}" for a, p in f["listening"] if not probes.is_loopback(a)]
    return [
        Check("daemon still running at the end", f["daemon_running"]),
        Check(
            "daemon healthy at the end (/healthz 200)",
            f["healthz_code"] == 200,
            "" if f["healthz_code"] == 200 else f["healthz_text"][:800],
        ),
        Check(
            "daemon exits 0 on SIGTERM", f.get("daemon_exit") == 0, f"exit {f.get('daemon_exit')}"
        ),
        Check(
            f"RSS end <= {RSS_FACTOR} x warm-up + {RSS_SLACK_MIB} MiB",
            all(end[k] <= warm[k] * RSS_FACTOR + slack for k in ("main", "total")),
            f"main {warm['main'] // 1024} -> {end['main'] // 1024} MiB, "
            f"all processes {warm['total'] // 1024} -> {end['total'] // 1024} MiB",
        ),
        Check(
            "every listening socket is loopback",
            not bad_sockets and bool(f["listening"]),
            ", ".join(bad_sockets) or f"{len(f['listening'])} listening",
        ),
    ]


#: Notifications a daemon restart may leave uncounted: its worker's last report
#: interval (2 s) at the soak's publishing rate (about 1.5 a second), with margin.
KILL_WINDOW = 5


def metric_checks(f: dict[str, Any]) -> list[Check]:
    samples, chaos = f["metrics"], f["chaos"]
    restarts = probes.by_label(samples, "synchronizer_worker_restarts_total", "worker")
    restarts = {k: int(v) for k, v in restarts.items() if v}
    expected = dict(chaos.kills + chaos.hangs)
    failures = probes.by_label(samples, _FAILURES, "plugin")
    short = []
    for service, plugins in PLUGINS_BY_SERVICE.items():
        hits = sum(chaos.fired(k, service) for k in KINDS if k.startswith("api_"))
        counted = sum(failures.get(p, 0) for p in plugins)
        if counted < hits:
            short.append(f"{service}: {counted:.0f} failures < {hits} episodes")
    outages = chaos.fired("keystone_down")
    short += [
        f"{p}: {failures.get(p, 0):.0f} failures < {outages} Keystone outages"
        for p in OPENSTACK_PLUGINS
        if failures.get(p, 0) < outages
    ]
    outcomes = probes.by_label(samples, "synchronizer_notifications_by_outcome_total", "outcome")
    bad = f["notifications"].get("bad", 0)
    published = f["notifications"].get("published", 0)
    # A daemon restart takes with it its notification worker's counts of the last
    # seconds before it (counters are reported every 2 s, and the soak carries them
    # across restarts from a /metrics read just before the signal): those may go
    # uncounted, never unhandled (the world checks say whether anything was lost).
    uncounted, why = chaos.uncounted(KILL_WINDOW)
    return [
        Check(
            "worker restarts counted (= SIGKILLs + hangs)",
            restarts == expected,
            f"metrics {restarts}, kills {dict(chaos.kills)}, hangs {dict(chaos.hangs)}",
        ),
        Check("API failures counted", not short, "; ".join(short) or f"failures {failures}"),
        Check(
            "dropped notifications counted (= bad ones sent)",
            outcomes.get("dropped", 0) == bad
            and outcomes.get("received", 0) >= published - uncounted,
            f"dropped {outcomes.get('dropped', 0):.0f} of {bad} bad; "
            f"received {outcomes.get('received', 0):.0f} of {published} published"
            + (f" (up to {uncounted} uncounted: {why})" if uncounted else ""),
        ),
    ]


def doubt_checks(f: dict[str, Any]) -> list[Check]:
    """The faults no client sees: each was noticed, and only where it was made."""
    chaos, logs = f["chaos"], f["outputs"]["daemon stderr"]
    hung = collections.Counter(
        plugin for line in logs for plugin in COLLECTORS if f"{plugin}: {HUNG}" in line
    )
    inconsistent = sum("InconsistentListing" in line for line in logs)
    refused = sum("came without a next link" in line or "would delete" in line for line in logs)
    skipped = probes.total(f["metrics"], "synchronizer_poll_records_skipped_total")
    displaced, cut = chaos.fired("page_displaced"), chaos.fired("next_link_dropped")
    return [
        Check(
            "hung where hung (declarations = injected hangs)",
            dict(hung) == dict(chaos.hangs),
            f"declared {dict(hung)}, injected {dict(chaos.hangs)}",
        ),
        Check(
            "lost records refused (inconsistent or held)",
            inconsistent >= displaced and refused >= cut,
            f"{inconsistent} inconsistent listings for {displaced} displaced pages, "
            f"{refused} refused or held for {cut} cut walks",
        ),
        Check(
            "bad records counted",
            skipped >= chaos.unconvertible,
            f"{skipped:.0f} skipped for {chaos.unconvertible} unconvertible bad records",
        ),
    ]


def fault_checks(f: dict[str, Any]) -> list[Check]:
    chaos, consumers = f["chaos"], f["consumers"]
    counts = chaos.counts()
    absent = [k for k in chaos.kinds if not counts.get(k)]
    raiser, staller = consumers["raiser"], consumers["staller"]
    return [
        Check(
            "every fault kind injected and took effect",
            not absent and not chaos.errors,
            "; ".join([*(f"{k} never took effect" for k in absent), *chaos.errors]),
        ),
        Check(
            "raising and stalling consumers isolated",
            raiser[1] > 0 and staller[1] > 0 and raiser[0] > raiser[1] and staller[0] > staller[1],
            f"raiser got {raiser[0]} (raised {raiser[1]}), staller got {staller[0]} "
            f"(stalled {staller[1]}), checker got {consumers['checker']}",
        ),
        Check(
            "the checker resumed from its position after each daemon restart, no relist",
            consumers["resumes"] == (chaos.fired("daemon_restart"), 0),
            f"resumes, relists {consumers['resumes']} for "
            f"{chaos.fired('daemon_restart')} daemon restarts",
        ),
    ]


def secret_checks(f: dict[str, Any]) -> list[Check]:
    leaks = []
    for where, lines in f["outputs"].items():
        for label, secret in setup.SECRETS.items():
            n = sum(secret in line for line in lines)
            if n:
                leaks.append(f"{label} in {where} ({n} lines)")
    scanned = sum(len(lines) for lines in f["outputs"].values())
    return [Check("no secret in any output", not leaks, "; ".join(leaks) or f"{scanned} texts")]


def judge(f: dict[str, Any], volatile: dict[str, frozenset[str]]) -> list[Check]:
    """Every check of a finished run."""
    return [
        *world_checks(f, volatile),
        *stream_checks(f),
        *process_checks(f),
        *metric_checks(f),
        *doubt_checks(f),
        *fault_checks(f),
        *secret_checks(f),
    ]
