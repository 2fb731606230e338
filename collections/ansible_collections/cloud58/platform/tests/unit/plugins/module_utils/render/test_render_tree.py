"""Composing clusters/: platform objects, checks against the plan, file names, syncing the tree."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import (
    calico_node_annotations,
    calico_objects,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.clusterdir import load_cluster_dir
from ansible_collections.cloud58.platform.plugins.module_utils.render.app_schema import (
    APP_SCHEMA,
    fill_defaults,
)
from ansible_collections.cloud58.platform.plugins.module_utils.render.docs import apps_markdown, schema_json
from ansible_collections.cloud58.platform.plugins.module_utils.render.errors import AppSpecError, RenderError
from ansible_collections.cloud58.platform.plugins.module_utils.render.file_names import file_name
from ansible_collections.cloud58.platform.plugins.module_utils.render.runner import run_render
from ansible_collections.cloud58.platform.plugins.module_utils.render.targets import (
    ClusterTarget,
    cluster_targets,
    inventory_dirs,
    targets_from_plan,
)
from ansible_collections.cloud58.platform.plugins.module_utils.render.tree import (
    PRUNE_KINDS,
    cluster_files,
    render_clusters,
    sync_tree,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import plan_paths

REPO = Path(__file__).resolve().parents[9]
BJ1 = ClusterTarget("bj1-k8s", "bj1", "bj1-k8s", "north", "bj1", ("bj1-r01", "bj1-r02"), ("online",))
SH1 = ClusterTarget("sh1-k8s", "sh1", "sh1-k8s", "east", "sh1", ("sh1-r01",), ("online",))
SPEC = {
    "name": "shop",
    "team": "retail",
    "namespace": "retail",
    "image": "registry.example/retail/shop:1.0.0",
    "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
    "clusters": {"bj1-k8s": 2, "sh1-k8s": 1},
}


def spec(**changes):
    return ("apps/shop.yaml", fill_defaults(APP_SCHEMA, {**copy.deepcopy(SPEC), **changes}))


def kinds_and_names(rendered):
    return sorted(
        (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        for _s, obj in rendered.objects
    )


def test_every_cluster_gets_platform_objects_and_its_apps():
    bj1, sh1 = render_clusters([BJ1, SH1], [spec(clusters={"bj1-k8s": 1})])
    platform = [
        ("ClusterRole", "", "cloud58-consul-sync"),
        ("ClusterRole", "", "cloud58-crashkeeper"),
        ("ClusterRole", "", "cloud58-loadannotator"),
        ("ClusterRole", "", "cloud58-netshaper"),
        ("ClusterRole", "", "cloud58-observer"),
        ("ClusterRole", "", "cloud58-overload"),
        ("ClusterRole", "", "cloud58-prometheus"),
        ("ClusterRole", "", "cloud58-reconciler"),
        ("ClusterRoleBinding", "", "cloud58-consul-sync"),
        ("ClusterRoleBinding", "", "cloud58-crashkeeper"),
        ("ClusterRoleBinding", "", "cloud58-loadannotator"),
        ("ClusterRoleBinding", "", "cloud58-netshaper"),
        ("ClusterRoleBinding", "", "cloud58-observer"),
        ("ClusterRoleBinding", "", "cloud58-overload"),
        ("ClusterRoleBinding", "", "cloud58-prometheus"),
        ("ClusterRoleBinding", "", "cloud58-reconciler"),
        ("ConfigMap", "kube-system", "cloud58-identity"),
        ("Namespace", "", "cloud58-system"),
        ("PriorityClass", "", "cloud58-business-default"),
        ("PriorityClass", "", "cloud58-business-high"),
        ("PriorityClass", "", "cloud58-business-low"),
        ("PriorityClass", "", "cloud58-platform-critical"),
        ("ServiceAccount", "cloud58-system", "cloud58-observer"),
        ("ServiceAccount", "cloud58-system", "cloud58-reconciler"),
    ]
    assert kinds_and_names(sh1) == platform
    app = [
        ("Deployment", "retail", "shop"),
        ("HorizontalPodAutoscaler", "retail", "shop"),
        ("Namespace", "", "retail"),
        ("PodDisruptionBudget", "retail", "shop"),
        ("ResourceQuota", "retail", "cloud58-quota"),
        ("RoleBinding", "retail", "cloud58-team-edit"),
        ("Service", "retail", "shop"),
    ]
    assert kinds_and_names(bj1) == sorted(platform + app)
    for _source, obj in bj1.objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "cloud58"
        assert obj["metadata"]["labels"]["cloud58.io/cluster"] == "bj1-k8s"
    identity = next(o for _s, o in bj1.objects if o["metadata"]["name"] == "cloud58-identity")
    assert identity["data"] == {"cluster": "bj1-k8s", "datacenter": "bj1", "uid": BJ1.uid}
    assert bj1.cluster_file["identity"] == {"uid": BJ1.uid}
    assert BJ1.uid != SH1.uid


def test_priority_classes_render_no_field_the_api_server_drops():
    # globalDefault: false is not stored by the server (omitempty); sent, it would stay
    # owned by cloud58 and make anyone else's server-side apply of the object conflict.
    [sh1] = render_clusters([SH1], [])
    classes = {o["metadata"]["name"]: o for _s, o in sh1.objects if o["kind"] == "PriorityClass"}
    assert sorted(classes) == [
        "cloud58-business-default",
        "cloud58-business-high",
        "cloud58-business-low",
        "cloud58-platform-critical",
    ]
    for obj in classes.values():
        assert sorted(obj) == ["apiVersion", "description", "kind", "metadata", "preemptionPolicy", "value"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"clusters": {"gz1-k8s": 1}},
            "apps/shop.yaml: clusters.gz1-k8s: unknown cluster; the inventories define bj1-k8s, sh1-k8s "
            "(rule: known-cluster)",
        ),
        (
            {"placement": {"racks": ["bj1-r09"]}},
            "apps/shop.yaml: placement.racks: none of bj1-r09 holds nodes of cluster bj1-k8s "
            "(its racks: bj1-r01, bj1-r02) (rule: known-rack)",
        ),
        (
            {"placement": {"function": "gpu"}},
            "apps/shop.yaml: placement.function: no node of cluster bj1-k8s has function 'gpu' "
            "(its functions: online) (rule: known-function)",
        ),
    ],
)
def test_specs_must_fit_the_plan(changes, message):
    with pytest.raises(AppSpecError) as info:
        render_clusters([BJ1, SH1], [spec(**changes)])
    assert info.value.problems[0] == message


def test_one_team_per_namespace():
    other = (
        "apps/cart.yaml",
        fill_defaults(APP_SCHEMA, {**copy.deepcopy(SPEC), "name": "cart", "team": "growth"}),
    )
    with pytest.raises(AppSpecError) as info:
        render_clusters([BJ1, SH1], [spec(), other])
    assert info.value.problems == [
        "apps/cart.yaml: team: 'growth' differs from team 'retail' of apps/shop.yaml, which shares namespace "
        "'retail' (rule: one-team-per-namespace)"
    ]


@pytest.mark.parametrize(
    ("obj", "name"),
    [
        ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}, "10_namespace_a.yaml"),
        (
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "a"}},
            "32_configmap_a_b.yaml",
        ),
        (
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": "system:Foo"},
            },
            "22_clusterrole_system%3a%46oo.yaml",
        ),
        (
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "w.x.io"},
            },
            "00_customresourcedefinition_w.x.io.yaml",
        ),
        (
            {"apiVersion": "x.io/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "n"}},
            "38_widget_n_w.yaml",
        ),
    ],
)
def test_file_names_sort_in_apply_order_and_never_collide(obj, name):
    assert file_name(obj) == name


def test_calico_objects_of_every_cluster_come_from_its_inventory_plan():
    plan = plan_paths([str(REPO / "inventories/lab")])
    targets = {t.name: t for t in targets_from_plan(plan, "lab")}
    rendered = render_clusters([targets["lab1-k8s"], targets["lab2-k8s"]], [])
    for cluster in rendered:
        calico = [obj for _s, obj in cluster.objects if obj["apiVersion"] == "crd.projectcalico.org/v1"]
        # with the options of the inventory's plan (the lab reserves fixed IPs in lab1 only)
        assert calico == calico_objects(plan, cluster.target.name)
        assert [o["kind"] for o in calico].count("IPReservation") == (cluster.target.name == "lab1-k8s")
        # the per-node AS numbers go to cluster.yml: the Node objects belong to the kubelet
        assert cluster.cluster_file["node_annotations"] == calico_node_annotations(plan, cluster.target.name)
    lab1 = rendered[0]
    assert lab1.cluster_file["node_annotations"]["lab1-w2"] == {"projectcalico.org/ASNumber": "65112"}
    files = sorted(cluster_files(lab1))
    # cluster-scoped custom resources: after CRDs (0x), namespaces (1x) and the core
    # cluster-scoped kinds (20-23), before every namespaced object (3x)
    assert [f for f in files if "bgp" in f or "ip" in f or "felix" in f] == [
        "28_bgpconfiguration_default.yaml",
        "28_bgppeer_lab1-r1-tor1.yaml",
        "28_bgppeer_lab1-r1-tor2.yaml",
        "28_bgppeer_lab1-r2-tor1.yaml",
        "28_bgppeer_lab1-r2-tor2.yaml",
        "28_felixconfiguration_default.yaml",
        "28_ippool_lab1-k8s-lab1-r1.yaml",
        "28_ippool_lab1-k8s-lab1-r2.yaml",
        "28_ipreservation_fixed-lab-demo-fixed.yaml",
    ]
    first = files.index("28_bgpconfiguration_default.yaml")
    assert (files[first - 1], files[first + 9]) == (
        "23_clusterrolebinding_cloud58-reconciler.yaml",
        "31_serviceaccount_cloud58-system_cloud58-observer.yaml",
    )


def test_the_node_agents_groups_may_do_what_their_agent_does_and_nothing_else():
    [cluster] = render_clusters([SH1], [])
    files = cluster_files(cluster)
    found = {
        name: yaml.safe_load(text)
        for name, text in files.items()
        if name.startswith(("22_", "23_"))
        and any(a in name for a in ("netshaper", "overload", "crashkeeper", "loadannotator"))
    }
    assert {name: obj.get("rules", obj.get("subjects")) for name, obj in found.items()} == {
        "22_clusterrole_cloud58-crashkeeper.yaml": [
            {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
        ],
        "23_clusterrolebinding_cloud58-crashkeeper.yaml": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "cloud58:crashkeeper"}
        ],
        "22_clusterrole_cloud58-loadannotator.yaml": [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}
        ],
        "23_clusterrolebinding_cloud58-loadannotator.yaml": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "cloud58:loadannotator"}
        ],
        "22_clusterrole_cloud58-netshaper.yaml": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
        ],
        "22_clusterrole_cloud58-overload.yaml": [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]},
            {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
        ],
        "23_clusterrolebinding_cloud58-netshaper.yaml": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "cloud58:netshaper"}
        ],
        "23_clusterrolebinding_cloud58-overload.yaml": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "cloud58:overload"}
        ],
    }


def test_prometheus_may_read_metrics_and_nothing_else():
    [cluster] = render_clusters([SH1], [])
    files = cluster_files(cluster)
    found = {name: yaml.safe_load(text) for name, text in files.items() if "prometheus" in name}
    assert {
        name: {k: v for k, v in obj.items() if k in ("rules", "roleRef", "subjects")}
        for name, obj in found.items()
    } == {
        "22_clusterrole_cloud58-prometheus.yaml": {
            "rules": [
                {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
            ]
        },
        "23_clusterrolebinding_cloud58-prometheus.yaml": {
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cloud58-prometheus",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "cloud58:prometheus"}
            ],
        },
    }


def test_the_consul_sync_user_may_read_services_and_endpointslices_only():
    [cluster] = render_clusters([SH1], [])
    files = cluster_files(cluster)
    found = {name: yaml.safe_load(text) for name, text in files.items() if "consul-sync" in name}
    metadata = {
        "name": "cloud58-consul-sync",
        "labels": {
            "app.kubernetes.io/component": "cloud58-consul-sync",
            "app.kubernetes.io/managed-by": "cloud58",
            "cloud58.io/cluster": "sh1-k8s",
        },
    }
    assert found == {
        "22_clusterrole_cloud58-consul-sync.yaml": {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": metadata,
            # get, list and watch of Services and EndpointSlices, as cloud58-lvs-sync's (below)
            "rules": LVS_SYNC_FILES["22_clusterrole_cloud58-lvs-sync.yaml"]["rules"],
        },
        "23_clusterrolebinding_cloud58-consul-sync.yaml": {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": metadata,
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cloud58-consul-sync",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "cloud58:consul-sync"}
            ],
        },
    }
    # The rendered text is stable: a second render gives the same bytes.
    assert cluster_files(render_clusters([SH1], [])[0]) == files


LVS_SYNC_FILES = {
    "22_clusterrole_cloud58-lvs-sync.yaml": {
        "kind": "ClusterRole",
        "rules": [
            {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
            {
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["get", "list", "watch"],
            },
        ],
    },
    "23_clusterrolebinding_cloud58-lvs-sync.yaml": {
        "kind": "ClusterRoleBinding",
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "cloud58-lvs-sync",
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "cloud58:lvs-sync"}],
    },
}


@pytest.mark.parametrize(
    ("directors", "expected"),
    [
        pytest.param(True, LVS_SYNC_FILES, id="datacenter-with-directors"),
        pytest.param(False, {}, id="without"),
    ],
)
def test_lvs_sync_identity_is_rendered_where_the_datacenter_has_directors(directors, expected):
    plan = plan_paths([str(REPO / "inventories/lab")]).as_dict()
    if not directors:
        plan["datacenters"]["lab1"]["lvs"]["directors"] = {}
    target = next(t for t in targets_from_plan(plan, "lab") if t.name == "lab1-k8s")
    [cluster] = render_clusters([target], [])
    files = cluster_files(cluster)
    found = {name: yaml.safe_load(text) for name, text in files.items() if "lvs-sync" in name}
    assert sorted(found) == sorted(expected)
    assert {name: {k: obj[k] for k in expected[name]} for name, obj in found.items()} == expected


def test_every_kind_rendered_for_the_repository_is_listed_for_pruning():
    rendered = render_clusters(cluster_targets(inventory_dirs(str(REPO / "inventories"))), [])
    kinds = {f"{obj['apiVersion']}/{obj['kind']}" for r in rendered for _s, obj in r.objects}
    assert {"crd.projectcalico.org/v1/IPPool", "crd.projectcalico.org/v1/IPReservation"} <= kinds
    assert kinds - set(PRUNE_KINDS) == set()


def test_a_calico_object_that_cannot_be_rendered_names_inventory_and_cluster():
    plan = plan_paths([str(REPO / "inventories/lab")]).as_dict()
    plan["datacenters"]["lab1"]["bgp_options"]["fixed_ip_reservations"] = {"lab1-k8s": {"old": ["10.9.9.9"]}}
    target = next(t for t in targets_from_plan(plan, "lab") if t.name == "lab1-k8s")
    with pytest.raises(RenderError) as info:
        render_clusters([target], [])
    assert str(info.value) == (
        "inventories/lab: cluster lab1-k8s: Calico objects: fixed_ip_reservations[lab1-k8s][old]: "
        "10.9.9.9/32 is in no pod pool of the cluster (198.18.16.0/23, 198.18.18.0/24)"
    )


def test_rendered_directory_loads_in_the_engine(tmp_path):
    [bj1] = render_clusters([BJ1], [spec(clusters={"bj1-k8s": 1})])
    sync_tree(str(tmp_path), {"bj1-k8s": cluster_files(bj1)}, check=False, remove_other_clusters=True)
    cluster = load_cluster_dir(str(tmp_path), "bj1-k8s")
    assert cluster.context == "bj1-k8s"
    assert cluster.identity == {"cluster": "bj1-k8s", "datacenter": "bj1", "uid": BJ1.uid}
    assert len(cluster.manifests) == len(bj1.objects) == 31
    assert ("v1", "ResourceQuota") in cluster.prune_kinds
    assert cluster.node_annotations == {}  # a target made by hand carries no plan


def test_rendered_node_annotations_load_in_the_engine(tmp_path):
    plan = plan_paths([str(REPO / "inventories/lab")])
    [lab2] = render_clusters([t for t in targets_from_plan(plan, "lab") if t.name == "lab2-k8s"], [])
    sync_tree(str(tmp_path), {"lab2-k8s": cluster_files(lab2)}, check=False, remove_other_clusters=True)
    cluster = load_cluster_dir(str(tmp_path), "lab2-k8s")
    assert cluster.node_annotations == {
        "lab2-m1": {"projectcalico.org/ASNumber": "65211"},
        "lab2-m2": {"projectcalico.org/ASNumber": "65212"},
        "lab2-m3": {"projectcalico.org/ASNumber": "65211"},
        "lab2-w1": {"projectcalico.org/ASNumber": "65211"},
        "lab2-w2": {"projectcalico.org/ASNumber": "65212"},
    }


def test_sync_tree_adds_changes_removes_and_check_writes_nothing(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "cluster.yml").write_text("cluster: old\n")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "notes.yaml").write_text("not a cluster dir\n")
    wanted = {"c1": {"cluster.yml": "cluster: c1\n", "10_a.yaml": "a\n"}}
    first = sync_tree(str(tmp_path), wanted, check=True, remove_other_clusters=True)
    assert first.as_dict() == {
        "added": ["c1/10_a.yaml", "c1/cluster.yml"],
        "changed": [],
        "removed": ["old/cluster.yml"],
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep", "old"]
    sync_tree(str(tmp_path), wanted, check=False, remove_other_clusters=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c1", "keep"]
    (tmp_path / "c1" / "20_stale.yaml").write_text("x\n")
    (tmp_path / "c1" / "README.md").write_text("kept\n")
    again = sync_tree(
        str(tmp_path), {"c1": {**wanted["c1"], "10_a.yaml": "b\n"}}, check=False, remove_other_clusters=True
    )
    assert again.as_dict() == {"added": [], "changed": ["c1/10_a.yaml"], "removed": ["c1/20_stale.yaml"]}
    assert sorted(p.name for p in (tmp_path / "c1").iterdir()) == ["10_a.yaml", "README.md", "cluster.yml"]
    assert not sync_tree(
        str(tmp_path), {"c1": {**wanted["c1"], "10_a.yaml": "b\n"}}, check=True, remove_other_clusters=True
    ).any


def test_render_of_unknown_cluster_selection_fails(tmp_path):
    params = {
        "inventories_dir": str(REPO / "inventories"),
        "apps_dir": str(REPO / "apps"),
        "clusters_dir": str(tmp_path),
    }
    with pytest.raises(RenderError, match=r"^unknown cluster\(s\) nope; the inventories define "):
        run_render({**params, "clusters": ["nope"]}, check=True)


def test_generated_docs_and_schema_are_current():
    assert (REPO / "docs/apps.md").read_text(encoding="utf-8") == apps_markdown(), (
        "run scripts/ci/gen_app_docs.py"
    )
    assert (REPO / "schemas/app.schema.json").read_text(encoding="utf-8") == schema_json(), (
        "run scripts/ci/gen_app_docs.py"
    )


def test_clusters_directory_is_current():
    """clusters/ is generated: re-rendering the inventories and apps/ must change nothing."""
    params = {
        "inventories_dir": str(REPO / "inventories"),
        "apps_dir": str(REPO / "apps"),
        "clusters_dir": str(REPO / "clusters"),
    }
    result = run_render(params, check=True)
    assert result["files"] == {"added": [], "changed": [], "removed": []}, (
        "clusters/ is stale: run `make render`"
    )
    assert yaml.safe_load((REPO / "clusters/lab1-k8s/cluster.yml").read_text())["context"] == "lab1-k8s"
