"""A lab datacenter started as `make lab` starts it (lab/cloud58_lab/lab.py `up`): its hosts
(masters, minions, LVS directors: podman systemd containers at the plan's addresses)
provisioned through the front door, `playbooks/site.yml`, twice; the Calico CRDs, the
rendered objects reconciled, the BGP fabric, the status table. Its control plane runs for
real from what the control_plane stage writes (see lab/cloud58_lab/staticpods.py for how
the manifests run without a kubelet); at the end `make lab-down` (`down`) must leave no
container, namespace or fabric process.

Per datacenter, one module-scoped lab. `make test` runs lab1 only: lab2 differs in its
addresses and AS numbers, not in any code path, and each lab costs about ten minutes of
the CI's ninety. CLOUD58_LAB_DCS="lab1 lab2" runs both (one after the other):

* the status table names the cluster, its endpoint, version and identity, and the stand-ins;
  every router and node speaker of the fabric has all its BGP sessions up, the fabric running
  on the host containers (ToRs on their network, each node's BIRD in its namespace): a minion
  routes the other rack's pod block through its two ToRs, the core the API VIP through the
  four ToRs, and cross-rack requests are answered again once a stopped ToR's hold time ran out;
* site.yml from empty hosts: every host changes, none fails; the run's output holds no key
  material; the second run changes only the identity object (created once the API answers);
* a minion added to the inventory is provisioned by `site.yml --limit <it>` alone: no other
  host is contacted, and its second run changes nothing;
* the masters' manifests run: a 3-member etcd and a 3-member events etcd (etcdctl), 3 ready
  apiservers (the `kubernetes` Endpoints list all three, through the lease reconciler),
  a leader-elected controller-manager and scheduler, every probe URL answers;
* kubectl through the datacenter's context (HAProxy on a master, the certificate checked
  against the API's DNS name) works; Events land in the events etcd, not the main one;
  Secrets are encrypted at rest; the audit log records requests;
* the minions' kubelets (real containerd and kubelet, joined by site.yml's join stage with
  client certificates from the cluster PKI) register Ready Nodes with the plan's labels and
  addresses, and a pod runs on each with an address from its node's block; the scale-out
  minion joins too; reconcile gave the Nodes the plan's AS-number annotations;
* remove-node.yml drains and deletes a minion's Node and cleans its kubelet (nothing in
  check mode, nothing the second time);
* the LVS directors hold their VIPs on lo, keep the full-NAT table and run BIRD with the
  /32 of the VIP that has realservers to announce; their cloud58-lvs-sync, with the cluster
  identity site.yml gave it, puts a Service's pod behind the VIP the Service claims;
* bad input (a version skipping a minor, a SAN of another cluster) fails before any host
  changes;
* with one master stopped, the API keeps serving and the leases move.

Needs podman (with CONTAINERS_CONF), the node image and the pinned binaries; every wait
is bounded; everything is removed by exact name at the end.
"""

from __future__ import annotations

import collections
import datetime
import functools
import hashlib
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab import consulapi, logstore, staticpods
from cloud58_lab import lab as make_lab
from cloud58_lab.controlplane import proc_start_time
from cloud58_lab.nodes import podman_env
from cloud58_lab.nodes import recap as play_recap
from cloud58_lab.secretscan import key_bodies, scan_paths, scan_text

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DATACENTERS = os.environ.get("CLOUD58_LAB_DCS", "lab1").split()
ENDPOINT_PORT = 8443
WAIT = 240.0


def _plan():
    return build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()


def _wait(what: str, probe, timeout: float = WAIT, interval: float = 1.0, detail=None):
    """``probe()`` once it is true; a failure naming ``what``, the last result and, if given,
    what ``detail()`` says then, after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except Exception as e:  # the probe's failure is the report when time is up
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    more = f"; {detail()}" if detail else ""
    pytest.fail(f"{what}: not true after {timeout:.0f}s (last: {last!r}){more}", pytrace=False)


def _digest_of_manifests(lab) -> dict:
    return {
        host: hashlib.sha256(json.dumps(lab.manifests(host), sort_keys=True).encode()).hexdigest()
        for host in lab.masters
    }


@pytest.fixture(scope="module", params=DATACENTERS)
def lab(request, upstream_bin_dir):
    """The datacenter as `make lab` starts it (lab.up): site.yml twice on every host, the
    Calico CRDs, the rendered objects reconciled, the BGP fabric, the status table; the
    StaticPodLab that up provisioned is what the tests drive. At the end `make lab-down`
    (lab.down) must leave no container, namespace or fabric process."""
    dc = request.param
    # FRR runs as its own user: its directories must be reachable, unlike pytest's tmp_path
    top = Path(tempfile.mkdtemp(prefix="c58-lab-it-"))
    top.chmod(0o755)
    state_dir = top / "lab"
    prefix = f"c58it{os.getpid() % 100000}-"
    lines: list[str] = []
    labs: dict = {}
    timings = {}
    pids: list = []
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CLOUD58_BIN_DIR", str(upstream_bin_dir))
            started = time.monotonic()
            assert (
                make_lab.up(
                    state_dir=state_dir, out=lines.append, net_prefix=prefix, datacenters=[dc], labs=labs
                )
                == 0
            )
            timings["make lab"] = time.monotonic() - started
        dclab = labs[dc]
        state = json.loads((state_dir / "state.json").read_text())
        pids = [p["pid"] for p in state["net"]["processes"]]
        timings.update(state["datacenters"][dc]["timings"])
        dclab.timings, dclab.state, dclab.lines, dclab.net_prefix = timings, state, lines, prefix
        yield dclab
    finally:
        started = time.monotonic()
        # The scale-out minion is not in the plan: close() removes it with the rest by name.
        leftovers = labs[dc].close() if dc in labs else []
        make_lab.down(state_dir, out=lines.append)
        timings["cleanup"] = time.monotonic() - started
        print("\n" + "\n".join(lines))  # what `make lab` printed: the status table and step times
        print(f"\n{dc} timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
        staticpods.down(dc, top / "fallback")  # fixed names: the fallback if up failed half-way
        shutil.rmtree(top, ignore_errors=True)
    assert leftovers == [], leftovers
    assert not state_dir.exists()
    assert _namespaces(prefix) == []
    assert [pid for pid in pids if proc_start_time(pid) is not None] == []
    left = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}", "--filter", f"name=^c58cp-{dc}"],
        capture_output=True, text=True, env=podman_env(), check=True,
    ).stdout.split()  # fmt: skip
    assert left == []


def _namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.startswith(prefix))


def test_first_run_converges_and_logs_no_key(lab):
    out = lab.first_run.stdout
    recap = play_recap(out)
    assert sorted(recap) == sorted(["localhost", *lab.hosts])
    assert all(r["failed"] == 0 and r["unreachable"] == 0 for r in recap.values())
    assert all(recap[h]["changed"] > 0 for h in lab.hosts)
    assert "PRIVATE KEY" not in out
    pki = lab.pki_dir / lab.cluster["name"]
    secrets = [p.read_text() for p in pki.rglob("*.key")]
    bodies = ["".join(s.splitlines()[1:-1])[:48] for s in secrets]
    encryption = yaml.safe_load((pki / "encryption-config.yaml").read_text())
    bodies.append(encryption["resources"][0]["providers"][0]["secretbox"]["keys"][0]["secret"])
    assert [b for b in bodies if b in out] == []
    assert "censored" in out  # the key copies were hidden, not skipped
    # Consul started by this run already reads the files the run wrote: no host restarts it
    # (the handler is skipped everywhere, so Ansible prints no banner for it).
    assert "RUNNING HANDLER [cloud58.platform.consul : Restart consul]" not in out


def test_second_run_changes_nothing_but_creates_the_identity(lab):
    assert lab.second_run.returncode == 0, lab.second_run.stdout[-6000:]
    recap = play_recap(lab.second_run.stdout)
    # The identity object is created once, through the first master that gets there.
    assert sorted(r["changed"] for h, r in recap.items() if h in lab.masters) == [0, 0, 1]
    assert {h: r["changed"] for h, r in recap.items() if h not in lab.masters} == {
        "localhost": 0,
        **{h: 0 for h in lab.nodes_hosts},
    }
    identity = json.loads(
        lab.kubectl(
            lab.endpoint, "get", "configmap", "-n", "kube-system", "cloud58-identity", "-o", "json"
        ).stdout
    )
    rendered = yaml.safe_load(
        (REPO / f"clusters/{lab.cluster['name']}/32_configmap_kube-system_cloud58-identity.yaml").read_text()
    )
    assert identity["data"] == rendered["data"]


# inventories/lab: the master whose api_endpoint the lab's kubeconfig goes through (the
# second master, at .75 of each datacenter's node subnet).
ENDPOINTS = {"lab1": "https://198.18.0.75:8443", "lab2": "https://198.19.0.75:8443"}


def test_make_lab_prints_the_status_table_and_its_stand_ins(lab):
    # site.yml changed every host of the datacenter and failed none (up raises otherwise).
    changed = lab.state["datacenters"][lab.dc]["changed"]
    assert sorted(changed) == sorted(["localhost", *lab.hosts])
    assert [h for h in lab.hosts if changed[h] == 0] == []
    # The cluster the control_plane role installed, through that master's api_endpoint, at
    # the pinned version, with its identity.
    header = next(
        i
        for i, line in enumerate(lab.lines)
        if line.split()[:4] == ["cluster", "datacenter", "api", "endpoint"]
    )
    row = lab.lines[header + 1].split()
    name = f"{lab.dc}-k8s"
    assert row[:4] + row[-1:] == [name, lab.dc, ENDPOINTS[lab.dc], "v1.36.3", name]
    assert "stand-ins in use:" in lab.lines


def test_the_bgp_fabric_has_every_session_established(lab):
    # lab/cloud58_lab/bgplab.py prints one line per router (FRR) and per node speaker (BIRD)
    # of the datacenter: ten in each lab datacenter. Each ToR's sessions are its rack's two
    # nodes (a master and a minion, in the host containers), its rack's director and the core.
    sessions = [re.match(r"\s*(\S+): (\d+)/(\d+) sessions Established", line) for line in lab.lines]
    sessions = [m.groups() for m in sessions if m]
    assert len(sessions) == 10
    assert [s for s in sessions if s[1] != s[2] or s[1] == "0"] == []
    tors = {name: up for name, up, _ in sessions if "-tor" in name}
    racks = {"r1": "5", "r2": "4"}  # r1: m1, m3, w1, lvs1 and the core; r2: m2, w2, lvs2 and the core
    assert tors == {f"{lab.dc}-{rack}-tor{i}": up for rack, up in racks.items() for i in (1, 2)}
    assert len(_namespaces(lab.net_prefix)) > 5


def _datacenter_yaml(dc: str) -> dict:
    """The datacenter as inventories/lab writes it (read here, not through the planner)."""
    text = (REPO / "inventories/lab/group_vars/all/datacenters.yml").read_text()
    return yaml.safe_load(text)["cloud58_datacenters"][dc]


def _uplink_addresses(net, tor: str) -> set:
    """ToR ``tor``'s addresses on its links to the core (interfaces up0, up1, ...), read live."""
    return {
        a["local"]
        for link in net.ip_json(tor, "-4", "address", "show")
        if link["ifname"].startswith("up")
        for a in link["addr_info"]
    }


def test_nodes_learn_the_other_racks_blocks_and_the_core_the_announced_vip(lab):
    """The fabric on the host containers (issue 13 item 4): each minion's BIRD, configured as
    calico-node derives it, installs the block of the minion of the other rack as one kernel
    route through both ToRs of its own rack; and the core router learns the API VIP, which
    both directors announce (it has realservers), through the four ToRs (ECMP over both
    racks), and not the ingress VIP (no realservers yet)."""
    racks = _datacenter_yaml(lab.dc)["racks"]
    net = lab.fabric.net
    routes = {}
    for minion in (f"{lab.dc}-w1", f"{lab.dc}-w2"):
        other = f"{lab.dc}-w2" if minion.endswith("w1") else f"{lab.dc}-w1"
        block = lab.pod_block(other)
        kernel = json.loads(lab.exec(minion, ["ip", "-j", "route", "show", "exact", block]).stdout)
        routes[minion] = (
            [r.get("protocol") for r in kernel],
            net.kernel_nexthops(minion, block),
        )
    tors_of = {
        host: sorted(t["address"] for t in racks[lab.plan["hosts"][host]["rack"]]["tors"]) for host in routes
    }
    assert routes == {host: (["bird"], tors_of[host]) for host in routes}

    api, ingress = VIPS[lab.dc]
    core = _datacenter_yaml(lab.dc)["bgp"]["core_routers"][0]["name"]
    uplinks = {
        tor["name"]: _uplink_addresses(net, tor["name"]) for rack in racks.values() for tor in rack["tors"]
    }

    def four_hops():
        hops = net.kernel_nexthops(core, f"{api}/32")
        return hops if len(hops) == 4 else None

    hops = _wait(f"{core}: the API VIP through four next hops", four_hops, timeout=60)
    assert sorted(tor for tor, addresses in uplinks.items() if addresses & set(hops)) == sorted(uplinks)
    assert net.kernel_nexthops(core, f"{ingress}/32") == []


# The plan of inventories/lab: each datacenter's two VIPs, both on both of its directors; the
# API VIP has the three masters as realservers, the ingress VIP none yet.
VIPS = {"lab1": ("198.18.2.1", "198.18.2.10"), "lab2": ("198.19.2.1", "198.19.2.10")}


def test_the_directors_hold_their_vips_nat_them_and_announce_the_healthy_one(lab):
    """site.yml's lvs stage on each director: the VIPs on lo, the full-NAT table, BIRD running
    with the /32 of the VIP that has realservers and not of the one without (what the core
    learns of them: test_nodes_learn_the_other_racks_blocks_and_the_core_the_announced_vip)."""
    api, ingress = VIPS[lab.dc]
    directors = sorted(h for h in lab.hosts if h.startswith(f"{lab.dc}-lvs"))
    assert directors == [f"{lab.dc}-lvs1", f"{lab.dc}-lvs2"]
    found = {}
    for host in directors:
        lo = json.loads(lab.exec(host, ["ip", "-j", "-4", "address", "show", "dev", "lo"]).stdout)
        table = lab.exec(host, ["nft", "-j", "list", "table", "ip", "cloud58_fullnat"], check=False)
        bird = lab.exec(host, ["systemctl", "is-active", "bird.service"], check=False).stdout.strip()
        routes = lab.exec(host, ["birdc", "show", "route", "protocol", "cloud58_vips"], check=False).stdout
        announced = sorted(v for v in (api, ingress) if f"{v}/32" in routes)
        found[host] = (sorted(a["local"] for a in lo[0]["addr_info"]), table.returncode, bird, announced)
    expected = (sorted(["127.0.0.1", api, ingress]), 0, "active", [api])
    assert found == dict.fromkeys(directors, expected)


# The slots of the lab's service, which cloud58-gateway-sync fills (site.yml's default
# backend source, runtime).
SERVER_TEMPLATE = "    server-template web- 16 web.slot.invalid:1 disabled init-addr last,0.0.0.0"


def test_the_ingress_gateway_answers_on_its_frontend_with_no_backend_yet(lab):
    """site.yml's gateway stage on the datacenter's ingress node: HAProxy runs the checked
    haproxy.cfg with the lab's service (inventories/lab/group_vars/all/gateway.yml) and
    cloud58-gateway-sync runs beside it (the stage's default backend source, runtime). No
    instance of it is in Consul yet, so every server slot waits in maintenance and the frontend
    answers with HAProxy's own 503; the non-ingress minion runs neither."""
    plan = lab.plan["hosts"]
    gateways = [
        h for h in plan if plan[h]["datacenter"] == lab.dc and plan[h]["labels"]["function"] == "ingress"
    ]
    assert gateways == [f"{lab.dc}-w1"]
    found = {}
    for host in (f"{lab.dc}-w1", f"{lab.dc}-w2"):
        units = ["haproxy.service", "cloud58-gateway-sync.service"]
        active = lab.exec(host, ["systemctl", "is-active", *units], check=False).stdout.split()
        # The lines of the lab's service: its frontend on 8080 and its slots (none on the other
        # minion: no haproxy.cfg there).
        ours = lab.exec(
            host,
            [
                "grep",
                "-c",
                "-x",
                "-e",
                "frontend web",
                "-e",
                "    bind 0.0.0.0:8080",
                "-e",
                SERVER_TEMPLATE,
                "/etc/haproxy/haproxy.cfg",
            ],
            check=False,
        ).stdout.strip()
        status = (
            lab.http_get_in(host, f"http://{lab.hosts[host].address}:8080/")[0] if host in gateways else None
        )
        found[host] = (active, ours, status)
    assert found == {
        f"{lab.dc}-w1": (["active", "active"], "3", 503),
        f"{lab.dc}-w2": (["inactive", "inactive"], "", None),
    }


