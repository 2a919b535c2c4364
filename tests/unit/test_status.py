"""What the status reports from several notification workers."""

from synchronizer.service.status import Status


def test_notification_counters_of_every_worker_are_summed():
    """Each worker's last report counts once; a newer report replaces its older one."""
    status = Status()
    status.notification_stats(
        "notifications-1",
        {"counts": {"received": 5, "mapped": 4}, "by_event": [["p", "e.update", "mapped", 4]]},
    )
    status.notification_stats(
        "notifications-2",
        {"counts": {"received": 3, "dropped": 1}, "by_event": [["p", "e.update", "mapped", 2]]},
    )
    status.notification_stats(
        "notifications-1",
        {"counts": {"received": 7, "mapped": 6}, "by_event": [["p", "e.update", "mapped", 6]]},
    )
    merged = status.notifications_snapshot()
    assert merged["counts"] == {"received": 10, "mapped": 6, "dropped": 1}
    assert merged["by_event"] == [["p", "e.update", "mapped", 8]]


def test_no_worker_reported_yet():
    assert Status().notifications_snapshot() == {"counts": {}, "by_event": []}
