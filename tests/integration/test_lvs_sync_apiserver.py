"""cloud58-lvs-sync against a real kube-apiserver and real nftables.

The program (``roles/lvs_director/files/cloud58-lvs-sync``, from the source tree) runs on
the host, where the apiserver of ``kube_clusters`` listens on loopback, and applies its
transactions with ``nft`` inside a network namespace this test creates (``c58sync-<pid>-*``,
the director). The director is lab1-lvs1 of inventories/lab; the Service claims its VIP
lab1-ingress (198.18.2.10) with the annotation ``lvs.cloud58.io/vip``; the EndpointSlice is
written by the test (the apiserver runs no controllers). Every address is inside 198.18.0.0/15.

The tests share one lab and run in file order: the first full list creates the table, an
EndpointSlice change becomes element changes, a restart deletes no element, the last ready
endpoint's removal empties the VIP.

VIP announcement: a real BIRD runs in the director's namespace with the bird.conf of
``lvs/announce.py`` (nothing healthy at its start); the sync rewrites that file and the
healthy file and runs ``birdc configure`` when the healthy set changes. What BIRD announces is
read from its static protocol (``birdc show route protocol cloud58_vips``), the candidates of
its BGP export; that such a change reaches a ToR's RIB and kernel is
tests/network/test_vip_announcement.py's proof (the director here has no ToR).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.announce import STATIC, bird_config
from ansible_collections.cloud58.platform.plugins.module_utils.lvs.fullnat import read_table
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab import programs
from cloud58_lab.netlab import NetLab, logged_metrics, run_prefix, stop_process

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# The interpreter of the unit cloud58-lvs-sync.service (ExecStart=/usr/bin/python3).
SYSTEM_PYTHON = "/usr/bin/python3"
PROGRAM = REPO / "collections/ansible_collections/cloud58/platform/roles/lvs_director/files/cloud58-lvs-sync"
DIRECTOR = "lab1-lvs1"
TABLE = "cloud58_fullnat"
SLOTS = 8  # the director has 8 local addresses: at least as many slots
VIP = "198.18.2.10"
CLIENT = "198.18.4.2"
REALSERVERS = {"rs2": ("198.18.9.2", "198.18.9.1"), "rs6": ("198.18.9.6", "198.18.9.5")}
# the plan's realservers of lab1-k8s-api (no Service claims that VIP): kept as the plan says
API_SLOTS = {
    f"198.18.2.1 . 6443 . {slot}": target
    for slot, target in enumerate(["198.18.0.11 . 6443", "198.18.0.12 . 6443", "198.18.0.75 . 6443"] * 3)
    if slot < SLOTS
}


def _web_slots(*targets):
    """VIP port 80's slots dealt over ``targets`` (realserver . port) in turn."""
    return {f"198.18.2.10 . 80 . {slot}": targets[slot % len(targets)] for slot in range(SLOTS)}


def _endpoint(address, ready=True, terminating=False):
    return {"addresses": [address], "conditions": {"ready": ready, "terminating": terminating}}