# On a host: one request to its Consul agent's HTTPS API with the host's certificate and the
# token read from stdin (never on a command line); prints the HTTP status.
_CONSUL_CALL = (
    "import ssl,sys,urllib.request\n"
    "ctx=ssl.create_default_context(cafile='/etc/consul.d/tls/ca.crt')\n"
    "ctx.load_cert_chain('/etc/consul.d/tls/agent.crt','/etc/consul.d/tls/agent.key')\n"
    "req=urllib.request.Request('https://127.0.0.1:8501'+sys.argv[2],data=sys.argv[3].encode(),"
    "method=sys.argv[1],headers={'X-Consul-Token':sys.stdin.read().strip()})\n"
    "print(urllib.request.urlopen(req,context=ctx,timeout=10).status)\n"
)


def test_the_gateway_routes_to_an_instance_registered_in_consul_until_it_leaves(lab):
    """Consul and the gateway together: an instance of the lab's service `web` registered
    with the agent of the other minion is set into a slot of the ingress node's HAProxy by
    cloud58-gateway-sync (a blocking query to its agent with the gateway's own token, the
    runtime API) and serves the gateway's frontend; deregistered, it goes to maintenance and
    the frontend answers 503 again. The sync's journal names the change each time."""
    gateway, other = f"{lab.dc}-w1", f"{lab.dc}-w2"
    address = lab.hosts[other].address
    token = f"cloud58-lab-web-{os.getpid()}-{time.time_ns()}"
    url = f"http://{lab.hosts[gateway].address}:8080/"
    management = lab.secrets["consul_acl_management_token"]
    register = json.dumps({"ID": "labweb", "Name": "web", "Address": address, "Port": 8080})
    since = lab.exec(gateway, ["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()

    def sync_log() -> str:
        journal = ["journalctl", "-u", "cloud58-gateway-sync", "--since", since, "-o", "cat", "--no-pager"]
        return lab.exec(gateway, journal).stdout

    lab.exec(other, ["mkdir", "-p", "/tmp/labweb"])
    lab.exec(other, ["sh", "-c", f"echo {token} > /tmp/labweb/index.html && echo ok > /tmp/labweb/healthz"])
    try:
        web = ["python3", "-m", "http.server", "8080", "--bind", address, "--directory", "/tmp/labweb"]
        lab.exec(other, ["systemd-run", "--unit", "cloud58-labweb", *web])
        call = ["python3", "-c", _CONSUL_CALL, "PUT", "/v1/agent/service/register", register]
        assert lab.exec(other, call, input_text=management).stdout.strip() == "200"

        def served():
            found = lab.http_get_in(gateway, url)
            if found[0] == 200 and found[1].strip() == token:
                return found
            raise AssertionError(found)

        # http_get_in returns the body as printed: the line and the newline print adds.
        assert _wait("the registered instance serving through the gateway", served) == (200, f"{token}\n")
        set_in = re.findall(rf"web: (set server web/web-\d+) addr {re.escape(address)} port 8080", sync_log())
        assert len(set_in) == 1, sync_log()
        call = ["python3", "-c", _CONSUL_CALL, "PUT", "/v1/agent/service/deregister/labweb", ""]
        assert lab.exec(other, call, input_text=management).stdout.strip() == "200"

        def gone():
            found = lab.http_get_in(gateway, url)
            if found[0] == 503:
                return found
            raise AssertionError(found)

        assert _wait("the deregistered instance out of rotation", gone)[0] == 503
        assert f"web: {set_in[0]} state maint" in sync_log()
    finally:
        lab.exec(other, ["systemctl", "stop", "cloud58-labweb"], check=False)
        lab.exec(other, ["rm", "-rf", "/tmp/labweb"], check=False)


# Inside a host: GET a path of its Consul's API (token on stdin), print status and body.
_CONSUL_GET = (
    "import ssl,sys,urllib.request\n"
    "ctx=ssl.create_default_context(cafile='/etc/consul.d/tls/ca.crt')\n"
    "ctx.load_cert_chain('/etc/consul.d/tls/server.crt','/etc/consul.d/tls/server.key')\n"
    "req=urllib.request.Request('https://127.0.0.1:8501'+sys.argv[1],"
    "headers={'X-Consul-Token':sys.stdin.read().strip()})\n"
    "print(urllib.request.urlopen(req,context=ctx,timeout=10).read().decode())\n"
)


def _pause_pod(lab, name: str, minion: str, namespace: str = "default", **metadata) -> dict:
    """A bare pod of the lab's pause image bound to ``minion`` (no scheduler involved);
    ``metadata`` adds labels or annotations."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, **metadata},
        "spec": {
            "nodeName": minion,
            "automountServiceAccountToken": False,
            "containers": [{"name": "pause", "image": lab.pause_image, "imagePullPolicy": "Never"}],
        },
    }


def _get_once(lab, name: str, node: str, namespace: str, url: str) -> tuple:
    """A pod ``name`` on ``node`` that runs ``/echo get url`` once (the echo image, restart
    Never); (its phase once it ended, its log: the status and the body)."""
    spec = _pause_pod(lab, name, node, namespace)
    spec["spec"]["restartPolicy"] = "Never"
    spec["spec"]["containers"] = [
        {"name": "get", "image": lab.echo_image, "imagePullPolicy": "Never", "args": ["get", url]}
    ]
    lab.kubectl(lab.endpoint, "apply", "-f", "-", input_text=json.dumps(spec))

    def ended():
        got = json.loads(lab.kubectl(lab.endpoint, "get", "pod", "-n", namespace, name, "-o", "json").stdout)
        return got["status"].get("phase") in ("Succeeded", "Failed") and got["status"]["phase"]

    phase = _wait(f"{name} on {node} done", ended)
    return phase, lab.kubectl(lab.endpoint, "logs", "-n", namespace, name).stdout


def _serve_a_pod(lab, name: str, namespace: str, minion: str, annotations: dict, *, command=None) -> str:
    """A pod on ``minion`` (the real kubelet) and a Service ``name`` (port 80 to 8080, with
    ``annotations``) selecting it, in a new ``namespace``: the real EndpointSlice controller
    writes the slice a sync reads. The pod runs /pause, or ``command`` (``["/echo"]``: an HTTP
    server on 8080). Returns the pod's address once it runs."""
    pod = _pause_pod(lab, name, minion, namespace, labels={"app": name})
    if command:
        pod["spec"]["containers"][0]["command"] = command
    objects = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            pod,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
                "spec": {
                    "selector": {"app": name},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                },
            },
        ],
    }
    lab.kubectl(lab.endpoint, "create", "namespace", namespace)
    # The pod's admission needs the namespace's default ServiceAccount, which the
    # controller-manager creates too: whichever comes first (a List applying it raced the
    # controller: AlreadyExists).
    lab.kubectl(lab.endpoint, "create", "serviceaccount", "default", "-n", namespace, check=False)
    lab.kubectl(lab.endpoint, "apply", "-f", "-", input_text=json.dumps(objects))

    def pod_ip():
        pod = json.loads(lab.kubectl(lab.endpoint, "get", "pod", "-n", namespace, name, "-o", "json").stdout)
        return pod["status"].get("podIP") if pod["status"].get("phase") == "Running" else None

    return _wait(f"{name} running on {minion}", pod_ip)


def test_consul_sync_registers_a_services_endpoint_with_identities_of_its_own(lab):
    """site.yml's consul_sync stage: cloud58-consul-sync runs on the cluster's first master
    with the cluster's own Consul token (derived from the management token; policy
    cloud58-consul-sync-<cluster>) and the Kubernetes user cloud58:consul-sync (its pair copied
    from the controller's PKI, 0600 key, no key in the kubeconfig); once the reconcile applied
    its ClusterRole it lists, and an annotated Service selecting a pod that runs on a minion
    (the real kubelet; the slice written by the real EndpointSlice controller) has the pod's
    address and port in Consul's catalog on node k8s-<cluster>."""
    from ansible_collections.cloud58.platform.plugins.filter.consul import consul_sync_token

    host, cluster = lab.cluster["masters"][0], lab.cluster["name"]
    management = lab.secrets["consul_acl_management_token"]
    base = "/etc/cloud58/consul-sync"
    stat = ["stat", "-c", "%n %a %U"]
    files = [f"{base}/consul-sync.token", f"{base}/consul-sync.kubeconfig", f"{base}/pki/consul-sync.key"]
    assert lab.exec(host, [*stat, *files, f"{base}/pki/consul.key"]).stdout.split("\n")[:4] == [
        f"{path} 600 root" for path in [*files, f"{base}/pki/consul.key"]
    ]
    token = lab.exec(host, ["cat", f"{base}/consul-sync.token"]).stdout.strip()
    assert token == consul_sync_token(management, cluster)["SecretID"]
    kubeconfig = yaml.safe_load(lab.exec(host, ["cat", f"{base}/consul-sync.kubeconfig"]).stdout)
    assert kubeconfig["users"] == [
        {
            "name": "cloud58:consul-sync",
            "user": {
                "client-certificate": f"{base}/pki/consul-sync.crt",
                "client-key": f"{base}/pki/consul-sync.key",
            },
        }
    ]

    def listed():
        journal = lab.exec(
            host, ["journalctl", "-u", "cloud58-consul-sync", "-o", "cat", "--no-pager"]
        ).stdout
        active = lab.exec(host, ["systemctl", "is-active", "cloud58-consul-sync"], check=False).stdout.strip()
        if active == "active" and re.search(r"listed \d+ Service\(s\)", journal):
            return True
        raise AssertionError(f"{active}\n{journal[-3000:]}")

    _wait("cloud58-consul-sync listing the cluster", listed)
    # A pod on a minion (the real kubelet), a Service selecting it: the real EndpointSlice
    # controller writes the slice the sync reads.
    name = f"labsync-{os.getpid()}"
    namespace = f"cloud58-labsync-{os.getpid()}"
    annotations = {"consul.cloud58.io/service": name, "consul.cloud58.io/version": "1.4.2"}
    try:
        address = _serve_a_pod(lab, name, namespace, lab.minions[-1], annotations)

        def registered():
            out = lab.exec(
                host, ["python3", "-c", _CONSUL_GET, f"/v1/catalog/service/{name}"], input_text=management
            ).stdout
            found = [
                (e["Node"], e["ServiceAddress"], e["ServicePort"], e["ServiceTags"]) for e in json.loads(out)
            ]
            if found:
                return found
            raise AssertionError(out)

        assert _wait(f"{name}'s endpoint in Consul", registered) == [
            (f"k8s-{cluster}", address, 8080, [f"cluster={cluster}", f"datacenter={lab.dc}", "version=1.4.2"])
        ]
    finally:
        # Waited for: a pod left on the minion would stop remove-node.yml's drain.
        lab.kubectl(lab.endpoint, "delete", "namespace", namespace, "--wait=true", check=False, timeout=180)


# Inside the ingress node: ``count`` GETs of a URL, one "<status> <body>" line each.
_GETS = (
    "import sys,urllib.request,urllib.error\n"
    "for _ in range(int(sys.argv[2])):\n"
    "    try:\n"
    "        r=urllib.request.urlopen(sys.argv[1],timeout=5); print(r.status, r.read().decode().strip())\n"
    "    except urllib.error.HTTPError as e:\n"
    "        print(e.code, '')\n"
    "    except OSError as e:\n"
    "        print(0, e)\n"
)


def _ready_pods(lab, namespace: str, selector: str) -> dict:
    """{pod name: address} of the pods of ``selector`` that are Ready."""
    pods = json.loads(
        lab.kubectl(lab.endpoint, "get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
    )
    return {
        p["metadata"]["name"]: p["status"]["podIP"]
        for p in pods["items"]
        if p["metadata"].get("deletionTimestamp") is None
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    }


def test_scaling_a_deployment_moves_consul_and_the_gateway_with_it(lab):
    """The whole discovery path, fed by Kubernetes: a Deployment of the demo app's image whose
    Service is marked for Consul as `web`, the ingress gateway's service. Scaled 1 → 3 → 1,
    cloud58-consul-sync keeps exactly the Ready pods' addresses passing in Consul's catalog
    (node k8s-<cluster>), and cloud58-gateway-sync the ingress node's HAProxy: requests to the
    gateway's frontend are answered by exactly those pods, on both racks' minions.

    At 3, one pod is turned not-ready while it runs (its /ready answers 503, so the kubelet's
    readiness probe fails): its endpoint stays in the EndpointSlice with ready false, its
    instance stays registered in Consul but not passing, and the gateway stops sending it
    requests; ready again, it is back in all three."""
    host, cluster = lab.cluster["masters"][0], lab.cluster["name"]
    gateway = f"{lab.dc}-w1"
    management = lab.secrets["consul_acl_management_token"]
    name, namespace = "labscale", f"cloud58-labscale-{os.getpid()}"
    message = f"scaled-{os.getpid()}-{time.time_ns()}"
    selector = f"app={name}"
    objects = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "replicas": 1,
                    "selector": {"matchLabels": {"app": name}},
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {
                            "automountServiceAccountToken": False,
                            # Over both racks for sure: the minions the pods may go to (a
                            # minion the overload agent tainted too) are the only domains.
                            "topologySpreadConstraints": [
                                {
                                    "maxSkew": 1,
                                    "topologyKey": "topology.kubernetes.io/zone",
                                    "whenUnsatisfiable": "DoNotSchedule",
                                    "labelSelector": {"matchLabels": {"app": name}},
                                    "nodeTaintsPolicy": "Honor",
                                }
                            ],
                            "tolerations": [
                                {"key": "cloud58.io/overloaded", "operator": "Exists", "effect": "NoSchedule"}
                            ],
                            "containers": [
                                {
                                    "name": "echo",
                                    "image": lab.echo_image,
                                    "imagePullPolicy": "Never",
                                    "env": [{"name": "ECHO_MESSAGE", "value": message}],
                                    "ports": [{"name": "http", "containerPort": 8080}],
                                    "readinessProbe": {
                                        "httpGet": {"path": "/ready", "port": "http"},
                                        "periodSeconds": 1,
                                    },
                                }
                            ],
                        },
                    },
                },
            },
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "annotations": {"consul.cloud58.io/service": "web"},
                },
                "spec": {
                    "selector": {"app": name},
                    "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                },
            },
        ],
    }

    def passing(only_passing: bool = True) -> dict:
        query = "?passing=true" if only_passing else ""
        out = lab.exec(
            host, ["python3", "-c", _CONSUL_GET, f"/v1/health/service/web{query}"], input_text=management
        ).stdout
        return {
            e["Service"]["Address"]: e["Service"]["Port"]
            for e in json.loads(out)
            if e["Node"]["Node"] == f"k8s-{cluster}"
        }

    def slice_readiness() -> dict:
        """{address: ready} of the Service's EndpointSlices."""
        slices = json.loads(
            lab.kubectl(
                lab.endpoint,
                "get",
                "endpointslices",
                "-n",
                namespace,
                "-l",
                f"kubernetes.io/service-name={name}",
                "-o",
                "json",
            ).stdout
        )
        return {
            address: endpoint["conditions"].get("ready")
            for item in slices["items"]
            for endpoint in item.get("endpoints") or []
            for address in endpoint["addresses"]
        }

    def answering(pods: dict) -> set:
        out = lab.exec(
            gateway,
            ["python3", "-c", _GETS, f"http://{lab.hosts[gateway].address}:8080/", str(3 * len(pods))],
        )
        return {
            line.split(" from ", 1)[1]
            for line in out.stdout.splitlines()
            if line.startswith(f"200 {message} from ")
        }

    def follows(pods: dict) -> None:
        """AssertionError (for _wait) unless exactly ``pods`` (name: address) pass in Consul and
        answer through the gateway."""
        in_consul = passing()
        if in_consul != dict.fromkeys(pods.values(), 8080):
            raise AssertionError(f"Consul {in_consul} against the pods {pods}")
        answered = answering(pods)
        if answered != set(pods):
            raise AssertionError(f"the gateway's answers came from {answered}, the pods are {pods}")

    lab.kubectl(lab.endpoint, "create", "namespace", namespace)
    lab.kubectl(lab.endpoint, "create", "serviceaccount", "default", "-n", namespace, check=False)
    try:
        lab.kubectl(lab.endpoint, "apply", "-f", "-", input_text=json.dumps(objects))
        nodes_seen = set()
        for replicas in (1, 3, 1):
            lab.kubectl(lab.endpoint, "scale", "deployment", name, "-n", namespace, f"--replicas={replicas}")

            def followed(replicas=replicas):
                pods = _ready_pods(lab, namespace, selector)
                if len(pods) != replicas:
                    raise AssertionError(f"{len(pods)} Ready pods")
                follows(pods)
                return pods

            # Every 3 s: the gateway limits a client to 100 requests in 10 s.
            pods = _wait(
                f"Consul and the gateway following {replicas} Ready pod(s)", followed, timeout=300, interval=3
            )
            placed = json.loads(
                lab.kubectl(lab.endpoint, "get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout
            )
            nodes_seen |= {p["spec"]["nodeName"] for p in placed["items"] if p["metadata"]["name"] in pods}
            if replicas == 3:
                nodes = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in placed["items"]}
                _not_ready_and_back(
                    lab,
                    pods,
                    nodes,
                    follows=follows,
                    registered=lambda: passing(only_passing=False),
                    slice_readiness=slice_readiness,
                )
        # The three pods spread over both racks' minions: the gateway reached the other rack too.
        assert {lab.plan["hosts"][n]["rack"] for n in nodes_seen} == {f"{lab.dc}-r1", f"{lab.dc}-r2"}
    finally:
        # Waited for: a pod left on the minion would stop remove-node.yml's drain.
        lab.kubectl(lab.endpoint, "delete", "namespace", namespace, "--wait=true", check=False, timeout=180)


