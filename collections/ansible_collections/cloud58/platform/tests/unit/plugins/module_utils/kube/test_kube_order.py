"""The order objects are applied in: phases, then kinds others refer to first."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.kube.order import batches, phase_of, rank_of


@pytest.mark.parametrize(
    ("group", "kind", "namespaced", "phase"),
    [
        ("apiextensions.k8s.io", "CustomResourceDefinition", False, 0),
        ("", "Namespace", False, 1),
        ("rbac.authorization.k8s.io", "ClusterRole", False, 2),
        ("example.com", "Widget", False, 2),
        ("", "ConfigMap", True, 3),
        ("example.com", "Widget", True, 3),
    ],
)
def test_phase_of(group, kind, namespaced, phase):
    assert phase_of(group, kind, namespaced) == phase


def test_batches_follow_phases_then_dependencies():
    objs = [
        ("apps", "Deployment", True),
        ("example.com", "Widget", True),
        ("", "ConfigMap", True),
        ("", "Namespace", False),
        ("", "ServiceAccount", True),
        ("apiextensions.k8s.io", "CustomResourceDefinition", False),
        ("scheduling.k8s.io", "PriorityClass", False),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding", False),
        ("rbac.authorization.k8s.io", "ClusterRole", False),
        ("", "ResourceQuota", True),
        ("autoscaling", "HorizontalPodAutoscaler", True),
        ("", "Secret", True),
    ]
    got = [[kind for _g, kind, _n in batch] for batch in batches(objs, lambda o: rank_of(*o))]
    assert got == [
        ["CustomResourceDefinition"],
        ["Namespace"],
        ["PriorityClass"],
        ["ClusterRole"],
        ["ClusterRoleBinding"],
        ["ResourceQuota"],
        ["ServiceAccount"],
        ["ConfigMap", "Secret"],
        ["Deployment"],
        ["HorizontalPodAutoscaler"],
        ["Widget"],
    ]
