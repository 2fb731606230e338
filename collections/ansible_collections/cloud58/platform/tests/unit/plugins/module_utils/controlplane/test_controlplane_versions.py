"""The version skew policy: upgrades one minor at a time, kubelets, controllers, etcd."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.versions import (
    component_skew_problems,
    etcd_version_for,
    parse_version,
    skew_problems,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v1.36.3", (1, 36, 3)),
        ("1.36.3", (1, 36, 3)),
        ("v1.36.0-rc.1", (1, 36, 0)),
        ("v1.36.3+cloud58", (1, 36, 3)),
    ],
)
def test_parse_version(text, expected):
    assert parse_version(text) == expected


@pytest.mark.parametrize("text", ["1.36", "latest", "v1.x.3", "", None, 136])
def test_parse_version_rejects(text):
    with pytest.raises(ValueError, match="control plane version"):
        parse_version(text, "control plane version")


def test_etcd_version_follows_the_kubernetes_minor_or_the_pin():
    assert etcd_version_for("v1.36.3") == "3.6.8"
    assert etcd_version_for("v1.36.0") == "3.6.8"
    assert etcd_version_for("v1.35.2", "v3.5.21") == "3.5.21"
    with pytest.raises(ValueError, match=r"no etcd version is known for 1\.35 .*control_plane_etcd_version"):
        etcd_version_for("v1.35.2")


CASES = [
    ("new cluster", "v1.36.3", {}, {}, "3.6.8", []),
    (
        "a rerun: etcd is compared with the etcd version",
        "v1.36.3",
        {"m1": {"etcd": "v3.6.8", "etcd-events": "v3.6.8", "kube-apiserver": "v1.36.3"}},
        {},
        "3.6.8",
        [],
    ),
    (
        "etcd skipping a minor",
        "v1.36.3",
        {"m1": {"etcd": "v3.4.30", "kube-apiserver": "v1.36.3"}, "m2": {"etcd-events": "v3.7.0"}},
        {},
        "3.6.8",
        [
            "host 'm1': etcd runs v3.4.30; v3.6.8 skips a minor version "
            "(upgrade one minor at a time: 3.4 -> 3.5 -> ... -> 3.6)",
            "host 'm2': etcd-events runs v3.7.0; v3.6.8 would downgrade it by a minor version, "
            "which the skew policy does not support",
        ],
    ),
    (
        "patch and minor upgrade",
        "v1.36.3",
        {"m1": {"kube-apiserver": "v1.35.9", "etcd": ""}, "m2": {"kube-apiserver": "v1.36.1"}},
        {"w1": "v1.33.0", "w2": "v1.35.0"},
        "3.6.8",
        [],
    ),
    (
        "skipping a minor",
        "v1.36.3",
        {"m1": {"kube-apiserver": "v1.34.2", "kube-scheduler": "v1.34.2"}},
        {},
        "",
        [
            "host 'm1': kube-apiserver runs v1.34.2; v1.36.3 skips a minor version "
            "(upgrade one minor at a time: 1.34 -> 1.35 -> ... -> 1.36)",
            "host 'm1': kube-scheduler runs v1.34.2; v1.36.3 skips a minor version "
            "(upgrade one minor at a time: 1.34 -> 1.35 -> ... -> 1.36)",
            "kube-apiservers would run v1.34.2 (m1, before its upgrade) and v1.36.3 (m1) side by side: "
            "more than 1 minor version apart",
        ],
    ),
    (
        "minor downgrade",
        "v1.35.0",
        {"m2": {"kube-controller-manager": "v1.36.3"}},
        {},
        "",
        [
            "host 'm2': kube-controller-manager runs v1.36.3; v1.35.0 would downgrade it by a minor "
            "version, which the skew policy does not support"
        ],
    ),
    (
        "kubelet newer than the apiserver",
        "v1.36.3",
        {},
        {"w1": "v1.37.0"},
        "",
        ["host 'w1': kubelet v1.37.0 is newer than kube-apiserver v1.36.3; upgrade the control plane first"],
    ),
    (
        "kubelet four minors behind",
        "v1.36.3",
        {},
        {"w1": "v1.32.9", "w2": "v1.33.0"},
        "",
        [
            "host 'w1': kubelet v1.32.9 is 4 minor versions older than kube-apiserver v1.36.3; "
            "at most 3 are supported, upgrade the kubelet first"
        ],
    ),
    (
        "kubelet newer than the old apiserver during an upgrade",
        "v1.36.3",
        {"m1": {"kube-apiserver": "v1.35.1"}},
        {"w1": "v1.36.3"},
        "",
        [
            "host 'w1': kubelet v1.36.3 is newer than kube-apiserver v1.35.1 (m1, before its upgrade); "
            "upgrade the control plane first"
        ],
    ),
    (
        "kubelet four minors behind the upgraded apiservers",
        "v1.36.3",
        {"m1": {"kube-apiserver": "v1.35.1"}},
        {"w1": "v1.32.0"},
        "",
        [
            "host 'w1': kubelet v1.32.0 is 4 minor versions older than kube-apiserver v1.36.3; "
            "at most 3 are supported, upgrade the kubelet first"
        ],
    ),
    (
        "etcd too old",
        "v1.36.3",
        {},
        {},
        "3.4.30",
        ["etcd 3.4.30 cannot store Kubernetes v1.36.3: it needs etcd 3.5 or a newer 3.x"],
    ),
    ("unreadable versions", "v1.36.3", {"m1": {"etcd": "three"}}, {"w1": "new"}, "", None),
]


@pytest.mark.parametrize(
    ("target", "running", "kubelets", "etcd", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_skew_problems(target, running, kubelets, etcd, expected):
    problems = skew_problems(target, running, kubelets, etcd)
    if expected is None:
        assert problems == [
            "host 'm1': etcd: 'three' is not a version like v1.36.3",
            "host 'w1': kubelet: 'new' is not a version like v1.36.3",
        ]
    else:
        assert problems == expected


def test_skew_problems_with_an_unreadable_target():
    assert skew_problems("v1.36") == ["control plane version: 'v1.36' is not a version like v1.36.3"]


@pytest.mark.parametrize(
    ("components", "expected"),
    [
        ({"kube-scheduler": "v1.36.3", "kube-controller-manager": "v1.35.0"}, []),
        ({"kube-scheduler": "v1.37.0"}, ["kube-scheduler v1.37.0 is newer than kube-apiserver v1.36.3"]),
        (
            {"kube-controller-manager": "v1.34.5"},
            [
                "kube-controller-manager v1.34.5 is 2 minor versions older than kube-apiserver v1.36.3; "
                "at most 1 is supported"
            ],
        ),
    ],
    ids=["within-policy", "scheduler-newer", "controller-manager-two-behind"],
)
def test_component_skew(components, expected):
    assert component_skew_problems("v1.36.3", components) == expected