# Inside a node: PUT argv[2] to argv[1] (the demo app's /ready), then its status and body.
_PUT = (
    "import sys,urllib.request\n"
    "r=urllib.request.urlopen(urllib.request.Request(sys.argv[1],data=sys.argv[2].encode(),method='PUT'),"
    "timeout=10)\n"
    "print(r.status, r.read().decode().strip())\n"
)


def _not_ready_and_back(lab, pods: dict, nodes: dict, *, follows, registered, slice_readiness) -> None:
    """The first of ``pods`` (name: address) turned not-ready from its node, then ready again;
    each time, the EndpointSlice (``slice_readiness``: address: ready), Consul (``registered``:
    every instance, passing or not) and ``follows`` (the passing instances and the gateway's
    answers) follow."""
    pod = sorted(pods)[0]
    address = pods[pod]
    others = {n: a for n, a in pods.items() if n != pod}
    url = f"http://{address}:8080/ready"
    assert lab.exec(nodes[pod], ["python3", "-c", _PUT, url, "no"]).stdout.strip() == "200 ready: no"

    def followed_not_ready():
        readiness = slice_readiness()
        if readiness != {**dict.fromkeys(others.values(), True), address: False}:
            raise AssertionError(f"the EndpointSlice's readiness {readiness}")
        instances = registered()
        if instances != dict.fromkeys(pods.values(), 8080):
            raise AssertionError(f"registered in Consul {instances}")
        follows(others)
        return True

    _wait(
        f"{pod} not-ready in the EndpointSlice, in Consul and at the gateway",
        followed_not_ready,
        timeout=300,
        interval=3,
    )
    assert lab.exec(nodes[pod], ["python3", "-c", _PUT, url, "yes"]).stdout.strip() == "200 ready: yes"

    def followed_ready_again():
        readiness = slice_readiness()
        if readiness != dict.fromkeys(pods.values(), True):
            raise AssertionError(f"the EndpointSlice's readiness {readiness}")
        follows(pods)
        return True

    _wait(f"{pod} ready again everywhere", followed_ready_again, timeout=300, interval=3)


# The jobs whose every target is up in the lab (beside etcd, etcd-events and kube-apiserver).
JOBS_UP = ("node", "podlogs", "kubelet", "signals", "netshaper", "overload", "crashkeeper")
# Inside the Prometheus host: every active target as [job, host label, health, last error].
_TARGETS = (
    "import json,urllib.request\n"
    "d=json.load(urllib.request.urlopen('http://127.0.0.1:9090/api/v1/targets?state=active',timeout=10))\n"
    "print(json.dumps([[t['labels']['job'],t['labels'].get('host',''),t['health'],t['lastError']]"
    " for t in d['data']['activeTargets']]))\n"
)


def _targets_up(lab, jobs, only=None) -> dict:
    """{job: {host: "up" or "<health>: <error>"}} of Prometheus' active targets of ``jobs``
    (of a job in ``only``, {job: hosts}, only those hosts), once every one is up
    (AssertionError with what is not, for _wait)."""
    only = only or {}
    out = lab.exec(f"{lab.dc}-m1", ["python3", "-c", _TARGETS], check=False).stdout
    health = {}
    for job, name, state, error in json.loads(out or "[]"):
        if job in jobs and name in only.get(job, [name]):
            health.setdefault(job, {})[name] = state if state == "up" else f"{state}: {error}"
    if all(set((health.get(job) or {"": ""}).values()) == {"up"} for job in jobs):
        return health
    raise AssertionError(health)


def _query(lab, promql: str) -> list:
    """The instant vector of ``promql``, asked of the lab's Prometheus from here: [(labels, value)]."""
    query = urllib.parse.urlencode({"query": promql})
    address = lab.hosts[f"{lab.dc}-m1"].address
    with urllib.request.urlopen(f"http://{address}:9090/api/v1/query?{query}", timeout=10) as r:
        return [(m["metric"], m["value"][1]) for m in json.load(r)["data"]["result"]]


def _up(lab, selector: str) -> dict:
    """{host: value of up} for ``up{<selector>}``."""
    return {metric.get("host", ""): value for metric, value in _query(lab, f"up{{{selector}}}")}


def test_prometheus_finds_node_exporter_on_every_host_and_the_minions_kubelets_and_agents_up(lab):
    """site.yml's monitoring stage runs node-exporter on every host of the plan, and its logs
    stage cloud58-podlogs (its counters on every address, job podlogs); with the kubelets of
    the minions (Prometheus' client certificate, ClusterRole of clusters/) and the other node
    agents on them (cloud58-netshaper, cloud58-overload, cloud58-crashkeeper), those targets are
    up; so are the masters' kubelets, which run the control plane, and cloud58-signals on every
    node of the cluster, the masters too (site.yml's agents stage runs it alone there). The
    masters' targets of the other node agents' jobs are not checked: no other agent runs there."""
    minions = dict.fromkeys(sorted(lab.minions), "up")
    every_host = dict.fromkeys(sorted(lab.hosts), "up")
    only = {job: lab.minions for job in JOBS_UP[2:]}
    only["signals"] = only["kubelet"] = lab.cluster["nodes"]
    found = _wait(
        "node, podlogs, kubelet, signals and the node agents' targets up",
        lambda: _targets_up(lab, JOBS_UP, only),
    )
    assert found == {
        "node": every_host,
        "podlogs": every_host,
        "kubelet": dict.fromkeys(sorted(lab.cluster["nodes"]), "up"),
        "signals": dict.fromkeys(sorted(lab.cluster["nodes"]), "up"),
        "netshaper": minions,
        "overload": minions,
        "crashkeeper": minions,
    }
    active = lab.exec(f"{lab.dc}-lvs1", ["systemctl", "is-active", "prometheus-node-exporter"]).stdout
    assert active.strip() == "active"


def test_prometheus_reads_a_pods_containers_from_its_minions_cadvisor(lab):
    """The kubelet serves cAdvisor's per-container figures at /metrics/cadvisor on its own port
    (job cadvisor: Prometheus' client certificate, as for the kubelet job): every minion's
    target is up, and a pause pod the test runs on each minion has its container's
    container_cpu_usage_seconds_total, labelled with its namespace, pod and container and
    with the host it runs on."""
    found = _wait(
        "the minions' cadvisor targets up", lambda: _targets_up(lab, ("cadvisor",), {"cadvisor": lab.minions})
    )
    assert found == {"cadvisor": dict.fromkeys(sorted(lab.minions), "up")}
    lab.kubectl(lab.endpoint, "create", "serviceaccount", "default", "--namespace", "default", check=False)
    pods = {f"cadvisor-{host}": host for host in lab.minions}
    for name, host in pods.items():
        lab.kubectl(lab.endpoint, "apply", "-f", "-", input_text=json.dumps(_pause_pod(lab, name, host)))

    def seen():
        series = _query(
            lab, 'container_cpu_usage_seconds_total{job="cadvisor",namespace="default",container="pause"}'
        )
        got = {m["pod"]: m.get("host") for m, _value in series if m.get("pod") in pods}
        return got if sorted(got) == sorted(pods) else None

    try:
        assert _wait("the pause pods' containers in the cadvisor job", seen) == pods
    finally:
        lab.kubectl(lab.endpoint, "delete", "pod", "-n", "default", *pods, "--wait=true", check=False)


def test_prometheus_reads_the_realservers_of_each_vip_from_the_directors_lvs_exporter(lab):
    """site.yml's lvs stage runs cloud58-lvs-exporter on every director (nftables data plane):
    the datacenter's Prometheus scrapes it (job lvs) and has, per director and VIP, the
    realservers of the live table: the API VIP's three masters, and none for the ingress VIP,
    to which the lab's inventory gives no realserver (what LvsVipWithoutRealservers pages on)."""
    directors = sorted(h for h in lab.hosts if h in lab.plan["datacenters"][lab.dc]["lvs"]["directors"])
    found = _wait("the directors' LVS exporters up", lambda: _targets_up(lab, ("lvs",), {"lvs": directors}))
    assert found == {"lvs": dict.fromkeys(directors, "up")}
    expected = {
        **{(d, "198.18.2.1"): "3" for d in directors},
        **{(d, "198.18.2.10"): "0" for d in directors},
    }

    def values() -> dict:
        return {(m["director"], m["vip"]): value for m, value in _query(lab, "cloud58_lvs_vip_realservers")}

    # Run alone right after the lab's start, one query found no series of one director yet,
    # its target already up: wait for the exact figures.
    _wait("each director's realservers per VIP in Prometheus", lambda: values() == expected, detail=values)
    assert directors == ["lab1-lvs1", "lab1-lvs2"]


def test_prometheus_has_each_directors_bgp_sessions_as_its_bird_reports_them(lab):
    """The LVS exporter also reads the director's BIRD (its control socket): the datacenter's
    Prometheus has cloud58_bgp_speaker_up 1 per director, and per director and ToR of the plan
    cloud58_bgp_session_up, 1 exactly when `birdc show protocols` on the director says
    Established (the series BgpSessionDown pages on). The lab's ToRs are on the directors'
    network: every session is up, and 1."""
    directors = sorted(h for h in lab.hosts if h in lab.plan["datacenters"][lab.dc]["lvs"]["directors"])

    def bird_says() -> dict:
        found = {}
        for d in directors:
            lines = lab.exec(d, ["birdc", "show", "protocols"]).stdout.splitlines()
            info = {
                w[0]: w[5] if len(w) > 5 else ""
                for w in map(str.split, lines)
                if len(w) > 1 and w[1] == "BGP"
            }
            for peer in lab.plan["hosts"][d]["bgp"]["peers"]:
                up = info[f"tor_{peer['name'].replace('-', '_')}"] == "Established"
                found[(d, peer["name"], peer["address"])] = str(int(up))
        return found

    def in_prometheus() -> dict:
        return {
            (m["director"], m["peer"], m["neighbor"]): value
            for m, value in _query(lab, "cloud58_bgp_session_up")
        }

    def agreed():
        expected = bird_says()
        return expected if in_prometheus() == expected else None

    found = _wait("each director's BGP sessions in Prometheus as BIRD says", agreed, detail=in_prometheus)
    assert sorted(found) == sorted(
        (d, p["name"], p["address"]) for d in directors for p in lab.plan["hosts"][d]["bgp"]["peers"]
    )
    assert len(found) == 4  # two directors, two ToRs each
    assert set(found.values()) == {"1"}
    speakers = {m["director"]: value for m, value in _query(lab, "cloud58_bgp_speaker_up")}
    assert speakers == dict.fromkeys(directors, "1")


def _vip_realservers(lab, host: str, vip: str) -> list:
    """The realserver . port values of ``vip`` in the director's live full-NAT table."""
    from ansible_collections.cloud58.platform.plugins.module_utils.lvs.fullnat import read_table

    out = lab.exec(host, ["nft", "-j", "list", "table", "ip", "cloud58_fullnat"]).stdout
    elements = read_table(json.loads(out))["elements"].get("realservers", {})
    return sorted({value for key, value in elements.items() if key.split(" . ")[0] == vip})


def test_lvs_sync_puts_a_services_pod_behind_its_vip_on_every_director(lab):
    """site.yml's lvs stage with lvs_director_sync (inventories/lab/group_vars/lvs): on every
    director cloud58-lvs-sync reads the cluster as the user cloud58:lvs-sync (the cluster PKI's
    lvs-sync pair copied from the controller, the key 0600, no key in the kubeconfig); once the
    reconcile applied its ClusterRole, a Service that claims the ingress VIP (annotation
    lvs.cloud58.io/vip) and selects a pod on a minion (the real kubelet; the slice written by the
    real EndpointSlice controller) puts the pod's address and port behind that VIP in each
    director's table, the API VIP keeping its masters, and each director's BIRD announces the VIP,
    which the core router then reaches through the four ToRs. Then real requests: from a minion
    of each rack to the VIP, through that rack's ToRs to the rack's director, whose full NAT
    sends them to the pod (a route its BIRD learned from the ToRs) from one of its local
    addresses, which the pod (/echo's /peer: the address accept() gave it) answers through the
    fabric (the range the director announces); and from a pod on the minion of the other rack,
    whose answer reaches it from the director through the ToRs too. Deleting the Service empties
    the VIP and withdraws it, from the core too: the sync, BIRD, the ToRs and the data plane on
    one path."""
    directors = [f"{lab.dc}-lvs1", f"{lab.dc}-lvs2"]
    api, ingress = VIPS[lab.dc]
    base = "/etc/cloud58/lvs-sync"
    files = [f"{base}/lvs-sync.kubeconfig", f"{base}/pki/lvs-sync.key"]
    user = {
        "name": "cloud58:lvs-sync",
        "user": {"client-certificate": f"{base}/pki/lvs-sync.crt", "client-key": f"{base}/pki/lvs-sync.key"},
    }
    for host in directors:
        modes = lab.exec(host, ["stat", "-c", "%n %a %U", *files]).stdout.split("\n")[:2]
        assert modes == [f"{path} 600 root" for path in files]
        kubeconfig = yaml.safe_load(lab.exec(host, ["cat", files[0]]).stdout)
        assert (kubeconfig["users"], kubeconfig["current-context"]) == ([user], lab.cluster["name"])
    masters = sorted(f"{lab.hosts[m].address} . 6443" for m in lab.masters)
    name = f"labvip-{os.getpid()}"
    namespace = f"cloud58-labvip-{os.getpid()}"
    vip_name = next(
        n for n, v in lab.plan["datacenters"][lab.dc]["lvs"]["vips"].items() if v["address"] == ingress
    )

    def announced(host):
        routes = lab.exec(host, ["birdc", "show", "route", "protocol", "cloud58_vips"]).stdout
        return [v for v in (api, ingress) if f"{v}/32" in routes]

    def behind(wanted):
        """Each director's realservers of both VIPs, and the VIPs its BIRD announces (the sync
        writes the healthy set and bird.conf, and runs birdc configure)."""

        def probe():
            found = {
                h: (_vip_realservers(lab, h, api), _vip_realservers(lab, h, ingress), announced(h))
                for h in directors
            }
            if found == dict.fromkeys(directors, (masters, wanted, [api, ingress] if wanted else [api])):
                return found
            raise AssertionError(found)

        return probe

    core = _datacenter_yaml(lab.dc)["bgp"]["core_routers"][0]["name"]

    def core_hops(count: int):
        def probe():
            hops = lab.fabric.net.kernel_nexthops(core, f"{ingress}/32")
            if len(hops) != count:
                raise AssertionError(hops)
            return True

        return probe

    assert core_hops(0)()
    try:
        address = _serve_a_pod(
            lab, name, namespace, lab.minions[0], {"lvs.cloud58.io/vip": vip_name}, command=["/echo"]
        )
        _wait(f"{address}:8080 behind {ingress} on {', '.join(directors)}", behind([f"{address} . 8080"]))
        _wait(f"{core}: {ingress} through the four ToRs", core_hops(4), timeout=60)
        for client in lab.minions:
            director, local = _rack_director_range(lab, directors, client)

            def peer(client=client):
                said = lab.exec(client, ["python3", "-c", _GETS, f"http://{ingress}/peer", "1"]).stdout
                return _answer_peer(said)

            seen = _wait(f"{client}: an answer from {ingress}:80", peer, timeout=60)
            assert seen in local, (client, director, str(seen), str(local))
        # a client in a pod of the other rack: its request and the answer both cross the ToRs
        # (the director reaches the client's block by the route it learned from them)
        other = next(
            m
            for m in lab.minions
            if lab.plan["hosts"][m]["rack"] != lab.plan["hosts"][lab.minions[0]]["rack"]
        )
        director, local = _rack_director_range(lab, directors, other)
        phase, said = _get_once(lab, f"{name}-client", other, namespace, f"http://{ingress}/peer")
        assert phase == "Succeeded", said
        assert _answer_peer(said) in local, (director, said)
        lab.kubectl(lab.endpoint, "delete", "service", "-n", namespace, name, "--wait=true")
        _wait(f"{ingress} empty again on {', '.join(directors)}", behind([]))
        _wait(f"{core}: {ingress} withdrawn", core_hops(0), timeout=60)
    finally:
        # Waited for: a pod left on the minion would stop remove-node.yml's drain.
        lab.kubectl(lab.endpoint, "delete", "namespace", namespace, "--wait=true", check=False, timeout=180)


