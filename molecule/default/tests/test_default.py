"""What cloud58.platform.base leaves on a node, checked on the running containers.

The expectations are written out per instance from molecule.yml's inventory: node1 keeps
the role defaults apart from its identity, node2 overrides journald, the time zone and
the banner.
"""

from __future__ import annotations

import json
import os
import re

import pytest
import yaml

_BANNER_END = "  Ansible managed by cloud58.platform.base; local changes are overwritten.\n\n"

EXPECTED = {
    "mol-default-node1": {
        "identity": {
            "version": 1,
            "name": "mol-default-node1",
            "datacenter": "lab1",
            "rack": "r1",
            "groups": ["lab1", "lab1_r1", "minions"],
            "labels": {"pool": "general", "zone": "lab1-a"},
        },
        "journald": {
            "Storage": "persistent",
            "SystemMaxUse": "2G",
            "SystemKeepFree": "4G",
            "SystemMaxFileSize": "128M",
            "MaxRetentionSec": "2week",
            "RateLimitIntervalSec": "30s",
            "RateLimitBurst": "10000",
        },
        # journald's own report after the restart: persistent storage, SystemMaxUse applied.
        "journal_report": r"System Journal \(/var/log/journal/{machine_id}\) is \S+, max 2\.0G, ",
        "journal_dir": "/var/log/journal",
        "timezone": "Asia/Shanghai",
        "tz_abbreviation": "CST",
        "motd": (
            "\n"
            "  cloud58 node mol-default-node1\n"
            "    datacenter  lab1\n"
            "    rack        r1\n"
            "    groups      lab1, lab1_r1, minions\n"
            "\n" + _BANNER_END
        ),
    },
    "mol-default-node2": {
        "identity": {
            "version": 1,
            "name": "mol-default-node2",
            "datacenter": "lab2",
            "rack": "r2",
            "groups": ["lab2", "lab2_r2", "masters"],
            "labels": {},
        },
        "journald": {
            "Storage": "volatile",
            "SystemMaxUse": "512M",
            "SystemKeepFree": "4G",
            "SystemMaxFileSize": "128M",
            "MaxRetentionSec": "2week",
            "RateLimitIntervalSec": "30s",
            "RateLimitBurst": "2000",
        },
        # Volatile storage: after the restart journald writes to /run only.
        "journal_report": r"Runtime Journal \(/run/log/journal/{machine_id}\) is \S+, max \S+, ",
        "journal_dir": "/run/log/journal",
        "timezone": "UTC",
        "tz_abbreviation": "UTC",
        "motd": (
            "\n"
            "  cloud58 node mol-default-node2\n"
            "    datacenter  lab2\n"
            "    rack        r2\n"
            "    groups      lab2, lab2_r2, masters\n"
            "  owner: platform-sre\n"
            "  help:  #cloud58-oncall\n"
            "\n" + _BANNER_END
        ),
    },
}

testinfra_hosts = [f"podman://{name}" for name in EXPECTED]

DROP_IN = "/etc/systemd/journald.conf.d/cloud58.conf"


@pytest.fixture
def expected(host):
    return EXPECTED[host.backend.name]


def test_every_instance_has_expectations():
    inventory_file = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory_file:
        pytest.skip("runs under `molecule verify`, which names the inventory")
    with open(inventory_file) as f:
        inventory = yaml.safe_load(f)
    assert set(inventory["all"]["hosts"]) == set(EXPECTED)


def test_systemd_is_running_without_failed_units(host):
    state = host.run("systemctl is-system-running")
    failed = host.check_output("systemctl --failed --no-legend --plain")
    assert (state.stdout.strip(), failed) == ("running", "")


def test_node_identity_is_the_inventory(host, expected):
    directory = host.file("/etc/cloud58")
    identity = host.file("/etc/cloud58/node.json")
    assert (directory.is_directory, directory.user, directory.group, directory.mode) == (
        True,
        "root",
        "root",
        0o755,
    )
    assert (identity.is_file, identity.user, identity.group, identity.mode) == (True, "root", "root", 0o644)
    assert json.loads(identity.content_string) == expected["identity"]


def test_journald_drop_in_holds_the_limits(host, expected):
    drop_in = host.file(DROP_IN)
    assert (drop_in.user, drop_in.group, drop_in.mode) == ("root", "root", 0o644)
    lines = drop_in.content_string.splitlines()
    assert lines[0].startswith("# ")
    assert lines[1] == "[Journal]"
    assert dict(line.split("=", 1) for line in lines[2:]) == expected["journald"]


def test_journald_was_restarted_after_the_drop_in_changed(host):
    journald = host.service("systemd-journald")
    assert journald.is_running
    started = host.check_output("systemctl show -P ActiveEnterTimestamp --timestamp=unix systemd-journald")
    written = host.check_output(f"stat -c %Y {DROP_IN}")
    assert re.fullmatch(r"@\d+", started), started
    assert int(started[1:]) >= int(written)


def test_journald_applies_the_drop_in(host, expected):
    machine_id = host.file("/etc/machine-id").content_string.strip()
    # The journal file journald holds open shows where it stores (Storage=).
    open_journals = host.check_output(
        "find /proc/$(pidof systemd-journald)/fd -lname '*/system.journal' -printf '%l\\n'"
    ).splitlines()
    assert open_journals == [f"{expected['journal_dir']}/{machine_id}/system.journal"]
    # journald reports the storage and the size limit it runs with when it starts.
    log = host.check_output("journalctl -b -u systemd-journald -o cat --no-pager").splitlines()
    since_restart = log[len(log) - log[::-1].index("Journal started") :]
    reports = [line for line in since_restart if " Journal (" in line]
    assert len(reports) == 1, since_restart
    assert re.match(expected["journal_report"].format(machine_id=machine_id), reports[0]), reports[0]


def test_time_zone_is_set(host, expected):
    localtime = host.file("/etc/localtime")
    assert localtime.is_symlink
    assert host.check_output("readlink /etc/localtime") == f"/usr/share/zoneinfo/{expected['timezone']}"
    assert host.file("/etc/timezone").content_string == expected["timezone"] + "\n"
    assert host.check_output("date +%Z") == expected["tz_abbreviation"]


def test_login_banner(host, expected):
    motd = host.file("/etc/motd")
    assert (motd.user, motd.group, motd.mode) == ("root", "root", 0o644)
    assert motd.content_string == expected["motd"]
