"""Verify cloud58.platform.container_runtime in the converged container (testinfra, podman backend)."""

from __future__ import annotations

import testinfra

NODE = testinfra.get_host("podman://mol-cr-node1")


def test_containerd_from_debian_is_installed():
    assert NODE.package("containerd").is_installed
    assert NODE.package("runc").is_installed


def test_containerd_runs_with_the_cri_plugin():
    service = NODE.service("containerd.service")
    assert service.is_enabled
    assert service.is_running
    assert NODE.socket("unix:///run/containerd/containerd.sock").is_listening
    cri = [line.split() for line in NODE.check_output("ctr plugins ls").splitlines() if " cri " in line]
    assert cri == [["io.containerd.grpc.v1", "cri", "linux/amd64", "ok"]]


def test_config_as_containerd_reads_it():
    dump = NODE.check_output("containerd config dump")
    for line in (
        'sandbox_image = "registry.cloud58.test/k8s/pause:3.10"',
        "max_container_log_line_size = 16384",
        "SystemdCgroup = true",
        'pod_annotations = ["cloud58.io/crash"]',
        'config_path = "/etc/containerd/certs.d"',
        'snapshotter = "overlayfs"',
        'bin_dir = "/opt/cni/bin"',
        "oom_score = -999",
        "restrict_oom_score_adj = false",
    ):
        assert line in dump
    config = NODE.file("/etc/containerd/config.toml")
    assert (config.user, config.group, config.mode) == ("root", "root", 0o644)


def test_registry_mirrors():
    assert NODE.file("/etc/containerd/certs.d/docker.io/hosts.toml").content_string.splitlines()[1:] == [
        "# Images of docker.io: the mirrors first, in order, then the registry itself.",
        'server = "https://registry-1.docker.io"',
        "",
        '[host."https://hub.registry.cloud58.test"]',
        '  capabilities = ["pull", "resolve"]',
    ]
    assert NODE.file("/etc/containerd/certs.d/registry.k8s.io/hosts.toml").content_string.splitlines()[
        1:
    ] == [
        "# Images of registry.k8s.io: the mirrors first, in order, then the registry itself.",
        'server = "https://registry.k8s.io"',
        "",
        '[host."https://registry.cloud58.test/v2/k8s"]',
        '  capabilities = ["pull", "resolve"]',
        "  override_path = true",
        "",
        '[host."https://registry-backup.cloud58.test/v2/k8s"]',
        '  capabilities = ["pull", "resolve"]',
        "  override_path = true",
    ]
    assert sorted(NODE.file("/etc/containerd/certs.d").listdir()) == ["docker.io", "registry.k8s.io"]


def test_crictl_points_at_containerd():
    assert NODE.file("/etc/crictl.yaml").content_string.splitlines()[1:] == [
        "runtime-endpoint: unix:///run/containerd/containerd.sock",
        "image-endpoint: unix:///run/containerd/containerd.sock",
        "timeout: 10",
        "debug: false",
        "pull-image-on-create: false",
    ]


def test_no_unit_failed():
    assert NODE.check_output("systemctl --failed --no-legend --plain") == ""
