"""``synchronizer-replay`` over every notification sample of the shared fixtures.

The real console script replays each stream's files as they are (Nova's
``$ref`` payloads included) with the shipped plugins; every file must get a
result line, no notification may be dropped, and each file's counts and the
printed changes must equal what the same plugins give in this process for
the samples as :mod:`tests.helpers.samples` reads them (the conformance
suite checks those changes one by one).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from synchronizer import opts, plugin_loader
from synchronizer.workers.converter import Converter
from tests.helpers import samples
from tests.helpers.daemon import REPO, script

SERVICES = "nova.notifications, cinder.notifications, neutron.notifications, " + (
    "ironic.notifications, heat.notifications"
)
# Nova's legacy samples need the plugin in the legacy format: a run of their own.
CONFIGS = {
    "versioned": f"[DEFAULT]\nplugins = {SERVICES}\n",
    "legacy": "[DEFAULT]\nplugins = nova.notifications\n"
    "[nova.notifications]\nformat = legacy\nvolume_relations = false\n",
}
RUNS = {
    "versioned": ("nova", "cinder", "neutron", "ironic"),
    "legacy": ("nova-legacy",),
}
RESULT = re.compile(
    r"^synchronizer-replay: (?P<path>.+): (?P<n>\d+) notification\(s\), "
    r"mapped=(?P<mapped>\d+) ignored=(?P<ignored>\d+) dropped=(?P<dropped>\d+)$"
)
SUMMARY = re.compile(r"^synchronizer-replay: (\d+) file\(s\), received=(\d+) .*unreadable=0$")
OUTCOMES = ("mapped", "ignored", "dropped")


def write_conf(tmp_path: Path, run: str) -> Path:
    path = tmp_path / f"{run}.conf"
    path.write_text(CONFIGS[run])
    return path


def expected(conf_path: Path, files: list[Path]) -> tuple[dict[str, dict[str, int]], list[tuple]]:
    """Per-file counts and the changes the configured plugins give in this process."""
    conf = opts.parse(["--config-file", str(conf_path)], setup_logging=False)
    converter = Converter(
        [plugin_loader.instantiate(conf, name) for name in conf.plugins],
        conf.notification_max_bytes,
    )
    per_file, changes = {}, []
    for path in files:
        notes = samples.notifications_in(path)
        before = dict(converter.counts)
        for raw in notes:
            changes += [_brief(c.to_dict()) for c in converter.convert(raw)]
        counts = {o: converter.counts[o] - before.get(o, 0) for o in OUTCOMES}
        per_file[str(path)] = {"n": len(notes), **counts}
    return per_file, changes


def _brief(change: dict[str, Any]) -> tuple:
    return (change["type"], change["key"], change["action"], change["state"], change["project"])


def replay(conf_path: Path, files: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script("synchronizer-replay"), "--config-file", str(conf_path), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=120,
    )


@pytest.mark.parametrize("run", sorted(RUNS))
def test_replay_gives_every_sample_the_conformance_outcome(tmp_path, run):
    """Every sample file gets a result line with the in-process counts; none is dropped."""
    samples.require()
    files = [p for stream in RUNS[run] for p in samples.STREAMS[stream]]
    assert files
    conf_path = write_conf(tmp_path, run)
    out = replay(conf_path, files)
    assert out.returncode == 0, out.stderr[-3000:]

    results = {}
    for line in out.stderr.splitlines():
        match = RESULT.match(line)
        if match:
            counts = {k: int(v) for k, v in match.groupdict().items() if k != "path"}
            results[match["path"]] = counts
    per_file, changes = expected(conf_path, files)
    assert results == per_file
    assert sum(c["dropped"] for c in results.values()) == 0
    assert sum(c["mapped"] for c in results.values()) > 0
    summary = SUMMARY.match(out.stderr.splitlines()[-1])
    assert summary, out.stderr.splitlines()[-1]
    assert int(summary[1]) == len(files)
    assert int(summary[2]) == sum(c["n"] for c in per_file.values())

    printed = [_brief(json.loads(line)) for line in out.stdout.splitlines()]
    assert printed == changes
