"""playbooks/site.yml, the front door: its stages run alone by tag, and the routers stage writes
every ToR and core router's configuration, checked by FRR itself."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.bgp.calico_install import calico_install
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab import programs
from cloud58_lab.nodes import recap

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PREFLIGHT = "Validate the inventory and plan its datacenters"
BASE = "Apply the base configuration to every host"
NODES = "Tune the kernel, install containerd and the kubelet on the Kubernetes nodes"
LVS_KERNEL = "Tune the kernel of the LVS directors"
STATIC_PODS = "Run etcd, events etcd, kube-apiserver, controller-manager and scheduler as static pods"
ENDPOINT = "Balance each cluster's apiservers on its masters"
JOIN = "Join the minions' kubelets to their clusters"
CALICO_CHECK = "Check that the Calico release is named by a URL and a sha256, before any host is touched"
CALICO = "Fetch the Calico release from the mirror, verify it and set it up per cluster"
ROUTERS = "Write the router configurations of each datacenter for the network team"
ROUTER_HOSTS = "Configure FRR on the routers that are hosts of the inventory"
LVS = "Make the LVS directors full-NAT directors that announce their healthy VIPs by BGP"
CONSUL = "Run Consul, its servers on the plan's consul servers and an agent on every other host"
CONSUL_SYNC = "Register each cluster's Services in Consul, one sync per cluster with identities of its own"
AGENTS = "Run the node agents on the minions, each agent that talks to the API with a certificate of its own"
MASTER_SIGNALS = "Run cloud58-signals on the masters, the second-level figures of every node of a cluster"
NODE_EXPORTER = "Run node-exporter on every host of the plan"
MONITORING = "Run the Prometheus of each datacenter, on its monitoring hosts or else its first master"
LOG_STORE = "Run the log store of each datacenter, on its logs hosts or else its Prometheus host"
LOG_SHIPPER = "Ship the journal of every host of the plan to its datacenter's log store"
GATEWAY = "Run the HAProxy gateways of the ingress nodes, their backends found in Consul"
RECONCILE = "Reconcile clusters with clusters/"
ARGUMENT_CHECK = ": Validating arguments against arg spec "
ROUTER_NAMES = ["core1", "r1-tor1", "r1-tor2", "r2-tor1", "r2-tor2"]


def _site(*args: str, inventory: Path = REPO / "inventories/lab") -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    argv = programs.argv("ansible-playbook", "-i", inventory, REPO / "playbooks/site.yml", *args)
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False)


def _plays_with_tasks(listing: str) -> list[str]:
    """The plays of an ``--list-tasks`` output that would run at least one task of their own.

    A role's argument check is tagged ``always`` by Ansible and is listed under every tag; it
    runs on the controller and touches no host, so it does not count."""
    plays: list[tuple[str, int]] = []
    for line in listing.splitlines():
        play = re.match(r"\s*play #\d+ \([^)]*\): (.*?)\tTAGS:", line)
        if play:
            plays.append((play.group(1), 0))
        elif plays and line.startswith("      ") and line.strip() and ARGUMENT_CHECK not in line:
            plays[-1] = (plays[-1][0], plays[-1][1] + 1)
    return [name for name, tasks in plays if tasks]


@pytest.mark.parametrize(
    ("tags", "plays"),
    [
        pytest.param(
            [],
            [
                *(PREFLIGHT, CALICO_CHECK, BASE, PREFLIGHT, NODES, LVS_KERNEL, PREFLIGHT, STATIC_PODS),
                ENDPOINT,
                *(
                    JOIN,
                    CALICO,
                    ROUTERS,
                    ROUTER_HOSTS,
                    LVS,
                    CONSUL,
                    CONSUL_SYNC,
                    AGENTS,
                    MASTER_SIGNALS,
                    NODE_EXPORTER,
                    MONITORING,
                    LOG_STORE,
                    LOG_SHIPPER,
                ),
                GATEWAY,
            ],
            id="all-but-gitops",
        ),
        pytest.param(["--tags", "base"], [PREFLIGHT, BASE], id="base"),
        pytest.param(["--tags", "nodes"], [PREFLIGHT, PREFLIGHT, NODES, LVS_KERNEL, JOIN], id="nodes"),
        pytest.param(["--tags", "join"], [PREFLIGHT, JOIN], id="join"),
        pytest.param(
            ["--tags", "control_plane"], [PREFLIGHT, PREFLIGHT, STATIC_PODS, ENDPOINT], id="control-plane"
        ),
        pytest.param(
            ["--tags", "network"], [PREFLIGHT, CALICO_CHECK, CALICO, ROUTERS, ROUTER_HOSTS], id="network"
        ),
        pytest.param(["--tags", "calico"], [PREFLIGHT, CALICO_CHECK, CALICO], id="calico"),
        pytest.param(["--tags", "routers"], [PREFLIGHT, ROUTERS, ROUTER_HOSTS], id="routers"),
        pytest.param(["--tags", "lvs"], [PREFLIGHT, LVS], id="lvs"),
        pytest.param(["--tags", "consul"], [PREFLIGHT, CONSUL], id="consul"),
        pytest.param(["--tags", "consul_sync"], [PREFLIGHT, CONSUL_SYNC], id="consul-sync"),
        pytest.param(["--tags", "discovery"], [PREFLIGHT, CONSUL_SYNC], id="discovery"),
        pytest.param(["--tags", "agents"], [PREFLIGHT, AGENTS, MASTER_SIGNALS], id="agents"),
        pytest.param(["--tags", "monitoring"], [PREFLIGHT, NODE_EXPORTER, MONITORING], id="monitoring"),
        pytest.param(["--tags", "logs"], [PREFLIGHT, LOG_STORE, LOG_SHIPPER], id="logs"),
        pytest.param(["--tags", "gateway"], [PREFLIGHT, GATEWAY], id="gateway"),
        pytest.param(["--tags", "gitops"], [PREFLIGHT, RECONCILE], id="gitops-only-when-asked"),
    ],
)
def test_each_stage_runs_alone_by_its_tag(tags, plays):
    run = _site("--list-tasks", *tags)
    assert run.returncode == 0, run.stdout + run.stderr
    assert _plays_with_tasks(run.stdout) == plays


def test_routers_stage_writes_every_router_config_that_frr_accepts(tmp_path):
    # check mode reports the files it would write and writes none
    check = _site("--tags", "routers", "--check", "-e", f"site_routers_dir={tmp_path}")
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr
    assert {h: r["changed"] for h, r in recap(check.stdout).items() if r["changed"]} == {"localhost": 12}
    assert list(tmp_path.iterdir()) == []
    first = _site("--tags", "routers", "-e", f"site_routers_dir={tmp_path}")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(
        f"{dc}/{dc}-{router}/{name}"
        for dc in ("lab1", "lab2")
        for router in ROUTER_NAMES
        for name in ("daemons", "frr.conf")
    )
    refused = {}
    for conf in sorted(tmp_path.rglob("frr.conf")):
        check = subprocess.run(
            programs.argv("vtysh", "-C", "-f", conf), capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            refused[str(conf.relative_to(tmp_path))] = check.stdout + check.stderr
    assert refused == {}
    # Only the controller was touched (per datacenter: the directories, then one looped write
    # per router), and a second run changes nothing.
    assert {h: r["changed"] for h, r in recap(first.stdout).items() if r["changed"]} == {"localhost": 12}
    second = _site("--tags", "routers", "-e", f"site_routers_dir={tmp_path}")
    assert second.returncode == 0, second.stdout[-4000:]
    assert {h: r["changed"] for h, r in recap(second.stdout).items() if r["changed"]} == {}
    # FRR's check is not a formality: a broken line is refused.
    broken = tmp_path / "broken.conf"
    broken.write_text((tmp_path / "lab1/lab1-core1/frr.conf").read_text() + "router bgp not-a-number\n")
    assert (
        subprocess.run(
            programs.argv("vtysh", "-C", "-f", broken), capture_output=True, check=False
        ).returncode
        != 0
    )


def test_routers_stage_configures_a_router_that_is_an_inventory_host_and_writes_the_others(tmp_path):
    """A ToR that is a host of the inventory gets FRR from the tor_router role (here the
    controller itself stands in for the router: connection local, no package, no service);
    every other router's files go to the build directory, as before."""
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO / "inventories/lab", inventory)
    etc_frr = tmp_path / "etc-frr"
    etc_frr.mkdir()
    (inventory / "routers.yml").write_text(
        "routers:\n"
        "  hosts:\n"
        "    lab1-r1-tor1:\n"
        "      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
        "      tor_router_install_package: false\n"
        "      tor_router_manage_service: false\n"
        f"      tor_router_config_dir: {etc_frr}\n"
    )
    build = tmp_path / "build"
    first = _site("--tags", "routers", "-e", f"site_routers_dir={build}", inventory=inventory)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    assert sorted(p.name for p in etc_frr.iterdir()) == ["daemons", "frr.conf"]
    # the AS of lab1-r1's ToRs in inventories/lab/group_vars/all/datacenters.yml
    assert "\nrouter bgp 65121\n" in (etc_frr / "frr.conf").read_text()
    written = sorted(str(p.relative_to(build)) for p in build.rglob("*") if p.is_file())
    assert written == sorted(
        f"{dc}/{dc}-{router}/{name}"
        for dc in ("lab1", "lab2")
        for router in ROUTER_NAMES
        for name in ("daemons", "frr.conf")
        if f"{dc}-{router}" != "lab1-r1-tor1"
    )
    changed = {h: r["changed"] for h, r in recap(first.stdout).items() if r["changed"]}
    assert changed == {"localhost": 11, "lab1-r1-tor1": 2}
    second = _site("--tags", "routers", "-e", f"site_routers_dir={build}", inventory=inventory)
    assert second.returncode == 0, second.stdout[-4000:]
    assert {h: r["changed"] for h, r in recap(second.stdout).items() if r["changed"]} == {}
    # --limit to the router: the preflight still plans (once, on the controller), the router
    # gets its files back, and nothing else is touched
    (etc_frr / "frr.conf").unlink()
    limited = _site("--tags", "routers", "--limit", "lab1-r1-tor1", inventory=inventory)
    assert limited.returncode == 0, limited.stdout[-4000:]
    assert {h: r["changed"] for h, r in recap(limited.stdout).items() if r["changed"]} == {"lab1-r1-tor1": 1}
    assert sorted(p.name for p in etc_frr.iterdir()) == ["daemons", "frr.conf"]


