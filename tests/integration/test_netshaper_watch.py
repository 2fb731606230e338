"""cloud58-netshaper watch: a pod's annotations, changed in a real API server, reach its veth and cgroup.

The agent's program (agents/cloud58_netshaper.py of the collection) runs on the host against
the ``c1`` apiserver of ``kube_clusters`` and follows the pods of a node name no other test
uses. The apiserver runs no kubelet: the test creates the pod object (bound to the node by
``spec.nodeName``) and stands in for its sandbox. Its veth pair joins two network namespaces
the test creates (``c58nsw-<pid>-host``, ``-pod``; 198.18.212.0/30): the host side is named as
Calico names it (``cali`` + sha1 of namespace.name), and the agent runs tc there through
``--netns``. Its cgroup is a real one of the v1 pids hierarchy, created by the test under
``/sys/fs/cgroup/pids/c58nsw-<pid>`` (the agent's ``--cgroup-root``) at the path the kubelet's
cgroupfs driver gives a BestEffort pod, and removed after.

The tests share the pod and run in file order. Each waits for the state it expects (a 30 s
guard turns a hang into a failure); no duration is asserted. The tc commands themselves and
real traffic through them are proven by tests/network/test_netshaper.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

from ansible_collections.cloud58.platform.plugins.module_utils.node import podwatch, shaper
from cloud58_lab.netlab import NetLab, logged_metrics, run_prefix, stop_process

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "collections/ansible_collections/cloud58/platform/agents/cloud58_netshaper.py"
NODE = "c58-netshaper-watch-node"
POD = "echo-0"
INGRESS = shaper.INGRESS_ANNOTATION
EGRESS = shaper.EGRESS_ANNOTATION
PIDS = podwatch.PIDS_LIMIT_ANNOTATION
POD_ADDRESS = "198.18.212.2/30"
PIDS_V1 = Path("/sys/fs/cgroup/pids")
# Enters the cgroup, then forks until the N-th fork: the pids controller refuses the fork that
# would make one process more than pids.max (the program itself counts).
FORKER = """
import json, os, sys
procs, tries = sys.argv[1], int(sys.argv[2])
with open(procs, "w") as f:
    f.write(str(os.getpid()))
read_end, write_end = os.pipe()
children, error = [], None
for _ in range(tries):
    try:
        pid = os.fork()
    except BlockingIOError:
        error = "EAGAIN"
        break
    if pid == 0:
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    children.append(pid)
os.close(write_end)
for pid in children:
    os.waitpid(pid, 0)
print(json.dumps({"processes": 1 + len(children), "error": error}))
"""


def _wait_for(read, wanted, what, log=None):
    deadline = time.monotonic() + 30
    while True:
        got = read()
        if got == wanted:
            return
        if time.monotonic() > deadline:
            extra = f"\nthe agent's log:\n{log.read_text()}" if log else ""
            pytest.fail(f"{what}: still {got!r}, expected {wanted!r}{extra}", pytrace=False)
        time.sleep(0.05)


class Lab:
    def __init__(self, net, core, namespace, cgroup_root, log):
        self.net = net
        self.core = core
        self.namespace = namespace
        self.cgroup_root = cgroup_root
        self.log = log
        self.veth = podwatch.calico_veth(namespace, POD)
        self.ifb = shaper.ifb_name(self.veth)
        self.pod = None
        self.proc = None

    def pids_max(self) -> Path:
        meta = self.pod["metadata"]
        return Path(
            podwatch.pids_max_path(str(self.cgroup_root), meta["uid"], self.pod["status"]["qosClass"])
        )

    def annotate(self, annotations):
        """Merge-patch the pod's annotations (None removes one)."""
        self.core.patch_namespaced_pod(POD, self.namespace, {"metadata": {"annotations": annotations}})

    def rates(self):
        """(tbf rate on the veth, tbf rate on its ifb) in bytes per second, from ``tc -j``; None: no tbf."""
        return (self._tbf_rate(self.veth), self._tbf_rate(self.ifb))

    def _tbf_rate(self, dev):
        out = self.net.exec("host", "tc", "-j", "qdisc", "show", "dev", dev, check=False)
        if out.returncode != 0:
            return None
        root = [q for q in json.loads(out.stdout) if q.get("root")]
        return root[0]["options"]["rate"] if root and root[0]["kind"] == "tbf" else None

    def metrics(self):
        text = logged_metrics(self.log)
        assert text is not None, self.log.read_text()[-2000:]
        return [line for line in text.splitlines() if f'pod="{self.namespace}/' in line]


