"""Test helpers shipped with the test suite: plugins, daemon runner, waits."""