@pytest.fixture
def calico_mirror(tmp_path):
    """An HTTP mirror on loopback serving the test's stand-in release; yields its URL and the
    sha256 of the file, as an operator would compute it with sha256sum."""
    root = tmp_path / "mirror"
    root.mkdir()
    shutil.copy(REPO / "tests/fixtures/calico-release.yaml", root / "calico.yaml")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield (
        f"http://127.0.0.1:{server.server_port}/calico.yaml",
        hashlib.sha256((root / "calico.yaml").read_bytes()).hexdigest(),
    )
    server.shutdown()
    server.server_close()
    thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _calico(tmp_path, url, sha256, *args, tags=("--tags", "calico")):
    extra = {
        "calico_install": True,
        "calico_manifest_url": url,
        "calico_manifest_sha256": sha256,
        "calico_cache_dir": str(tmp_path / "release"),
        "calico_render_dir": str(tmp_path / "build"),
    }
    return _site(*tags, "-e", json.dumps(extra), *args)


def _written(top: Path) -> list[str]:
    """The files the calico stage wrote: the release cache and the installs (not the mirror)."""
    return sorted(
        str(p.relative_to(top)) for d in ("release", "build") for p in (top / d).rglob("*") if p.is_file()
    )


REFUSAL = (
    " (inventory {inventory}): set calico_manifest_url to Calico v3.28.2's manifests/calico.yaml on "
    "your mirror and calico_manifest_sha256 to its sha256, computed where the release is reachable "
    "(sha256sum calico.yaml), in group_vars/all; cloud58 ships no digest it has not verified. Or set "
    "calico_install: false to leave Calico out."
)


