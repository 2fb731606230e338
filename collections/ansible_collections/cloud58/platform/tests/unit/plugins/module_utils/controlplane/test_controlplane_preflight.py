"""Preflight: bad input fails with every problem named, before any host is touched."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.errors import ControlPlaneError
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.preflight import preflight


def _problems(*args, **kwargs):
    with pytest.raises(ControlPlaneError) as err:
        preflight(*args, **kwargs)
    return err.value.problems


def test_lab_passes_and_returns_images_and_the_identity_object(lab_plan):
    out = preflight(lab_plan, "lab1-k8s", {"image_registry": "localhost/cloud58"})
    assert out["images"] == {
        "etcd": "localhost/cloud58/etcd:v3.6.8",
        "kube-apiserver": "localhost/cloud58/kube-apiserver:v1.36.3",
        "kube-controller-manager": "localhost/cloud58/kube-controller-manager:v1.36.3",
        "kube-scheduler": "localhost/cloud58/kube-scheduler:v1.36.3",
    }
    # The uid is the one `make render` wrote to clusters/lab1-k8s/cluster.yml.
    assert out["identity"] == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cloud58-identity",
            "namespace": "kube-system",
            "labels": {"app.kubernetes.io/managed-by": "cloud58", "cloud58.io/cluster": "lab1-k8s"},
        },
        "data": {"cluster": "lab1-k8s", "datacenter": "lab1", "uid": "44e4fb3e-7fc6-541a-9bd5-dbd3f9617d0d"},
    }
    assert out["settings"]["etcd_version"] == "3.6.8"


def test_unknown_cluster(lab_plan):
    assert _problems(lab_plan, "lab9-k8s", {}) == ["not in the plan (clusters: lab1-k8s, lab2-k8s)"]


def test_even_etcd_member_counts(lab_plan):
    cluster = lab_plan["clusters"]["lab1-k8s"]
    extra = dict(cluster["etcd_events"]["members"][0], name="lab1-w1", address="198.18.0.21")
    cluster["etcd_events"]["members"].append(extra)
    cluster["etcd"]["members"] = cluster["etcd"]["members"][:2]
    assert _problems(lab_plan, "lab1-k8s", {}) == [
        "etcd of cluster 'lab1-k8s' has 2 members (lab1-m1, lab1-m2): etcd needs an odd number (3 or 5) — "
        "an even count adds a member without adding failure tolerance and a split vote can stall it",
        "events etcd of cluster 'lab1-k8s' has 4 members (lab1-m1, lab1-m2, lab1-m3, lab1-w1): etcd needs an "
        "odd number (3 or 5) — an even count adds a member without adding failure tolerance and a split "
        "vote can stall it",
    ]


def test_one_member_needs_the_lab_override(lab_plan):
    cluster = lab_plan["clusters"]["lab2-k8s"]
    cluster["etcd_events"]["members"] = cluster["etcd_events"]["members"][:1]
    expected = [
        "events etcd of cluster 'lab2-k8s' has 1 member (lab2-m1): at least 3 are needed to survive the "
        "loss of one (lab_overrides.allow_fewer_than_3_masters allows 1)"
    ]
    assert _problems(lab_plan, "lab2-k8s", {}) == expected
    cluster["lab_overrides"]["allow_fewer_than_3_masters"] = True
    assert preflight(lab_plan, "lab2-k8s", {})["identity"]["data"]["cluster"] == "lab2-k8s"


def test_colliding_ports_on_one_host(lab_plan):
    assert _problems(lab_plan, "lab1-k8s", {"etcd_events_metrics_port": 2379}) == [
        "host 'lab1-m1': port 2379 is used by etcd client and events etcd metrics",
        "host 'lab1-m2': port 2379 is used by etcd client and events etcd metrics",
        "host 'lab1-m3': port 2379 is used by etcd client and events etcd metrics",
    ]


@pytest.mark.parametrize(
    ("sans", "expected"),
    [
        (
            ["198.19.2.1"],
            [
                "apiserver certificate of cluster 'lab1-k8s': an extra SAN '198.19.2.1' collides with the "
                "API VIP of cluster 'lab2-k8s'; the certificate would be valid for an endpoint that is not "
                "this cluster's"
            ],
        ),
        (
            ["api.lab2-k8s.lab.cloud58.test"],
            [
                "apiserver certificate of cluster 'lab1-k8s': an extra SAN 'api.lab2-k8s.lab.cloud58.test' "
                "collides with the API DNS name of cluster 'lab2-k8s'; the certificate would be valid for an "
                "endpoint that is not this cluster's"
            ],
        ),
        (
            ["198.18.0.21", "lab1-lvs1"],
            [
                "apiserver certificate of cluster 'lab1-k8s': an extra SAN 'lab1-lvs1' collides with host "
                "'lab1-lvs1'; the certificate would be valid for an endpoint that is not this cluster's",
                "apiserver certificate of cluster 'lab1-k8s': an extra SAN '198.18.0.21' collides with the "
                "address of host 'lab1-w1'; the certificate would be valid for an endpoint that is not this "
                "cluster's",
            ],
        ),
        (
            ["198.18.8.53", "198.18.8.1"],
            [
                "extra SAN 198.18.8.53 lies in the Service network 198.18.8.0/24 of cluster 'lab1-k8s': a "
                "Service would get that address and could present the apiserver's identity"
            ],
        ),
        (
            ["*.lab1.example", "Not_A_Name"],
            [
                "extra SAN '*.lab1.example': wildcards are refused on the apiserver certificate",
                "extra SAN 'Not_A_Name' is neither an IP address nor a lowercase DNS name",
            ],
        ),
    ],
    ids=["other-clusters-vip", "other-clusters-dns-name", "other-hosts", "service-network", "malformed"],
)
def test_san_collisions(lab_plan, sans, expected):
    assert _problems(lab_plan, "lab1-k8s", {"extra_sans": sans}) == expected


def test_a_planned_san_that_collides(lab_plan):
    # Two clusters given the same API name by mistake: the planned SAN itself collides.
    lab_plan["clusters"]["lab2-k8s"]["api"]["dns_name"] = "api.lab1-k8s.lab.cloud58.test"
    assert _problems(lab_plan, "lab1-k8s", {}) == [
        "apiserver certificate of cluster 'lab1-k8s': a SAN from the plan 'api.lab1-k8s.lab.cloud58.test' "
        "collides with the API DNS name of cluster 'lab2-k8s'; the certificate would be valid for an "
        "endpoint that is not this cluster's"
    ]


def test_version_skew_names_hosts_and_versions(lab_plan):
    problems = _problems(
        lab_plan,
        "lab1-k8s",
        {"version": "v1.36.3"},
        running={"lab1-m1": {"kube-apiserver": "v1.34.9"}},
        kubelets={"lab1-w1": "v1.37.1"},
    )
    assert problems == [
        "host 'lab1-m1': kube-apiserver runs v1.34.9; v1.36.3 skips a minor version (upgrade one minor at a "
        "time: 1.34 -> 1.35 -> ... -> 1.36)",
        "kube-apiservers would run v1.34.9 (lab1-m1, before its upgrade) and v1.36.3 (lab1-m1) side by side: "
        "more than 1 minor version apart",
        "host 'lab1-w1': kubelet v1.37.1 is newer than kube-apiserver v1.34.9 (lab1-m1, before its upgrade); "
        "upgrade the control plane first",
    ]


def test_an_image_override_outside_the_skew_policy(lab_plan):
    assert _problems(
        lab_plan, "lab1-k8s", {"image_overrides": {"kube-scheduler": "reg/kube-scheduler:v1.37.0"}}
    ) == ["kube-scheduler v1.37.0 is newer than kube-apiserver v1.36.3"]


def test_settings_and_member_problems_come_together(lab_plan):
    lab_plan["clusters"]["lab1-k8s"]["etcd"]["members"].pop()
    problems = _problems(lab_plan, "lab1-k8s", {"version": "latest"})
    assert problems[0] == "version: 'latest' is not a version like v1.36.3"
    assert problems[1].startswith("etcd of cluster 'lab1-k8s' has 2 members (lab1-m1, lab1-m2)")
    assert len(problems) == 2