def _rack_director_range(lab, directors: list, host: str) -> tuple:
    """(the director of ``host``'s rack, that director's local-address range) from the plan."""
    planned = lab.plan["datacenters"][lab.dc]["lvs"]["directors"]
    [director] = [d for d in directors if planned[d]["rack"] == lab.plan["hosts"][host]["rack"]]
    return director, ipaddress.ip_network(planned[director]["local_addresses"]["cidr"])


def _answer_peer(said: str):
    """The address in a "200 <address>:<port>" line (_GETS or the echo image's get, of /peer);
    an AssertionError with the line for any other status."""
    status, _, body = said.strip().partition(" ")
    if status != "200":
        raise AssertionError(said)
    return ipaddress.ip_address(body.rsplit(":", 1)[0])


# Inside a host: the value of one series of a /metrics page, as the program itself serves it.
_OWN_FIGURE = (
    "import sys,urllib.request\n"
    "page=urllib.request.urlopen(sys.argv[1],timeout=10).read().decode()\n"
    "print(next(l.rsplit(' ',1)[1] for l in page.splitlines() if l.startswith(sys.argv[2]+'{')))\n"
)


def test_prometheus_scrapes_the_sync_programs_on_their_hosts(lab):
    """site.yml passes the monitoring stage the hosts and ports of the programs that write the
    data plane from the cluster and Consul: cloud58-lvs-sync on each director (lvs_director_sync
    in the lab's inventory), cloud58-consul-sync on the cluster's first master and
    cloud58-gateway-sync on the ingress node, all serving their figures on every address. Their
    targets (jobs lvs-sync, consul-sync, gateway-sync) are up, and the consul sync's count of
    instances in Prometheus is the one its own /metrics serves."""
    directors = sorted(h for h in lab.hosts if h in lab.plan["datacenters"][lab.dc]["lvs"]["directors"])
    sync_host = lab.cluster["masters"][0]
    gateway = f"{lab.dc}-w1"  # the lab's ingress node (test_prometheus_scrapes_haproxys_exporter_...)
    only = {"lvs-sync": directors, "consul-sync": [sync_host], "gateway-sync": [gateway]}
    found = _wait("the sync programs' targets up", lambda: _targets_up(lab, tuple(only), only))
    assert found == {
        "lvs-sync": dict.fromkeys(directors, "up"),
        "consul-sync": {sync_host: "up"},
        "gateway-sync": {gateway: "up"},
    }
    series = "cloud58_consul_sync_instances"

    def agree():
        own = lab.exec(
            sync_host, ["python3", "-c", _OWN_FIGURE, "http://127.0.0.1:9664/metrics", series]
        ).stdout.strip()
        scraped = {m["host"]: value for m, value in _query(lab, f'{series}{{job="consul-sync"}}')}
        if scraped == {sync_host: own}:
            return own
        raise AssertionError(f"own /metrics {own}, Prometheus {scraped}")

    assert float(_wait(f"{series} in Prometheus as {sync_host} serves it", agree)) >= 0


def test_prometheus_scrapes_every_consul_agent_with_its_certificate_and_token(lab):
    """site.yml's consul stage runs an agent on every host of the plan (servers on the plan's
    Consul servers) with its HTTPS API on every address, a client certificate of the Consul CA
    required, and creates the token of policy cloud58-prometheus (agent:read); the monitoring
    stage hands Prometheus that token and the Consul PKI's client pair, so every agent's
    /v1/agent/metrics is up (jobs consul/server and consul/client, labelled job="consul").
    From the test's machine, without a client certificate, the same port refuses the TLS
    handshake."""
    every_host = dict.fromkeys(sorted(lab.hosts), "up")
    found = _wait("every Consul agent's metrics up", lambda: _targets_up(lab, ("consul",)))
    assert found == {"consul": every_host}
    address = lab.hosts[f"{lab.dc}-w1"].address
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises((ssl.SSLError, ConnectionResetError, urllib.error.URLError)):
        urllib.request.urlopen(f"https://{address}:8501/v1/agent/metrics", context=context, timeout=10).read()


def test_prometheus_scrapes_haproxys_exporter_on_the_masters_and_the_ingress_gateway(lab):
    """HAProxy's built-in Prometheus exporter on its own frontend (8405): the api_endpoint
    stage's HAProxy on every master (job haproxy) and the gateway stage's on the ingress node
    (job haproxy-gateway), both scraped by the datacenter's Prometheus."""
    plan = lab.plan["hosts"]
    gateways = sorted(
        h for h in plan if plan[h]["datacenter"] == lab.dc and plan[h]["labels"]["function"] == "ingress"
    )
    jobs = ("haproxy", "haproxy-gateway")
    found = _wait("HAProxy's exporters up", functools.partial(_targets_up, lab, jobs))
    assert found == {
        "haproxy": dict.fromkeys(sorted(lab.masters), "up"),
        "haproxy-gateway": {gateways[0]: "up"},
    }
    assert gateways == [f"{lab.dc}-w1"]


def test_a_stopped_etcd_member_is_down_for_prometheus_until_it_runs_again(lab):
    """The alert rules' input, live: with one member's etcd manifest taken out of its master's
    static pod directory, the kubelet stops the pod and its mirror pod goes; up{job="etcd"} is
    0 for that member and 1 for the others. With the manifest back, the kubelet starts it
    again: all three are up and healthy."""
    host = f"{lab.dc}-m3"
    assert lab.pod_states()[f"etcd-{host}"] == "Running"
    expected_down = {h: ("0" if h == host else "1") for h in lab.masters}

    def down():
        found = _up(lab, 'job="etcd"')
        if found == expected_down:
            return found
        raise AssertionError(found)

    lab.stop_pod(host, "etcd")
    try:
        assert _wait("up == 0 for the stopped etcd member", down) == expected_down
        assert _wait("the mirror pod gone", lambda: f"etcd-{host}" not in lab.pod_states()) is True
    finally:
        lab.restart_pod(host, "etcd")  # the manifest back: the kubelet starts the pod again

    def back():
        found = _up(lab, 'job="etcd"')
        if found == dict.fromkeys(lab.masters, "1"):
            return found
        raise AssertionError(found)

    assert _wait("up == 1 for every etcd member again", back) == dict.fromkeys(lab.masters, "1")
    health = json.loads(lab.etcdctl("etcd", "endpoint", "health", "-w", "json").stdout)
    assert [h["health"] for h in health] == [True, True, True]


def test_prometheus_scrapes_the_control_plane_with_its_own_certificates(lab):
    """site.yml's monitoring stage on the datacenter's first master: Prometheus scrapes every
    etcd and events etcd member over TLS with the etcd client certificate the cluster PKI
    issued to it, and every apiserver's, controller-manager's and scheduler's /metrics as user
    cloud58:prometheus, which only the ClusterRole of clusters/ (reconciled) allows; the last
    two serve on the master's address (a scrape from another host)."""
    host = f"{lab.dc}-m1"
    jobs = ("etcd", "etcd-events", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
    scraped = functools.partial(_targets_up, lab, jobs)
    found = _wait("Prometheus scraping both etcds and the control plane", scraped)
    assert found == {job: dict.fromkeys(sorted(lab.masters), "up") for job in jobs}
    modes = lab.exec(
        host,
        [
            "stat",
            "-c",
            "%n %a %G",
            *[
                f"/etc/prometheus/pki/{lab.cluster['name']}/{f}"
                for f in (
                    "ca.crt",
                    "etcd-ca.crt",
                    "etcd-client.crt",
                    "etcd-client.key",
                    "prometheus.crt",
                    "prometheus.key",
                )
            ],
        ],
    ).stdout
    assert modes.split("\n")[:-1] == [
        f"/etc/prometheus/pki/{lab.cluster['name']}/{f} {mode} {group}"
        for f, mode, group in (
            ("ca.crt", 644, "root"),
            ("etcd-ca.crt", 644, "root"),
            ("etcd-client.crt", 644, "root"),
            ("etcd-client.key", 640, "prometheus"),
            ("prometheus.crt", 644, "root"),
            ("prometheus.key", 640, "prometheus"),
        )
    ]


# consul members through a minion's agent, with its certificate (HTTPS verifies clients; a
# server's is server.crt) and no token: the agents' default token (the DNS token) reads nodes.
_CONSUL_MEMBERS = [
    "consul",
    "members",
    "-http-addr=https://127.0.0.1:8501",
    "-ca-file=/etc/consul.d/tls/ca.crt",
    "-client-cert=/etc/consul.d/tls/agent.crt",
    "-client-key=/etc/consul.d/tls/agent.key",
]


def test_consul_runs_servers_on_the_masters_and_an_agent_on_every_other_host(lab):
    """site.yml's consul stage: servers on the masters (the group consul_servers), an agent
    on every other host, all alive in one gossip pool; each agent's DNS answers
    consul.service.consul with the three servers under ACLs default-deny (the DNS token the
    role created); the files of the Consul CA the controller issued are the hosts'."""
    plan = _plan()

    def members():
        out = lab.exec(f"{lab.dc}-w1", _CONSUL_MEMBERS, check=False).stdout
        rows = {line.split()[0]: (line.split()[2], line.split()[3]) for line in out.splitlines()[1:]}
        if sorted(rows) == sorted(lab.hosts) and {s for s, _t in rows.values()} == {"alive"}:
            return rows
        raise AssertionError(out)

    found = _wait("every host a live Consul member", members)
    assert found == {h: ("alive", "server" if h in lab.masters else "client") for h in lab.hosts}
    servers = " ".join(sorted(plan["hosts"][h]["address"] for h in lab.masters))
    answers = {
        host: lab.exec(
            host, ["python3", "-c", consulapi.DNS_QUERY, "consul.service.consul", "8600"], check=False
        ).stdout.strip()
        for host in lab.hosts
    }
    assert answers == dict.fromkeys(lab.hosts, f"0 {servers}")
    # The file lookup that reads it on the controller drops the last newline.
    ca = (lab.pki_dir / "consul/ca.crt").read_text().rstrip("\n")
    assert lab.exec(f"{lab.dc}-w1", ["cat", "/etc/consul.d/tls/ca.crt"]).stdout.rstrip("\n") == ca
    modes = lab.exec(f"{lab.dc}-w1", ["stat", "-c", "%a %U", "/etc/consul.d/tls/agent.key"]).stdout
    assert modes.split() == ["600", "consul"]


def _consul_down_windows(lab) -> dict:
    """{host: (left active, active again)} of each host's last consul.service restart, in
    systemd's monotonic microseconds: one clock for every container of this machine."""
    windows = {}
    for host in lab.hosts:
        out = lab.exec(
            host,
            ["systemctl", "show", "consul.service", "-p", "ActiveExitTimestampMonotonic",
             "-p", "ActiveEnterTimestampMonotonic"],
        ).stdout  # fmt: skip
        values = dict(line.split("=", 1) for line in out.split())
        windows[host] = (
            int(values["ActiveExitTimestampMonotonic"]),
            int(values["ActiveEnterTimestampMonotonic"]),
        )
    return windows


def test_a_consul_change_restarts_the_hosts_one_at_a_time(lab):
    """A change of Consul's configuration (its log level) restarts consul.service on every
    host through the role's handler, one host at a time, each waiting until its API names
    the leader: no two hosts are down over the same interval, so the three servers never
    lose their quorum. The setting put back rolls through the hosts the same way."""
    for level in ("debug", "info"):
        before = _consul_down_windows(lab)
        run = lab.ansible_playbook("site.yml", {"consul_log_level": level}, "--tags", "consul")
        assert run.returncode == 0, run.stdout[-4000:]
        recap = play_recap(run.stdout)
        assert all(recap[h]["changed"] > 0 and recap[h]["failed"] == 0 for h in lab.hosts), recap
        after = _consul_down_windows(lab)
        assert sorted(h for h in lab.hosts if after[h][1] > before[h][1]) == sorted(lab.hosts)
        assert all(down < up for down, up in after.values()), after
        spans = sorted(after.values())
        assert [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]] == [], after
        config = json.loads(lab.exec(f"{lab.dc}-m1", ["cat", "/etc/consul.d/consul.json"]).stdout)
        assert config["log_level"] == level
        # An agent's DNS answers from the servers' catalog: they have a leader again.
        query = ["python3", "-c", consulapi.DNS_QUERY, "consul.service.consul", "8600"]
        assert lab.exec(f"{lab.dc}-w1", query).stdout.split()[0] == "0"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        return e.code, ""


def test_the_status_table_names_prometheus_and_the_log_store_and_both_answer(lab):
    """The URLs `make lab` prints answer from this machine, as an operator opens them."""
    urls = {}
    for line in lab.lines:
        for name in ("prometheus", "log store"):
            if line.startswith(f"{lab.dc}: {name} "):
                urls[name] = line.rsplit(" ", 1)[1]
    address = lab.hosts[f"{lab.dc}-m1"].address
    assert urls == {"prometheus": f"http://{address}:9090", "log store": f"http://{address}:9428"}
    assert _get(urls["prometheus"] + "/-/ready")[0] == 200
    assert _get(urls["log store"] + "/health") == (200, "OK")


def test_every_hosts_journal_reaches_the_log_store_with_its_labels(lab):
    """site.yml's logs stage: VictoriaLogs on the datacenter's first master, and on every host
    of the datacenter systemd-journal-upload shipping the journal there; each record carries
    the host's datacenter, cluster (none for the LVS directors) and node."""
    plan = _plan()
    token = f"cloud58-lab-{os.getpid()}-{time.time_ns()}"
    for host in lab.hosts:
        lab.exec(host, ["logger", "-t", "cloud58-labtest", f"{token} {host}"])
    store = f"http://{lab.hosts[f'{lab.dc}-m1'].address}:9428"
    expected = {h: (lab.dc, plan["hosts"][h]["cluster"] or "") for h in lab.hosts}

    def arrived():
        found = {
            r.get("node"): (r.get("datacenter"), r.get("cluster", ""))
            for r in logstore.query(store, f'"{token}"')
            if r.get("_msg") == f"{token} {r.get('node')}"
        }
        if sorted(found) == sorted(expected):
            return found
        raise AssertionError(f"not yet from {sorted(set(expected) - set(found))}: {found}")

    assert _wait("every host's journal line in the log store", arrived) == expected


