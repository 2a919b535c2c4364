"""Worker targets for the supervisor's unit tests, importable in a spawned interpreter.

Each takes the supervisor's pipe end last, as the real workers do, and
sends plain tuples (the supervisor forwards whatever a worker sends).  The
ones that wait exit by themselves once the process that started them is
gone, so a test killed half way leaves no worker behind.
"""

from __future__ import annotations

import os
import signal
import time
from multiprocessing.connection import Connection


def _hello(tag: str, conn: Connection) -> None:
    conn.send(("hello", tag, os.getpid()))


def _wait_for_parent_to_go() -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.1)


def hello_then_exit(tag: str, code: int, conn: Connection) -> None:
    """Say hello, then exit with ``code``."""
    _hello(tag, conn)
    conn.close()
    raise SystemExit(code)


def hello_then_wait(tag: str, conn: Connection) -> None:
    """Say hello, then run until terminated."""
    _hello(tag, conn)
    _wait_for_parent_to_go()


def hello_then_ignore_sigterm(tag: str, conn: Connection) -> None:
    """Ignore SIGTERM, say hello, then run until killed."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _hello(tag, conn)
    _wait_for_parent_to_go()


def count_then_wait(tag: str, n: int, conn: Connection) -> None:
    """Send ``(tag, 0)`` ... ``(tag, n - 1)`` in order, then run until terminated."""
    for i in range(n):
        conn.send((tag, i))
    _wait_for_parent_to_go()


def hello_mark_then_wait(tag: str, mark: str, conn: Connection) -> None:
    """Say hello, then create the file ``mark`` (the hello is in the pipe), then wait."""
    _hello(tag, conn)
    with open(mark, "w"):
        pass
    _wait_for_parent_to_go()


def ready_then_gated(tag: str, conn: Connection, gate=None) -> None:
    """Say ``ready`` (prepared), wait at the gate, then say hello and run until terminated."""
    import threading

    conn.send(("ready", tag, os.getpid()))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if gate is not None and not gate.wait(stop):
        return
    _hello(tag, conn)
    while not stop.wait(0.1) and os.getppid() != 1:
        pass


def flush_on_sigterm(tag: str, n: int, conn: Connection) -> None:
    """Say hello; once terminated, send ``(tag, 0)`` ... ``(tag, n - 1)`` and exit.

    As a notification worker does: its listener stopped, it flushes what it
    had taken from the bus, then exits.
    """
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    _hello(tag, conn)
    while not stop.wait(0.1) and os.getppid() != 1:
        pass
    time.sleep(0.2)  # a listener's stop and wait take a while
    for i in range(n):
        conn.send((tag, i, "x" * 1000))  # past a pipe's buffer: the reader must go on reading


def echo_answers(tag: str, conn: Connection) -> None:
    """Say hello, then send back, as ``("answered", tag, reply)``, each answer it gets."""
    _hello(tag, conn)
    while True:
        try:
            reply = conn.recv()
        except EOFError:
            return
        conn.send(("answered", tag, reply))