# Every case of the refusal is a unit test of release_problem (test_bgp_calico_install.py); these
# prove the wiring: which variable reaches which argument, and where in site.yml the run stops.
@pytest.mark.parametrize(
    ("url", "sha256", "tags", "problem"),
    [
        pytest.param(
            "http://mirror.invalid/calico.yaml",
            "d41d8cd98f00b204e9800998ecf8427e",
            ("--tags", "calico"),
            "calico_manifest_sha256 is 'd41d8cd98f00b204e9800998ecf8427e', not 64 hex digits",
            id="md5-not-sha256",
        ),
        pytest.param(
            "",
            "0" * 64,
            ("--tags", "calico"),
            "calico_manifest_url is not set",
            id="no-url",
        ),
        # the whole site.yml stops right after the preflight, before the base stage touches a host
        pytest.param(
            "http://mirror.invalid/calico.yaml",
            "",
            (),
            "calico_manifest_sha256 is not set",
            id="whole-site-no-digest",
        ),
    ],
)
def test_calico_stage_refuses_without_a_verifiable_release_before_any_host_is_touched(
    tmp_path, url, sha256, tags, problem
):
    run = _calico(tmp_path, url, sha256, tags=tags)
    assert run.returncode == 2, run.stdout[-4000:] + run.stderr
    assert re.findall(r"^\[ERROR\]: Task failed: Action failed: (.*)$", run.stdout, re.M) == [
        problem + REFUSAL.format(inventory=REPO / "inventories/lab")
    ]
    # Only the controller ran anything (the preflight and the check), and changed nothing.
    assert {h: (r["changed"], r["failed"]) for h, r in recap(run.stdout).items()} == {"localhost": (0, 1)}
    assert re.findall(r"^PLAY \[(.*?)\]", run.stdout, re.M) == [PREFLIGHT, CALICO_CHECK]
    assert _written(tmp_path) == []


