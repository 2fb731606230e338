"""KubeletConfiguration and node labels from facts and the plan."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.node import kubelet
from ansible_collections.cloud58.platform.plugins.module_utils.node.errors import NodePlanError


@pytest.mark.parametrize(
    ("vcpus", "memtotal_mb", "expected"),
    [
        pytest.param(1, 512, (60, 255), id="tiny"),
        pytest.param(2, 4096, (70, 1024), id="2-cpus-4g"),
        pytest.param(2, 24000, (70, 3119), id="2-cpus-24g"),
        pytest.param(8, 65536, (90, 5612), id="8-cpus-64g"),
        pytest.param(64, 262144, (230, 12165), id="64-cpus-256g"),
    ],
)
def test_kube_reserved(vcpus, memtotal_mb, expected):
    assert kubelet.kube_reserved(vcpus, memtotal_mb) == expected


@pytest.mark.parametrize(
    ("vcpus", "memtotal_mb", "expected"),
    [
        pytest.param(2, 4096, (100, 256), id="small"),
        pytest.param(32, 65536, (380, 655), id="medium"),
        pytest.param(96, 524288, (1020, 1024), id="large-capped"),
    ],
)
def test_system_reserved(vcpus, memtotal_mb, expected):
    assert kubelet.system_reserved(vcpus, memtotal_mb) == expected


def test_node_labels_from_plan():
    labels = kubelet.node_labels(
        "n1", "lab1", "lab1-r1", {"function": "ingress", "rack": "lab1-r1", "pool": "a"}
    )
    assert labels == {
        "cloud58.io/function": "ingress",
        "cloud58.io/location": "lab1",
        "cloud58.io/pool": "a",
        "cloud58.io/rack": "lab1-r1",
        "topology.kubernetes.io/region": "lab1",
        "topology.kubernetes.io/zone": "lab1-r1",
    }
    assert kubelet.format_labels(labels) == (
        "cloud58.io/function=ingress,cloud58.io/location=lab1,cloud58.io/pool=a,cloud58.io/rack=lab1-r1,"
        "topology.kubernetes.io/region=lab1,topology.kubernetes.io/zone=lab1-r1"
    )


def test_prefixed_and_location_labels_are_kept():
    labels = kubelet.node_labels(
        "n1", "lab1", "r1", {"function": "master", "location": "bj-room3", "example.com/team": "infra"}
    )
    assert labels == {
        "cloud58.io/function": "master",
        "cloud58.io/location": "bj-room3",
        "cloud58.io/rack": "r1",
        "example.com/team": "infra",
        "topology.kubernetes.io/region": "lab1",
        "topology.kubernetes.io/zone": "r1",
    }


@pytest.mark.parametrize(
    ("args", "problems"),
    [
        pytest.param(
            ("", "r1", {"function": "minion"}),
            ["datacenter is ''; the plan must give every Kubernetes node one"],
            id="no-datacenter",
        ),
        pytest.param(
            ("lab1", "r1", {"pool": "a"}),
            ["labels have no 'function'; the plan gives every Kubernetes node one"],
            id="no-function",
        ),
        pytest.param(
            ("lab1", "r1", ["function=minion"]),
            ["labels must be a mapping, got ['function=minion'] (list)"],
            id="labels-not-a-mapping",
        ),
        pytest.param(
            ("lab1", "r1", {"function": "minion", "rack": "r2"}),
            ["label 'rack' = 'r2' is not the host's rack 'r1'"],
            id="rack-conflict",
        ),
        pytest.param(
            ("lab1", "r1", {"function": "minion", "topology.kubernetes.io/zone": "r2"}),
            ["label 'topology.kubernetes.io/zone' = 'r2' conflicts with the plan's 'r1'"],
            id="zone-conflict",
        ),
        pytest.param(
            ("lab1", "r1", {"function": "minion", "node-role.kubernetes.io/worker": ""}),
            [
                "label 'node-role.kubernetes.io/worker': a kubelet may not set labels in the "
                "kubernetes.io/k8s.io namespaces (NodeRestriction); set it from the control plane instead"
            ],
            id="node-role-refused",
        ),
        pytest.param(
            ("lab1", "r1", {"function": "minion", "team": "a b"}),
            [
                "label 'cloud58.io/team': value 'a b' must be a string of at most 63 characters of "
                "[A-Za-z0-9_.-], starting and ending alphanumeric"
            ],
            id="bad-value",
        ),
        pytest.param(
            ("lab1", "r1", {"function": "minion", "Bad_Prefix/x": "1"}),
            ["label key 'Bad_Prefix/x': prefix 'Bad_Prefix' is not a DNS subdomain"],
            id="bad-prefix",
        ),
    ],
)
def test_node_labels_problems(args, problems):
    with pytest.raises(NodePlanError) as err:
        kubelet.node_labels("n1", *args)
    assert err.value.problems == problems


def _config(**kwargs):
    args = {"host": "n1", "vcpus": 2, "memtotal_mb": 24000, "max_pods": 110, "pod_block_addresses": 256}
    args.update(kwargs)
    return kubelet.kubelet_configuration(**args)


def test_kubelet_configuration_from_facts_and_plan():
    config = _config(cluster_dns=["10.96.0.10"], fail_cgroup_v1=False, cgroup_v1=True)
    assert list(config) == sorted(config)
    expected = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        "clusterDNS": ["10.96.0.10"],
        "failCgroupV1": False,
        "failSwapOn": True,
        "maxPods": 110,
        "staticPodPath": "/etc/kubernetes/manifests",
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "kubeReserved": {"cpu": "70m", "ephemeral-storage": "1Gi", "memory": "3119Mi"},
        "systemReserved": {"cpu": "100m", "ephemeral-storage": "1Gi", "memory": "256Mi"},
        "protectKernelDefaults": True,
        "readOnlyPort": 0,
    }
    assert expected.items() <= config.items()
    assert config["evictionHard"]["memory.available"] == "240Mi"
    assert config["evictionSoft"]["memory.available"] == "480Mi"


def test_kubelet_configuration_leaves_out_unset_options():
    config = _config()
    assert "clusterDNS" not in config
    assert config["failCgroupV1"] is True
    assert "cgroupsPerQOS" not in config
    assert config["authorization"] == {"mode": "Webhook"}
    assert config["authentication"]["x509"] == {"clientCAFile": "/etc/kubernetes/pki/ca.crt"}


def test_container_node_relaxes_what_a_container_cannot_give():
    config = _config(container=True, cgroup_v1=True)
    expected = {
        "failCgroupV1": False,
        "protectKernelDefaults": False,
        "enforceNodeAllocatable": ["pods"],
    }
    assert expected.items() <= config.items()
    assert "cgroupsPerQOS" not in config  # the kubelet's default, true


def test_taints_register_the_node_with_them_in_key_order():
    taints = [
        {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
        {"effect": "NoExecute", "value": "gpu", "key": "cloud58.io/dedicated"},
    ]
    assert _config(taints=taints)["registerWithTaints"] == [
        {"effect": "NoSchedule", "key": "node-role.kubernetes.io/control-plane"},
        {"effect": "NoExecute", "key": "cloud58.io/dedicated", "value": "gpu"},
    ]
    assert "registerWithTaints" not in _config()


@pytest.mark.parametrize(
    ("taints", "problem"),
    [
        pytest.param(
            [{"key": "a/b", "effect": "NoRun"}],
            "taint 1 {'key': 'a/b', 'effect': 'NoRun'}: effect 'NoRun' is not one of "
            "NoSchedule, PreferNoSchedule, NoExecute",
            id="effect",
        ),
        pytest.param(
            [{"key": "Bad_Prefix/x", "effect": "NoSchedule"}],
            "taint 1 {'key': 'Bad_Prefix/x', 'effect': 'NoSchedule'}: key 'Bad_Prefix/x' is not a "
            "label key (prefix/name)",
            id="key",
        ),
        pytest.param(
            [{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule", "value": "x y"}],
            "taint 2 {'key': 'b', 'effect': 'NoSchedule', 'value': 'x y'}: value 'x y' is not a label value",
            id="value",
        ),
        pytest.param(
            [{"key": "a", "effect": "NoSchedule", "operator": "Exists"}],
            "taint 1 {'key': 'a', 'effect': 'NoSchedule', 'operator': 'Exists'}: unknown fields "
            "['operator']; a taint has key, effect and value",
            id="unknown-field",
        ),
        pytest.param(
            ["a:NoSchedule"], "taint 1 'a:NoSchedule' is not a mapping of key, effect and value", id="string"
        ),
        pytest.param(
            {"key": "a", "effect": "NoSchedule"},
            "taints {'key': 'a', 'effect': 'NoSchedule'} is not a list of {key, effect} mappings",
            id="not-a-list",
        ),
    ],
)
def test_a_bad_taint_is_named_with_what_is_wrong(taints, problem):
    with pytest.raises(NodePlanError) as err:
        _config(taints=taints)
    assert err.value.problems == [problem]


def test_extra_config_may_not_override_the_taints():
    with pytest.raises(NodePlanError) as err:
        _config(taints=[{"key": "a", "effect": "NoSchedule"}], extra={"registerWithTaints": []})
    assert err.value.problems == [
        "extra field 'registerWithTaints' would override the plan; change the plan instead"
    ]


def test_standalone_kubelet_has_no_webhook_and_refuses_anonymous():
    config = _config(standalone=True)
    assert config["authentication"] == {"anonymous": {"enabled": False}, "webhook": {"enabled": False}}
    assert config["authorization"] == {"mode": "AlwaysAllow"}


def test_extra_fields_are_merged():
    config = _config(extra={"podPidsLimit": 4096})
    assert config["podPidsLimit"] == 4096


def test_pod_pids_limit_is_left_out_without_the_plan_s_limits():
    assert "podPidsLimit" not in _config()


@pytest.mark.parametrize(
    ("function", "limits", "expected"),
    [
        pytest.param("online", kubelet.POD_PIDS_LIMITS, 4096, id="online"),
        pytest.param("ingress", kubelet.POD_PIDS_LIMITS, 2048, id="ingress"),
        pytest.param("infra", kubelet.POD_PIDS_LIMITS, 8192, id="infra"),
        pytest.param("offline", kubelet.POD_PIDS_LIMITS, 16384, id="offline"),
        pytest.param("gpu", kubelet.POD_PIDS_LIMITS, 4096, id="unlisted-takes-default"),
        pytest.param(None, kubelet.POD_PIDS_LIMITS, 4096, id="no-function-takes-default"),
        pytest.param("offline", {"default": 1024, "offline": -1}, -1, id="unlimited"),
        pytest.param("online", {"online": 1}, 1, id="smallest"),
    ],
)
def test_pod_pids_limit_by_node_function(function, limits, expected):
    config = _config(function=function, pod_pids_limits=limits)
    assert config["podPidsLimit"] == expected


@pytest.mark.parametrize(
    ("kwargs", "problems"),
    [
        pytest.param(
            {"pod_pids_limits": {"default": 4096, "online": 0}},
            ["kubelet_pod_pids_limits.online: 0 is not a positive integer or -1 (unlimited)"],
            id="zero",
        ),
        pytest.param(
            {"pod_pids_limits": {"default": -2, "ingress": "2048", "offline": True, "infra": 1.5}},
            [
                "kubelet_pod_pids_limits.default: -2 is not a positive integer or -1 (unlimited)",
                "kubelet_pod_pids_limits.ingress: '2048' is not a positive integer or -1 (unlimited)",
                "kubelet_pod_pids_limits.offline: True is not a positive integer or -1 (unlimited)",
                "kubelet_pod_pids_limits.infra: 1.5 is not a positive integer or -1 (unlimited)",
            ],
            id="every-bad-entry",
        ),
        pytest.param(
            {"function": "gpu", "pod_pids_limits": {"online": 4096, "ingress": 2048}},
            [
                "kubelet_pod_pids_limits has no entry for function 'gpu' and no 'default' "
                "(it has ingress, online)"
            ],
            id="no-entry-no-default",
        ),
        pytest.param(
            {"pod_pids_limits": [4096]},
            ["kubelet_pod_pids_limits: [4096] is not a mapping of node function to limit"],
            id="not-a-mapping",
        ),
        pytest.param(
            {"function": "online", "pod_pids_limits": {"online": 4096}, "extra": {"podPidsLimit": 100}},
            ["extra field 'podPidsLimit' would override the plan; change the plan instead"],
            id="extra-overrides-plan-limit",
        ),
    ],
)
def test_pod_pids_limit_problems(kwargs, problems):
    with pytest.raises(NodePlanError) as err:
        _config(**kwargs)
    assert err.value.problems == problems
    assert str(err.value).startswith("host 'n1': ")


@pytest.mark.parametrize(
    ("kwargs", "problems"),
    [
        pytest.param(
            {"max_pods": 300},
            [
                "maxPods 300 does not fit the node's pod block of 256 addresses; "
                "lower max_pods or give the cluster a larger pod block"
            ],
            id="pods-exceed-block",
        ),
        pytest.param(
            {"extra": {"maxPods": 10}},
            ["extra field 'maxPods' would override the plan; change the plan instead"],
            id="extra-overrides-plan",
        ),
        pytest.param(
            {"memtotal_mb": 700},
            [
                "memory 700 MiB leaves 89 MiB allocatable after kube-reserved 255 MiB, "
                "system-reserved 256 MiB and eviction 100 MiB; a node needs more memory"
            ],
            id="too-little-memory",
        ),
        pytest.param(
            {"cgroup_driver": "cgroupv2"},
            ["cgroup driver 'cgroupv2' is not one of systemd, cgroupfs"],
            id="bad-driver",
        ),
        pytest.param({"max_pods": True}, ["max_pods is True; expected an integer >= 1"], id="bool-max-pods"),
        pytest.param(
            {"cgroup_v1": True},
            [
                "the host uses cgroup v1, which the kubelet refuses since 1.35 while failCgroupV1 is true; "
                "boot the host with cgroup v2 (systemd.unified_cgroup_hierarchy=1) or set "
                "kubelet_fail_cgroup_v1: false"
            ],
            id="cgroup-v1-refused",
        ),
    ],
)
def test_kubelet_configuration_problems(kwargs, problems):
    with pytest.raises(NodePlanError) as err:
        _config(**kwargs)
    assert err.value.problems == problems