# On a minion, with the kubeconfigs the node agents run with and their own API client (the
# role's copy under node_agents_dir; the minions have no Python Kubernetes client): the HTTP
# status of each call.
_AGENT_CALLS = (
    "import json,sys\n"
    "sys.path.insert(0,'/usr/local/lib/cloud58-agents')\n"
    "from ansible_collections.cloud58.platform.plugins.module_utils.kube import apiclient\n"
    "node=sys.argv[1]\n"
    "def status(agent,method,path,query=None,body=None):\n"
    "    api=apiclient.Client.from_kubeconfig(f'/etc/cloud58/{agent}.kubeconfig')\n"
    "    try:\n"
    "        api.request(method,path,query,body)\n"
    "        return 200\n"
    "    except apiclient.ApiError as e:\n"
    "        return e.status\n"
    "pods=('GET','/api/v1/pods',{'fieldSelector':f'spec.nodeName={node}'})\n"
    "read=('GET',f'/api/v1/nodes/{node}')\n"
    "taint=('PATCH',f'/api/v1/nodes/{node}',{'dryRun':'All'},{'metadata':{'labels':{'cloud58.io/probe':'1'}}})\n"
    "print(json.dumps({\n"
    "    'netshaper lists its pods':status('netshaper',*pods),\n"
    "    'netshaper reads its node':status('netshaper',*read),\n"
    "    'overload reads its node':status('overload',*read),\n"
    "    'overload patches its node':status('overload',*taint),\n"
    "    'overload lists pods':status('overload',*pods),\n"
    # authorized, then not found: 404; refused: 403
    "    'crashkeeper patches a pod status':status('crashkeeper','PATCH',"
    "'/api/v1/namespaces/default/pods/cloud58-no-such-pod/status',{'dryRun':'All'},{'status':{'phase':'Failed'}}),\n"
    "    'crashkeeper lists pods':status('crashkeeper',*pods),\n"
    "    'crashkeeper lists the kubelets probe events':status('crashkeeper','GET','/api/v1/events',"
    "{'fieldSelector':'involvedObject.kind=Pod,reason=Unhealthy,source=kubelet','limit':'1'}),\n"
    "    'loadannotator reads its node':status('loadannotator',*read),\n"
    "    'loadannotator patches its node':status('loadannotator',*taint),\n"
    "    'loadannotator lists pods':status('loadannotator',*pods),\n"
    "}))\n"
)


def test_the_node_agents_run_on_the_minions_with_their_own_certificates(lab):
    """site.yml's agents stage: cloud58-netshaper, cloud58-overload, cloud58-crashkeeper,
    cloud58-loadannotator and cloud58-signals run on every minion; all but signals reach the API
    with the client
    certificates the join stage installed, which the ClusterRoles of clusters/ allow exactly
    what their agent does (a dry-run patch stands for overload's taint; crashkeeper's patch of
    a pod that does not exist is authorized, then not found; its list of Events takes the
    field selector its watch uses); Prometheus scrapes the signals of every node of the
    cluster: the minions', and the masters', where the same stage runs signals alone."""
    minions = [f"{lab.dc}-w1", f"{lab.dc}-w2"]
    found = {}
    for host in minions:
        states = lab.exec(
            host,
            [
                "systemctl",
                "is-active",
                *(
                    f"cloud58-{a}"
                    for a in ("netshaper", "overload", "crashkeeper", "loadannotator", "signals")
                ),
            ],
            check=False,
        ).stdout.split()
        calls = json.loads(lab.exec(host, ["python3", "-c", _AGENT_CALLS, host]).stdout)
        found[host] = (states, calls)
    expected_calls = {
        "netshaper lists its pods": 200,
        "netshaper reads its node": 403,
        "overload reads its node": 200,
        "overload patches its node": 200,
        "overload lists pods": 403,
        "crashkeeper patches a pod status": 404,
        "crashkeeper lists pods": 403,
        "crashkeeper lists the kubelets probe events": 200,
        "loadannotator reads its node": 200,
        "loadannotator patches its node": 200,
        "loadannotator lists pods": 403,
    }
    assert found == dict.fromkeys(minions, (["active"] * 5, expected_calls))

    def signals_up():
        out = lab.exec(f"{lab.dc}-m1", ["python3", "-c", _TARGETS], check=False).stdout
        up = sorted(
            name for job, name, state, _ in json.loads(out or "[]") if job == "signals" and state == "up"
        )
        if up != nodes:
            raise AssertionError(up)
        return up

    nodes = sorted(lab.cluster["nodes"])
    assert nodes == sorted([*minions, *lab.masters])
    assert _wait("Prometheus scraping every node's cloud58-signals", signals_up, timeout=60) == nodes


LOAD_ANNOTATIONS = (
    "cloud58.io/load-cpu-1m",
    "cloud58.io/load-cpu-5m",
    "cloud58.io/load-memory-1m",
    "cloud58.io/load-memory-5m",
)


def test_each_minions_node_carries_the_load_its_own_agents_measured(lab):
    """cloud58-loadannotator on each minion (site.yml's agents stage) writes its Node's four load
    annotations from the minion's cloud58-signals. The Node holds exactly the last figures the
    agent's journal says it patched (its first pass patches all four), and the memory figure is
    that of the minion's /proc/meminfo, read by the test, within 5 percentage points (it is a
    mean over the last minute; the lab's containers see the host's memory)."""
    minions = [f"{lab.dc}-w1", f"{lab.dc}-w2"]

    def patched(host):
        journal = lab.exec(
            host, ["journalctl", "--no-pager", "-o", "cat", "-u", "cloud58-loadannotator"], check=False
        ).stdout
        figures = {}
        for line in journal.splitlines():
            if line.startswith('{"node": '):
                entry = json.loads(line)
                assert entry["node"] == host, line  # its own Node only
                figures.update(entry["patched"])
        return figures

    def agreed():
        before = {host: patched(host) for host in minions}
        nodes = _nodes(lab)
        after = {host: patched(host) for host in minions}
        if before != after or any(sorted(after[h]) != list(LOAD_ANNOTATIONS) for h in minions):
            return None  # a pass in between, or the first pass not done yet
        return {
            h: (after[h], {k: nodes[h]["metadata"]["annotations"].get(k) for k in LOAD_ANNOTATIONS})
            for h in minions
        }

    found = _wait("each minion's Node annotated by its cloud58-loadannotator", agreed, timeout=120)
    assert {h: written for h, (written, _) in found.items()} == {
        h: on_node for h, (_, on_node) in found.items()
    }
    for host in minions:
        meminfo = dict(
            line.split(":", 1) for line in lab.exec(host, ["cat", "/proc/meminfo"]).stdout.splitlines()
        )
        used = 100 * (1 - int(meminfo["MemAvailable"].split()[0]) / int(meminfo["MemTotal"].split()[0]))
        assert abs(float(found[host][1]["cloud58.io/load-memory-1m"]) - used) < 5.0, (host, used, found[host])


def test_every_static_pod_is_running_and_ready_by_its_kubelets_probes(lab):
    """The masters' kubelets run the five static pods each and report them as mirror pods:
    Running, and Ready, which only the kubelet's readiness probes make them."""
    states = lab.pod_states()
    expected = {
        f"{c}-{h}"
        for h in lab.masters
        for c in ("etcd", "etcd-events", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
    }
    assert set(states) == expected
    assert {s for s in states.values()} == {"Running"}

    def unready():
        pods = json.loads(lab.kubectl(lab.endpoint, "get", "pods", "-n", "kube-system", "-o", "json").stdout)
        return sorted(
            p["metadata"]["name"]
            for p in pods["items"]
            if p["metadata"]["name"] in expected
            and not any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])
            )
        )

    assert (
        _wait("every static pod Ready", lambda: unready() == [] or None, timeout=120, detail=unready) is True
    )


def test_every_probe_answers(lab):
    failing = []
    for host in lab.masters:
        for file, pod in lab.manifests(host).items():
            container = pod["spec"]["containers"][0]
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                get = container[kind]["httpGet"]
                url = f"{get['scheme'].lower()}://{get['host']}:{get['port']}{get['path']}"
                status, body = lab.http_get_in(host, url)
                if status != 200:
                    failing.append(f"{host} {file} {kind} {url}: {status} {body[:80]}")
    assert failing == []


@pytest.mark.parametrize("kind", ["etcd", "etcd_events"])
def test_three_member_etcds_are_healthy(lab, kind):
    members = json.loads(lab.etcdctl(kind, "member", "list", "-w", "json").stdout)["members"]
    assert sorted(m["name"] for m in members) == sorted(lab.masters)
    assert sorted(u for m in members for u in m["clientURLs"]) == sorted(
        m["client_url"] for m in lab.cluster[kind]["members"]
    )
    health = json.loads(lab.etcdctl(kind, "endpoint", "health", "-w", "json").stdout)
    assert [h["health"] for h in health] == [True, True, True]


def test_three_apiservers_behind_the_kubernetes_service(lab):
    def addresses():
        ep = json.loads(lab.kubectl(lab.endpoint, "get", "endpoints", "kubernetes", "-o", "json").stdout)
        return sorted(a["ip"] for s in ep.get("subsets", []) for a in s.get("addresses", []))

    want = sorted(m.address for m in lab.masters.values())
    _wait("three addresses in Endpoints kubernetes", lambda: addresses() == want, timeout=60)
    for m in lab.masters.values():
        status, body = lab.http_get_in(
            m.name, f"https://{m.address}:6443/readyz", "/etc/kubernetes/pki/ca.crt"
        )
        assert (status, body) == (200, "ok")


@pytest.mark.parametrize("lease", ["kube-controller-manager", "kube-scheduler"])
def test_controllers_elect_one_leader_among_the_masters(lab, lease):
    def holder():
        obj = json.loads(
            lab.kubectl(lab.endpoint, "get", "lease", "-n", "kube-system", lease, "-o", "json").stdout
        )
        return obj["spec"].get("holderIdentity", "")

    identity = _wait(f"a {lease} leader", holder, timeout=90)
    assert identity.split("_", 1)[0] in lab.masters


def test_events_are_stored_in_the_events_etcd(lab):
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "cloud58-lab-probe", "namespace": "default"},
        "involvedObject": {"kind": "Namespace", "name": "default", "apiVersion": "v1"},
        "reason": "Cloud58LabProbe",
        "message": "stored where?",
        "type": "Normal",
    }
    lab.kubectl(lab.endpoint, "create", "-f", "-", input_text=json.dumps(event))
    key = "/registry/events/default/cloud58-lab-probe"
    in_events = lab.etcdctl(
        "etcd_events", "get", "--prefix", "--keys-only", "/registry/events/default/"
    ).stdout
    in_main = lab.etcdctl("etcd", "get", "--prefix", "--keys-only", "/registry/events/").stdout
    assert key in in_events.split()
    assert in_main.strip() == ""


def test_secrets_are_encrypted_at_rest_and_audited(lab):
    lab.kubectl(
        lab.endpoint, "create", "secret", "generic", "cloud58-lab-secret", "--from-literal=token=plain-value"
    )
    raw = subprocess.run(
        [
            lab.bin_dir / "etcdctl",
            f"--endpoints={lab.cluster['etcd']['members'][0]['client_url']}",
            f"--cacert={lab.pki_dir / lab.cluster['name'] / 'etcd/ca.crt'}",
            f"--cert={lab.pki_dir / lab.cluster['name'] / 'apiserver-etcd-client.crt'}",
            f"--key={lab.pki_dir / lab.cluster['name'] / 'apiserver-etcd-client.key'}",
            "get",
            "--print-value-only",
            "/registry/secrets/default/cloud58-lab-secret",
        ],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    assert raw.startswith(b"k8s:enc:secretbox:v1:key1:")
    assert b"plain-value" not in raw

    def audited():
        lines = []
        for host in lab.masters:
            log = lab.rootfs(host) / "var/log/kubernetes/audit/audit.log"
            if log.exists():
                lines += [json.loads(line) for line in log.read_text().splitlines()]
        return [
            e
            for e in lines
            if e.get("objectRef", {}).get("name") == "cloud58-lab-secret" and e["verb"] == "create"
        ]

    entries = _wait("an audit entry for the Secret", audited, timeout=30)
    assert entries[0]["level"] == "Metadata"
    assert "requestObject" not in entries[0]


def _run_secrets(lab) -> list[str]:
    """What this run holds secret: key bodies, the encryption key, the admin kubeconfig's key,
    Consul's secrets."""
    pki = lab.pki_dir / lab.cluster["name"]
    known = key_bodies(p.read_text() for p in pki.rglob("*.key"))
    encryption = yaml.safe_load((pki / "encryption-config.yaml").read_text())
    known.append(encryption["resources"][0]["providers"][0]["secretbox"]["keys"][0]["secret"])
    return known + sorted(lab.secrets.values())  # Consul's gossip key and management token


def test_check_mode_runs_logs_and_rendered_files_hold_no_secret(lab):
    """Every playbook that reaches these masters, in check and diff mode at -vvv, and the
    preflight and render playbooks, print no key; nor do the earlier runs, the lab's logs,
    clusters/ or build/."""
    outputs = {"first run": lab.first_run.stdout, "second run": lab.second_run.stdout}
    for playbook in ("control-plane.yml", "validate.yml", "render.yml"):
        run = lab.ansible_playbook(playbook, {}, "--check", "--diff", "-vvv")
        assert run.returncode == 0, run.stdout[-4000:]
        outputs[f"{playbook} --check --diff -vvv"] = run.stdout + run.stderr
    known = _run_secrets(lab)
    findings = [f for name, text in outputs.items() for f in scan_text(text, name, known)]
    # The lab's own credentials (the PKI directory, kubeconfigs through a master's balancer)
    # are files for secrets, readable by root only; everything else it wrote is output.
    credentials = [lab.pki_dir, *lab.workdir.glob("kubeconfig-*"), lab.workdir / "secrets.json"]
    assert {oct(p.stat().st_mode & 0o777) for p in credentials[1:]} == {"0o600"}
    logs = [p for p in lab.workdir.iterdir() if p not in credentials]
    repo_outputs = [REPO / "clusters", *[REPO / "build"] * (REPO / "build").exists()]
    findings += scan_paths([*logs, *repo_outputs], known, REPO)
    assert [str(f) for f in findings] == []
    # The scan sees what it looks for: the PKI directory itself is full of findings.
    assert {f.kind for f in scan_paths([lab.pki_dir], known)} >= {"Private Key", "a secret of this run"}


def test_keys_kubeconfigs_and_encryption_config_are_readable_by_root_only(lab):
    def secret(path: Path) -> bool:
        text = path.read_text(errors="replace")
        return any(marker in text for marker in ("PRIVATE KEY", "client-key-data", "secretbox"))

    def modes(root: Path) -> dict:
        files = (p for p in root.rglob("*") if p.is_file())
        return {str(p.relative_to(root)): oct(p.stat().st_mode & 0o777) for p in files}

    controller = lab.pki_dir / lab.cluster["name"]
    on_controller = {k: v for k, v in modes(controller).items() if secret(controller / k)}
    assert {"admin.kubeconfig", "encryption-config.yaml", "ca.key"} <= set(on_controller)
    assert set(on_controller.values()) == {"0o600"}
    for host in lab.masters:
        etc = lab.rootfs(host) / "etc/kubernetes"
        on_host = {k: v for k, v in modes(etc).items() if secret(etc / k)}
        assert {"pki/apiserver.key", "pki/etcd/server.key", "pki/encryption-config.yaml"} <= set(on_host)
        assert {k: v for k, v in on_host.items() if v != "0o600"} == {}


@pytest.mark.parametrize("kind", ["etcd", "etcd_events"])
@pytest.mark.parametrize("url", ["client_url", "peer_url"])
def test_etcd_accepts_only_clients_with_a_certificate(lab, kind, url):
    """Mutual TLS on etcd's client and peer ports: the handshake without a client certificate
    yields no answer; with the apiserver's etcd client certificate /health answers."""
    pki = lab.pki_dir / lab.cluster["name"]
    member = lab.cluster[kind]["members"][0]
    address, port = member[url].removeprefix("https://").rsplit(":", 1)

    def get_health(with_certificate: bool) -> str:
        """The first bytes of the answer; "" when the server ends the connection (TLS 1.3 alerts
        a missing certificate after the client's handshake, on the first read)."""
        ctx = ssl.create_default_context(cafile=str(pki / "etcd/ca.crt"))
        ctx.check_hostname = False
        if with_certificate:
            ctx.load_cert_chain(pki / "apiserver-etcd-client.crt", pki / "apiserver-etcd-client.key")
        request = f"GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n".encode()
        try:
            with (
                socket.create_connection((address, int(port)), timeout=5) as sock,
                ctx.wrap_socket(sock) as tls,
            ):
                tls.sendall(request)
                return tls.recv(4096).decode(errors="replace")
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return ""

    assert get_health(False) == ""
    answer = get_health(True)
    # The client port serves /health; the peer port answers HTTP too (404 for that path).
    assert answer.startswith("HTTP/1.1 200" if url == "client_url" else "HTTP/1.1 ")


def _serving_serial(lab, address: str, port: int, etcd: bool = False) -> int:
    """Serial number of the certificate a listener presents right now."""
    pki = lab.pki_dir / lab.cluster["name"]
    ctx = ssl.create_default_context(cafile=str(pki / ("etcd/ca.crt" if etcd else "ca.crt")))
    ctx.check_hostname = False
    if etcd:
        ctx.load_cert_chain(pki / "apiserver-etcd-client.crt", pki / "apiserver-etcd-client.key")
    with socket.create_connection((address, port), timeout=5) as sock, ctx.wrap_socket(sock) as tls:
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def _file_serial(lab, name: str) -> int:
    pem = (lab.pki_dir / lab.cluster["name"] / f"{name}.crt").read_bytes()
    return x509.load_pem_x509_certificate(pem).serial_number


def _first_dc_only(lab):
    if lab.dc != DATACENTERS[0]:
        pytest.skip("upgrade and renewal run in the first lab datacenter only; the others differ in BGP only")


def test_renewal_restarts_every_pod_with_renewed_certificates(lab):
    _first_dc_only(lab)
    before = {h: _serving_serial(lab, m.address, 6443) for h, m in lab.masters.items()}
    assert set(before.values()) == {_file_serial(lab, "apiserver")}
    # Everything expires "within 399 days" when new certificates last 400.
    result = lab.ansible_playbook(
        "renew-certificates.yml",
        {"control_plane_pki_renew_before_days": 399, "control_plane_pki_cert_days": 400},
    )
    assert result.returncode == 0, result.stdout[-6000:]
    recap = play_recap(result.stdout)
    assert all(recap[h]["changed"] > 0 for h in lab.masters)
    renewed = _file_serial(lab, "apiserver")
    assert renewed not in before.values()

    def serving_renewed():
        return all(
            _serving_serial(lab, m.address, 6443) == renewed
            and _serving_serial(lab, m.address, 2379, etcd=True) == _file_serial(lab, f"etcd/{h}-server")
            and _serving_serial(lab, m.address, 2383, etcd=True)
            == _file_serial(lab, f"etcd/{h}-events-server")
            for h, m in lab.masters.items()
        )

    _wait("every master serving its renewed certificates", serving_renewed, timeout=120)
    _wait(
        "every static pod running again", lambda: set(lab.pod_states().values()) == {"Running"}, timeout=120
    )
    assert lab.kubectl(lab.endpoint, "get", "--raw", "/readyz").stdout == "ok"


def test_upgrade_to_the_running_version_changes_nothing(lab):
    _first_dc_only(lab)
    result = lab.ansible_playbook("upgrade-control-plane.yml", {})
    assert result.returncode == 0, result.stdout[-6000:]
    recap = play_recap(result.stdout)
    assert {h: recap[h]["changed"] for h in lab.masters} == dict.fromkeys(lab.masters, 0)
    # One master at a time: each waited for its apiserver before the next began.
    assert result.stdout.count("Wait until this master's kube-apiserver is ready") == len(lab.masters)


def test_upgrade_stops_at_the_first_master_that_does_not_come_back(lab):
    _first_dc_only(lab)
    first, *rest = lab.cluster["masters"]
    before = _digest_of_manifests(lab)
    # v1.36.4 has no image in the lab: the first master's new pods cannot start.
    result = lab.ansible_playbook(
        "upgrade-control-plane.yml", {"control_plane_version": "v1.36.4", "control_plane_wait_timeout": 20}
    )
    assert result.returncode != 0
    after = _digest_of_manifests(lab)
    assert after[first] != before[first]
    assert {h: after[h] for h in rest} == {h: before[h] for h in rest}
    images = {f: p["spec"]["containers"][0]["image"] for f, p in lab.manifests(first).items()}
    assert images["kube-apiserver.yaml"] == "localhost/cloud58/kube-apiserver:v1.36.4"
    assert re.search(rf"(fatal|failed): \[{first}\]", result.stdout)
    masters_play = result.stdout.split("PLAY [Upgrade the masters")[1].split("PLAY RECAP")[0]
    assert [h for h in rest if f"[{h}]" in masters_play] == []  # the run stopped at the first master
    # The other two apiservers keep the API up.
    assert lab.kubectl(lab.endpoint, "get", "--raw", "/readyz").stdout == "ok"
    # Back to the running version: the first master is healthy again.
    restore = lab.ansible_playbook("upgrade-control-plane.yml", {})
    assert restore.returncode == 0, restore.stdout[-6000:]
    assert _digest_of_manifests(lab) == before
    status, body = lab.http_get_in(first, f"https://{lab.masters[first].address}:6443/readyz")
    assert (status, body) == (200, "ok")


# A minion that inventories/lab does not have, per datacenter: rack and a free address of its
# The plan's labels of the lab's minions, written out (inventories/lab: rack and function).
MINION_LABELS = {
    "lab1-w1": ("lab1", "lab1-r1", "ingress"),
    "lab1-w2": ("lab1", "lab1-r2", "online"),
    "lab2-w1": ("lab2", "lab2-r1", "ingress"),
    "lab2-w2": ("lab2", "lab2-r2", "online"),
    "lab1-w3": ("lab1", "lab1-r1", "online"),
    "lab2-w3": ("lab2", "lab2-r1", "online"),
}


def _nodes(lab) -> dict:
    items = json.loads(lab.kubectl(lab.endpoint, "get", "nodes", "-o", "json").stdout)["items"]
    return {n["metadata"]["name"]: n for n in items}


def _ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])