@pytest.fixture(scope="module")
def lab(kube_clusters, tmp_path_factory):
    work = tmp_path_factory.mktemp("netshaper-watch")
    api = config.new_client_from_config(config_file=str(kube_clusters.kubeconfig), context="c1")
    core = client.CoreV1Api(api)
    namespace = f"netshaper-{uuid.uuid4().hex[:8]}"
    net = NetLab(prefix=run_prefix("c58nsw"))
    cgroup_root = PIDS_V1 / run_prefix("c58nsw")
    made = []
    lab = None
    try:
        net.add_namespace("host")
        net.add_namespace("pod", forwarding=False)
        lab = Lab(net, core, namespace, cgroup_root, work / "agent.log")
        net.link("host", "pod", if_a=lab.veth, if_b="eth0", addr_a="198.18.212.1/30", addr_b=POD_ADDRESS)
        core.create_namespace({"metadata": {"name": namespace}})
        # no controller-manager here: the ServiceAccount admission plugin needs the account
        core.create_namespaced_service_account(namespace, {"metadata": {"name": "default"}})
        body = {
            "metadata": {"name": POD, "annotations": {INGRESS: "20M", EGRESS: "30M", PIDS: "4"}},
            "spec": {"nodeName": NODE, "containers": [{"name": "echo", "image": "echo:1"}]},
        }
        lab.pod = api.sanitize_for_serialization(core.create_namespaced_pod(namespace, body))
        # the pod's cgroup, as the kubelet's cgroupfs driver would make it
        directory = lab.pids_max().parent
        for part in [directory, *directory.parents]:
            if part == PIDS_V1:
                break
            made.insert(0, part)
        for part in made:
            part.mkdir()
        env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
        with lab.log.open("w") as log:
            lab.proc = subprocess.Popen(
                [
                    sys.executable, str(AGENT), "watch", "--node", NODE,
                    "--kubeconfig", str(kube_clusters.kubeconfig), "--context", "c1",
                    "--netns", net.ns("host"), "--cgroup-root", str(cgroup_root),
                    "--metrics-port", "0",
                ],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        yield lab
    finally:
        # The namespaces go whatever the steps before them raise (a CI run once left them).
        stopped = []
        try:
            if lab is not None and lab.proc is not None:
                stopped = stop_process(lab.proc, timeout=10)
            for call in (
                lambda: core.delete_namespaced_pod(POD, namespace, grace_period_seconds=0),
                lambda: core.delete_namespace(namespace),
            ):
                try:
                    call()
                except client.exceptions.ApiException as e:
                    if e.status != 404:
                        raise
            api.close()
            for part in reversed(made):
                if part.exists():
                    part.rmdir()
        finally:
            problems = stopped + net.close()
        assert problems == [], f"lab cleanup left: {problems}"


def test_watch_applies_the_pods_annotations_to_its_veth_and_cgroup(lab):
    # 20M into the pod on the veth, 30M out of it on the ifb; bytes per second
    _wait_for(lab.rates, (2_500_000, 3_750_000), f"tc rates of {lab.veth} and {lab.ifb}", lab.log)
    _wait_for(lambda: lab.pids_max().read_text(), "4\n", f"{lab.pids_max()}", lab.log)


def test_annotation_patch_changes_the_rate_on_both_ends(lab):
    lab.annotate({INGRESS: "50M", EGRESS: "10M"})
    _wait_for(lab.rates, (6_250_000, 1_250_000), f"tc rates of {lab.veth} and {lab.ifb}", lab.log)


@pytest.mark.parametrize("limit", [4, 7], ids=["limit-4", "limit-7"])
def test_pids_limit_refuses_the_fork_beyond_it(lab, limit):
    lab.annotate({PIDS: str(limit)})
    _wait_for(lambda: lab.pids_max().read_text(), f"{limit}\n", f"{lab.pids_max()}", lab.log)
    procs = lab.pids_max().parent / "cgroup.procs"
    done = subprocess.run(
        [sys.executable, "-c", FORKER, str(procs), str(limit)], capture_output=True, text=True, check=True
    )
    # the program and limit - 1 children run; the limit-th fork (process limit + 1) fails
    assert json.loads(done.stdout) == {"processes": limit, "error": "EAGAIN"}


def test_metrics_show_the_applied_rates_drops_and_pids_limit(lab):
    labels = f'node="{NODE}",pod="{lab.namespace}/{POD}"'
    assert lab.metrics() == [
        f'cloud58_netshaper_rate_bits{{{labels},veth="{lab.veth}",direction="ingress"}} 50000000',
        f'cloud58_netshaper_rate_bits{{{labels},veth="{lab.veth}",direction="egress"}} 10000000',
        f'cloud58_netshaper_drops_total{{{labels},veth="{lab.veth}",direction="ingress"}} 0',
        f'cloud58_netshaper_drops_total{{{labels},veth="{lab.veth}",direction="egress"}} 0',
        f"cloud58_netshaper_pids_max{{{labels}}} 7",
    ]


def test_bad_annotation_is_one_line_and_changes_nothing(lab):
    lab.annotate({INGRESS: "10Mbit/s"})
    message = (
        f"cloud58-netshaper: pod {lab.namespace}/{POD}: annotation {INGRESS}: '10Mbit/s' is not a rate "
        "in bits per second as a Kubernetes quantity (like 10M, 1G)"
    )
    _wait_for(lambda: message in lab.log.read_text().splitlines(), True, "the bad annotation's line", lab.log)
    assert lab.rates() == (6_250_000, 1_250_000)
    assert lab.proc.poll() is None


def test_removed_annotations_remove_the_shaping_and_its_ifb(lab):
    lab.annotate({INGRESS: None, EGRESS: None})
    _wait_for(lab.rates, (None, None), f"tc rates of {lab.veth} and {lab.ifb}", lab.log)
    assert lab.net.exec("host", "ip", "link", "show", "dev", lab.ifb, check=False).returncode == 1


def _pod_on_its_own_veth(lab, name: str, ns: str, veth: str, subnet: int, *, grace: int = 0) -> None:
    """Another pod's sandbox (network namespace ``ns``, ``veth`` on the host side, addresses
    198.18.212.<subnet>/30) and the pod object, once the agent shaped it: 15M into the pod on
    the veth, 25M out of it on the ifb (1,875,000 and 3,125,000 bytes per second)."""
    lab.net.add_namespace(ns, forwarding=False)
    pod_address = f"198.18.212.{subnet + 2}"
    lab.net.link(
        "host", ns, if_a=veth, if_b="eth0", addr_a=f"198.18.212.{subnet + 1}/30", addr_b=f"{pod_address}/30"
    )
    body = {
        "metadata": {"name": name, "annotations": {INGRESS: "15M", EGRESS: "25M"}},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "echo", "image": "echo:1"}],
        },
    }
    lab.core.create_namespaced_pod(lab.namespace, body)
    # what the kubelet reports once the CNI plugin gave the sandbox its address
    status = {"status": {"podIP": pod_address, "podIPs": [{"ip": pod_address}]}}
    lab.core.patch_namespaced_pod_status(name, lab.namespace, status)
    ifb = shaper.ifb_name(veth)
    _wait_for(
        lambda: (lab._tbf_rate(veth), lab._tbf_rate(ifb)),
        (1_875_000, 3_125_000),
        f"tc rates of {veth} and {ifb}",
        lab.log,
    )


