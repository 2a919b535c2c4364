"""Ironic (Bare Metal) plugins: the ``ironic.node`` collector and notifications.

Both produce ``ironic.node`` entities of the one shape defined in
:mod:`synchronizer_plugins.ironic.shapes`.
"""
