"""Neutron (Networking) plugins: network and port collectors and notifications.

Collectors and the notification plugin share the shapes of
:mod:`synchronizer_plugins.neutron.shapes`, so a polled and a notified state of the same
network or port have the same fingerprint.
"""
