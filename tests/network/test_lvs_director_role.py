"""The role cloud58.platform.lvs_director on a director in a network namespace.

ansible-playbook runs the role with a local connection inside a namespace
(``c58lvr-<pid>-director``), so the live sysctls, the addresses on ``lo`` and the nftables
table it sets are the namespace's own; only its sysctl.d file is redirected to a temporary
directory. The director is lab1-lvs1 of inventories/lab (VIPs 198.18.2.1 and 198.18.2.10).
BIRD runs in the namespace with its files in the lab's directory; the role writes its
bird.conf there and reconfigures it through its control socket (its ToRs are not in the
lab: the BGP sessions to them are proven by test_vip_announcement.py).
Packets through the data plane are proven by test_fullnat_nftables.py. The fnat data plane
(keepalived of DPVS) writes a file only; this kernel has no IPVS, so the file is checked by
our DPVS schema (in the role) and its NAT subset by the real ``keepalived --config-test``.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.keepalived import nat_subset
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab import programs, roleplay
from cloud58_lab.netlab import NetLab, run_prefix

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DIRECTOR = "lab1-lvs1"
EXPORTER_PORT = 9110
BIRD_START = "router id 198.18.0.31;\nprotocol device {\n}\n"
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
        net.start_bird("director", BIRD_START)
        yield net, plan, work
    finally:
        problems = net.close()
        assert problems == [], f"lab cleanup left: {problems}"


def _play(director, check=False, output=False, **extra):
    """Run the role in the director's namespace; the host's stats and the failed task's message
    (``output``: and ansible-playbook's JSON output)."""
    net, plan, work = director
    bird = net.routers["director"].directory
    variables = {
        "lvs_director_bird_file": str(bird / "bird.conf"),
        "lvs_director_healthy_file": str(work / "lvs-healthy.json"),
        "lvs_director_bird_reload_command": ["birdc", "-s", str(bird / "bird.ctl"), "configure"],
        # what the preflight play registers on localhost; the role's default reads it there
        "cloud58_topology": {"plan": plan},
        "lvs_director_sysctl_file": str(work / "62-cloud58-lvs-director.conf"),
        "lvs_director_exporter_dir": str(work / "exporter"),
        "lvs_director_exporter_unit_file": str(work / "cloud58-lvs-exporter.service"),
        "lvs_director_exporter_bird_socket": str(bird / "bird.ctl"),
        "lvs_director_slots": 8,
        # The host's nftables and BIRD (apt-packages.txt); this namespace's BIRD is the test's.
        "lvs_director_install_packages": False,
        "lvs_director_manage_services": False,
        "lvs_director_realservers": {
            "lab1-ingress": [{"address": "198.18.5.2", "port": 8080, "vip_port": 80}]
        },
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        **extra,
    }
    stats, failed, stdout = roleplay.play(
        work, PLAYBOOK, DIRECTOR, variables, check=check, netns=net.ns("director")
    )
    return (stats, failed, stdout) if output else (stats, failed)


def _lo_addresses(net):
    addresses = net.ip_json("director", "-4", "address", "show", "dev", "lo")[0]["addr_info"]
    return sorted(a["local"] for a in addresses)


def _announced(net):
    """The prefixes of BIRD's static protocol of the VIPs (what the director announces)."""
    out = net.birdc("director", "show route protocol cloud58_vips")
    return {line.split()[0] for line in out.splitlines() if line[:1].isdigit()}


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
    assert (net.routers["director"].directory / "bird.conf").read_text() == BIRD_START


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
    # no healthy file yet: both VIPs have realservers, both are announced
    assert _announced(net) == {"198.18.2.1/32", "198.18.2.10/32"}


def test_second_run_changes_nothing(director):
    stats, failed = _play(director)
    assert (stats, failed) == ({"changed": 0, "failures": 0}, [])


# One GET from inside the namespace: the status line, a blank line, the body.
GET = (
    "import http.client, sys\n"
    "c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]), timeout=30)\n"
    "c.request('GET', '/metrics')\n"
    "r = c.getresponse()\n"
    "print(r.status, r.reason)\n"
    "print()\n"
    "print(r.read().decode(), end='')\n"
)


def _metrics(net, port=EXPORTER_PORT) -> tuple[str, dict[str, str]]:
    """The exporter's status and its series (name and labels -> value)."""
    out = net.exec("director", "python3", "-c", GET, str(port)).stdout
    head, _sep, body = out.partition("\n\n")
    series = dict(line.rsplit(" ", 1) for line in body.splitlines() if line and not line.startswith("#"))
    return head, series


def test_the_exporter_serves_the_realservers_of_each_vip_from_the_live_table(director):
    """The unit the role wrote, its ExecStart run in the director's namespace (the installed
    program and its copy of the lvs package): per VIP the distinct realservers and ports of
    the live table. Emptied by hand, the table shows both VIPs at 0 (the alert
    LvsVipWithoutRealservers); deleted, only cloud58_lvs_table_present 0; the role brings
    the table back and the figures with it. With BIRD's socket the exporter also serves a
    session gauge per ToR of the plan, 0 here (the ToRs are not in this lab), and 1 for the
    speaker."""
    net, plan, work = director
    unit = (work / "cloud58-lvs-exporter.service").read_text()
    command = shlex.split(next(line for line in unit.splitlines() if line.startswith("ExecStart="))[10:])
    assert command[:1] + command[2:] == [
        "/usr/bin/python3",
        "--listen",
        "0.0.0.0:9110",
        "--director",
        DIRECTOR,
        "--bird-socket",
        str(net.routers["director"].directory / "bird.ctl"),
    ]
    assert command[1] == str(work / "exporter/cloud58-lvs-exporter")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", net.ns("director"), *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    net.servers.append(proc)
    assert "serving /metrics of table ip cloud58_fullnat on 0.0.0.0:9110" in proc.stderr.readline()
    d = f'director="{DIRECTOR}"'
    # lab1-k8s-api: the three masters on port 6443; lab1-ingress: the one realserver the test gives.
    full = {
        f"cloud58_lvs_table_present{{{d}}}": "1",
        f'cloud58_lvs_vip_realservers{{{d},vip="198.18.2.1"}}': "3",
        f'cloud58_lvs_vip_realservers{{{d},vip="198.18.2.10"}}': "1",
        f'cloud58_lvs_vip_ports{{{d},vip="198.18.2.1"}}': "1",
        f'cloud58_lvs_vip_ports{{{d},vip="198.18.2.10"}}': "1",
        f"cloud58_bgp_speaker_up{{{d}}}": "1",
        **{
            f'cloud58_bgp_session_up{{{d},peer="{peer["name"]}",neighbor="{peer["address"]}"}}': "0"
            for peer in plan["hosts"][DIRECTOR]["bgp"]["peers"]
        },
    }
    assert len(full) == 8  # the two ToRs of lab1-r1
    assert _metrics(net) == ("200 OK", full)
    net.exec("director", "nft", "flush", "map", "ip", "cloud58_fullnat", "realservers")
    assert _metrics(net) == ("200 OK", {k: "0" if "vip=" in k else v for k, v in full.items()})
    net.exec("director", "nft", "delete", "table", "ip", "cloud58_fullnat")
    bgp = {k: v for k, v in full.items() if k.startswith("cloud58_bgp_")}
    assert _metrics(net) == ("200 OK", {f"cloud58_lvs_table_present{{{d}}}": "0", **bgp})
    stats, failed = _play(director)
    # the table again; nothing of the exporter
    assert (stats, failed) == ({"changed": 1, "failures": 0}, [])
    assert _metrics(net) == ("200 OK", full)


def test_the_exporter_with_a_bird_that_does_not_answer_serves_the_speaker_down(director):
    """The installed exporter pointed at a socket where no BIRD listens: the table's figures
    still, cloud58_bgp_speaker_up 0, no session series, and one line in its log."""
    net, _plan, work = director
    missing = work / "no-bird.ctl"
    proc = subprocess.Popen(
        ["ip", "netns", "exec", net.ns("director"),
         "/usr/bin/python3", str(work / "exporter/cloud58-lvs-exporter"),
         "--listen", "127.0.0.1:9111", "--director", DIRECTOR, "--bird-socket", str(missing)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    net.servers.append(proc)
    assert "serving /metrics" in proc.stderr.readline()
    status, series = _metrics(net, 9111)
    d = f'director="{DIRECTOR}"'
    assert (status, {k: v for k, v in series.items() if "bgp" in k}) == (
        "200 OK",
        {f"cloud58_bgp_speaker_up{{{d}}}": "0"},
    )
    assert series[f"cloud58_lvs_table_present{{{d}}}"] == "1"
    assert proc.stderr.readline() == (
        "cloud58-lvs-exporter: asking BIRD for its sessions failed: Unable to connect to server "
        f"control socket ({missing}): No such file or directory\n"
    )


# ---- VIP announcement: the healthy set ---------------------------------------------------------


def test_a_new_healthy_set_rewrites_bird_conf_and_reconfigures_bird(director):
    net, _plan, work = director
    pids = net.routers["director"].pids
    (work / "lvs-healthy.json").write_text('{"healthy_vips": ["198.18.2.10"]}')
    stats, failed = _play(director)
    # the BIRD file and the handler
    assert (stats, failed) == ({"changed": 2, "failures": 0}, [])
    assert _announced(net) == {"198.18.2.10/32"}
    assert net.routers["director"].pids == pids


def test_check_mode_shows_a_withdrawal_and_changes_nothing(director):
    net, _plan, work = director
    conf = (net.routers["director"].directory / "bird.conf").read_text()
    (work / "lvs-healthy.json").write_text('{"healthy_vips": []}')
    stats, failed = _play(director, check=True)
    (work / "lvs-healthy.json").write_text('{"healthy_vips": ["198.18.2.10"]}')
    # the BIRD file would change; the handler does not run in check mode
    assert (stats, failed) == ({"changed": 1, "failures": 0}, [])
    assert (net.routers["director"].directory / "bird.conf").read_text() == conf
    assert _announced(net) == {"198.18.2.10/32"}


def test_a_healthy_vip_of_another_director_fails_naming_it_and_writes_nothing(director):
    net, _plan, work = director
    conf = (net.routers["director"].directory / "bird.conf").read_text()
    (work / "lvs-healthy.json").write_text('{"healthy_vips": ["198.18.2.20"]}')
    stats, failed = _play(director)
    (work / "lvs-healthy.json").write_text('{"healthy_vips": ["198.18.2.10"]}')
    assert stats == {"changed": 0, "failures": 1}
    assert failed == [
        "Task failed: Finalization of task args for 'ansible.builtin.copy' failed: Error while resolving "
        "value for 'content': The filter plugin 'cloud58.platform.lvs_bird_config' failed: "
        f"lvs_bird_config(lab1-lvs1): {work / 'lvs-healthy.json'}: 198.18.2.20 is not a VIP of director "
        "'lab1-lvs1' (its VIPs: 198.18.2.1 (lab1-k8s-api), 198.18.2.10 (lab1-ingress))"
    ]
    assert (net.routers["director"].directory / "bird.conf").read_text() == conf


def test_a_sync_pki_source_missing_on_the_controller_fails_before_the_host_changes(director):
    """lvs_director_sync's inputs are checked first: a certificate the controller's PKI has not
    issued fails the host with one message naming it, before any task changes the director
    (its sysctl file, deleted here, is not written back by the failing run)."""
    _net, _plan, work = director
    sysctl_file = work / "62-cloud58-lvs-director.conf"
    sysctl_file.unlink()
    missing = work / "pki" / "lvs-sync.crt"
    sync = {
        "lvs_director_sync": True,
        "lvs_director_sync_kubeconfig": str(work / "lvs-sync.kubeconfig"),
        "lvs_director_sync_pki_files": [{"src": str(missing), "dest": "lvs-sync.crt", "secret": False}],
    }
    stats, failed, output = _play(director, output=True, **sync)
    message = (
        f'lab1-lvs1: lvs_director_sync_pki_files: "lvs-sync.crt": source {missing} is not a file on the '
    )
    assert (stats, failed, roleplay.failed_items(output), sysctl_file.exists()) == (
        {"changed": 0, "failures": 1},
        ["One or more items failed"],
        [message + "controller"],
        False,
    )
    stats, failed = _play(director)
    assert (stats["failures"], failed, sysctl_file.exists()) == (0, [], True)


# ---- the fnat data plane: keepalived of DPVS ----------------------------------------------------


def _fnat(work, **extra):
    return {
        "lvs_director_dataplane": "fnat",
        "lvs_director_keepalived_file": str(work / "keepalived" / "keepalived.conf"),
        "lvs_director_keepalived_reload_command": ["touch", str(work / "reloaded")],
        "lvs_director_fnat_syn_proxy": True,
        "lvs_director_fnat_connect_timeout": 2,
        **extra,
    }


TCP_CHECK = """\
        TCP_CHECK {
            connect_timeout 2
            retry 3
            delay_before_retry 3
            delay_loop 6
        }
"""

# lab1-lvs1 with the realserver of _play for lab1-ingress:80; lab1-ingress:443 has none, so
# it gets no virtual_server
KEEPALIVED_CONF = (
    """\
# Managed by cloud58.platform.lvs_director (fnat data plane) for lab1-lvs1; local changes are overwritten.
# DPVS keepalived: lb_kind FNAT, local_address_group and syn_proxy are not stock keepalived.

local_address_group laddr_lab1-lvs1 {
    198.18.2.32-39 dpdk0
}

virtual_server 198.18.2.1 6443 {
    lb_algo rr
    lb_kind FNAT
    protocol TCP
    laddr_group_name laddr_lab1-lvs1
    syn_proxy
    real_server 198.18.0.11 6443 {
"""
    + TCP_CHECK
    + """\
    }
    real_server 198.18.0.12 6443 {
"""
    + TCP_CHECK
    + """\
    }
    real_server 198.18.0.75 6443 {
"""
    + TCP_CHECK
    + """\
    }
}

virtual_server 198.18.2.10 80 {
    lb_algo rr
    lb_kind FNAT
    protocol TCP
    laddr_group_name laddr_lab1-lvs1
    syn_proxy
    real_server 198.18.5.2 8080 {
"""
    + TCP_CHECK
    + """\
    }
}
"""
)


def test_fnat_check_mode_writes_nothing(director):
    _net, _plan, work = director
    stats, failed = _play(director, check=True, **_fnat(work))
    # the directory and the file would change; the reload handler does not run in check mode
    assert (stats, failed) == ({"changed": 2, "failures": 0}, [])
    assert not (work / "keepalived").exists()
    assert not (work / "reloaded").exists()


def test_fnat_writes_the_keepalived_file_and_reloads(director):
    _net, _plan, work = director
    stats, failed = _play(director, **_fnat(work))
    # the directory, the file, the reload handler
    assert (stats, failed) == ({"changed": 3, "failures": 0}, [])
    assert (work / "keepalived" / "keepalived.conf").read_text() == KEEPALIVED_CONF
    assert (work / "reloaded").exists()


def test_fnat_second_run_changes_nothing_and_does_not_reload(director):
    _net, _plan, work = director
    (work / "reloaded").unlink()
    stats, failed = _play(director, **_fnat(work))
    assert (stats, failed) == ({"changed": 0, "failures": 0}, [])
    assert not (work / "reloaded").exists()


def test_fnat_schema_error_fails_naming_file_host_and_keyword_and_writes_nothing(director):
    _net, _plan, work = director
    path = work / "keepalived" / "keepalived.conf"
    stats, failed = _play(
        director, **_fnat(work, lvs_director_fnat_virtual_server_options={"persistance_timeout": 60})
    )
    assert stats == {"changed": 0, "failures": 1}
    assert failed == [
        f"{path} on {DIRECTOR}: the generated keepalived configuration breaks the DPVS keyword schema, "
        f"nothing written: {path}:14: virtual_server 198.18.2.1 6443: unknown keyword 'persistance_timeout' "
        f"(did you mean 'persistence_timeout'?); {path}:47: virtual_server 198.18.2.10 80: unknown keyword "
        "'persistance_timeout' (did you mean 'persistence_timeout'?)"
    ]
    assert path.read_text() == KEEPALIVED_CONF
    assert not (work / "reloaded").exists()


def _config_test(work, text):
    """keepalived --config-test of ``text``: its exit code and its distinct complaints about
    the file (the file's path replaced by FILE), in line order."""
    path = work / "config-test.conf"
    path.write_text(text)
    proc = subprocess.run(
        programs.argv("keepalived", "--config-test", "-f", path), capture_output=True, text=True, check=False
    )
    lines = (proc.stdout + proc.stderr).replace(str(path), "FILE").splitlines()
    complaints = {line for line in lines if line.startswith("(FILE: Line ")}
    return proc.returncode, sorted(complaints, key=lambda line: (int(line.split()[2].rstrip(")")), line))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(None, (0, []), id="nat-subset-passes"),
        pytest.param(
            ("    real_server 198.18.5.2 8080 {", "    real_server 198.18.5.2 http {"),
            (
                5,
                [
                    "(FILE: Line 35) Invalid real server ip address/port 198.18.5.2/http - skipping",
                    "(FILE: Line 35) invalid number 'http'",
                ],
            ),
            id="broken-nat-subset-rejected",
        ),
    ],
)
def test_keepalived_config_test_of_the_nat_subset(director, change, expected):
    _net, _plan, work = director
    subset = nat_subset((work / "keepalived" / "keepalived.conf").read_text())
    if change:
        assert change[0] in subset
        subset = subset.replace(*change)
    assert _config_test(work, subset) == expected


def test_keepalived_config_test_rejects_the_fnat_keywords(director):
    _net, _plan, work = director
    rc, complaints = _config_test(work, (work / "keepalived" / "keepalived.conf").read_text())
    assert rc == 5
    assert complaints == [
        "(FILE: Line 4) Unexpected '{' - ignoring",
        "(FILE: Line 4) Unknown keyword 'local_address_group'",
        "(FILE: Line 5) Unknown keyword '198.18.2.32-39'",
        "(FILE: Line 6) Unknown keyword '}'",
        "(FILE: Line 10) PARSER : unknown [FNAT] routing method for virtual server.",
        "(FILE: Line 12) Unknown keyword 'laddr_group_name'",
        "(FILE: Line 13) Unknown keyword 'syn_proxy'",
        "(FILE: Line 42) PARSER : unknown [FNAT] routing method for virtual server.",
        "(FILE: Line 44) Unknown keyword 'laddr_group_name'",
        "(FILE: Line 45) Unknown keyword 'syn_proxy'",
    ]
