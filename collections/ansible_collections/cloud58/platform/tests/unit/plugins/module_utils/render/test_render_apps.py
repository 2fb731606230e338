"""App specs: schema defaults and errors, weights, rendered objects, quotas."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.render.app_schema import (
    APP_SCHEMA,
    fill_defaults,
    load_app_specs,
)
from ansible_collections.cloud58.platform.plugins.module_utils.render.apps import (
    app_objects,
    format_cpu,
    format_memory,
    namespace_quota,
    replica_plan,
    split_by_weight,
)
from ansible_collections.cloud58.platform.plugins.module_utils.render.errors import AppSpecError
from ansible_collections.cloud58.platform.plugins.module_utils.render.targets import ClusterTarget

TARGET = ClusterTarget(
    "bj1-k8s", "bj1", "bj1-k8s", "north", "bj1", ("bj1-r01", "bj1-r02"), ("ingress", "online")
)
MINIMAL = {
    "name": "shop",
    "team": "retail",
    "namespace": "retail",
    "image": "registry.example/retail/shop:1.0.0",
    "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "clusters": {"bj1-k8s": 2, "sh1-k8s": 1},
}


def spec_with(**changes):
    return fill_defaults(APP_SCHEMA, {**copy.deepcopy(MINIMAL), **changes})


# -- weights ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("total", "weights", "expected"),
    [
        (6, {"bj1": 2, "sh1": 1}, {"bj1": 4, "sh1": 2}),
        (24, {"bj1": 2, "sh1": 1}, {"bj1": 16, "sh1": 8}),
        (5, {"a": 1, "b": 1}, {"a": 3, "b": 2}),  # tie: the name that sorts first gets the extra pod
        (7, {"a": 1, "b": 1, "c": 1}, {"a": 3, "b": 2, "c": 2}),
        (3, {"a": 10, "b": 1}, {"a": 2, "b": 1}),  # every cluster at least one
        (4, {"a": 100, "b": 1, "c": 1}, {"a": 2, "b": 1, "c": 1}),
        (10, {"only": 3}, {"only": 10}),
    ],
)
def test_split_by_weight(total, weights, expected):
    got = split_by_weight(total, weights)
    assert got == expected
    assert sum(got.values()) == total


def test_split_refuses_fewer_pods_than_clusters():
    with pytest.raises(ValueError, match="2 cannot give each of 3 clusters 1"):
        split_by_weight(2, {"a": 1, "b": 1, "c": 1})


def test_replica_plan_splits_hpa_bounds_or_fixed_replicas():
    assert replica_plan(spec_with(autoscaling={"min_replicas": 6, "max_replicas": 24})) == {
        "bj1-k8s": {"min": 4, "max": 16},
        "sh1-k8s": {"min": 2, "max": 8},
    }
    assert replica_plan(spec_with(replicas=5, autoscaling={"enabled": False})) == {
        "bj1-k8s": {"replicas": 3},
        "sh1-k8s": {"replicas": 2},
    }


def test_hpa_max_never_below_min_in_a_cluster():
    plan = replica_plan(
        spec_with(clusters={"a": 1, "b": 1, "c": 1}, autoscaling={"min_replicas": 5, "max_replicas": 5})
    )
    assert all(share["max"] >= share["min"] for share in plan.values())
    assert plan == {"a": {"min": 2, "max": 2}, "b": {"min": 2, "max": 2}, "c": {"min": 1, "max": 1}}


# -- rendering ----------------------------------------------------------------------------
def by_kind(objs):
    return {o["kind"]: o for o in objs}


def test_minimal_spec_renders_deployment_service_hpa_pdb():
    spec = spec_with()
    objs = by_kind(app_objects(spec, TARGET, {"min": 1, "max": 4}))
    assert sorted(objs) == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    for obj in objs.values():
        assert obj["metadata"]["labels"] == {
            "app.kubernetes.io/managed-by": "cloud58",
            "app.kubernetes.io/name": "shop",
            "cloud58.io/cluster": "bj1-k8s",
            "cloud58.io/team": "retail",
        }
        assert obj["metadata"]["namespace"] == "retail"
    deploy = objs["Deployment"]["spec"]
    assert "replicas" not in deploy  # the HPA owns it
    container = deploy["template"]["spec"]["containers"][0]
    assert container["startupProbe"] == {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert container["resources"] == {
        "requests": {"cpu": "500m", "memory": "256Mi"},
        "limits": {"memory": "512Mi"},
    }
    assert deploy["minReadySeconds"] == 10
    assert deploy["template"]["spec"]["terminationGracePeriodSeconds"] == 30
    assert deploy["template"]["spec"]["priorityClassName"] == "cloud58-business-default"
    assert "affinity" not in deploy["template"]["spec"]
    assert objs["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 1
    assert objs["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 4
    assert objs["PodDisruptionBudget"]["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "shop"}},
    }


def test_full_spec_renders_config_affinity_and_fixed_replicas():
    spec = spec_with(
        config={"app.ini": "a=1\n"},
        env={"B": "2", "A": "1"},
        placement={"function": "online", "racks": ["bj1-r02", "sh1-r01"]},
        autoscaling={"enabled": False},
        probes={"warmup_seconds": 0},
        graceful_shutdown={"pre_stop_sleep_seconds": 0},
        service={"enabled": False},
        priority="high",
    )
    objs = by_kind(app_objects(spec, TARGET, {"replicas": 3}))
    assert sorted(objs) == ["ConfigMap", "Deployment", "PodDisruptionBudget"]
    assert objs["ConfigMap"]["metadata"]["name"] == "shop-config"
    deploy = objs["Deployment"]["spec"]
    pod = deploy["template"]["spec"]
    container = pod["containers"][0]
    assert deploy["replicas"] == 3
    assert [e["name"] for e in container["env"]] == ["A", "B"]
    assert "startupProbe" not in container
    assert "lifecycle" not in container
    assert container["volumeMounts"] == [{"name": "config", "mountPath": "/etc/app", "readOnly": True}]
    assert pod["volumes"] == [{"name": "config", "configMap": {"name": "shop-config"}}]
    assert re.fullmatch(
        r"[0-9a-f]{16}", deploy["template"]["metadata"]["annotations"]["cloud58.io/config-hash"]
    )
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ] == [
        {
            "matchExpressions": [
                {"key": "cloud58.io/function", "operator": "In", "values": ["online"]},
                {"key": "cloud58.io/rack", "operator": "In", "values": ["bj1-r02"]},
            ]
        }
    ]
    assert pod["priorityClassName"] == "cloud58-business-high"


def test_config_change_changes_the_pod_annotation():
    first = by_kind(app_objects(spec_with(config={"a": "1"}), TARGET, {"replicas": 1}))["Deployment"]
    second = by_kind(app_objects(spec_with(config={"a": "2"}), TARGET, {"replicas": 1}))["Deployment"]
    key = "cloud58.io/config-hash"
    assert (
        first["spec"]["template"]["metadata"]["annotations"][key]
        != (second["spec"]["template"]["metadata"]["annotations"][key])
    )


@pytest.mark.parametrize(
    ("bandwidth", "config", "annotations"),
    [
        pytest.param({}, {}, None, id="unlimited-no-annotations"),
        pytest.param(
            {"ingress": "10M", "egress": "1G"},
            {},
            {"kubernetes.io/egress-bandwidth": "1G", "kubernetes.io/ingress-bandwidth": "10M"},
            id="both",
        ),
        pytest.param(
            {"egress": 2000000}, {}, {"kubernetes.io/egress-bandwidth": "2000000"}, id="egress-only-integer"
        ),
        pytest.param(
            {"ingress": "1.5M"},
            {"a": "1"},
            {"cloud58.io/config-hash": "452647e07c48d5e6", "kubernetes.io/ingress-bandwidth": "1.5M"},
            id="with-config-hash",
        ),
    ],
)
def test_bandwidth_renders_pod_annotations(bandwidth, config, annotations):
    spec = spec_with(bandwidth=bandwidth, config=config)
    template = by_kind(app_objects(spec, TARGET, {"replicas": 2}))["Deployment"]["spec"]["template"]
    assert template["metadata"].get("annotations") == annotations


@pytest.mark.parametrize(
    ("change", "annotations"),
    [
        pytest.param({}, None, id="node-limit-no-annotation"),
        pytest.param({"pids_limit": None}, None, id="null-no-annotation"),
        pytest.param({"pids_limit": 512}, {"cloud58.io/pids-limit": "512"}, id="limit"),
        pytest.param({"pids_limit": 1}, {"cloud58.io/pids-limit": "1"}, id="smallest"),
        pytest.param(
            {"pids_limit": 4194304, "bandwidth": {"egress": "1G"}},
            {"cloud58.io/pids-limit": "4194304", "kubernetes.io/egress-bandwidth": "1G"},
            id="largest-with-bandwidth",
        ),
    ],
)
def test_pids_limit_renders_pod_annotation(change, annotations):
    spec = spec_with(**change)
    template = by_kind(app_objects(spec, TARGET, {"replicas": 2}))["Deployment"]["spec"]["template"]
    assert template["metadata"].get("annotations") == annotations


@pytest.mark.parametrize(
    ("change", "annotations"),
    [
        pytest.param({}, None, id="no-crash-no-annotation"),
        pytest.param({"crash": None}, None, id="null-no-annotation"),
        pytest.param(
            {"crash": {"dump": ["jcmd", "1", "Thread.print"]}},
            {"cloud58.io/crash": '{"app":"shop","dump":["jcmd","1","Thread.print"],"keep":3,"timeout_s":60}'},
            id="defaults",
        ),
        pytest.param(
            {"crash": {"dump": ["sh", "-c", "kill -QUIT 1; cat /tmp/dump"], "timeout_s": 5, "keep": 1}},
            {
                "cloud58.io/crash": '{"app":"shop","dump":["sh","-c","kill -QUIT 1; cat /tmp/dump"],'
                '"keep":1,"timeout_s":5}'
            },
            id="all-fields",
        ),
    ],
)
def test_crash_renders_pod_annotation(change, annotations):
    spec = spec_with(**change)
    template = by_kind(app_objects(spec, TARGET, {"replicas": 2}))["Deployment"]["spec"]["template"]
    assert template["metadata"].get("annotations") == annotations


def test_startup_probe_covers_the_warmup():
    spec = spec_with(probes={"warmup_seconds": 95, "period_seconds": 10})
    container = by_kind(app_objects(spec, TARGET, {"replicas": 1}))["Deployment"]["spec"]["template"]["spec"]
    assert container["containers"][0]["startupProbe"]["failureThreshold"] == 10


def test_namespace_quota_leaves_room_for_max_and_surge():
    a = spec_with()
    b = spec_with(resources={"requests": {"cpu": 2, "memory": "1Gi"}, "limits": {"memory": "1.5Gi"}})
    quota = namespace_quota([(a, {"min": 2, "max": 8}), (b, {"replicas": 3})])
    # a: 8 + 2 surge = 10 pods; b: 3 + 1 surge = 4 pods
    assert quota == {
        "pods": "14",
        "requests.cpu": "13",
        "requests.memory": "6656Mi",
        "limits.memory": "11Gi",
    }


@pytest.mark.parametrize(("value", "text"), [(0.5, "500m"), (2, "2"), (0.0011, "2m")])
def test_format_cpu(value, text):
    from fractions import Fraction

    assert format_cpu(Fraction(str(value))) == text


@pytest.mark.parametrize(("size", "text"), [(2**30, "1Gi"), (2**20 * 1536, "1536Mi"), (1, "1Mi")])
def test_format_memory(size, text):
    assert format_memory(size) == text


# -- validation -------------------------------------------------------------------------
def write_apps(tmp_path, **files):
    apps = tmp_path / "apps"
    apps.mkdir()
    for name, content in files.items():
        (apps / name).write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return str(apps)


def test_defaults_are_filled(tmp_path):
    [(rel, spec)] = load_app_specs(write_apps(tmp_path, **{"shop.yaml": MINIMAL}))
    assert rel == "apps/shop.yaml"
    assert spec["autoscaling"] == {
        "enabled": True,
        "min_replicas": 2,
        "max_replicas": 6,
        "cpu_utilization": 70,
    }
    assert spec["probes"]["readiness_path"] is None
    assert spec["port"] == 8080
    assert spec["placement"] == {"function": None, "racks": [], "spread_racks": True}
    assert MINIMAL.get("autoscaling") is None


INVALID = [
    pytest.param(
        {"replicas": 0},
        "apps/shop.yaml: replicas: 0 is less than the minimum of 1 (rule: minimum)",
        id="minimum",
    ),
    pytest.param(
        {"replica": 2},
        "apps/shop.yaml: (top level): Additional properties are not allowed ('replica' was unexpected) "
        "(rule: additionalProperties)",
        id="unknown-field",
    ),
    pytest.param(
        {"image": "shop:latest"},
        "apps/shop.yaml: image: 'shop:latest' uses the tag latest; pin a version or a digest (rule: not)",
        id="latest",
    ),
    pytest.param({"image": "shop"}, "apps/shop.yaml: image: 'shop' does not match", id="untagged"),
    pytest.param(
        {"namespace": "kube-system"},
        "apps/shop.yaml: namespace: 'kube-system' is reserved for the platform (rule: not)",
        id="reserved-namespace",
    ),
    pytest.param(
        {"resources": {"requests": {"cpu": "lots", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}},
        "apps/shop.yaml: resources.requests.cpu: 'lots' is not a Kubernetes quantity (like 500m, 2, 512Mi) "
        "(rule: pattern)",
        id="bad-quantity",
    ),
    pytest.param(
        {"resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}},
        "apps/shop.yaml: resources.requests: 'memory' is a required property (rule: required)",
        id="missing-nested",
    ),
    pytest.param(
        {"command": ["run", 3]},
        "apps/shop.yaml: command[1]: 3 is not of type 'string' (rule: type)",
        id="list-index-in-path",
    ),
    pytest.param(
        {"clusters": {}},
        "apps/shop.yaml: clusters: {} should be non-empty (rule: minProperties)",
        id="no-clusters",
    ),
    pytest.param(
        {"name": "other"},
        "apps/shop.yaml: name: 'other' differs from the file name 'shop' (rule: name-matches-file)",
        id="name-vs-file",
    ),
    pytest.param(
        {"autoscaling": {"min_replicas": 5, "max_replicas": 3}},
        "apps/shop.yaml: autoscaling.max_replicas: 3 is less than autoscaling.min_replicas (5) (rule: "
        "min-not-above-max)",
        id="min-above-max",
    ),
    pytest.param(
        {"replicas": 1, "autoscaling": {"enabled": False}},
        "apps/shop.yaml: replicas: 1 cannot give each of the 2 clusters one pod (rule: "
        "replicas-cover-clusters)",
        id="too-few-replicas",
    ),
    pytest.param(
        {
            "resources": {
                "requests": {"cpu": "1", "memory": "1Gi"},
                "limits": {"cpu": "500m", "memory": "1Gi"},
            }
        },
        "apps/shop.yaml: resources.limits.cpu: '500m' is below the request '1' (rule: limits-cover-requests)",
        id="limit-below-request",
    ),
    pytest.param(
        {"graceful_shutdown": {"pre_stop_sleep_seconds": 30, "termination_grace_period_seconds": 30}},
        "apps/shop.yaml: graceful_shutdown.termination_grace_period_seconds: 30 leaves no time after the "
        "30s preStop sleep (rule: grace-covers-prestop)",
        id="grace",
    ),
]


INVALID += [
    pytest.param(
        {"bandwidth": {"ingress": "10Mbit/s"}},
        "apps/shop.yaml: bandwidth.ingress: '10Mbit/s' is not a rate in bits per second as a Kubernetes "
        "quantity (like 10M, 1G) (rule: pattern)",
        id="bandwidth-unit-text",
    ),
    pytest.param(
        {"bandwidth": {"egress": "-1"}},
        "apps/shop.yaml: bandwidth.egress: '-1' is not a rate in bits per second as a Kubernetes "
        "quantity (like 10M, 1G) (rule: pattern)",
        id="bandwidth-negative-text",
    ),
    pytest.param(
        {"bandwidth": {"egress": -1}},
        "apps/shop.yaml: bandwidth.egress: -1 is below 1k (1 kbit/s), the smallest rate the kubelet accepts "
        "(rule: bandwidth-in-range)",
        id="bandwidth-negative-number",
    ),
    pytest.param(
        {"bandwidth": {"ingress": 0}},
        "apps/shop.yaml: bandwidth.ingress: 0 is below 1k (1 kbit/s), the smallest rate the kubelet accepts "
        "(rule: bandwidth-in-range)",
        id="bandwidth-zero",
    ),
    pytest.param(
        {"bandwidth": {"ingress": "500m"}},
        "apps/shop.yaml: bandwidth.ingress: '500m' is below 1k (1 kbit/s), the smallest rate the kubelet "
        "accepts (rule: bandwidth-in-range)",
        id="bandwidth-milli",
    ),
    pytest.param(
        {"bandwidth": {"egress": "2P"}},
        "apps/shop.yaml: bandwidth.egress: '2P' is above 1P (1 Pbit/s), the largest rate the kubelet accepts "
        "(rule: bandwidth-in-range)",
        id="bandwidth-too-large",
    ),
    pytest.param(
        {"bandwidth": {"ingress": "fast"}},
        "apps/shop.yaml: bandwidth.ingress: 'fast' is not a rate in bits per second as a Kubernetes "
        "quantity (like 10M, 1G) (rule: pattern)",
        id="bandwidth-nonsense",
    ),
    pytest.param(
        {"bandwidth": {"ingress": 1.5}},
        "apps/shop.yaml: bandwidth.ingress: 1.5 is not of type 'string', 'integer' (rule: type)",
        id="bandwidth-float",
    ),
    pytest.param(
        {"bandwidth": {"up": "10M"}},
        "apps/shop.yaml: bandwidth: Additional properties are not allowed ('up' was unexpected) "
        "(rule: additionalProperties)",
        id="bandwidth-unknown-direction",
    ),
]


INVALID += [
    pytest.param(
        {"pids_limit": 0},
        "apps/shop.yaml: pids_limit: 0 is less than the minimum of 1 (rule: minimum)",
        id="pids-limit-zero",
    ),
    pytest.param(
        {"pids_limit": -1},
        "apps/shop.yaml: pids_limit: -1 is less than the minimum of 1 (rule: minimum)",
        id="pids-limit-unlimited-is-the-node-s",
    ),
    pytest.param(
        {"pids_limit": 4194305},
        "apps/shop.yaml: pids_limit: 4194305 is greater than the maximum of 4194304 (rule: maximum)",
        id="pids-limit-above-pid-max",
    ),
    pytest.param(
        {"pids_limit": "512"},
        "apps/shop.yaml: pids_limit: '512' is not of type 'integer', 'null' (rule: type)",
        id="pids-limit-string",
    ),
    pytest.param(
        {"pids_limit": True},
        "apps/shop.yaml: pids_limit: True is not of type 'integer', 'null' (rule: type)",
        id="pids-limit-bool",
    ),
    pytest.param(
        {"crash": {"dump": "jcmd 1 Thread.print"}},
        "apps/shop.yaml: crash.dump: 'jcmd 1 Thread.print' is not a list of arguments (argv), "
        "like [jcmd, '1', Thread.print] (rule: type)",
        id="crash-dump-not-a-list",
    ),
    pytest.param(
        {"crash": {"dump": []}},
        "apps/shop.yaml: crash.dump: [] should be non-empty (rule: minItems)",
        id="crash-dump-empty",
    ),
    pytest.param(
        {"crash": {"dump": ["jcmd", 1]}},
        "apps/shop.yaml: crash.dump[1]: 1 is not of type 'string' (rule: type)",
        id="crash-dump-argument-not-a-string",
    ),
    pytest.param(
        {"crash": {"timeout_s": 30}},
        "apps/shop.yaml: crash: 'dump' is a required property (rule: required)",
        id="crash-without-dump",
    ),
    pytest.param(
        {"crash": {"dump": ["true"], "timeout_s": 0}},
        "apps/shop.yaml: crash.timeout_s: 0 is less than the minimum of 1 (rule: minimum)",
        id="crash-timeout-zero",
    ),
    pytest.param(
        {"crash": {"dump": ["true"], "keep": 101}},
        "apps/shop.yaml: crash.keep: 101 is greater than the maximum of 100 (rule: maximum)",
        id="crash-keep-above-100",
    ),
]


@pytest.mark.parametrize(("change", "message"), INVALID)
def test_invalid_spec_names_file_path_and_rule(tmp_path, change, message):
    apps = write_apps(tmp_path, **{"shop.yaml": {**MINIMAL, **change}})
    with pytest.raises(AppSpecError) as info:
        load_app_specs(apps)
    assert info.value.problems[0].startswith(message)


def test_every_problem_of_every_file_is_reported(tmp_path):
    apps = write_apps(
        tmp_path,
        **{
            "a.yaml": {**MINIMAL, "name": "a", "port": 0},
            "b.yaml": "name: [b\n",
            "c.yaml": {**MINIMAL, "name": "c"},
        },
    )
    with pytest.raises(AppSpecError) as info:
        load_app_specs(apps)
    assert info.value.problems == [
        "apps/a.yaml: port: 0 is less than the minimum of 1 (rule: minimum)",
        "apps/b.yaml: line 2 column 1: not valid YAML: did not find expected ',' or ']' (rule: yaml)",
    ]
    assert str(info.value).startswith("2 problems in app specs:\n  apps/a.yaml: port:")


def test_duplicate_keys_are_refused(tmp_path):
    apps = write_apps(tmp_path, **{"shop.yaml": "name: shop\nteam: a\nteam: b\n"})
    with pytest.raises(AppSpecError) as info:
        load_app_specs(apps)
    assert info.value.problems == [
        "apps/shop.yaml: line 3 column 1: not valid YAML: found duplicate key 'team' (rule: yaml)"
    ]


def test_files_starting_with_underscore_or_dot_are_not_specs(tmp_path):
    apps = write_apps(tmp_path, **{"_draft.yaml": "not: [valid", ".hidden.yaml": "x", "README.md": "# apps"})
    assert load_app_specs(apps) == []


# -- namespace defaults -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("app_bandwidth", "namespace_file", "expected"),
    [
        pytest.param(None, None, {}, id="neither"),
        pytest.param({"ingress": "10M"}, None, {"ingress": "10M"}, id="app-only"),
        pytest.param(
            None,
            {"bandwidth": {"ingress": "1G", "egress": "200M"}},
            {"ingress": "1G", "egress": "200M"},
            id="namespace-only",
        ),
        pytest.param(
            {"ingress": "10M"},
            {"bandwidth": {"ingress": "1G", "egress": "200M"}},
            {"ingress": "10M", "egress": "200M"},
            id="app-wins-per-direction",
        ),
        pytest.param({"egress": "5M"}, {}, {"egress": "5M"}, id="empty-namespace-file"),
    ],
)
def test_namespace_defaults_fill_each_direction_the_app_leaves_out(
    tmp_path, app_bandwidth, namespace_file, expected
):
    app = {**MINIMAL} if app_bandwidth is None else {**MINIMAL, "bandwidth": app_bandwidth}
    apps = write_apps(tmp_path, **{"shop.yaml": app})
    if namespace_file is not None:
        (tmp_path / "apps" / "namespaces").mkdir()
        (tmp_path / "apps" / "namespaces" / "retail.yaml").write_text(yaml.safe_dump(namespace_file))
    [(_rel, spec)] = load_app_specs(apps)
    assert spec["bandwidth"] == expected


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        pytest.param(
            "retail.yaml",
            {"bandwidth": {"egress": "10Mbit/s"}},
            "apps/namespaces/retail.yaml: bandwidth.egress: '10Mbit/s' is not a rate in bits per second as a "
            "Kubernetes quantity (like 10M, 1G) (rule: pattern)",
            id="bad-rate",
        ),
        pytest.param(
            "retail.yaml",
            {"bandwidth": {"ingress": 0}},
            "apps/namespaces/retail.yaml: bandwidth.ingress: 0 is below 1k (1 kbit/s), the smallest rate the "
            "kubelet accepts (rule: bandwidth-in-range)",
            id="zero",
        ),
        pytest.param(
            "retail.yaml",
            {"quota": {}},
            "apps/namespaces/retail.yaml: (top level): Additional properties are not allowed ('quota' was "
            "unexpected) (rule: additionalProperties)",
            id="unknown-field",
        ),
        pytest.param(
            "retial.yaml",
            {"bandwidth": {"ingress": "1G"}},
            "apps/namespaces/retial.yaml: (top level): no app runs in namespace 'retial'; the apps use "
            "retail "
            "(rule: namespace-has-apps)",
            id="unknown-namespace",
        ),
        pytest.param(
            "retail.yaml",
            "bandwidth: [1G\n",
            "apps/namespaces/retail.yaml: line 2 column 1: not valid YAML: did not find expected ',' or ']' "
            "(rule: yaml)",
            id="yaml",
        ),
    ],
)
def test_invalid_namespace_file_names_file_field_and_value(tmp_path, name, content, message):
    apps = write_apps(tmp_path, **{"shop.yaml": MINIMAL})
    (tmp_path / "apps" / "namespaces").mkdir()
    text = content if isinstance(content, str) else yaml.safe_dump(content)
    (tmp_path / "apps" / "namespaces" / name).write_text(text)
    with pytest.raises(AppSpecError) as info:
        load_app_specs(apps)
    assert info.value.problems == [message]
