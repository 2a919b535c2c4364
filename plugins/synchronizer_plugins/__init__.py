"""Plugins shipped with the synchronizer (collectors and notification plugins)."""