def test_a_veth_that_calico_did_not_name_is_found_by_the_pods_address(lab):
    """--veth-lookup auto (the default): no link has the second pod's Calico name, so the agent
    takes the peer of the interface that holds its status.podIP in a network namespace under
    /run/netns, as it must for the bridge plugin's veth<hex> (the lab's minions)."""
    name, veth = "echo-1", f"veth{uuid.uuid4().hex[:8]}"
    try:
        _pod_on_its_own_veth(lab, name, "pod2", veth, 4)  # 15M in and 25M out on veth and ifb
        assert lab._tbf_rate(lab.veth) is None  # the first pod's veth is left as the last test left it
    finally:
        lab.core.delete_namespaced_pod(name, lab.namespace, grace_period_seconds=0)


def _links(lab) -> list[str]:
    return sorted(
        link["ifname"] for link in json.loads(lab.net.exec("host", "ip", "-j", "link", "show").stdout)
    )


def test_a_pod_being_deleted_is_left_to_its_teardown(lab):
    """The kubelet's teardown of a deleted pod: the CNI bandwidth plugin's DEL deletes the ifb
    the veth's ingress redirects to, then the veth goes with the sandbox; the kubelet writes the
    pod's status meanwhile. The agent leaves a pod being deleted alone: shaping it then would
    make an ifb for a veth about to go (before, it made one named "*", tc's name for the deleted
    target, and nothing ever deleted it). No kubelet runs here, so the pod stays terminating."""
    name, veth = "echo-2", f"veth{uuid.uuid4().hex[:8]}"
    ifb = shaper.ifb_name(veth)
    _pod_on_its_own_veth(lab, name, "pod3", veth, 8, grace=300)
    try:
        lab.core.delete_namespaced_pod(name, lab.namespace)  # its deletionTimestamp is set
        assert lab.net.exec("host", "ip", "link", "del", "dev", ifb).returncode == 0  # the CNI's DEL
        ready = {"status": {"conditions": [{"type": "Ready", "status": "False"}]}}
        lab.core.patch_namespaced_pod_status(name, lab.namespace, ready)
        # The agent handles events in order: once the first pod's new rate is on its veth, it has
        # seen the terminating pod's change before it.
        lab.annotate({INGRESS: "40M"})
        _wait_for(lab.rates, (5_000_000, None), f"tc rates of {lab.veth} and {lab.ifb}", lab.log)
        assert [link for link in _links(lab) if link in ("*", ifb)] == []
    finally:
        lab.core.delete_namespaced_pod(name, lab.namespace, grace_period_seconds=0)


def test_an_ifb_of_ours_goes_once_its_veth_and_pod_are_gone(lab):
    """A pod whose egress went through an ifb the agent made (no CNI plugin of its own here):
    the veth's deletion does not take the ifb, so the agent deletes the ifbs of its own whose
    veth is gone once a pod is deleted (and at each resync)."""
    name, veth = "echo-3", f"veth{uuid.uuid4().hex[:8]}"
    ifb = shaper.ifb_name(veth)
    _pod_on_its_own_veth(lab, name, "pod4", veth, 12)
    assert lab.net.exec("host", "ip", "link", "del", "dev", veth).returncode == 0  # the sandbox's teardown
    lab.core.delete_namespaced_pod(name, lab.namespace, grace_period_seconds=0)
    said = f'{{"removed": "{ifb}", "why": "its veth is gone"}}'  # printed once the deletion returned
    _wait_for(lambda: said in lab.log.read_text().splitlines(), True, "the agent's line on the ifb", lab.log)
    assert ifb not in _links(lab)
