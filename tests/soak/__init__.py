"""The fault and soak suite: the real daemon under churn and faults, checked end to end.

``python -m tests.soak [--quick] [--minutes N] [--seed S] [--json FILE]``
(``tox -e soak``) runs the fake cloud in this process (its HTTP server on
loopback), the real daemon as a subprocess with nine collectors, the Nova
notification plugin and the ``message`` sink, and out-of-process consumers
on the real RabbitMQ.  A seeded scenario creates, updates and deletes
entities of every kind while Nova notifications about them are delayed,
duplicated, reordered or lost, and faults are injected: API 5xx on random
pages, slow APIs (client timeouts), broken bodies, Keystone down, revoked
tokens, a collector worker killed with SIGKILL, every broker connection
of the soak's processes closed (only theirs: the broker is shared), and
consumers that raise or stall.  After a quiet snapshot interval
the rebuilt world is compared with the fake cloud's truth, and the stream,
the metrics, the memory and the daemon's output are checked (see
:mod:`tests.soak.checks`).  The seed is printed first: ``--seed S`` replays
a run's scenario and fault plan (timings still vary with the machine).

``--fleet`` soaks three fleet members instead of one daemon
(:mod:`tests.soak.fleetrun`): a Redis and a PostgreSQL of their own, the
fleet's faults (:mod:`tests.soak.fleetchaos`) and checks
(:mod:`tests.soak.fleetchecks`) on top of everything above.
"""
