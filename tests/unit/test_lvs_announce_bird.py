"""The BIRD configuration an LVS director announces its VIPs with, parsed by the real BIRD
(bird2 is a Debian package `make setup` installs: a controller program, so this runs here
and not among the collection's own unit tests, which must not need it)."""

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.announce import bird_config
from ansible_collections.cloud58.platform.tests.unit.plugins.module_utils.lvs.test_lvs_announce import (
    BGP,
    LVS,
)
from cloud58_lab import programs


@pytest.mark.parametrize("healthy", [None, []], ids=["announcing", "empty"])
def test_bird_parses_the_config(tmp_path, healthy):
    conf = tmp_path / "bird.conf"
    conf.write_text(bird_config(LVS, "d1", BGP, healthy=healthy))
    result = subprocess.run(
        programs.argv("bird", "-p", "-c", str(conf)), capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_bird_refuses_a_broken_config(tmp_path):
    # The check above can fail: BIRD rejects a file with a protocol cut short.
    conf = tmp_path / "bird.conf"
    conf.write_text(bird_config(LVS, "d1", BGP).rsplit("}", 1)[0])
    result = subprocess.run(
        programs.argv("bird", "-p", "-c", str(conf)), capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