def test_calico_stage_refuses_a_release_whose_digest_differs_and_keeps_nothing(tmp_path, calico_mirror):
    url, sha256 = calico_mirror
    wrong = ("0" if sha256[0] != "0" else "1") + sha256[1:]
    run = _calico(tmp_path, url, wrong)
    assert run.returncode == 2
    assert "The checksum for" in run.stdout
    assert "did not match" in run.stdout
    assert _written(tmp_path) == []


def test_calico_stage_writes_each_clusters_install_from_the_verified_release(tmp_path, calico_mirror):
    url, sha256 = calico_mirror
    check = _calico(tmp_path, url, sha256, "--check")
    assert check.returncode == 0, check.stdout[-4000:]
    assert _written(tmp_path) == []
    first = _calico(tmp_path, url, sha256)
    assert first.returncode == 0, first.stdout[-4000:]
    assert _written(tmp_path) == [
        "build/lab1-k8s/calico.yaml",
        "build/lab2-k8s/calico.yaml",
        "release/v3.28.2/calico.yaml",
    ]
    # the recap counts tasks, not loop items: cache directory, fetch, cluster directories, installs
    assert {h: r["changed"] for h, r in recap(first.stdout).items() if r["changed"]} == {"localhost": 4}
    docs = list(yaml.safe_load_all((tmp_path / "build/lab2-k8s/calico.yaml").read_text()))
    env = {e["name"]: e["value"] for e in docs[1]["spec"]["template"]["spec"]["containers"][0]["env"]}
    # lab2's node subnets and pod CIDR in inventories/lab/group_vars/all
    assert env["IP_AUTODETECTION_METHOD"] == "cidr=198.19.0.0/26,198.19.0.64/26"
    assert env["CALICO_IPV4POOL_CIDR"] == "198.19.16.0/21"
    assert (env["NO_DEFAULT_POOLS"], env["CALICO_NETWORKING_BACKEND"]) == ("true", "bird")
    # each written install is, byte for byte, the unit-tested set-up of the verified release
    plan = build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()
    release = (REPO / "tests/fixtures/calico-release.yaml").read_text()
    assert {c: (tmp_path / "build" / c / "calico.yaml").read_text() for c in ("lab1-k8s", "lab2-k8s")} == {
        c: calico_install(release, plan, c) for c in ("lab1-k8s", "lab2-k8s")
    }
    second = _calico(tmp_path, url, sha256)
    assert second.returncode == 0, second.stdout[-4000:]
    assert {h: r["changed"] for h, r in recap(second.stdout).items() if r["changed"]} == {}


