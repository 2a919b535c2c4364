"""Running as a fleet: partitions, their owners through tooz, fenced in the shared store.

Modules: :mod:`~synchronizer.fleet.options` (``[coordination]``,
``[database]``), :mod:`~synchronizer.fleet.partitions` (which plugins go
together), :mod:`~synchronizer.fleet.ownership` (who owns what, through
tooz), :mod:`~synchronizer.fleet.member` (a member running the partitions
it owns).  Without ``[coordination] backend_url`` nothing here runs.
"""
