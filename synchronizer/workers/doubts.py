"""What one collector's listings could not vouch for, logged once, not every cycle.

A listing can look complete and still be wrong: a record that names its
entity but does not convert, a walk that listed a key twice (its paging
shifted), a mass delete.  The poll loop keeps going in each case (see
:mod:`synchronizer.deletes` for what is inferred); :class:`Doubts` tells the
operator, once per key or per event, with the numbers::

    doubts = Doubts("nova.instance")
    doubts.skipped(plugin.skipped, settled=True)      # after a full listing
    doubts.held(hold, before, tracked=2500)           # after screening deletes

Threading: one poll loop uses an instance.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from synchronizer.deletes import Key, MassDeleteHold

LOG = logging.getLogger(__name__)

#: Records named one by one in a log line; more are counted.
NAMED = 10


class Doubts:
    """The log lines of one plugin's doubtful listings."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._logged: set[Key] = set()

    def skipped(self, skipped: Mapping[Key, str], *, settled: bool) -> int:
        """Log the records of a listing that did not convert, each key once; return how many.

        A key is logged again only after a full listing (``settled``)
        converted it in between, so a record that stays broken is one line.
        """
        new = [k for k in skipped if k not in self._logged]
        for type_, key in new[:NAMED]:
            LOG.warning(
                "%s: %s %s cannot be converted (%s); it keeps its last good state "
                "and the listing stays complete",
                self.name,
                type_,
                key,
                skipped[(type_, key)],
            )
        if len(new) > NAMED:
            LOG.warning("%s: %d more records cannot be converted", self.name, len(new) - NAMED)
        if settled:
            self._logged = set(skipped)
        else:
            self._logged.update(skipped)
        return len(skipped)

    def held(self, hold: MassDeleteHold, before: frozenset[Key], tracked: int) -> None:
        """Log what screening a complete listing's deletes did (``before``: held until then)."""
        if hold.confirmed:
            LOG.warning(
                "%s: the next complete listing lacks %d held entities again: "
                "their deletes are confirmed and delivered",
                self.name,
                hold.confirmed,
            )
        if before and hold.withdrawn:
            LOG.warning(
                "%s: %d held deletes were wrong (the next complete listing lists them): dropped",
                self.name,
                hold.withdrawn,
            )
        if hold.held and hold.held != before:
            share = len(hold.held) / tracked if tracked else 1.0
            first = ", ".join(f"{t} {k}" for t, k in sorted(hold.held)[:3])
            LOG.warning(
                "%s: a complete listing would delete %d of %d entities at once (%.1f%%, over "
                "mass_delete_threshold %.1f%%): held until the next complete listing "
                "confirms them (e.g. %s)",
                self.name,
                len(hold.held),
                tracked,
                100 * share,
                100 * hold.threshold,
                first,
            )
