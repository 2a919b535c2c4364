"""The files under etc/: a fresh sample config, a valid systemd unit."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ETC = REPO / "etc" / "synchronizer"


def test_sample_config_is_not_stale(tmp_path):
    """The committed sample equals what oslo-config-generator writes now (tox -e genconfig)."""
    generator = Path(sys.executable).parent / "oslo-config-generator"
    out = tmp_path / "sample.conf"
    subprocess.run(
        [
            str(generator),
            "--config-file",
            str(ETC / "synchronizer-config-generator.conf"),
            "--output-file",
            str(out),
        ],
        check=True,
        cwd=REPO,
    )
    committed = (ETC / "synchronizer.conf.sample").read_text()
    assert out.read_text() == committed, "run 'tox -e genconfig' and commit the sample"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze absent")
def test_systemd_unit_verifies(tmp_path):
    """systemd-analyze verify accepts the unit (with ExecStart pointing at this install)."""
    script = Path(sys.executable).parent / "synchronizer"
    unit = (ETC / "synchronizer.service").read_text().replace("/usr/bin/synchronizer", str(script))
    path = tmp_path / "synchronizer.service"
    path.write_text(unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "Type=notify" in unit
    assert "Restart=on-failure" in unit