class Lab:
    def __init__(self, net, kubeconfig, namespace, workdir, plan):
        """``plan``: the director's ``lvs`` section, ``bgp`` and BGP ``options`` from the plan."""
        self.net = net
        self.namespace = namespace
        self.workdir = workdir
        self.api = config.new_client_from_config(config_file=str(kubeconfig), context="c1")
        self.core = client.CoreV1Api(self.api)
        self.discovery = client.DiscoveryV1Api(self.api)
        self.config = workdir / "lvs-sync.json"
        self.bird_file = net.routers["director"].directory / "bird.conf"
        self.bird_socket = net.routers["director"].directory / "bird.ctl"
        self.healthy_file = workdir / "lvs-healthy.json"
        self.config.write_text(
            json.dumps(
                {
                    "director": DIRECTOR,
                    "lvs": plan["lvs"],
                    "kubeconfig": str(kubeconfig),
                    "context": "c1",
                    "slots": SLOTS,
                    "nft": programs.argv("ip", "netns", "exec", net.ns("director"), programs.path("nft")),
                    "metrics_port": 0,
                    "announce": {
                        "bgp": plan["bgp"],
                        "bgp_options": plan["options"],
                        "bird_file": str(self.bird_file),
                        "healthy_file": str(self.healthy_file),
                        "check": programs.argv("bird", "-p", "-c"),
                        "reload": programs.argv("birdc", "-s", self.bird_socket, "configure"),
                    },
                }
            )
        )
        self.proc = None
        self.log = None
        self.starts = 0

    # ---- the program ------------------------------------------------------------------------
    def start(self):
        self.starts += 1
        self.log = self.workdir / f"sync-{self.starts}.log"
        env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
        with self.log.open("w") as log:
            # As the unit runs it: Debian's python3 and its python3-kubernetes (make setup).
            self.proc = subprocess.Popen(
                [SYSTEM_PYTHON, str(PROGRAM), "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def stop(self):
        problems = stop_process(self.proc, timeout=10) if self.proc else []
        self.proc = None
        assert problems == [], problems

    def metrics(self):
        """The sync's /metrics for the VIP 198.18.2.10: {(metric, realserver, port): value}."""
        self.wait_for_log("metrics on http://")
        text = logged_metrics(self.log)
        out = {}
        for metric, labels, value in re.findall(r"^(cloud58_lvs_\w+)\{(.*)\} (\d+)$", text, re.M):
            fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            assert fields["director"] == DIRECTOR
            # not the series of lab1-k8s-api's masters, nor the failed API calls
            if fields.get("vip") == VIP:
                out[(metric, fields["realserver"], fields["port"])] = int(value)
        return out

    def wait_for_log(self, text):
        self.wait(lambda: text in self.log.read_text(), f"{text!r} in {self.log.name}")

    def wait(self, predicate, what, timeout=30.0):
        """Poll until ``predicate()``: a bound on a hang, not a timing assertion."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"never saw {what}; the sync's log:\n{self.log.read_text()}", pytrace=False)

    def announcements(self, log=None):
        """The sync's log lines of a reconfigured BIRD, in order (of ``log``, else the current log)."""
        return re.findall(r"announcement: (healthy VIPs .*\)); ", (log or self.log).read_text())

    # ---- the announcement -------------------------------------------------------------------
    def announced(self):
        """The prefixes of BIRD's static protocol of VIPs: what it exports to the ToRs."""
        out = self.net.birdc("director", f"show route protocol {STATIC}")
        return sorted(re.findall(r"^(\d+\.\d+\.\d+\.\d+/\d+)", out, re.M))

    def bird_pid(self):
        return self.net.routers["director"].pids["bird"]

    # ---- the data plane ---------------------------------------------------------------------
    def nft_json(self):
        out = self.net.exec("director", "nft", "-j", "list", "table", "ip", TABLE, check=False)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def realservers(self):
        data = self.nft_json()
        return read_table(data, TABLE)["elements"].get("realservers") if data else None

    def handles(self):
        out = {}
        for item in self.nft_json()["nftables"]:
            for kind, obj in item.items():
                if kind in ("table", "set", "map", "chain", "rule"):
                    out[(kind, obj.get("chain", ""), obj.get("name", ""))] = obj["handle"]
        return out

    # ---- the cluster ------------------------------------------------------------------------
    def write_slice(self, endpoints, name="web-1"):
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {
                    "kubernetes.io/service-name": "web",
                    "endpointslice.kubernetes.io/managed-by": "cloud58-test",
                },
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }
        try:
            self.discovery.replace_namespaced_endpoint_slice(name, self.namespace, body)
        except client.exceptions.ApiException as e:
            if e.status != 404:
                raise
            self.discovery.create_namespaced_endpoint_slice(self.namespace, body)


@pytest.fixture(scope="module")
def lab(request, kube_clusters, tmp_path_factory):
    root = request.config.rootpath
    plan = build_plan(load_inventory(str(root / "inventories/lab"))).as_dict()
    lvs = plan["datacenters"]["lab1"]["lvs"]
    bgp, bgp_options = plan["hosts"][DIRECTOR]["bgp"], plan["datacenters"]["lab1"]["bgp_options"]
    namespace = f"lvs-sync-{uuid.uuid4().hex[:8]}"
    net = NetLab(prefix=run_prefix("c58sync"))
    lab = None
    try:
        net.add_namespace("director")
        # a client and the two realservers that stay ready, for the counters
        net.add_namespace("client", forwarding=False)
        net.link(
            "client", "director", if_a="eth0", if_b="client0", addr_a=f"{CLIENT}/30", addr_b="198.18.4.1/30"
        )
        net.exec("client", "ip", "route", "add", "default", "via", "198.18.4.1")
        net.exec("director", "ip", "address", "add", f"{VIP}/32", "dev", "lo")
        for name, (address, gateway) in REALSERVERS.items():
            net.add_namespace(name, forwarding=False)
            net.link(
                name, "director", if_a="eth0", if_b=f"{name}0", addr_a=f"{address}/30", addr_b=f"{gateway}/30"
            )
            net.exec(name, "ip", "route", "add", "default", "via", gateway)
            net.start_tcp_echo(name, address, 8080, with_peer=True)
        # BIRD as a director starts: nothing healthy yet (its peers, the ToRs, are not here)
        net.start_bird("director", bird_config(lvs, DIRECTOR, bgp, healthy=[], options=bgp_options))
        workdir = tmp_path_factory.mktemp("lvs-sync")
        lab = Lab(
            net,
            kube_clusters.kubeconfig,
            namespace,
            workdir,
            {"lvs": lvs, "bgp": bgp, "options": bgp_options},
        )
        lab.core.create_namespace({"metadata": {"name": namespace}})
        lab.core.create_namespaced_service(
            namespace,
            {
                "metadata": {"name": "web", "annotations": {"lvs.cloud58.io/vip": "198.18.2.10"}},
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
            },
        )
        lab.write_slice(
            [
                _endpoint("198.18.9.3"),
                _endpoint("198.18.9.2"),
                _endpoint("198.18.9.4", ready=False),
                _endpoint("198.18.9.5", ready=False, terminating=True),
            ]
        )
        yield lab
    finally:
        # The namespaces go whatever the steps before them raise (a CI run once left them).
        try:
            if lab is not None:
                lab.stop()
                for call in (
                    lambda: lab.discovery.delete_namespaced_endpoint_slice("web-1", namespace),
                    lambda: lab.discovery.delete_namespaced_endpoint_slice("web-2", namespace),
                    lambda: lab.core.delete_namespaced_service("web", namespace),
                    lambda: lab.core.delete_namespace(namespace),
                ):
                    try:
                        call()
                    except client.exceptions.ApiException as e:
                        if e.status != 404:
                            raise
                lab.api.close()
        finally:
            problems = net.close()
        assert problems == [], f"lab cleanup left: {problems}"


def test_first_full_list_creates_the_table_with_ready_endpoints(lab):
    assert lab.realservers() is None  # no table yet: the sync creates it
    lab.start()
    lab.wait_for_log(f"table ip {TABLE} created from the full list")
    assert lab.realservers() == {**API_SLOTS, **_web_slots("198.18.9.2 . 8080", "198.18.9.3 . 8080")}


def test_first_list_announces_the_vips_with_ready_endpoints(lab):
    first = "healthy VIPs 198.18.2.1, 198.18.2.10 (announced 198.18.2.1, 198.18.2.10, withdrawn -)"
    lab.wait(lambda: lab.announcements() == [first], "BIRD reconfigured once")
    assert lab.announced() == ["198.18.2.1/32", "198.18.2.10/32"]
    assert lab.healthy_file.read_text() == '{"healthy_vips": ["198.18.2.1", "198.18.2.10"]}\n'


def test_endpoint_slice_change_becomes_element_changes_without_reload(lab):
    handles = lab.handles()
    # First a slice without endpoints, as the EndpointSlice controller writes for a Service with
    # no pod: "endpoints": null, which the client's typed models refuse. The watch must take it
    # and go on to the change below.
    lab.write_slice(None, name="web-2")
    # 198.18.9.3 starts terminating (drained), 198.18.9.6 becomes ready
    lab.write_slice(
        [
            _endpoint("198.18.9.3", ready=False, terminating=True),
            _endpoint("198.18.9.2"),
            _endpoint("198.18.9.6"),
        ]
    )
    expected = {**API_SLOTS, **_web_slots("198.18.9.2 . 8080", "198.18.9.6 . 8080")}
    lab.wait(lambda: lab.realservers() == expected, f"the realservers {expected}")
    lab.wait_for_log(f"table ip {TABLE} updated: 4 element(s) deleted, 4 added (VIPs lab1-ingress)")
    assert lab.handles() == handles


def test_counters_per_vip_and_realserver_in_prometheus_text(lab):
    answers = [lab.net.tcp_request("client", VIP, 80) for _ in range(4)]
    # rr over the slots 198.18.9.2, .6, .2, .6
    assert [a.split()[0] for a in answers] == ["rs2", "rs6", "rs2", "rs6"]
    metrics = lab.metrics()
    assert {k: v for k, v in metrics.items() if k[0] == "cloud58_lvs_connections_total"} == {
        ("cloud58_lvs_connections_total", "198.18.9.2", "8080"): 2,
        ("cloud58_lvs_connections_total", "198.18.9.6", "8080"): 2,
    }
    moved = {k for k, v in metrics.items() if "bytes" in k[0] and v > 0}
    assert moved == {
        (f"cloud58_lvs_{way}_bytes_total", rs, "8080")
        for way in ("to_realserver", "from_realserver")
        for rs in ("198.18.9.2", "198.18.9.6")
    }


def test_restart_deletes_no_element_while_endpoints_exist(lab):
    monitor_out = lab.workdir / "monitor.txt"
    with monitor_out.open("w") as out:
        monitor = subprocess.Popen(
            programs.argv(
                "ip",
                "netns",
                "exec",
                lab.net.ns("director"),
                programs.path("nft"),
                "monitor",
                "destroy",
                "elements",
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        before = lab.realservers()
        lab.stop()
        lab.start()
        lab.wait_for_log(f"table ip {TABLE} unchanged from the full list")
        assert lab.realservers() == before
        # the last ready endpoints go: now the monitor must see the VIP's slots deleted
        lab.write_slice([_endpoint("198.18.9.2", ready=False), _endpoint("198.18.9.6", ready=False)])
        lab.wait(lambda: lab.realservers() == API_SLOTS, "the VIP lab1-ingress emptied")
    finally:
        monitor.send_signal(signal.SIGTERM)
        monitor.wait(timeout=10)
    # only the deletes of the emptied VIP (its slots, then its realservers' counters):
    # none from the restart
    lines = sorted(
        re.sub(r" counter packets \d+ bytes \d+", "", line) for line in monitor_out.read_text().splitlines()
    )
    assert lines == [
        f"delete element ip {TABLE} realservers {{ {key} : {target} }}"
        for key, target in _web_slots("198.18.9.2 . 8080", "198.18.9.6 . 8080").items()
    ] + [
        f"delete element ip cloud58_fullnat_stats {name} {{ 198.18.2.10 . {rs} . 8080 }}"
        for name in ("connections", "from_realservers", "to_realservers")
        for rs in ("198.18.9.2", "198.18.9.6")
    ]


def test_last_ready_endpoint_gone_withdraws_the_vip_without_restarting_bird(lab):
    pid = lab.bird_pid()
    # the first run reconfigured BIRD once: the EndpointSlice change after it kept the VIP healthy
    assert lab.announcements(lab.workdir / "sync-1.log") == [
        "healthy VIPs 198.18.2.1, 198.18.2.10 (announced 198.18.2.1, 198.18.2.10, withdrawn -)"
    ]
    # the restart found bird.conf as it would write it and reconfigured nothing; the removal of
    # the last ready endpoints (previous test) withdrew the VIP
    lab.wait(
        lambda: lab.announcements() == ["healthy VIPs 198.18.2.1 (announced -, withdrawn 198.18.2.10)"],
        "the withdrawal of 198.18.2.10 alone in the restarted sync's log",
    )
    assert lab.announced() == ["198.18.2.1/32"]
    assert lab.healthy_file.read_text() == '{"healthy_vips": ["198.18.2.1"]}\n'
    assert lab.bird_pid() == pid
    assert lab.net.routers["director"].alive()


def test_a_ready_endpoint_again_announces_the_vip(lab):
    pid = lab.bird_pid()
    lab.write_slice([_endpoint("198.18.9.2", ready=False), _endpoint("198.18.9.6")])
    expected = {**API_SLOTS, **_web_slots("198.18.9.6 . 8080")}
    lab.wait(lambda: lab.realservers() == expected, f"the realservers {expected}")
    lab.wait(lambda: len(lab.announcements()) == 2, "a second reconfiguration")
    assert (
        lab.announcements()[1] == "healthy VIPs 198.18.2.1, 198.18.2.10 (announced 198.18.2.10, withdrawn -)"
    )
    assert lab.announced() == ["198.18.2.1/32", "198.18.2.10/32"]
    assert lab.healthy_file.read_text() == '{"healthy_vips": ["198.18.2.1", "198.18.2.10"]}\n'
    assert lab.bird_pid() == pid
    assert lab.net.routers["director"].alive()
