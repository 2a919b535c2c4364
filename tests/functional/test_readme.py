"""The README's examples run as they are written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from tests.helpers.daemon import REPO


def _example(marker: str) -> str:
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- example: {marker} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"README has no example marked {marker!r}"
    return match.group(1)


def test_library_example_runs_verbatim(tmp_path):
    """The library example, pasted into a script and run from the root, gets the whole view."""
    script = tmp_path / "consumer.py"
    script.write_text(_example("library"))
    # A root of its own with the repository's etc/ (the example's relative
    # path): the state the embedded default keeps beside its configuration
    # stays out of the checkout.
    shutil.copytree(
        REPO / "etc",
        tmp_path / "etc",
        ignore=shutil.ignore_patterns("*.state.db*", "*.lock"),
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # The embedded default's jsonl sink prints on stdout too, from its own
    # thread: lines of both come in any order, each whole.
    lines = out.stdout.splitlines()
    assert "2 hosts" in lines
    assert any(line.startswith("synced after ") for line in lines)
    # Registered before the first poll, the entities come as they arrive
    # (create); with a state kept from an earlier run, in the snapshot.
    assert {"create nova.host compute-1 up", "snapshot nova.host compute-1 up"} & set(lines)
    assert all(line.startswith("{") == line.endswith("}") for line in lines)
    assert "bootstrapping phase" not in out.stderr