def _assert_joined(lab, names: list) -> None:
    nodes = _wait(
        f"Ready Nodes {names}",
        lambda: (found := _nodes(lab)) and all(n in found and _ready(found[n]) for n in names) and found,
    )
    for name in names:
        node = nodes[name]
        dc, rack, function = MINION_LABELS[name]
        labels = node["metadata"]["labels"]
        assert {
            k: v for k, v in labels.items() if k.startswith(("cloud58.io/", "topology.kubernetes.io/"))
        } == {
            "cloud58.io/function": function,
            "cloud58.io/location": dc,
            "cloud58.io/rack": rack,
            "topology.kubernetes.io/region": dc,
            "topology.kubernetes.io/zone": rack,
        }
        info = node["status"]["nodeInfo"]
        assert (info["kubeletVersion"], info["containerRuntimeVersion"].split(":")[0]) == (
            "v1.36.3",
            "containerd",
        )
        addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
        assert (
            addresses["InternalIP"] == (lab.plan["hosts"].get(name) or lab.added["minions"][name])["address"]
        )


def test_minions_register_ready_nodes_with_the_plan_labels(lab):
    _assert_joined(lab, lab.minions)
    assert sorted(_nodes(lab)) == sorted([*lab.masters, *lab.minions])


def test_masters_register_ready_nodes_tainted_for_the_control_plane_alone(lab):
    """The masters' kubelets, which run the control plane, register Nodes too: Ready, with the
    plan's labels, and the control plane's taint, so that the scheduler places no other pod
    there."""
    nodes = _wait(
        "Ready master Nodes",
        lambda: (
            (found := _nodes(lab)) and all(m in found and _ready(found[m]) for m in lab.masters) and found
        ),
    )
    for name in lab.masters:
        node = nodes[name]
        rack = lab.plan["hosts"][name]["rack"]
        labels = node["metadata"]["labels"]
        assert {k: v for k, v in labels.items() if k.startswith("topology.kubernetes.io/")} == {
            "topology.kubernetes.io/region": lab.dc,
            "topology.kubernetes.io/zone": rack,
        }
        assert node["spec"].get("taints") == [
            {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"}
        ]


# clusters/<cluster>/cluster.yml: node_annotations of the minions, which reconcile wrote.
AS_NUMBERS = {"lab1-w1": "65111", "lab1-w2": "65112", "lab2-w1": "65211", "lab2-w2": "65212"}


def test_reconcile_gave_the_nodes_their_as_numbers_and_the_namespaces(lab):
    nodes = _nodes(lab)
    assert {
        name: nodes[name]["metadata"].get("annotations", {}).get("projectcalico.org/ASNumber")
        for name in lab.minions
    } == {name: AS_NUMBERS[name] for name in lab.minions}
    assert lab.kubectl(lab.endpoint, "get", "namespace", "cloud58-system", "-o", "name").stdout.strip() == (
        "namespace/cloud58-system"
    )


def test_a_pod_runs_on_each_minion_with_an_address_of_its_block(lab):
    lab.kubectl(lab.endpoint, "create", "serviceaccount", "default", "--namespace", "default", check=False)
    for host in lab.minions:
        pod = _pause_pod(lab, f"pause-{host}", host)
        lab.kubectl(lab.endpoint, "apply", "-f", "-", input_text=json.dumps(pod))

    def ips():
        items = json.loads(lab.kubectl(lab.endpoint, "get", "pods", "-n", "default", "-o", "json").stdout)[
            "items"
        ]
        running = {
            p["spec"]["nodeName"]: p["status"].get("podIP")
            for p in items
            if p["status"].get("phase") == "Running"
        }
        return running if sorted(running) == sorted(lab.minions) else None

    for host, ip in _wait("a running pause pod on every minion", ips).items():
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(lab.pod_block(host)), (host, ip)
    # Bare pods: a drain (remove-node.yml) refuses them, as kubectl drain does.
    names = [f"pause-{host}" for host in lab.minions]
    lab.kubectl(lab.endpoint, "delete", "pod", "--namespace", "default", *names)


# What `tc -j qdisc show` on the minion says of shaping qdiscs: (device kind, qdisc, bytes/s).
_TBF_ON_NODE = (
    "import json,subprocess\n"
    "links={l['ifname']:l for l in json.loads(subprocess.run(['ip','-j','-d','link','show'],"
    "capture_output=True,text=True,check=True).stdout)}\n"
    "out=[]\n"
    "qdiscs=subprocess.run(['tc','-j','qdisc','show'],capture_output=True,text=True,check=True).stdout\n"
    "for q in json.loads(qdiscs):\n"
    "    if q.get('kind')=='tbf':\n"
    "        kind=links.get(q['dev'],{}).get('linkinfo',{}).get('info_kind','')\n"
    "        out.append([kind,q['kind'],q['options']['rate']])\n"
    "print(json.dumps(sorted(out)))\n"
)


def test_the_echo_deployment_from_apps_answers_http_from_a_pod_in_another_rack(lab):
    """The Deployment rendered from apps/echo.yaml, which `make lab` reconciled, runs real
    containers (the demo app's image is the lab's stand-in, images/pause/echo): once its pod
    is Ready by the kubelet's probes, it answers, from an address of its node's block, a pod
    on a minion of the other rack with the app's ECHO_MESSAGE, through the ToRs (the route
    each node's BIRD learnt from them)."""
    lab.kubectl(lab.endpoint, "create", "serviceaccount", "default", "--namespace", "default", check=False)
    pods = _wait(
        "the echo Deployment's pods Ready",
        lambda: _ready_pods(lab, "lab-demo", "app.kubernetes.io/name=echo"),
    )
    placed = json.loads(
        lab.kubectl(
            lab.endpoint, "get", "pods", "-n", "lab-demo", "-l", "app.kubernetes.io/name=echo", "-o", "json"
        ).stdout
    )
    node_of = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in placed["items"]}
    answers, clients = {}, []
    try:
        for index, (pod, address) in enumerate(sorted(pods.items())):
            node = node_of[pod]
            assert ipaddress.ip_address(address) in ipaddress.ip_network(lab.pod_block(node))
            rack = lab.plan["hosts"][node]["rack"]
            other = next(
                m for m in lab.minions if (lab.plan["hosts"].get(m) or {}).get("rack") not in (None, rack)
            )
            client = f"echo-client-{index}-{os.getpid()}"
            clients.append(client)
            answers[pod] = _get_once(lab, client, other, "default", f"http://{address}:8080/")
    finally:
        for client in clients:
            lab.kubectl(lab.endpoint, "delete", "pod", client, "--wait=true", check=False, timeout=120)
    assert answers == {pod: ("Succeeded", f"200 hello from cloud58 from {pod}\n") for pod in pods}


def test_cross_rack_traffic_survives_a_stopped_tor(lab):
    """Issue 13 item 6 on the lab's fabric: a minion sends HTTP requests to the echo pod in the
    other rack through the ToR its kernel picks of its two; that ToR is powered off (links
    down, then FRR killed: its peers hear nothing and wait out the hold time, 9 s from the
    plan's BGP options). The minion's route keeps the other ToR alone, the core's route to
    the minion's block too, and every request is answered again. The ToR then comes back and
    the route has both again. The seconds until the routes converged are printed, not
    asserted."""
    from cloud58_lab.bgplab import render_frr

    net = lab.fabric.net
    pods = _ready_pods(lab, "lab-demo", "app.kubernetes.io/name=echo")
    placed = json.loads(
        lab.kubectl(
            lab.endpoint, "get", "pods", "-n", "lab-demo", "-l", "app.kubernetes.io/name=echo", "-o", "json"
        ).stdout
    )
    pod, address = sorted(pods.items())[0]
    node = next(p["spec"]["nodeName"] for p in placed["items"] if p["metadata"]["name"] == pod)
    racks = _datacenter_yaml(lab.dc)["racks"]
    client = next(m for m in (f"{lab.dc}-w1", f"{lab.dc}-w2") if m != node)
    rack = lab.plan["hosts"][client]["rack"]
    tors = {t["address"]: t["name"] for t in racks[rack]["tors"]}
    block = lab.pod_block(node)
    assert net.kernel_nexthops(client, block) == sorted(tors)
    used = json.loads(lab.exec(client, ["ip", "-j", "route", "get", address]).stdout)[0]["gateway"]
    dead, alive = tors[used], next(a for a in tors if a != used)
    core = _datacenter_yaml(lab.dc)["bgp"]["core_routers"][0]["name"]
    client_block = lab.pod_block(client)
    alive_uplinks = _uplink_addresses(net, tors[alive])

    def answered() -> int:
        out = lab.exec(client, ["python3", "-c", _GETS, f"http://{address}:8080/", "12"], timeout=120).stdout
        return sum(1 for line in out.splitlines() if line == f"200 hello from cloud58 from {pod}")

    assert answered() == 12
    started = time.monotonic()
    net.set_links(dead, up=False)
    net.stop_router(dead, signal.SIGKILL)
    try:
        _wait(
            f"{client}: the route to {block} through {tors[alive]} alone",
            lambda: net.kernel_nexthops(client, block) == [alive],
            timeout=90,
            interval=0.5,
        )
        _wait(
            f"{core}: the route to {client_block} through {tors[alive]} alone",
            lambda: (hops := set(net.kernel_nexthops(core, client_block))) and hops <= alive_uplinks,
            timeout=90,
            interval=0.5,
        )
        converged = time.monotonic() - started
        assert answered() == 12
    finally:
        net.set_links(dead, up=True)
        net.start_frr(dead, render_frr(lab.fabric.configs[dead]))
        _wait(f"{dead} back with every session", lambda: lab.fabric.established(dead), timeout=180)
    _wait(
        f"{client}: both ToRs again", lambda: net.kernel_nexthops(client, block) == sorted(tors), timeout=60
    )
    print(f"\nroutes converged {converged:.1f}s after {dead} stopped")


