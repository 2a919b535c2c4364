"""Conformance: every real OpenStack sample through the plugins."""
