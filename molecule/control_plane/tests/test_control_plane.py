"""What cloud58.platform.control_plane and api_endpoint leave on three masters.

Expectations are written out from molecule.yml's inventory: cluster mol-k8s, masters
mol-cp-m1..3 at 198.18.40.11/.75/.12, events etcd on the masters, images from
localhost/cloud58 at v1.36.3, eviction tuning from group_vars. Certificates are checked
against the controller's PKI directory (molecule's ephemeral directory) with cryptography.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml
from cryptography import x509

ADDRESSES = {"mol-cp-m1": "198.18.40.11", "mol-cp-m2": "198.18.40.75", "mol-cp-m3": "198.18.40.12"}
testinfra_hosts = [f"podman://{name}" for name in ADDRESSES]
PKI_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "pki/mol-k8s"
MANIFESTS = [
    "etcd-events.yaml",
    "etcd.yaml",
    "kube-apiserver.yaml",
    "kube-controller-manager.yaml",
    "kube-scheduler.yaml",
]
KEYS = [
    "admin.key",
    "apiserver-etcd-client.key",
    "apiserver-kubelet-client.key",
    "apiserver.key",
    "ca.key",
    "controller-manager.key",
    "encryption-config.yaml",
    "etcd/events-peer.key",
    "etcd/events-server.key",
    "etcd/peer.key",
    "etcd/server.key",
    "front-proxy-client.key",
    "kubelet-client.key",
    "sa.key",
    "scheduler.key",
]
CERTS = [
    "admin.crt",
    "apiserver-etcd-client.crt",
    "apiserver-kubelet-client.crt",
    "apiserver.crt",
    "ca.crt",
    "controller-manager.crt",
    "etcd/ca.crt",
    "etcd/events-peer.crt",
    "etcd/events-server.crt",
    "etcd/peer.crt",
    "etcd/server.crt",
    "front-proxy-ca.crt",
    "front-proxy-client.crt",
    "kubelet-client.crt",
    "sa.pub",
    "scheduler.crt",
]


@pytest.fixture
def name(host):
    return host.backend.name


def _yaml(host, path):
    return yaml.safe_load(host.file(path).content_string)


def _flags(pod):
    command = pod["spec"]["containers"][0]["command"]
    return dict(arg[2:].split("=", 1) for arg in command[1:])


def test_controller_pki_directory_is_private():
    assert PKI_DIR.is_dir()
    assert oct(PKI_DIR.stat().st_mode & 0o777) == "0o700"
    loose = [str(p) for p in PKI_DIR.rglob("*.key") if p.stat().st_mode & 0o077]
    assert loose == []


def test_exactly_the_five_manifests_with_mode_0600(host):
    assert sorted(host.file("/etc/kubernetes/manifests").listdir()) == MANIFESTS
    for manifest in MANIFESTS:
        f = host.file(f"/etc/kubernetes/manifests/{manifest}")
        assert (f.user, f.group, f.mode) == ("root", "root", 0o600), manifest


def test_pki_files_modes_and_content_match_the_controller(host, name):
    pki = host.file("/etc/kubernetes/pki")
    assert (pki.mode, host.file("/etc/kubernetes/pki/etcd").mode) == (0o700, 0o700)
    for rel in KEYS + CERTS:
        f = host.file(f"/etc/kubernetes/pki/{rel}")
        assert f.mode == (0o600 if rel in KEYS else 0o644), rel
    own = {"etcd/server": f"etcd/{name}-server", "etcd/events-peer": f"etcd/{name}-events-peer"}
    for dest, src in {**own, "apiserver": "apiserver", "ca": "ca"}.items():
        remote = host.file(f"/etc/kubernetes/pki/{dest}.crt").content_string
        assert remote == (PKI_DIR / f"{src}.crt").read_text(), dest
    # Keys arrive intact (compared by digest; the test prints no key).
    remote_key = host.file("/etc/kubernetes/pki/etcd/peer.key").content
    assert (
        hashlib.sha256(remote_key).hexdigest()
        == hashlib.sha256((PKI_DIR / f"etcd/{name}-peer.key").read_bytes()).hexdigest()
    )


def test_no_other_hosts_member_certificates(host):
    names = host.file("/etc/kubernetes/pki/etcd").listdir()
    assert sorted(names) == [
        "ca.crt",
        "events-peer.crt",
        "events-peer.key",
        "events-server.crt",
        "events-server.key",
        "peer.crt",
        "peer.key",
        "server.crt",
        "server.key",
    ]


def test_apiserver_certificate_names(host):
    cert = x509.load_pem_x509_certificate(host.file("/etc/kubernetes/pki/apiserver.crt").content)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "api.mol-k8s.lab.cloud58.test",
        "localhost",
        "mol-cp-m1",
        "mol-cp-m2",
        "mol-cp-m3",
        "api.mol.example.org",
    ]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == [
        "198.18.44.1",
        "198.18.42.1",
        "198.18.40.11",
        "198.18.40.75",
        "198.18.40.12",
        "127.0.0.1",
    ]


def test_etcd_manifests_name_this_member(host, name):
    main, events = (
        _flags(_yaml(host, f"/etc/kubernetes/manifests/{m}")) for m in ("etcd.yaml", "etcd-events.yaml")
    )
    address = ADDRESSES[name]
    assert (main["name"], main["advertise-client-urls"], main["data-dir"]) == (
        name,
        f"https://{address}:2379",
        "/var/lib/etcd",
    )
    assert (events["name"], events["advertise-client-urls"], events["data-dir"]) == (
        name,
        f"https://{address}:2383",
        "/var/lib/etcd-events",
    )
    assert main["initial-cluster"] == (
        "mol-cp-m1=https://198.18.40.11:2380,mol-cp-m2=https://198.18.40.75:2380,mol-cp-m3=https://198.18.40.12:2380"
    )
    for data_dir in ("/var/lib/etcd", "/var/lib/etcd-events"):
        assert host.file(data_dir).mode == 0o700


def test_apiserver_manifest(host, name):
    pod = _yaml(host, "/etc/kubernetes/manifests/kube-apiserver.yaml")
    flags = _flags(pod)
    assert pod["spec"]["containers"][0]["image"] == "localhost/cloud58/kube-apiserver:v1.36.3"
    assert flags["advertise-address"] == ADDRESSES[name]
    assert flags["etcd-servers-overrides"] == (
        "/events#https://198.18.40.11:2383;https://198.18.40.75:2383;https://198.18.40.12:2383"
    )
    assert flags["endpoint-reconciler-type"] == "lease"
    digest = pod["metadata"]["annotations"]["cloud58.io/pki-digest"]
    assert len(digest) == 32


def test_controller_manager_carries_the_inventorys_eviction_tuning(host):
    flags = _flags(_yaml(host, "/etc/kubernetes/manifests/kube-controller-manager.yaml"))
    assert {
        k: flags[k]
        for k in (
            "node-monitor-grace-period",
            "node-eviction-rate",
            "secondary-node-eviction-rate",
            "unhealthy-zone-threshold",
            "large-cluster-size-threshold",
            "leader-elect",
        )
    } == {
        "node-monitor-grace-period": "20s",
        "node-eviction-rate": "0.2",
        "secondary-node-eviction-rate": "0.01",
        "unhealthy-zone-threshold": "0.55",
        "large-cluster-size-threshold": "50",
        "leader-elect": "true",
    }


def test_kubeconfigs_point_at_files_and_the_local_apiserver(host, name):
    for conf, server in (
        ("controller-manager.conf", f"https://{ADDRESSES[name]}:6443"),
        ("scheduler.conf", f"https://{ADDRESSES[name]}:6443"),
        ("admin.conf", "https://api.mol-k8s.lab.cloud58.test:6443"),
    ):
        f = host.file(f"/etc/kubernetes/{conf}")
        assert f.mode == 0o600
        kubeconfig = yaml.safe_load(f.content_string)
        assert kubeconfig["clusters"][0]["cluster"] == {
            "server": server,
            "certificate-authority": "/etc/kubernetes/pki/ca.crt",
        }
        assert "client-key-data" not in f.content_string


def test_audit_policy_and_encryption_config(host):
    policy = _yaml(host, "/etc/kubernetes/audit-policy.yaml")
    assert (policy["apiVersion"], policy["kind"], policy["rules"][-1]) == (
        "audit.k8s.io/v1",
        "Policy",
        {"level": "Metadata"},
    )
    remote = host.file("/etc/kubernetes/pki/encryption-config.yaml").content
    assert remote == (PKI_DIR / "encryption-config.yaml").read_bytes()
    assert yaml.safe_load(remote)["resources"][0]["resources"] == ["secrets"]


def test_haproxy_balances_the_three_apiservers(host):
    assert host.service("haproxy").is_running
    assert host.service("haproxy").is_enabled
    assert host.socket("tcp://0.0.0.0:8443").is_listening
    config = host.file("/etc/haproxy/haproxy.cfg").content_string
    servers = [line.split()[1:3] for line in config.splitlines() if line.strip().startswith("server ")]
    assert servers == [
        ["mol-cp-m1", "198.18.40.11:6443"],
        ["mol-cp-m2", "198.18.40.75:6443"],
        ["mol-cp-m3", "198.18.40.12:6443"],
    ]
    assert "    maxconn 1000\n" in config
    assert host.run("haproxy -c -f /etc/haproxy/haproxy.cfg").rc == 0