def test_a_pods_bandwidth_annotations_shape_its_veth_through_the_cni_chain(lab):
    """The lab minions' CNI chain ends with the `bandwidth` plugin (docs/node-protection.md):
    the real kubelet and containerd pass a pod's kubernetes.io/{ingress,egress}-bandwidth
    annotations as the `bandwidth` capability, and the plugin shapes the pod's host-side veth
    (a tbf at the ingress rate) and an ifb its ingress is redirected to (a tbf at the egress
    rate); cloud58-netshaper applies changed annotations to the running pod; the pod's
    deletion removes both. Other pods on the minion may be shaped already
    (lab-demo's echo, which its app spec gives 100M and 50M): the test counts what this pod
    adds to them."""
    host = lab.minions[-1]
    name = f"shaped-{host}"

    def tbfs():
        return collections.Counter(
            tuple(q) for q in json.loads(lab.exec(host, ["python3", "-c", _TBF_ON_NODE]).stdout)
        )

    before = tbfs()

    def both():  # the plugin adds the veth's qdisc and the ifb's one by two tc calls
        added = tbfs() - before
        return sorted(added.elements()) if sum(added.values()) >= 2 else None

    rates = {"kubernetes.io/ingress-bandwidth": "10M", "kubernetes.io/egress-bandwidth": "20M"}
    pod = _pause_pod(lab, name, host, annotations=rates)
    lab.kubectl(lab.endpoint, "create", "serviceaccount", "default", "--namespace", "default", check=False)
    lab.kubectl(lab.endpoint, "apply", "-f", "-", input_text=json.dumps(pod))

    def reshaped():
        added = sorted((tbfs() - before).elements())
        return added if added == [("ifb", "tbf", 5000000), ("veth", "tbf", 3750000)] else None

    try:
        shaped = _wait("the pod's veth and ifb shaped", both)
        # A change on the running pod: the CNI plugin acts only when the sandbox is made;
        # cloud58-netshaper (site.yml's agents stage) follows the annotation. It finds the
        # bridge plugin's veth<hex> by the pod's address (--veth-lookup auto) and replaces the
        # tbf on it and on the plugin's ifb; 30M and 40M are 3,750,000 and 5,000,000 bytes/s.
        lab.kubectl(
            lab.endpoint, "annotate", "--overwrite", "pod", "-n", "default", name,
            "kubernetes.io/ingress-bandwidth=30M", "kubernetes.io/egress-bandwidth=40M",
        )  # fmt: skip
        _wait("cloud58-netshaper's new rates on the running pod's veth and ifb", reshaped)
    finally:
        lab.kubectl(lab.endpoint, "delete", "pod", "-n", "default", name, "--wait=true", check=False)
    # 10M and 20M bits/s are 1,250,000 and 2,500,000 bytes/s, as tc's JSON gives rates.
    assert shaped == [("ifb", "tbf", 2500000), ("veth", "tbf", 1250000)]

    def left():
        now = tbfs()
        extra, missing = sorted((now - before).elements()), sorted((before - now).elements())
        return f"tbfs added since the test began: {extra}, gone since: {missing}"

    assert _wait("no shaping of its left once the pod is gone", lambda: tbfs() == before or None, detail=left)


def test_a_pods_pid_limit_is_its_cgroups_pids_max(lab):
    """Thread caps (docs/node-protection.md): the real kubelet gives each pod's cgroup the
    pids.max of its node's function (the kubelet role's kubelet_pod_pids_limits, as
    podPidsLimit), and cloud58-netshaper writes a pod's cloud58.io/pids-limit over it while the
    pod runs. The lab's kubelets use the systemd cgroup driver: a BestEffort pod's cgroup is
    kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid, _ for ->.slice."""
    role = REPO / "collections/ansible_collections/cloud58/platform/roles/kubelet"
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text())
    host = lab.minions[0]
    function = lab.plan["hosts"][host]["labels"]["function"]
    names = {"plain": f"pids-plain-{host}", "capped": f"pids-capped-{host}"}
    lab.kubectl(lab.endpoint, "create", "serviceaccount", "default", "--namespace", "default", check=False)
    for kind, name in names.items():
        annotations = {"cloud58.io/pids-limit": "64"} if kind == "capped" else {}
        pod = _pause_pod(lab, name, host, annotations=annotations)
        lab.kubectl(lab.endpoint, "apply", "-f", "-", input_text=json.dumps(pod))

    def uids():
        got = {}
        for kind, name in names.items():
            pod = json.loads(
                lab.kubectl(lab.endpoint, "get", "pod", "-n", "default", name, "-o", "json").stdout
            )
            if pod["status"].get("phase") != "Running":
                return None
            got[kind] = pod["metadata"]["uid"].replace("-", "_")
        return got

    def pids_max(uid: str) -> str:
        slice_ = f"kubepods-besteffort-pod{uid}.slice"
        path = f"/sys/fs/cgroup/pids/kubepods.slice/kubepods-besteffort.slice/{slice_}/pids.max"
        return lab.exec(host, ["cat", path]).stdout.strip()

    def written(running: dict):
        if pids_max(running["capped"]) != "64":
            return None
        return {kind: pids_max(uid) for kind, uid in running.items()}

    def where(running: dict) -> str:  # for the failure: where the pods' cgroups are, if not there
        find = ["find", "/sys/fs/cgroup/pids", "-name", f"*{running['plain'][:8]}*"]
        return "the plain pod's cgroups: " + lab.exec(host, find, check=False).stdout.strip()

    try:
        running = _wait("both pods running", uids)
        found = _wait(
            "cloud58-netshaper's pids.max on the annotated pod",
            lambda: written(running),
            detail=lambda: where(running),
        )
    finally:
        lab.kubectl(
            lab.endpoint, "delete", "pod", "-n", "default", *names.values(), "--wait=true", check=False
        )
    assert found == {"plain": str(defaults["kubelet_pod_pids_limits"][function]), "capped": "64"}


def _overload_state(lab, node: str) -> tuple:
    """(cloud58-overload's taint on ``node``, its condition's status and reason) as the API
    server has them."""
    got = json.loads(lab.kubectl(lab.endpoint, "get", "node", node, "-o", "json").stdout)
    taints = [
        f"{t['key']}:{t['effect']}"
        for t in got["spec"].get("taints") or []
        if t["key"] == "cloud58.io/overloaded"
    ]
    found = [c for c in got["status"].get("conditions") or [] if c["type"] == "CloudFiftyEightOverloaded"]
    return (taints, *((found[0]["status"], found[0]["reason"]) if found else (None, None)))


def test_a_cpu_burner_pod_overloads_its_minion_until_it_is_deleted(lab):
    """Host overload protection (docs/node-protection.md) with a real CPU burner: a pod on a
    minion that is clear runs the lab image's /burn with three threads per CPU of this machine, so on every
    CPU one of its threads waits (PSI's "some" is per CPU: with one thread more than the CPUs,
    the minion's pressure stayed near 65 %, measured). cloud58-overload (site.yml's agents
    stage) reads its node's CPU pressure; in the lab that is the minion container's own cgroup
    (the unified hierarchy's cpu.pressure, the format of /proc/pressure/cpu, which is this whole
    machine's). The burner's Node gets the taint cloud58.io/overloaded:NoSchedule and the condition
    CloudFiftyEightOverloaded True from its agent; with the pod deleted, both go again."""
    clear = ([], "False", "LoadBelowThreshold")

    def pressures() -> str:
        read = ["cat", "/sys/fs/cgroup/unified/cpu.pressure"]
        return "; ".join(f"{h}: {lab.exec(h, read, check=False).stdout.strip()}" for h in lab.minions)

    # A minion busy with an earlier test (site.yml's runs), or starved by the rest of this
    # shared machine, may still be in its window: the burner goes to a minion that is clear.
    hot = _wait(
        "a minion clear before the burner",
        lambda: next((h for h in lab.minions if _overload_state(lab, h) == clear), None),
        timeout=2 * WAIT,
        detail=pressures,
    )
    name = f"burn-{hot}"
    lab.kubectl(lab.endpoint, "create", "serviceaccount", "default", "--namespace", "default", check=False)
    pod = _pause_pod(lab, name, hot)
    pod["spec"]["terminationGracePeriodSeconds"] = 1
    pod["spec"]["containers"][0]["command"] = ["/burn", str(3 * (os.cpu_count() or 1))]
    lab.kubectl(lab.endpoint, "apply", "-f", "-", input_text=json.dumps(pod))
    overloaded = (["cloud58.io/overloaded:NoSchedule"], "True", "LoadAboveThreshold")
    try:
        found = _wait(
            f"{hot} tainted by its overload agent",
            lambda: _overload_state(lab, hot) == overloaded and overloaded,
            detail=pressures,
        )
    finally:
        lab.kubectl(lab.endpoint, "delete", "pod", "-n", "default", name, "--wait=true", check=False)
    assert found == overloaded
    assert (
        _wait(
            f"{hot} clear once the burner is gone",
            lambda: _overload_state(lab, hot) == clear and clear,
            timeout=2 * WAIT,
            detail=pressures,
        )
        == clear
    )


# On a minion: the host PID of a pod's container through containerd (the CRI's k8s.io
# namespace, the labels the CRI sets), "" while it has no running task.
_CONTAINER_PID = (
    "import json,subprocess,sys\n"
    "ctr=['ctr','-n','k8s.io']\n"
    "want={'io.kubernetes.pod.namespace':sys.argv[1],'io.kubernetes.pod.name':sys.argv[2],"
    "'io.kubernetes.container.name':sys.argv[3]}\n"
    "ids=subprocess.run(ctr+['containers','ls','-q'],capture_output=True,text=True,check=True).stdout.split()\n"
    "tasks={l.split()[0]:l.split() for l in subprocess.run(ctr+['tasks','ls'],capture_output=True,text=True,"
    "check=True).stdout.splitlines()[1:]}\n"
    "for i in ids:\n"
    "    out=subprocess.run(ctr+['containers','info',i],capture_output=True,text=True).stdout\n"
    "    info=json.loads(out or '{}')\n"
    "    labels=info.get('Labels') or {}\n"
    "    if all(labels.get(k)==v for k,v in want.items()) and tasks.get(i,['','',''])[2]=='RUNNING':\n"
    "        print(tasks[i][1])\n"
)


def _first_instance(files: list) -> list:
    """The names of a crash site's files without the logs of later instances: the kubelet
    restarts the container at once and names each instance's log by its restart count
    (``logs/1.log`` ...), and the site keeps every log of the container present at capture."""
    return sorted(f["name"] for f in files if not re.fullmatch(r"logs/[1-9][0-9]*\.log", f["name"]))


def _crash_condition(status: dict) -> tuple:
    """(status, reason, message) of the pod's condition cloud58.io/CrashPreserved; the kubelet
    rewrites the status' own reason at its next sync, but keeps this condition and the phase."""
    found = [c for c in status.get("conditions") or [] if c.get("type") == "cloud58.io/CrashPreserved"]
    return (
        (found[0].get("status"), found[0].get("reason"), found[0].get("message", ""))
        if found
        else (None, None, "")
    )


def _crash_diagnosis(lab, host: str, namespace: str) -> str:
    """What to read when a crashed pod is not Failed and replaced: each pod's phase, its
    containers' states and restarts and the crash condition; what cloud58-crashkeeper said of
    its captures (pod_failed) and errors; what the kubelet logged of the namespace's pods (a
    phase it wrote over, a sandbox it could not start)."""
    out = lab.kubectl(lab.endpoint, "get", "pods", "-n", namespace, "-o", "json", check=False).stdout
    pods = {}
    for pod in json.loads(out)["items"] if out.strip() else []:
        status = pod.get("status", {})
        containers = [
            (c.get("restartCount"), sorted(c.get("state", {})), c.get("ready"))
            for c in status.get("containerStatuses") or []
        ]
        pods[pod["metadata"]["name"]] = (status.get("phase"), containers, _crash_condition(status)[:2])

    def journal(unit: str) -> list:
        text = lab.exec(host, ["journalctl", "--no-pager", "-o", "cat", "-u", unit], check=False).stdout
        return [line[:400] for line in text.splitlines() if namespace in line or "Traceback" in line]

    agent, kubelet = journal("cloud58-crashkeeper")[-6:], journal("kubelet")[-8:]
    return f"pods {pods}; the agent: {agent}; the kubelet: {kubelet}"


def _opted_in_deployment(lab, host: str, namespace: str, name: str, policy: str, **container) -> dict:
    """A Deployment of one pod on ``host`` that opted in (``cloud58.io/crash``: ``policy``) and
    runs the lab's /pause; ``container`` adds fields to its container (a probe)."""
    app = {"name": "app", "image": lab.pause_image, "imagePullPolicy": "Never", **container}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"cloud58.io/crash": policy}},
                "spec": {
                    "nodeName": host,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [app],
                },
            },
        },
    }


# On a minion: how many of three ICMP echo requests to sys.argv[1] are answered (1 s each).
_ECHOES = (
    "import os,socket,struct,sys,time\n"
    "def packet(seq):\n"
    "    body=struct.pack('!HH',os.getpid()&0xffff,seq)+b'cloud58!'\n"
    "    words=struct.unpack('!8H',struct.pack('!BBH',8,0,0)+body)\n"
    "    total=sum(words);total=(total>>16)+(total&0xffff);total+=total>>16\n"
    "    return struct.pack('!BBH',8,0,~total&0xffff)+body\n"
    "sock=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP)\n"
    "answered=0\n"
    "for seq in range(3):\n"
    "    sock.sendto(packet(seq),(sys.argv[1],0))\n"
    "    end=time.monotonic()+1\n"
    "    while time.monotonic()<end:\n"
    "        sock.settimeout(max(end-time.monotonic(),0.01))\n"
    "        try:\n"
    "            data,peer=sock.recvfrom(2048)\n"
    "        except socket.timeout:\n"
    "            break\n"
    "        head=(data[0]&15)*4\n"
    "        kind,_,_,ident,got=struct.unpack('!BBHHH',data[head:head+8])\n"
    "        if kind==0 and ident==os.getpid()&0xffff and got==seq and peer[0]==sys.argv[1]:\n"
    "            answered+=1\n"
    "            break\n"
    "print(answered)\n"
)


def test_a_crashing_container_leaves_its_crash_site_and_its_pod_is_replaced(lab):
    """site.yml's agents stage runs cloud58-crashkeeper on the minions, and the
    container_runtime stage has containerd pass the pod annotation cloud58.io/crash into the
    containers. A Deployment's pod opting in runs /pause; SIGQUIT makes that Go program exit
    with its goroutine dump on stderr (exit code 2), a crash. On the minion the agent keeps
    the site (manifest, the container's log with the dump, the writable layer's listing), takes
    the pod's veth down, and marks the pod Failed through the API with its own certificate
    (ClusterRole cloud58-crashkeeper: patch of pods/status); the ReplicaSet's replacement
    becomes Ready. The cut is measured: the minion's echo requests to the pod's address, all
    three answered before the crash (its sandbox answers while it lives), none once the site is
    kept."""
    host = lab.minions[-1]
    namespace, name = f"cloud58-labcrash-{os.getpid()}", "crashy"
    policy = json.dumps({"app": name, "dump": ["/say", "no dump: the process has exited"]})
    deployment = _opted_in_deployment(lab, host, namespace, name, policy)

    def pods():
        out = lab.kubectl(lab.endpoint, "get", "pods", "-n", namespace, "-o", "json").stdout
        return json.loads(out)["items"]

    def ready(pod):
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        return pod["status"].get("phase") == "Running" and conditions.get("Ready") == "True"

    try:
        lab.kubectl(lab.endpoint, "create", "namespace", namespace)
        lab.kubectl(lab.endpoint, "create", "serviceaccount", "default", "-n", namespace, check=False)
        lab.kubectl(lab.endpoint, "apply", "-f", "-", input_text=json.dumps(deployment))
        running = _wait(f"{name} ready on {host}", lambda: [p for p in pods() if ready(p)])
        first, address = running[0]["metadata"]["name"], running[0]["status"]["podIP"]

        def echoes() -> str:
            return lab.exec(host, ["python3", "-c", _ECHOES, address]).stdout.strip()

        assert echoes() == "3"

        def container_pid():
            argv = ["python3", "-c", _CONTAINER_PID, namespace, first, "app"]
            return lab.exec(host, argv).stdout.strip()

        pid = _wait("its container's task", container_pid)
        lab.exec(host, ["kill", "-QUIT", pid])

        def site():
            found = lab.exec(
                host,
                ["sh", "-c", f"cat /var/lib/cloud58/crash/{namespace}_{first}/*/manifest.json"],
                check=False,
            ).stdout
            return json.loads(found) if found.strip() else None

        manifest = _wait("the crash site's manifest", site)
        assert echoes() == "0"
        assert (manifest["pod"], manifest["container"], manifest["exit_code"]) == (
            f"{namespace}/{first}",
            "app",
            2,
        )
        assert _first_instance(manifest["files"]) == ["layer.txt", "logs/0.log"]
        # containerd's CRI deletes an exited task soon after its exit event: stopped, or gone
        assert re.fullmatch(
            r"not run: the container's task is (stopped|none) \(nothing left to exec into\)", manifest["dump"]
        ), manifest
        assert manifest["veth_down"].startswith("veth"), manifest
        log = lab.exec(
            host, ["sh", "-c", f"cat /var/lib/cloud58/crash/{namespace}_{first}/*/logs/0.log"]
        ).stdout
        assert " stderr F SIGQUIT: quit" in log, log[-2000:]

        def failed_and_replaced():
            now = {p["metadata"]["name"]: p for p in pods()}
            old = now.get(first, {}).get("status", {})
            others = [n for n, p in now.items() if n != first and ready(p)]
            return (
                (old.get("phase"), _crash_condition(old), others)
                if old.get("phase") == "Failed" and others
                else None
            )

        phase, condition, replacements = _wait(
            "the pod Failed and a replacement ready",
            failed_and_replaced,
            detail=lambda: _crash_diagnosis(lab, host, namespace),
        )
        assert (phase, condition[:2], len(replacements)) == ("Failed", ("True", "CrashPreserved"), 1)
        assert f"crash site /var/lib/cloud58/crash/{namespace}_{first}/" in condition[2]
    finally:
        lab.kubectl(lab.endpoint, "delete", "namespace", namespace, "--wait=true", check=False, timeout=180)
        lab.exec(host, ["sh", "-c", f"rm -rf /var/lib/cloud58/crash/{namespace}_*"], check=False)


