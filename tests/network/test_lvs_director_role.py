"""The role cloud58.platform.lvs_director on a director in a network namespace.

ansible-playbook runs the role with a local connection inside a namespace
(``c58lvr-<pid>-director``), so the live sysctls, the addresses on ``lo`` and the nftables
table it sets are the namespace's own; only its sysctl.d file is redirected to a temporary
directory. The director is lab1-lvs1 of inventories/lab (VIPs 198.18.2.1 and 198.18.2.10).
Packets through the data plane are proven by test_fullnat_nftables.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab import programs
from cloud58_lab.netlab import NetLab, run_prefix

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DIRECTOR = "lab1-lvs1"
PLAYBOOK = """\
- name: Make the host an LVS director
  hosts: all
  gather_facts: false
  roles:
    - cloud58.platform.lvs_director
"""


@pytest.fixture(scope="module")
def director(tmp_path_factory):
    plan = build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()
    work = tmp_path_factory.mktemp("lvs-director")
    net = NetLab(prefix=run_prefix("c58lvr"))
    try:
        net.add_namespace("director", forwarding=False)
        yield net, plan, work
    finally:
        problems = net.close()
        assert problems == [], f"lab cleanup left: {problems}"


def _play(director, check=False, **extra):
    """Run the role in the director's namespace; the host's stats and the failed task's message."""
    net, plan, work = director
    (work / "play.yml").write_text(PLAYBOOK)
    variables = {
        # what the preflight play registers on localhost; the role's default reads it there
        "cloud58_topology": {"plan": plan},
        "lvs_director_sysctl_file": str(work / "62-cloud58-lvs-director.conf"),
        "lvs_director_slots": 8,
        "lvs_director_realservers": {
            "lab1-ingress": [{"address": "198.18.5.2", "port": 8080, "vip_port": 80}]
        },
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        **extra,
    }
    (work / "vars.json").write_text(json.dumps(variables))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        PYTHONPATH=str(REPO / "collections"),
    )
    args = ["-i", f"{DIRECTOR},", str(work / "play.yml"), "-e", f"@{work / 'vars.json'}"]
    proc = subprocess.run(
        programs.argv("ip", "netns", "exec", net.ns("director"), programs.path("ansible-playbook"), *args)
        + (["--check", "--diff"] if check else []),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    report = json.loads(proc.stdout)
    stats = report["stats"][DIRECTOR]
    failed = [
        result["msg"]
        for play in report["plays"]
        for task in play["tasks"]
        for result in task["hosts"].values()
        if result.get("failed")
    ]
    return {"changed": stats["changed"], "failures": stats["failures"]}, failed


def _lo_addresses(net):
    addresses = net.ip_json("director", "-4", "address", "show", "dev", "lo")[0]["addr_info"]
    return sorted(a["local"] for a in addresses)


def _sysctl(net, key):
    return net.exec("director", "sysctl", "-n", key).stdout.strip()


def test_check_mode_changes_nothing(director):
    net, _plan, work = director
    stats, failed = _play(director, check=True)
    assert (stats["failures"], failed) == (0, [])
    assert stats["changed"] > 0
    assert _lo_addresses(net) == ["127.0.0.1"]
    assert net.exec("director", "nft", "list", "tables").stdout == ""
    assert not (work / "62-cloud58-lvs-director.conf").exists()


def test_role_sets_arp_vips_and_data_plane(director):
    net, _plan, work = director
    stats, failed = _play(director)
    assert (stats["failures"], failed) == (0, [])
    assert (work / "62-cloud58-lvs-director.conf").read_text() == (
        "# Managed by cloud58.platform.lvs_director; local changes are overwritten.\n"
        "# VIPs sit on lo: answer ARP only for addresses of the receiving interface.\n"
        "net.ipv4.conf.all.arp_announce = 2\n"
        "net.ipv4.conf.all.arp_ignore = 1\n"
    )
    assert (_sysctl(net, "net.ipv4.conf.all.arp_ignore"), _sysctl(net, "net.ipv4.conf.all.arp_announce")) == (
        "1",
        "2",
    )
    assert _lo_addresses(net) == ["127.0.0.1", "198.18.2.1", "198.18.2.10"]
    table = json.loads(net.exec("director", "nft", "-j", "list", "table", "ip", "cloud58_fullnat").stdout)
    maps = {i["map"]["name"]: len(i["map"].get("elem", [])) for i in table["nftables"] if "map" in i}
    # lab1-ingress port 80 (one realserver) and the API VIP (its masters), 8 slots each
    assert maps == {"realservers": 16, "local_addresses": 8}


def test_second_run_changes_nothing(director):
    stats, failed = _play(director)
    assert (stats, failed) == ({"changed": 0, "failures": 0}, [])


def test_fnat_data_plane_fails_naming_it(director):
    stats, failed = _play(director, lvs_director_dataplane="fnat")
    assert stats["failures"] == 1
    assert failed == [
        f"lvs_director_dataplane=fnat on {DIRECTOR}: the fnat data plane (IPVS FNAT, DPVS keepalived)"
        " is not built yet; use nftables (docs/lvs.md)"
    ]
