"""Cinder (Block Storage) plugins: the ``cinder.volume`` collector and notifications.

Both produce ``cinder.volume`` entities of the one shape defined in
:mod:`synchronizer_plugins.cinder.shapes`, so a polled volume and a notified volume in the
same state have the same fingerprint.
"""