def test_a_failing_liveness_probe_is_dumped_live_and_its_kill_completes_the_site(lab):
    """The kubelet's own liveness probe: a pod that opted in runs /pause, which listens on no
    port, so its tcpSocket probe fails every 2 s and the kubelet kills it at the fifth failure.
    At the first failure the kubelet posts an Unhealthy Event; cloud58-crashkeeper on the minion
    (``--node``, ClusterRole cloud58-crashkeeper: watch of events) runs the dump inside the still
    running container (/say prints the line); the kill (SIGTERM: pause exits 0) completes the
    same site with the log and the layer, and the pod is marked Failed."""
    host = lab.minions[-1]
    namespace, name = f"cloud58-labhang-{os.getpid()}", "hangs"
    policy = json.dumps({"app": name, "dump": ["/say", "goroutine 1 [semacquire, 12 minutes]"]})
    probe = {"tcpSocket": {"port": 9}, "periodSeconds": 2, "failureThreshold": 5}
    deployment = _opted_in_deployment(lab, host, namespace, name, policy, livenessProbe=probe)

    def pods():
        out = lab.kubectl(lab.endpoint, "get", "pods", "-n", namespace, "-o", "json").stdout
        return json.loads(out)["items"]

    def first_site():
        found = lab.exec(
            host,
            [
                "sh",
                "-c",
                f"cat $(ls -d /var/lib/cloud58/crash/{namespace}_*/*/manifest.json | sort | head -1)",
            ],
            check=False,
        ).stdout
        document = json.loads(found) if found.strip() else None
        return document if document and document.get("exited") else None

    try:
        lab.kubectl(lab.endpoint, "create", "namespace", namespace)
        lab.kubectl(lab.endpoint, "create", "serviceaccount", "default", "-n", namespace, check=False)
        lab.kubectl(lab.endpoint, "apply", "-f", "-", input_text=json.dumps(deployment))
        manifest = _wait("a crash site dumped live and completed at the kill", first_site)
        first = manifest["pod"].split("/", 1)[1]
        assert manifest["liveness"].startswith("Liveness probe failed: dial tcp "), manifest
        assert {k: manifest[k] for k in ("container", "exit_code", "dump", "exited")} == {
            "container": "app",
            "exit_code": 0,
            "dump": "completed, exit status 0",
            "exited": True,
        }
        assert manifest["dumped"] < manifest["finished"]
        assert _first_instance(manifest["files"]) == [
            "dump",
            "dump.stderr",
            "layer.txt",
            "logs/0.log",
        ]
        dump = lab.exec(
            host, ["sh", "-c", f"cat /var/lib/cloud58/crash/{namespace}_{first}/*/dump | head -1"]
        )
        assert dump.stdout == "goroutine 1 [semacquire, 12 minutes]\n"

        def marked():
            pod = {p["metadata"]["name"]: p for p in pods()}.get(first, {}).get("status", {})
            return (pod.get("phase"), _crash_condition(pod)[:2]) if pod.get("phase") == "Failed" else None

        assert _wait(
            f"{first} marked Failed", marked, detail=lambda: _crash_diagnosis(lab, host, namespace)
        ) == (
            "Failed",
            ("True", "CrashPreserved"),
        )
    finally:
        lab.kubectl(lab.endpoint, "delete", "namespace", namespace, "--wait=true", check=False, timeout=180)
        lab.exec(host, ["sh", "-c", f"rm -rf /var/lib/cloud58/crash/{namespace}_*"], check=False)


def _pod_log_diagnosis(lab, host: str, name: str) -> str:
    """What to read when a pod's line is missing: the pod's status, what the kubelet wrote
    under /var/log/pods, and the tailer's state and counters on the node."""
    pod = lab.kubectl(lab.endpoint, "get", "pod", "-n", "default", name, "-o", "json", check=False).stdout
    status = json.loads(pod).get("status", {}) if pod.strip() else {}
    on_node = lab.exec(
        host,
        [
            "sh",
            "-c",
            "ls -liR /var/log/pods; cat /var/log/pods/default_" + name + "_*/*/0.log;"
            " cat /var/lib/cloud58-podlogs/state.json; systemctl is-active cloud58-podlogs;"
            ' python3 -c "import urllib.request;'
            " print(urllib.request.urlopen('http://127.0.0.1:9661/metrics').read().decode())\"",
        ],
        check=False,
    )
    return (
        f"phase {status.get('phase')!r}, containers {status.get('containerStatuses')!r}\n"
        f"on {host}:\n{on_node.stdout}{on_node.stderr}"
    )


def test_a_line_a_pod_writes_reaches_the_log_store_with_its_namespace_pod_and_container(lab):
    """site.yml's logs stage ships container logs too: a pod on a minion writes one line
    (/say of the lab's pause image, images/pause/say) and exits; the real kubelet and
    containerd write it into the pod's CRI log under /var/log/pods, and cloud58-podlogs on
    that minion sends it to the datacenter's store, where it is found with exactly the pod's
    namespace, name and container beside the host's datacenter, cluster and node. The delay
    from the container's start to the line being found is printed, not asserted (a shared
    machine)."""
    host = lab.minions[0]
    name = f"say-{host}"
    token = f"cloud58-lab-pod-{os.getpid()}-{time.time_ns()}"
    lab.kubectl(lab.endpoint, "create", "serviceaccount", "default", "--namespace", "default", check=False)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": host,
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "say",
                    "image": lab.pause_image,
                    "imagePullPolicy": "Never",
                    "command": ["/say", token],
                }
            ],
        },
    }
    lab.kubectl(lab.endpoint, "apply", "-f", "-", input_text=json.dumps(pod))
    store = f"http://{lab.hosts[f'{lab.dc}-m1'].address}:9428"
    fields = ("datacenter", "cluster", "node", "namespace", "pod", "container", "stream")

    def arrived():
        found = [
            tuple(r.get(f) for f in fields)
            for r in logstore.query(store, f'"{token}"')
            if r.get("_msg") == token
        ]
        if found:
            return found
        raise AssertionError("not in the store yet")

    try:
        try:
            found = _wait("the pod's line in the log store", arrived)
        except pytest.fail.Exception as e:
            pytest.fail(f"{e}\n{_pod_log_diagnosis(lab, host, name)}", pytrace=False)
        found_at = time.time()
        pod_now = json.loads(
            lab.kubectl(lab.endpoint, "get", "pod", "-n", "default", name, "-o", "json").stdout
        )
    finally:
        lab.kubectl(lab.endpoint, "delete", "pod", "-n", "default", name, "--wait=false", check=False)
    assert found == [(lab.dc, lab.cluster["name"], host, "default", name, "say", "stdout")]
    state = pod_now["status"]["containerStatuses"][0]["state"]
    assert state["terminated"]["exitCode"] == 0, state
    started = datetime.datetime.fromisoformat(state["terminated"]["startedAt"].replace("Z", "+00:00"))
    print(
        f"\npod log line found in the store {found_at - started.timestamp():.1f}s after the container started"
    )


# node subnet.
SCALE_OUT = {
    "lab1": ("lab1-w3", {"rack": "lab1-r1", "address": "198.18.0.22", "labels": {"function": "online"}}),
    "lab2": ("lab2-w3", {"rack": "lab2-r1", "address": "198.19.0.22", "labels": {"function": "online"}}),
}


def test_scale_out_runs_site_yml_on_the_new_minion_alone(lab):
    name, host_vars = SCALE_OUT[lab.dc]
    lab.add_host(name, "minions", host_vars)
    first = lab.ansible_playbook("site.yml", {}, "--limit", name)
    assert first.returncode == 0, first.stdout[-6000:]
    recap = play_recap(first.stdout)
    # The preflight plans on the controller (delegated from the new host's play) from the
    # inventory: no other host is contacted, and the controller's own plays are limited out.
    assert sorted(recap) == [name]
    assert recap[name]["failed"] == 0
    assert recap[name]["changed"] > 0
    again = play_recap(lab.ansible_playbook("site.yml", {}, "--limit", name).stdout)
    assert {h: (r["changed"], r["failed"]) for h, r in again.items()} == {name: (0, 0)}
    # What the node roles gave it: the kernel settings and the runtime of a minion.
    assert lab.exec(name, ["systemctl", "is-active", "containerd"], check=False).stdout.strip() == "active"
    assert lab.exec(name, ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "1"
    # And site.yml's join stage gave it a client certificate of its own: it registers.
    net = lab.fabric.net
    tors = [t["name"] for t in _datacenter_yaml(lab.dc)["racks"][host_vars["rack"]]["tors"]]
    uptimes = {t: _bgp_uptimes(net, t) for t in tors}
    lab.prepare_nodes([name])
    _assert_joined(lab, [name])
    # It joins the fabric too: its rack's ToRs peer with it (their sessions with the other
    # hosts kept, not restarted), and the other rack's minion routes its block through its own
    # two ToRs.
    assert net.sessions(name) == dict.fromkeys(
        (t["address"] for t in _datacenter_yaml(lab.dc)["racks"][host_vars["rack"]]["tors"]), "Established"
    )
    for tor in tors:
        after = _bgp_uptimes(net, tor)
        assert {p: after[p] >= up for p, up in uptimes[tor].items()} == dict.fromkeys(uptimes[tor], True)
        assert net.sessions(tor)[host_vars["address"]] == "Established"
    other = f"{lab.dc}-w2"
    other_tors = sorted(
        t["address"] for t in _datacenter_yaml(lab.dc)["racks"][lab.plan["hosts"][other]["rack"]]["tors"]
    )
    _wait(
        f"{other}: a route to {name}'s block through its ToRs",
        lambda: net.kernel_nexthops(other, lab.pod_block(name)) == other_tors,
        timeout=60,
    )


def _bgp_uptimes(net, router: str) -> dict:
    """{peer address: seconds its session has been up} of FRR router ``router``."""
    peers = net.vtysh(router, "show bgp ipv4 unicast summary json", as_json=True).get("peers", {})
    return {address: info["peerUptimeMsec"] / 1000 for address, info in peers.items()}


# What the kubelet role and the join stage wrote on a node, and remove-node.yml takes away
# (containerd stays).
KUBELET_FILES = (
    "/etc/systemd/system/kubelet.service",
    "/etc/kubernetes/kubelet.env",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/pki/kubelet-client.crt",
    "/etc/kubernetes/pki/kubelet-client.key",
    "/var/lib/kubelet",
    "/var/lib/kubelet/config.yaml",
    "/usr/local/bin/kubelet",
)


def _kubelet_unit(lab, host: str) -> dict:
    unit = lab.exec(
        host,
        ["systemctl", "show", "-p", "LoadState,ActiveState,UnitFileState", "kubelet.service"],
        check=False,
    )
    return dict(line.split("=", 1) for line in unit.stdout.split())


def _present(lab, host: str) -> list[str]:
    return [p for p in KUBELET_FILES if lab.exec(host, ["test", "-e", p], check=False).returncode == 0]


def test_remove_node_drains_deletes_and_cleans_a_minion(lab):
    """remove-node.yml takes the second minion out of the cluster and cleans its kubelet:
    nothing in check mode, everything for real, nothing the second time."""
    host = f"{lab.dc}-w2"
    before = sorted(_nodes(lab))
    assert before == sorted([*lab.masters, *lab.minions])  # the scale-out minion too
    variables = {"remove_node": host, "kubeconfig": lab.state["kubeconfig"]}

    check = lab.ansible_playbook("remove-node.yml", variables, "--check", "--diff")
    assert check.returncode == 0, check.stdout[-4000:]
    assert sorted(h for h, r in play_recap(check.stdout).items() if r["changed"]) == [host, "localhost"]
    assert sorted(_nodes(lab)) == before
    assert _kubelet_unit(lab, host) == {
        "LoadState": "loaded",
        "ActiveState": "active",
        "UnitFileState": "enabled",
    }
    assert _present(lab, host) == list(KUBELET_FILES)

    first = lab.ansible_playbook("remove-node.yml", variables)
    assert first.returncode == 0, first.stdout[-4000:]
    assert sorted(h for h, r in play_recap(first.stdout).items() if r["changed"]) == [host, "localhost"]
    assert sorted(_nodes(lab)) == [n for n in before if n != host]
    assert _kubelet_unit(lab, host) == {
        "LoadState": "not-found",
        "ActiveState": "inactive",
        "UnitFileState": "",
    }
    assert _present(lab, host) == []
    assert (
        lab.exec(host, ["systemctl", "is-active", "containerd.service"], check=False).stdout.strip()
        == "active"
    )

    second = lab.ansible_playbook("remove-node.yml", variables)
    assert second.returncode == 0, second.stdout[-4000:]
    again = play_recap(second.stdout)
    assert sorted(again) == [host, "localhost"]
    assert [h for h, r in again.items() if r["changed"] or r["failed"] or r["unreachable"]] == []


def test_bad_input_fails_before_any_host_changes(lab):
    before = _digest_of_manifests(lab)
    other = next(c for c in lab.plan["clusters"].values() if c["name"] != lab.cluster["name"])
    result = lab.ansible_playbook(
        "control-plane.yml",
        {
            "control_plane_version": "v1.38.0",
            "control_plane_etcd_version": "3.6.8",
            "control_plane_extra_sans": [other["api"]["vip"]],
        },
    )
    assert result.returncode != 0
    out = result.stdout
    assert "v1.38.0 skips a minor version" in out
    assert (
        f"an extra SAN '{other['api']['vip']}' collides with the API VIP of cluster '{other['name']}'" in out
    )
    assert "Write the static pod manifests" not in out
    assert _digest_of_manifests(lab) == before


def test_the_api_keeps_serving_with_one_master_stopped(lab):
    hosts = sorted(lab.masters)
    down, via = hosts[0], hosts[1]
    lab.stop_master(down)
    endpoint = lab.kubeconfig_via(via, ENDPOINT_PORT)

    def write():
        r = lab.kubectl(
            endpoint, "create", "configmap", "cloud58-lab-after-stop", "--from-literal=k=v", check=False
        )
        return r.returncode == 0 or "AlreadyExists" in r.stderr

    _wait("a write through the endpoint", write, timeout=60)
    got = json.loads(lab.kubectl(endpoint, "get", "configmap", "cloud58-lab-after-stop", "-o", "json").stdout)
    assert got["data"] == {"k": "v"}
    live = [m["client_url"] for m in lab.cluster["etcd"]["members"] if m["name"] != down]
    health = json.loads(lab.etcdctl("etcd", "endpoint", "health", "-w", "json", endpoints=live).stdout)
    assert [h["health"] for h in health] == [True, True]

    def endpoints_without_the_stopped_master():
        ep = json.loads(lab.kubectl(endpoint, "get", "endpoints", "kubernetes", "-o", "json").stdout)
        ips = sorted(a["ip"] for s in ep.get("subsets", []) for a in s.get("addresses", []))
        return ips == sorted(lab.masters[h].address for h in hosts[1:])

    _wait(
        "the stopped apiserver leaves Endpoints kubernetes", endpoints_without_the_stopped_master, timeout=90
    )

    for lease in ("kube-controller-manager", "kube-scheduler"):

        def holder(lease=lease):
            obj = json.loads(
                lab.kubectl(endpoint, "get", "lease", "-n", "kube-system", lease, "-o", "json").stdout
            )
            name = obj["spec"].get("holderIdentity", "").split("_", 1)[0]
            return name if name in hosts[1:] else ""

        assert _wait(f"{lease} led by a live master", holder, timeout=90) in hosts[1:]