@pytest.mark.parametrize(
    ("extra", "failed"),
    [
        pytest.param(
            {"lvs_director_sync": True, "site_lvs_sync_cluster": "lab2-k8s"},
            [
                f"site_lvs_sync_cluster of {d}: 'lab2-k8s' is not a cluster of datacenter lab1 "
                "(clusters: lab1-k8s)"
                for d in ("lab1-lvs1", "lab1-lvs2")
            ],
            id="a-cluster-of-another-datacenter",
        ),
        pytest.param(
            {"lvs_director_sync": True, "site_lvs_sync_cluster": "lab9-k8s"},
            [
                f"site_lvs_sync_cluster of {d}: 'lab9-k8s' is not a cluster of datacenter {d[:4]} "
                f"(clusters: {d[:4]}-k8s)"
                for d in ("lab1-lvs1", "lab1-lvs2", "lab2-lvs1", "lab2-lvs2")
            ],
            id="no-such-cluster",
        ),
    ],
)
def test_a_director_whose_sync_cannot_tell_its_cluster_fails_in_the_preflight(extra, failed):
    """lvs_director_sync reads one cluster of the director's datacenter: a bad choice stops the
    whole site.yml in its preflight, naming each director, before any host is touched."""
    run = _site("-e", json.dumps(extra))
    assert run.returncode == 2, run.stdout[-4000:] + run.stderr
    prefix = "Task failed: The filter plugin 'cloud58.platform.lvs_sync_cluster' failed: lvs_sync_cluster: "
    assert re.findall(r"^\[ERROR\]: (.*)$", run.stdout, re.M) == [prefix + f for f in failed]
    assert {h: (r["changed"], r["failed"]) for h, r in recap(run.stdout).items()} == {"localhost": (0, 1)}
    assert re.findall(r"^PLAY \[(.*?)\]", run.stdout, re.M) == [PREFLIGHT]


@pytest.mark.parametrize(
    ("groups", "error"),
    [
        pytest.param(
            # lab2's directors agree on another port than the default, which is allowed
            {
                "lvs": {
                    "lab1-lvs2": {"lvs_director_exporter_port": 9111},
                    "lab2-lvs1": {"lvs_director_exporter_port": 9112},
                    "lab2-lvs2": {"lvs_director_exporter_port": 9112},
                }
            },
            "datacenter lab1: lvs_director_exporter_port differs between its LVS directors "
            '({"lab1-lvs1": 9110, "lab1-lvs2": 9111}); its Prometheus scrapes them all on one port '
            "(job lvs): give them one value",
            id="exporter",
        ),
        pytest.param(
            # both run the sync (inventories/lab/group_vars/lvs); lab1's on one port of their own
            {
                "lvs": {
                    "lab1-lvs1": {"lvs_director_sync_metrics_port": 9700},
                    "lab1-lvs2": {"lvs_director_sync_metrics_port": 9700},
                    "lab2-lvs2": {"lvs_director_sync_metrics_port": 9701},
                }
            },
            "datacenter lab2: lvs_director_sync_metrics_port differs between its LVS directors "
            '({"lab2-lvs1": 9658, "lab2-lvs2": 9701}); its Prometheus scrapes their cloud58-lvs-sync on one '
            "port (job lvs-sync): give them one value",
            id="lvs-sync",
        ),
        pytest.param(
            # a second ingress node in lab1, its gateway's sync on another port
            {
                "minions": {
                    "lab1-w2": {
                        "labels": {"function": "ingress"},
                        "haproxy_gateway_sync_metrics_port": "9701",
                    }
                }
            },
            "datacenter lab1: haproxy_gateway_sync_metrics_port differs between its ingress gateways "
            '({"lab1-w1": 9665, "lab1-w2": 9701}); its Prometheus scrapes their cloud58-gateway-sync on one '
            "port (job gateway-sync): give them one value",
            id="gateway-sync",
        ),
    ],
)
def test_hosts_of_a_datacenter_on_two_metrics_ports_fail_in_the_preflight(tmp_path, groups, error):
    """The monitoring stage scrapes the programs that each host serves on a port of its own
    (lvs: the directors' exporters, lvs-sync, gateway-sync) on one port per job and
    datacenter: hosts that disagree stop the whole site.yml in its preflight, naming the
    datacenter and each host's port."""
    overlay = tmp_path / "ports.yml"
    children = {group: {"hosts": hosts} for group, hosts in groups.items()}
    overlay.write_text(yaml.safe_dump({"all": {"children": children}}))
    run = _site("-i", str(overlay))
    assert run.returncode == 2, run.stdout[-4000:] + run.stderr
    assert re.findall(r"^\[ERROR\]: (.*)$", run.stdout, re.M) == [f"Task failed: Action failed: {error}"]
    assert {h: (r["changed"], r["failed"]) for h, r in recap(run.stdout).items()} == {"localhost": (0, 1)}
    assert re.findall(r"^PLAY \[(.*?)\]", run.stdout, re.M) == [PREFLIGHT]


