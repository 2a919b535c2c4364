"""Heat (Orchestration) plugins: the ``heat.stack`` collector and notifications.

Both produce ``heat.stack`` entities of the one shape defined in
:mod:`synchronizer_plugins.heat.shapes`.
"""
