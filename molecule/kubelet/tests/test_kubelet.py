"""Verify cloud58.platform.kubelet in the converged container (testinfra, podman backend)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import testinfra
import yaml

NODE = testinfra.get_host("podman://mol-kubelet-node1")
REPO = Path(__file__).resolve().parents[3]
DEFAULTS = yaml.safe_load(
    (REPO / "collections/ansible_collections/cloud58/platform/roles/kubelet/defaults/main.yml").read_text()
)
LABELS = (
    "cloud58.io/function=ingress,cloud58.io/location=lab1,cloud58.io/rack=lab1-r1,cloud58.io/team=edge,"
    "topology.kubernetes.io/region=lab1,topology.kubernetes.io/zone=lab1-r1"
)


def _source_binary():
    bin_dir = subprocess.run(
        [str(REPO / "scripts/setup/upstream-bin-dir")], capture_output=True, text=True, check=True
    ).stdout.strip()
    return Path(bin_dir) / "kubelet"


def test_binary_is_the_pinned_build():
    binary = NODE.file("/usr/local/bin/kubelet")
    assert (binary.user, binary.group, binary.mode) == ("root", "root", 0o755)
    assert binary.sha256sum == hashlib.sha256(_source_binary().read_bytes()).hexdigest()
    assert (
        NODE.check_output("/usr/local/bin/kubelet --version") == f"Kubernetes v{DEFAULTS['kubelet_version']}"
    )


def test_kubelet_configuration():
    config = yaml.safe_load(NODE.file("/var/lib/kubelet/config.yaml").content_string)
    # The reservations, worked out by hand from molecule.yml's node size (6 vCPUs, 16384 MiB)
    # and the rules in docs/node-roles.md:
    #   kubeReserved cpu: 6% of core 1 + 1% of core 2 + 0.5% of cores 3-4 + 0.25% of cores
    #     5-6 = 60 + 10 + 10 + 5 = 85m; memory: 25% of 4096 + 20% of 4096 + 10% of 8192
    #     = 1024 + 819.2 + 819.2 = 2662.4 -> 2662Mi
    #   systemReserved cpu: 100m + 10m per core above 4 = 120m; memory: 1% of 16384 = 163,
    #     raised to the floor of 256 -> 256Mi
    #   evictionHard memory.available: 1% of 16384 = 163Mi (within 100..1024)
    expected = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "maxPods": 32,
        "cgroupDriver": "systemd",
        "staticPodPath": "/etc/kubernetes/manifests",
        "clusterDNS": ["198.18.8.10"],
        "clusterDomain": "cluster.local",
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "kubeReserved": {"cpu": "85m", "ephemeral-storage": "1Gi", "memory": "2662Mi"},
        "systemReserved": {"cpu": "120m", "ephemeral-storage": "1Gi", "memory": "256Mi"},
        "containerLogMaxSize": "50Mi",
        "containerLogMaxFiles": 5,
        "failSwapOn": True,
        # kubelet_pod_pids_limits of the node's function (ingress in molecule.yml).
        "podPidsLimit": 2048,
        # A container: the kernel is the host's; QoS cgroups stay on (the container has a
        # private cgroup namespace).
        "protectKernelDefaults": False,
        "enforceNodeAllocatable": ["pods"],
        "failCgroupV1": False,
        # Standalone: no API server to authenticate against; anonymous requests refused.
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
    }
    assert expected.items() <= config.items()
    assert config["evictionHard"]["memory.available"] == "163Mi"


def test_labels_reach_the_kubelet():
    env = NODE.file("/etc/kubernetes/kubelet.env").content_string.splitlines()
    assert [line for line in env if not line.startswith("#")] == [
        f"KUBELET_NODE_LABELS={LABELS}",
        "KUBELET_KUBECONFIG_ARGS=",
        "KUBELET_EXTRA_ARGS=",
    ]
    pid = NODE.check_output("systemctl show -p MainPID --value kubelet.service")
    argv = NODE.file(f"/proc/{pid}/cmdline").content.split(b"\0")
    assert f"--node-labels={LABELS}".encode() in argv
    assert b"--config=/var/lib/kubelet/config.yaml" in argv


def test_kubelet_runs_with_this_configuration():
    service = NODE.service("kubelet.service")
    assert service.is_enabled
    assert service.is_running
    # healthz answers only once the kubelet has loaded and validated its configuration.
    healthz = NODE.check_output(
        "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:10248/healthz\").read().decode())'"
    )
    assert healthz == "ok"
    assert (
        NODE.run(
            "journalctl -u kubelet.service --no-pager | grep -c 'failed to load Kubelet config'"
        ).stdout.strip()
        == "0"
    )


def test_unit_and_directories():
    unit = NODE.file("/etc/systemd/system/kubelet.service").content_string
    assert (
        "ExecStart=/usr/local/bin/kubelet --config=/var/lib/kubelet/config.yaml "
        "--node-labels=${KUBELET_NODE_LABELS} $KUBELET_KUBECONFIG_ARGS $KUBELET_EXTRA_ARGS" in unit
    )
    assert "After=containerd.service network-online.target" in unit
    for path in ("/etc/kubernetes/manifests", "/var/lib/kubelet"):
        assert NODE.file(path).is_directory


def test_no_unit_failed():
    assert NODE.check_output("systemctl --failed --no-legend --plain") == ""