def test_every_playbook_is_imported_by_site_yml_or_is_a_documented_day_2_operation():
    site = (REPO / "playbooks/site.yml").read_text()
    imported = set(re.findall(r"import_playbook: (\S+\.yml)", site))
    day_2 = set(re.findall(r"^#   (\S+\.yml) ", site, re.M))
    assert imported == {"validate.yml", "nodes.yml", "control-plane.yml", "reconcile.yml"}
    assert day_2 == {"upgrade-control-plane.yml", "renew-certificates.yml", "render.yml", "remove-node.yml"}
    assert sorted(p.name for p in (REPO / "playbooks").glob("*.yml")) == sorted(
        imported | day_2 | {"site.yml"}
    )


def _remove_node(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    argv = programs.argv(
        "ansible-playbook", "-i", REPO / "inventories/lab", REPO / "playbooks/remove-node.yml", *args
    )
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False)


MINIONS = "(the minions of this inventory: lab1-w1, lab1-w2, lab2-w1, lab2-w2)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            [],
            "remove_node is not set: name the host, ansible-playbook -i <inventory> "
            f"playbooks/remove-node.yml -e remove_node=<host> {MINIONS}",
            id="unset",
        ),
        pytest.param(
            ["-e", "remove_node="],
            "remove_node is not set: name the host, ansible-playbook -i <inventory> "
            f"playbooks/remove-node.yml -e remove_node=<host> {MINIONS}",
            id="empty",
        ),
        pytest.param(
            ["-e", "remove_node=lab1-w9"],
            f"remove_node=lab1-w9 is not a host of the inventory {REPO}/inventories/lab {MINIONS}",
            id="unknown-host",
        ),
        pytest.param(
            ["-e", "remove_node=lab1-lvs1"],
            "remove_node=lab1-lvs1 is not a Kubernetes node of the plan (roles: lvs; cluster: none): "
            "there is no Node to drain",
            id="lvs-director",
        ),
        pytest.param(
            ["-e", "remove_node=lab2-m2"],
            "remove_node=lab2-m2 is a master of lab2-k8s: masters are not removed by this playbook "
            '(an etcd member and an apiserver go with it); see docs/node-roles.md, "Removing a node"',
            id="master",
        ),
    ],
)
def test_remove_node_refuses_what_it_cannot_remove_before_touching_anything(args, message):
    run = _remove_node(*args)
    assert run.returncode == 2, run.stdout[-4000:] + run.stderr
    assert re.findall(r"^\[ERROR\]: Task failed: Action failed: (.*)$", run.stdout, re.M) == [message]
    # Only the controller ran anything, changed nothing, and no Kubernetes task was reached.
    counts = {
        h: {k: r[k] for k in ("ok", "changed", "unreachable", "failed")} for h, r in recap(run.stdout).items()
    }
    # ok counts the preflight's tasks (validate.yml): 15bc0d9 added its consul_sync hosts check,
    # then came the checks of the directors' lvs-sync cluster (the lab turns the sync on) and of
    # their exporter port, then of their lvs-sync metrics port; 4a16515 made those two port
    # checks one, of every per-host metrics port
    assert counts == {"localhost": {"ok": 7, "changed": 0, "unreachable": 0, "failed": 1}}
    assert "TASK [Look up the Node]" not in run.stdout
    assert "PLAY [Stop the kubelet on the host" not in run.stdout
