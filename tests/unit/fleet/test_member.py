"""A fleet member's own bookkeeping, without a coordinator or a database reached."""

from __future__ import annotations

from pathlib import Path

from synchronizer import opts
from synchronizer.fleet.member import Member, _Run
from synchronizer.wire import NotificationStats


def _member(tmp_path: Path) -> Member:
    path = tmp_path / "member.conf"
    path.write_text(
        "[DEFAULT]\nplugins = nova.instance, nova.notifications\nsinks = log\n"
        "[coordination]\nbackend_url = redis://127.0.0.1:1\n"  # never connected here
        "[database]\nconnection = sqlite://\n"
    )
    return Member(opts.parse(["--config-file", str(path)], setup_logging=False))


def test_notification_counts_of_an_earlier_term_are_kept(tmp_path):
    """A partition back under a new term: its new worker's counts add to the old ones."""
    member = _member(tmp_path)
    nova = member.partitions["nova"]
    reports = ((1, 5), (1, 7), (2, 3))  # (term, received so far by that term's worker)
    for term, received in reports:
        run = _Run(nova, term, dispatcher=None, feeds=[], sinks=[], specs=[])  # type: ignore[arg-type]
        member._handle(run, "nova-notifications", NotificationStats(received, dropped=1))
    total = member.status.notifications_snapshot()
    assert (total.received, total.dropped) == (7 + 3, 2)
